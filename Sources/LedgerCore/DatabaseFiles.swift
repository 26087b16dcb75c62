#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SQLite database files readable by their owner only.
public enum DatabaseFiles {
    /// Makes the database at `path` and its `-wal` and `-shm` files 0600, whatever existed before:
    /// an existing file is narrowed, a new one is created 0600 before SQLite opens it (SQLite gives
    /// `-wal` and `-shm` the mode of the database file). The node's ledger, the account store and
    /// a collector's outbox all open their databases through it.
    public static func restrictPermissions(_ path: String) throws(LedgerError) {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LedgerError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw LedgerError(.io, "cannot restrict the permissions of \(path)") }
        for suffix in ["-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            guard chmod(path + suffix, 0o600) == 0 else { throw LedgerError(.io, "cannot restrict the permissions of \(path + suffix)") }
        }
    }
}
