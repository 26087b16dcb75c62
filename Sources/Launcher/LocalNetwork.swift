import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import Logging
public import LedgerCore
public import Contracts
public import Node
import Etcd
import Collector

/// A whole network on loopback, as real processes: an etcd cluster of the system `etcd`, one
/// `medledger node --ordering etcd` per organisation, and a collector per hospital
/// (`medledger network up`). Every process is detached and recorded in ``ProcessTable``.
public enum LocalNetwork {
    public struct Options: Sendable {
        public var directory: String
        public var organizations = 4
        public var etcdMembers = 3
        /// The `medledger` executable the node and collector processes run.
        public var executable: String
        public var config = NetworkConfig()
        public var collectors = true
        public var devices = 25
        public var intervalMilliseconds = 250
        public var leaseTTL = 3
        public var logLevel = "warning"
        /// Where to look for `etcd` (default: this process's PATH).
        public var path: String?
        /// For each of: etcd members serving with a leader, every node listening, a leader node.
        public var timeout: Duration = .seconds(90)

        public init(directory: String, executable: String) {
            self.directory = directory
            self.executable = executable
        }
    }

    /// The `medledger` executable of this process.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Builds a fresh network in `options.directory` (as `medledger init` does: each organisation in
    /// `orgs/<id>/`), starts the processes and returns once every etcd member serves with a leader,
    /// every node listens and one node leads. On failure it stops what it started and rethrows.
    public static func up(_ options: Options, logger: Logger, progress: @Sendable (String) -> Void = { _ in }) async throws -> ProcessTable {
        let etcd = try EtcdMember.executable(path: options.path)
        guard (1...64).contains(options.organizations), (1...9).contains(options.etcdMembers) else {
            throw LedgerError(.invalidArgument, "--orgs must be 1...64 and --etcd 1...9")
        }
        let directory = URL(fileURLWithPath: options.directory).standardizedFileURL.path
        let lock = try ProcessTable.Lock(directory: directory)
        defer { withExtendedLifetime(lock) {} }
        if let table = try ProcessTable.load(directory: directory),
           table.processes.contains(where: { DetachedProcess.isRunning(pid: $0.pid, startTime: $0.startTime) }) {
            throw LedgerError(.invalidConfiguration, "a network started from \(directory) is still running: medledger network down --data \(directory)")
        }
        if FileManager.default.fileExists(atPath: directory + "/" + NetworkDefinition.fileName) {
            return try await restart(directory: directory, options: options, logger: logger, progress: progress)
        }
        let spec = NetworkSpec.local(organizations: options.organizations, config: options.config)
        let definition = try NetworkBuilder.build(spec, directory: directory)
        progress("created network \(definition.name) (\(definition.networkID.hex.prefix(16))…) in \(directory)")
        try SecureFile.makeDirectory(directory + "/logs")
        try SecureFile.makeDirectory(directory + "/run")
        let launcher = Launcher(directory: directory, table: ProcessTable(networkID: definition.networkID))
        do {
            try await launcher.startEtcd(etcd, members: options.etcdMembers, timeout: options.timeout, logger: logger)
            progress("etcd: \(options.etcdMembers) member(s) serving, a leader elected")
            try await launcher.startNodes(definition, options: options)
            let reader = try NodeClient.Signer(identity: statusIdentity(definition, directory: directory), network: definition.networkID)
            let leader = try await launcher.waitForLeader(reader: reader, timeout: options.timeout)
            progress("nodes: \(launcher.table.nodes.count) listening, \(leader) leads")
            if options.collectors { try launcher.startCollectors(definition, options: options) }
            return launcher.table
        } catch {
            _ = await DetachedProcess.stop(launcher.table.processes, grace: .seconds(5))
            ProcessTable.remove(directory: directory)
            throw error
        }
    }

    /// Starts again, in place, the processes `network down` stopped (or that died): etcd members
    /// with their data and ports, nodes on their ledgers (on new API ports), collectors sending to
    /// their node's new address.
    static func restart(directory: String, options: Options, logger: Logger, progress: @Sendable (String) -> Void) async throws -> ProcessTable {
        let definition = try NetworkDefinition.load(directory: directory)
        guard let previous = try ProcessTable.load(directory: directory) ?? ProcessTable.load(directory: directory, stopped: true),
              previous.networkID == definition.networkID, !previous.processes.isEmpty
        else {
            throw LedgerError(.invalidConfiguration, "\(directory) holds network \(definition.name) but no record of its processes (\(ProcessTable.stoppedPath)); start a new network in an empty directory")
        }
        // The table names the programs to run: only one this user owns and nobody else can write is
        // trusted, and even then only for their arguments (the programs are this one and PATH's etcd).
        try Self.checkPrivate(directory)
        try Self.checkPrivate(directory + "/run")
        let etcd = try EtcdMember.executable(path: options.path)
        guard previous.processes.allSatisfy({ !$0.argv.isEmpty }) else {
            throw LedgerError(.malformedEncoding, "\(directory)/\(ProcessTable.stoppedPath) names a process without a command")
        }
        progress("starting network \(definition.name) (\(definition.networkID.hex.prefix(16))…) again in \(directory)")
        let launcher = Launcher(directory: directory, table: ProcessTable(networkID: definition.networkID))
        do {
            let members = previous.etcdMembers
            let etcdRecords = try members.map { record in
                try launcher.start(name: record.name, kind: .etcd, etcd, Array(record.argv.dropFirst()), endpoint: record.endpoint)
            }
            try await launcher.waitForEtcd(etcdRecords, timeout: options.timeout, logger: logger)
            progress("etcd: \(members.count) member(s) serving, a leader elected")
            for record in previous.nodes {
                _ = try launcher.start(name: record.name, kind: .node, options.executable, Array(record.argv.dropFirst()), endpoint: nil,
                                       organization: record.organization)
            }
            try await launcher.waitForNodesListening(timeout: options.timeout)
            let reader = try NodeClient.Signer(identity: statusIdentity(definition, directory: directory), network: definition.networkID)
            let leader = try await launcher.waitForLeader(reader: reader, timeout: options.timeout)
            progress("nodes: \(launcher.table.nodes.count) listening, \(leader) leads")
            for record in previous.processes where record.kind == .collector {
                var arguments = Array(record.argv.dropFirst())
                if let at = arguments.firstIndex(of: "--node"), at + 1 < arguments.count,
                   let node = launcher.table.nodes.first(where: { $0.organization == record.organization })?.endpoint {
                    arguments[at + 1] = node
                }
                _ = try launcher.start(name: record.name, kind: .collector, options.executable, arguments, endpoint: nil, organization: record.organization)
            }
            try? FileManager.default.removeItem(atPath: directory + "/" + ProcessTable.stoppedPath)
            return launcher.table
        } catch {
            _ = await DetachedProcess.stop(launcher.table.processes, grace: .seconds(5))
            ProcessTable.markStopped(directory: directory)
            throw error
        }
    }

    /// Refuses a directory that is a symbolic link, is not this user's, or others may write.
    static func checkPrivate(_ path: String) throws(LedgerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw LedgerError(.io, "cannot inspect \(path): errno \(errno)") }
        guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), info.st_mode & 0o022 == 0 else {
            throw LedgerError(.invalidConfiguration, "\(path) must be a directory of this user that no one else may write (not a symbolic link; chmod go-w)")
        }
    }

    /// The identity `network status` and `up` read nodes with: the first auditor, else the first node.
    public static func statusIdentity(_ definition: NetworkDefinition, directory: String) throws(LedgerError) -> SigningIdentity {
        if let (organization, member) = definition.firstMember(role: .auditor) {
            return try definition.identity(member, of: organization, directory: directory)
        }
        return try definition.defaultNode(directory: directory)
    }

    /// The last `lines` lines of a log, for error messages.
    static func tail(_ path: String, lines: Int = 12) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no output)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// Starts the processes one at a time and records each in the table as soon as it runs, so that a
/// failure part-way (or `network down` after a crash of `up`) stops exactly what was started.
final class Launcher: @unchecked Sendable {
    let directory: String
    var table: ProcessTable

    init(directory: String, table: ProcessTable) {
        self.directory = directory
        self.table = table
    }

    /// Each started process's log size before it started (a restarted process appends to its log).
    var logOffsets: [String: Int] = [:]

    func start(name: String, kind: ProcessTable.Record.Kind, _ executable: String, _ arguments: [String],
               endpoint: String?, organization: String? = nil) throws -> ProcessTable.Record {
        let log = "logs/\(name).log"
        logOffsets[name] = ((try? FileManager.default.attributesOfItem(atPath: directory + "/" + log))?[.size] as? NSNumber)?.intValue ?? 0
        let (pid, startTime) = try DetachedProcess.spawn(executable, arguments, log: directory + "/" + log)
        let record = ProcessTable.Record(name: name, kind: kind, pid: pid, startTime: startTime, argv: [executable] + arguments,
                                         endpoint: endpoint, organization: organization, log: log)
        table.processes.append(record)
        try table.write(directory: directory)
        return record
    }

    func update(_ record: ProcessTable.Record) throws {
        guard let index = table.processes.firstIndex(where: { $0.name == record.name }) else { return }
        table.processes[index] = record
        try table.write(directory: directory)
    }

    /// Throws with the end of its log if `record` no longer runs.
    func ensureRunning(_ record: ProcessTable.Record) throws {
        guard DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime) else {
            throw LedgerError(.unavailable, "\(record.name) (pid \(record.pid)) exited; the end of \(directory)/\(record.log):\n\(LocalNetwork.tail(directory + "/" + record.log))")
        }
    }

    func startEtcd(_ etcd: String, members count: Int, timeout: Duration, logger: Logger) async throws {
        let members = try EtcdMember.loopback(count, directory: directory + "/etcd")
        // Distinct per network: members of two local networks never join each other.
        let token = "medledger-\(table.networkID.hex.prefix(16))"
        var records: [ProcessTable.Record] = []
        for member in members {
            records.append(try start(name: "etcd-\(member.name)", kind: .etcd, etcd,
                                     member.arguments(cluster: members, token: token, state: "new"),
                                     endpoint: "http://\(member.endpoint)"))
        }
        try await waitForEtcd(records, timeout: timeout, logger: logger)
    }

    /// Waits until every member in `records` serves and one leads.
    func waitForEtcd(_ records: [ProcessTable.Record], timeout: Duration, logger: Logger) async throws {
        let endpoints = records.compactMap { $0.endpoint?.replacingOccurrences(of: "http://", with: "") }
        var etcdLogger = logger
        etcdLogger.logLevel = .critical
        try await withEtcdClient(endpoints: endpoints, requestTimeout: .seconds(2), logger: etcdLogger) { client in
            let deadline = ContinuousClock.now + timeout
            while true {
                for record in records { try ensureRunning(record) }
                var serving = 0
                var leader = false
                for endpoint in endpoints {
                    if let status = try? await client.status(endpoint: endpoint) {
                        serving += 1
                        leader = leader || status.isLeader
                    }
                }
                if serving == endpoints.count, leader { return }
                guard ContinuousClock.now < deadline else {
                    throw LedgerError(.unavailable, "etcd: \(serving) of \(endpoints.count) members serving\(leader ? "" : ", no leader") after \(timeout); see \(directory)/logs/etcd-*.log")
                }
                // etcd announces readiness only in its log; asking again shortly is the simple way.
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    func startNodes(_ definition: NetworkDefinition, options: LocalNetwork.Options) async throws {
        let endpoints = table.etcdMembers.compactMap { $0.endpoint?.replacingOccurrences(of: "http://", with: "") }.joined(separator: ",")
        for organization in definition.organizations where organization.members.contains(where: { $0.role == .node }) {
            let node = organization.members.first { $0.role == .node }!
            _ = try start(name: "node-\(organization.id)", kind: .node, options.executable, [
                "node", "--data", directory, "--identity", "\(organization.id)/\(node.name)",
                "--database", NetworkDefinition.organizationPath(organization.id, in: directory) + "/" + NetworkDefinition.databaseFileName,
                "--port", "0", "--log-level", options.logLevel,
                "--ordering", "etcd", "--etcd", endpoints, "--lease-ttl", String(options.leaseTTL),
            ], endpoint: nil, organization: organization.id)
        }
        try await waitForNodesListening(timeout: options.timeout)
    }

    /// Waits until every node in the table printed, since it started, the line it prints once its API
    /// listens ("medledger node listening on http://127.0.0.1:P …"), and records its address.
    func waitForNodesListening(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        for var record in table.nodes {
            while record.endpoint == nil {
                try ensureRunning(record)
                if let text = try? String(contentsOfFile: directory + "/" + record.log, encoding: .utf8),
                   let line = text.utf8.dropFirst(logOffsets[record.name] ?? 0).split(separator: UInt8(ascii: "\n")).map({ String(decoding: $0, as: UTF8.self) })
                       .first(where: { $0.contains("medledger node listening on ") }),
                   let url = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }) {
                    record.endpoint = String(url)
                    try update(record)
                    break
                }
                guard ContinuousClock.now < deadline else {
                    throw LedgerError(.unavailable, "\(record.name) is not listening after \(timeout):\n\(LocalNetwork.tail(directory + "/" + record.log))")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Waits until every node answers `GET /v1/node` and one of them leads; returns its name.
    func waitForLeader(reader: NodeClient.Signer, timeout: Duration) async throws -> String {
        let clients = table.nodes.map { ($0, NodeClient(baseURL: URL(string: $0.endpoint!)!, signer: reader)) }
        let deadline = ContinuousClock.now + timeout
        while true {
            var leader: String?
            var answered = 0
            for (record, client) in clients {
                try ensureRunning(record)
                if let status: NodeStatus = try? await client.get("v1/node") {
                    answered += 1
                    if status.leaderEpoch != nil { leader = record.name }
                }
            }
            if answered == clients.count, let leader { return leader }
            guard ContinuousClock.now < deadline else {
                throw LedgerError(.unavailable, "\(answered) of \(clients.count) nodes answer and none leads after \(timeout); see \(directory)/logs/node-*.log")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// One collector per hospital, each sending to its own organisation's node.
    func startCollectors(_ definition: NetworkDefinition, options: LocalNetwork.Options) throws {
        for organization in definition.organizations where organization.kind == .hospital {
            guard let collector = organization.members.first(where: { $0.role == .collector }),
                  let node = table.nodes.first(where: { $0.organization == organization.id })?.endpoint else { continue }
            _ = try start(name: "collector-\(organization.id)", kind: .collector, options.executable, [
                "collector", "--network", directory, "--identity", "\(organization.id)/\(collector.name)", "--node", node,
                "--devices", String(options.devices), "--interval-ms", String(options.intervalMilliseconds), "--log-level", options.logLevel,
            ], endpoint: nil, organization: organization.id)
        }
    }
}
