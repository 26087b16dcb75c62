import Foundation
public import LedgerCore
import Node

/// `DIR/run/processes.json`: every process `medledger network up` started, so that `network status`
/// finds the nodes and `network down` stops exactly these processes (docs/formats.md §13).
///
/// A pid alone does not name a process: once it exits the kernel may give the number to another.
/// Each record therefore keeps the process's start time (field 22 of `/proc/<pid>/stat`, clock
/// ticks after boot), and a pid is signalled only while its start time still matches.
public struct ProcessTable: Sendable, Codable, Equatable {
    public static let formatName = "medledger-processes/1"
    public static let path = "run/processes.json"

    public struct Record: Sendable, Codable, Equatable {
        public enum Kind: String, Sendable, Codable { case etcd, node, collector }

        /// Unique in the table: `etcd-m0`, `node-st-mary`, `collector-st-mary`.
        public var name: String
        public var kind: Kind
        public var pid: Int32
        /// Field 22 of `/proc/<pid>/stat` when it was started.
        public var startTime: UInt64
        /// The command line, executable first.
        public var argv: [String]
        /// What it serves: `http://127.0.0.1:P` (etcd's client URL, a node's API); nil for a collector.
        public var endpoint: String?
        /// The organisation a node or collector belongs to.
        public var organization: String?
        /// Its stdout and stderr, relative to the network directory.
        public var log: String

        public init(name: String, kind: Kind, pid: Int32, startTime: UInt64, argv: [String], endpoint: String?, organization: String?, log: String) {
            self.name = name
            self.kind = kind
            self.pid = pid
            self.startTime = startTime
            self.argv = argv
            self.endpoint = endpoint
            self.organization = organization
            self.log = log
        }

        enum CodingKeys: String, CodingKey {
            case name, kind, pid, argv, endpoint, organization, log
            case startTime = "start_time"
        }
    }

    public var format = Self.formatName
    public var networkID: Hash256
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64
    public var processes: [Record]

    public init(networkID: Hash256, createdAt: Int64 = Clock.nowMilliseconds(), processes: [Record] = []) {
        self.networkID = networkID
        self.createdAt = createdAt
        self.processes = processes
    }

    enum CodingKeys: String, CodingKey {
        case format, processes
        case networkID = "network_id"
        case createdAt = "created_at"
    }

    public var nodes: [Record] { processes.filter { $0.kind == .node } }
    public var etcdMembers: [Record] { processes.filter { $0.kind == .etcd } }

    /// Holds an exclusive lock on `DIR/run/lock` until released (or the process exits): `network up`
    /// and `network down` on one directory run one at a time (two at once would each record only
    /// what they started, and leave the other's processes unrecorded).
    public final class Lock: Sendable {
        private let descriptor: Int32

        public init(directory: String) throws(LedgerError) {
            try SecureFile.makeDirectory(directory + "/run")
            let path = directory + "/run/lock"
            descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard descriptor >= 0 else { throw LedgerError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                close(descriptor)
                throw LedgerError(.unavailable, "another `medledger network up` or `down` is running on \(directory); wait for it")
            }
        }

        deinit { close(descriptor) }
    }

    /// Where `network down` keeps the table of what it stopped, for `network up` to start again.
    public static let stoppedPath = "run/stopped.json"

    public static func file(in directory: String) -> String { directory + "/" + path }

    /// The table in `directory`, or nil when there is none (nothing is running from it); with
    /// `stopped`, the table of what `network down` last stopped.
    public static func load(directory: String, stopped: Bool = false) throws(LedgerError) -> ProcessTable? {
        let path = directory + "/" + (stopped ? stoppedPath : Self.path)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let bytes = try SecureFile.read(path)
        do {
            let table = try JSONDecoder().decode(ProcessTable.self, from: Data(bytes))
            guard table.format == formatName else {
                throw LedgerError(.malformedEncoding, "\(path) has format \(table.format), expected \(formatName)")
            }
            return table
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.malformedEncoding, "\(path) is not a process table: \(error)")
        }
    }

    /// Writes the table (replacing the file atomically), mode 0644: it holds no secret.
    public func write(directory: String) throws(LedgerError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(self) } catch { throw LedgerError(.internal, "cannot encode the process table: \(error)") }
        let path = Self.file(in: directory)
        try SecureFile.makeDirectory(directory + "/run")
        let temporary = path + ".tmp"
        try? FileManager.default.removeItem(atPath: temporary)
        try SecureFile.create(temporary, contents: [UInt8](data) + [0x0A], mode: 0o644)
        guard rename(temporary, path) == 0 else { throw LedgerError(.io, "cannot write \(path): errno \(errno)") }
    }

    public static func remove(directory: String) {
        try? FileManager.default.removeItem(atPath: file(in: directory))
    }

    /// Moves the table aside as what was stopped (`network down`): `network up` starts it again.
    public static func markStopped(directory: String) {
        let stopped = directory + "/" + stoppedPath
        try? FileManager.default.removeItem(atPath: stopped)
        if rename(file(in: directory), stopped) != 0 { remove(directory: directory) }
    }
}
