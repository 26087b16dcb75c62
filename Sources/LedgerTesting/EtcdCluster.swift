import Etcd
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real etcd cluster for tests: N members of the system `etcd` on 127.0.0.1 with free ports,
/// each in its own temporary data directory, tuned for fast elections.
///
/// It signals only the processes it started (by pid, through ``ManagedProcess``), and ``stop()``
/// ends exactly those and removes its directory.
///
/// ```swift
/// let cluster = try await EtcdCluster.start(members: 3)
/// // … and `await cluster.stop()` on every path, thrown errors included
/// try await withEtcdClient(endpoints: cluster.endpoints) { etcd in … }
/// ```
public final class EtcdCluster: Sendable {
    /// A member's name, ports and data directory (`Etcd.EtcdMember`, shared with `medledger network up`).
    public typealias Member = EtcdMember

    /// Server-side TLS for the client port (`EtcdMember.TLSFiles`).
    public typealias TLSFiles = EtcdMember.TLSFiles

    public let members: [Member]
    public let directory: String
    let tls: TLSFiles?
    let processes: Mutex<[ManagedProcess?]>
    /// Every process started per member, killed ones included (for their logs).
    let history = Mutex<[Int: [ManagedProcess]]>([:])

    /// Every member's endpoint, in member order.
    public var endpoints: [String] { members.map(\.endpoint) }

    /// The pids of the members running now (started by this cluster).
    public var pids: [pid_t] { processes.withLock { $0.compactMap { $0?.pid } } }

    /// The `etcd` executable on `PATH`.
    public static func executable() throws -> String {
        do { return try EtcdMember.executable() } catch { throw EtcdClusterError("\(error)") }
    }

    private init(members: [Member], directory: String, tls: TLSFiles?) {
        self.members = members
        self.directory = directory
        self.tls = tls
        processes = Mutex(Array(repeating: nil, count: members.count))
    }

    /// Starts `count` members and returns once every one serves clients (the cluster has a
    /// leader and every member has joined).
    public static func start(members count: Int = 3, tls: TLSFiles? = nil, timeout: Duration = .seconds(60)) async throws -> EtcdCluster {
        let etcd = try executable()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("medledger-etcd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let members = try EtcdMember.loopback(count, directory: directory)
        let cluster = EtcdCluster(members: members, directory: directory, tls: tls)
        do {
            for index in members.indices {
                let process = try ManagedProcess(etcd, cluster.arguments(index, state: "new"))
                cluster.processes.withLock { $0[index] = process }
                cluster.history.withLock { $0[index, default: []].append(process) }
            }
            for index in members.indices { try await cluster.waitUntilServing(index, timeout: timeout) }
            return cluster
        } catch {
            await cluster.stop()
            throw error
        }
    }

    func arguments(_ index: Int, state: String) -> [String] {
        members[index].arguments(cluster: members, token: URL(fileURLWithPath: directory).lastPathComponent, state: state, tls: tls)
    }

    /// Waits for the member's "serving client traffic" log line (printed once it has joined the
    /// cluster through raft); throws with its output if it exits or the timeout passes first.
    func waitUntilServing(_ index: Int, timeout: Duration) async throws {
        guard let process = processes.withLock({ $0[index] }) else { throw EtcdClusterError("member \(index) is not running") }
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            process.send(SIGKILL)
        }
        defer { watchdog.cancel() }
        guard await process.line(containing: "serving client traffic") != nil else {
            let output = process.stdoutLines.suffix(15).joined(separator: "\n")
            throw EtcdClusterError("etcd member \(members[index].name) did not start within \(timeout):\n\(output)\n\(process.errors.withLock { $0 })")
        }
    }

    /// SIGKILL to one member; returns once it has exited.
    public func kill(_ index: Int) async {
        guard let process = processes.withLock({ state in defer { state[index] = nil }; return state[index] }) else { return }
        process.send(SIGCONT)
        process.send(SIGKILL)
        _ = await process.waitForExit()
    }

    /// SIGSTOP: the member keeps its sockets open but answers nothing. Returns once the kernel
    /// reports the process stopped (`kill` returns before every thread has stopped).
    public func pause(_ index: Int) async throws {
        guard let process = processes.withLock({ $0[index] }) else { throw EtcdClusterError("member \(index) is not running") }
        process.send(SIGSTOP)
        try await Self.waitForState(of: process.pid, stopped: true)
    }

    /// SIGCONT after ``pause(_:)``; returns once the process runs again.
    public func resume(_ index: Int) async throws {
        guard let process = processes.withLock({ $0[index] }) else { throw EtcdClusterError("member \(index) is not running") }
        process.send(SIGCONT)
        try await Self.waitForState(of: process.pid, stopped: false)
    }

    /// Polls `/proc/<pid>/stat` (no event announces a stop) until the process is or is not in
    /// state `T`; throws with the state seen after 5 s.
    static func waitForState(of pid: pid_t, stopped: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        var state = "?"
        while ContinuousClock.now < deadline {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")") {
                state = String(stat[stat.index(after: close)...].drop { $0 == " " }.prefix(1))
                if (state == "T") == stopped { return }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw EtcdClusterError("etcd pid \(pid) did not \(stopped ? "stop" : "continue"): state \(state)")
    }

    /// Starts a member again on its data directory (killing it first if it runs) and waits until
    /// it serves clients.
    public func restart(_ index: Int, timeout: Duration = .seconds(60)) async throws {
        await kill(index)
        let process = try ManagedProcess(try Self.executable(), arguments(index, state: "existing"))
        processes.withLock { $0[index] = process }
        history.withLock { $0[index, default: []].append(process) }
        try await waitUntilServing(index, timeout: timeout)
    }

    /// Starts several members again on their data directories at once (killing any that run),
    /// then waits until every one serves clients. Members that all went down must come back
    /// together: one alone has no quorum and never reports that it serves.
    public func restart(_ indices: [Int], timeout: Duration = .seconds(60)) async throws {
        for index in indices { await kill(index) }
        for index in indices {
            let process = try ManagedProcess(try Self.executable(), arguments(index, state: "existing"))
            processes.withLock { $0[index] = process }
            history.withLock { $0[index, default: []].append(process) }
        }
        for index in indices { try await waitUntilServing(index, timeout: timeout) }
    }

    /// The output lines (etcd's zap log) of every process started for member `index`, oldest first.
    public func output(of index: Int) -> [String] {
        history.withLock { $0[index] ?? [] }.flatMap(\.stdoutLines)
    }

    /// Whether member `index` runs now (started by this cluster and not killed since).
    public func isRunning(_ index: Int) -> Bool { processes.withLock { $0[index] != nil } }

    /// The index of the member that leads now, asked of each running member through `client`
    /// (a client on this cluster's endpoints); waits for an election until `timeout`.
    public func leader(via client: EtcdClient, timeout: Duration = .seconds(20)) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let running = processes.withLock { state in state.indices.filter { state[$0] != nil } }
            for index in running {
                if let status = try? await client.status(endpoint: members[index].endpoint), status.isLeader {
                    return index
                }
            }
            // No event tells a client that an election ended: ask again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
        throw EtcdClusterError("no etcd member became leader within \(timeout)")
    }

    /// Ends every member this cluster started and removes the data directories.
    ///
    /// With SIGKILL: the data is thrown away anyway, and on SIGTERM each member first tries to
    /// hand its leadership to peers that are stopping too, which took 7 s for three members.
    public func stop() async {
        let running = processes.withLock { state in
            defer { state = state.map { _ in nil } }
            return state.compactMap { $0 }
        }
        for process in running { process.send(SIGKILL) }
        for process in running { _ = await process.waitForExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

public struct EtcdClusterError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
