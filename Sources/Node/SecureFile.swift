#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
public import LedgerCore

/// File helpers that never widen permissions: private keys are created 0600 from the first byte.
public enum SecureFile {
    /// Creates `path` with `mode` (default 0600) and writes `contents`; fails if it exists.
    public static func create(_ path: String, contents: [UInt8], mode: mode_t = 0o600) throws(LedgerError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw LedgerError(.io, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard contents.withUnsafeBytes({ writeAll(fd, $0) }) else {
            throw LedgerError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        guard fsync(fd) == 0 else { throw LedgerError(.io, "cannot sync \(path)") }
    }

    /// Writes all of `bytes` to `fd` (short writes continued); false on an error, `errno` set.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    public static func create(_ path: String, text: String, mode: mode_t = 0o600) throws(LedgerError) {
        try create(path, contents: Array(text.utf8), mode: mode)
    }

    /// The permission bits of `path`.
    public static func mode(of path: String) -> Int? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let mode = attributes[.posixPermissions] as? NSNumber else { return nil }
        return mode.intValue & 0o777
    }

    public static func read(_ path: String) throws(LedgerError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LedgerError(.notFound, "cannot read \(path)")
        }
        return [UInt8](data)
    }

    /// Creates `path` (and missing parents) 0700; an existing directory is narrowed to 0700.
    public static func makeDirectory(_ path: String) throws(LedgerError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw LedgerError(.io, "cannot create directory \(path)")
        }
        try restrictDirectory(path)
    }

    /// Copies the regular files under `source` into `destination` (created 0700, like every
    /// directory below it), skipping the file names in `excluded`. A file readable only by its
    /// owner stays 0600; any other becomes 0644. Fails if a destination file exists.
    public static func copyDirectory(_ source: String, to destination: String, excluding excluded: Set<String> = []) throws(LedgerError) {
        try makeDirectory(destination)
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: source).sorted() } catch {
            throw LedgerError(.io, "cannot list \(source)")
        }
        for entry in entries where !excluded.contains(entry) {
            let path = source + "/" + entry
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                try copyDirectory(path, to: destination + "/" + entry, excluding: excluded)
            } else {
                let mode: mode_t = (self.mode(of: path) ?? 0o600) & 0o077 == 0 ? 0o600 : 0o644
                try create(destination + "/" + entry, contents: try read(path), mode: mode)
            }
        }
    }

    /// Narrows an existing directory to 0700 (a node's data directory holds its keys and ledger).
    public static func restrictDirectory(_ path: String) throws(LedgerError) {
        guard chmod(path, 0o700) == 0 else {
            throw LedgerError(.io, "cannot restrict the permissions of \(path): \(String(cString: strerror(errno)))")
        }
    }
}
