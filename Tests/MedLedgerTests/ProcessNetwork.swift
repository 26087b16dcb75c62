import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerStore
import Node
import Collector
import Etcd
import LedgerTesting

/// What happened when, relative to the start of a fault test, printed as it happens so a failing
/// run shows its own history.
final class FaultTimeline: Sendable {
    let start = ContinuousClock.now
    /// The wall clock at `start`, to place block times on the timeline.
    let startMilliseconds = Clock.nowMilliseconds()
    let label: String
    let events = Mutex<[String]>([])

    init(_ label: String) { self.label = label }

    func note(_ text: String) {
        let line = "[\((ContinuousClock.now - start).inSeconds)] \(text)"
        events.withLock { $0.append(line) }
        print("\(label): \(line)")
    }
}

extension Duration {
    /// Seconds with millisecond precision, e.g. "2.345s".
    var inSeconds: String {
        let (seconds, attoseconds) = components
        return String(format: "%.3fs", Double(seconds) + Double(attoseconds) / 1e18)
    }
}

/// Real processes on loopback: a 3-member etcd cluster and one `medledger node --ordering etcd`
/// per organisation, started from one `medledger init` directory. Faults are signals to exactly
/// the pids this network started; ``stop()`` ends every one of them.
final class ProcessNetwork: Sendable {
    static let organizations = ["st-mary", "north-general", "city-childrens"]

    struct RunningNode: Sendable {
        var process: ManagedProcess
        var url: URL
    }

    let names: [String]
    let directory: String
    let etcd: EtcdCluster
    let definition: NetworkDefinition
    let auditor: SigningIdentity
    /// Each organisation's collector, which signs the load and the probes.
    let collectors: [String: SigningIdentity]
    let leaseTTL: Int
    let timeline: FaultTimeline
    /// Node fingerprint → organisation, to name the holder of etcd's leader key.
    let fingerprints: [Hash256: String]
    /// With `proxied`: each node reaches every etcd member through its own ``LoopbackProxy``, so a
    /// test can cut one node off.
    let proxies: [String: [LoopbackProxy]]
    let running = Mutex<[String: RunningNode]>([:])
    let started = Mutex<[(String, ManagedProcess)]>([])
    /// Short timeouts: a stopped or cut-off node must not hold a test for URLSession's minutes.
    let session: URLSession

    private init(names: [String], directory: String, etcd: EtcdCluster, definition: NetworkDefinition, auditor: SigningIdentity,
                 collectors: [String: SigningIdentity], leaseTTL: Int, timeline: FaultTimeline, fingerprints: [Hash256: String], proxies: [String: [LoopbackProxy]]) {
        self.names = names
        self.directory = directory
        self.etcd = etcd
        self.definition = definition
        self.auditor = auditor
        self.collectors = collectors
        self.leaseTTL = leaseTTL
        self.timeline = timeline
        self.fingerprints = fingerprints
        self.proxies = proxies
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 5
        configuration.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: configuration)
    }

    /// Runs `body` on a fresh network and stops everything it started on every path.
    static func with(_ label: String, nodes: [String] = organizations, leaseTTL: Int = 2,
                     environment: [String: [String: String]] = [:], proxied: Bool = false, initArguments: [String] = [],
                     _ body: (ProcessNetwork) async throws -> Void) async throws {
        let network = try await start(label, nodes: nodes, leaseTTL: leaseTTL, environment: environment, proxied: proxied,
                                      initArguments: initArguments)
        do {
            try await body(network)
        } catch {
            network.timeline.note("failed: \(error)")
            await network.stop(printingErrors: true)
            throw error
        }
        await network.stop(printingErrors: ProcessInfo.processInfo.environment["MEDLEDGER_TEST_LOG"] != nil)
    }

    static func start(_ label: String, nodes: [String], leaseTTL: Int, environment: [String: [String: String]],
                      proxied: Bool, initArguments: [String]) async throws -> ProcessNetwork {
        let timeline = FaultTimeline(label)
        let directory = Fixtures.temporaryPath(label)
        let etcd = try await EtcdCluster.start(members: 3)
        let network: ProcessNetwork
        do {
            let initialized = try await ManagedProcess.medledger(["init", "--out", directory, "--batch-size", "20", "--batch-timeout-ms", "10"] + initArguments)
            guard initialized.status == 0 else { throw LedgerError(.io, "medledger init failed: \(initialized.stderr)") }
            let definition = try NetworkDefinition.load(directory: directory)
            var fingerprints: [Hash256: String] = [:]
            for name in nodes { fingerprints[try definition.identity(named: "\(name)/node", directory: directory).fingerprint] = name }
            var collectors: [String: SigningIdentity] = [:]
            for name in nodes { collectors[name] = try definition.identity(named: "\(name)/collector", directory: directory) }
            var proxies: [String: [LoopbackProxy]] = [:]
            if proxied {
                for name in nodes { proxies[name] = try etcd.members.map { try LoopbackProxy(to: $0.clientPort) } }
            }
            network = ProcessNetwork(names: nodes, directory: directory, etcd: etcd, definition: definition,
                                     auditor: try definition.identity(named: "device-regulator/auditor", directory: directory),
                                     collectors: collectors, leaseTTL: leaseTTL, timeline: timeline, fingerprints: fingerprints, proxies: proxies)
        } catch {
            await etcd.stop()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        do {
            for name in nodes { try await network.startNode(name, environment: environment[name] ?? [:]) }
            timeline.note("etcd members \(etcd.pids), nodes \(network.pids)")
        } catch {
            await network.stop(printingErrors: true)
            throw error
        }
        return network
    }

    func database(_ name: String) -> String { directory + "/\(name).sqlite" }

    var pids: [String: pid_t] { running.withLock { $0.mapValues(\.process.pid) } }

    var runningNames: [String] { running.withLock { $0.keys.sorted() } }

    func url(_ name: String) -> URL? { running.withLock { $0[name]?.url } }

    func process(_ name: String) -> ManagedProcess? { running.withLock { $0[name]?.process } }

    /// Starts (or restarts, on its database) the node of `name`; returns once it listens.
    /// `etcdEndpoints` replaces the cluster's endpoints (a proxy in front of them, for a cut).
    func startNode(_ name: String, environment: [String: String] = [:], etcdEndpoints: [String]? = nil) async throws {
        let endpoints = etcdEndpoints ?? proxies[name]?.map(\.endpoint) ?? etcd.endpoints
        let process = try ManagedProcess(ManagedProcess.medledgerPath, [
            "node", "--data", directory, "--identity", "\(name)/node", "--database", database(name), "--port", "0",
            "--log-level", ProcessInfo.processInfo.environment["MEDLEDGER_TEST_LOG"] == nil ? "warning" : "info",
            "--ordering", "etcd", "--etcd", endpoints.joined(separator: ","), "--lease-ttl", String(leaseTTL),
        ], environment: environment)
        started.withLock { $0.append((name, process)) }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            process.send(SIGKILL)
        }
        defer { watchdog.cancel() }
        guard let line = await process.line(containing: "listening on"),
              let address = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
              let url = URL(string: String(address))
        else {
            throw LedgerError(.io, "node \(name) did not start: \(process.errors.withLock { $0 }.suffix(3000))")
        }
        running.withLock { $0[name] = RunningNode(process: process, url: url) }
    }

    /// SIGKILL to one node; returns once it has exited.
    func kill(_ name: String) async {
        guard let node = running.withLock({ $0.removeValue(forKey: name) }) else { return }
        node.process.send(SIGCONT)
        node.process.send(SIGKILL)
        _ = await node.process.waitForExit(timeout: .seconds(30))
        timeline.note("SIGKILL node \(name) (pid \(node.process.pid))")
    }

    /// SIGSTOP: the node keeps its sockets (and its etcd lease runs out) but does nothing.
    func pause(_ name: String) async throws {
        guard let process = process(name) else { throw LedgerError(.internal, "\(name) is not running") }
        process.send(SIGSTOP)
        try await Self.waitForState(of: process.pid, stopped: true)
        timeline.note("SIGSTOP node \(name)")
    }

    func resume(_ name: String) async throws {
        guard let process = process(name) else { throw LedgerError(.internal, "\(name) is not running") }
        process.send(SIGCONT)
        try await Self.waitForState(of: process.pid, stopped: false)
        timeline.note("SIGCONT node \(name)")
    }

    /// Whether the kernel reports `pid` stopped (state `T`): no event announces it, so this polls.
    static func waitForState(of pid: pid_t, stopped: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
                let state = stat[stat.index(after: close)...].drop { $0 == " " }.prefix(1)
                if (state == "T") == stopped { return }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw LedgerError(.internal, "pid \(pid) did not \(stopped ? "stop" : "continue")")
    }

    // MARK: etcd

    func withEtcd<Result: Sendable>(_ body: (EtcdClient) async throws -> Result) async throws -> Result {
        try await withEtcdClient(endpoints: etcd.endpoints, requestTimeout: .seconds(3), body)
    }

    /// The index of the etcd member that leads now.
    func etcdLeader() async throws -> Int {
        try await withEtcd { client in try await etcd.leader(via: client) }
    }

    func killEtcd(_ index: Int) async {
        await etcd.kill(index)
        timeline.note("SIGKILL etcd member m\(index)")
    }

    func restartEtcd(_ indices: [Int]) async throws {
        try await etcd.restart(indices)
        timeline.note("restarted etcd member(s) \(indices.map { "m\($0)" })")
    }

    /// The node holding etcd's leader key now (what the nodes' election decides), if any.
    func leaderKeyHolder() async throws -> String? {
        let key = Array("/medledger/\(definition.networkID.hex)/leader".utf8)
        return try await withEtcd { client in
            guard let value = try await client.range(key).kvs.first?.value else { return nil }
            return Hash256(bytes: value).flatMap { fingerprints[$0] } ?? "unknown"
        }
    }

    // MARK: API

    func reader(_ name: String) -> NodeClient? {
        url(name).map { NodeClient(baseURL: $0, signer: .init(identity: auditor, network: definition.networkID)) }
    }

    /// A signed GET to a node with this network's short timeouts.
    func get(_ name: String, _ target: String, timeout: TimeInterval = 5) async throws -> (status: Int, body: Data) {
        guard let reader = reader(name), let url = URL(string: target, relativeTo: reader.baseURL)?.absoluteURL else {
            throw LedgerError(.unavailable, "\(name) is not running")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        let (data, response) = try await session.data(for: reader.signed(request))
        guard let http = response as? HTTPURLResponse else { throw LedgerError(.io, "no HTTP response") }
        return (http.statusCode, data)
    }

    func height(_ name: String) async -> UInt64? {
        guard let (status, body) = try? await get(name, "/v1/chain"), status == 200 else { return nil }
        return (try? JSONDecoder().decode(NodeClient.Chain.self, from: body))?.height
    }

    /// The transaction's status on `name` ("committed", "rejected", "pending", "unknown"), waiting
    /// up to `wait` seconds for a final answer.
    func status(_ id: Hash256, on name: String, wait: Int = 0) async -> NodeClient.Status? {
        guard let (status, body) = try? await get(name, "/v1/transactions/\(id.hex)?wait=\(wait)", timeout: TimeInterval(wait + 5)),
              status == 200 else { return nil }
        return try? JSONDecoder().decode(NodeClient.Status.self, from: body)
    }

    /// Posts an envelope; true if the node acknowledged it (202: the transaction is in etcd's queue).
    func submit(_ envelope: [UInt8], to name: String) async -> Result<Void, LedgerError> {
        guard let url = url(name) else { return .failure(LedgerError(.unavailable, "\(name) is not running")) }
        var request = URLRequest(url: url.appendingPathComponent("v1/transactions"))
        request.httpMethod = "POST"
        request.timeoutInterval = 5
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(envelope)
        do {
            let (data, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else { return .failure(LedgerError(.io, "no HTTP response")) }
            if http.statusCode == 202 { return .success(()) }
            return .failure(LedgerError(.io, "HTTP \(http.statusCode): \(String(decoding: data.prefix(300), as: UTF8.self))"))
        } catch {
            return .failure(LedgerError(.io, "\(error)"))
        }
    }

    /// Which running node leads, from each node's own `/metrics` (highest epoch if two claim it,
    /// as a node resumed from SIGSTOP may for a moment).
    func leader(among candidates: [String]? = nil, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var leaders: [(String, UInt64)] = []
            for name in candidates ?? runningNames {
                guard let (status, body) = try? await get(name, "/metrics", timeout: 2), status == 200 else { continue }
                let text = String(decoding: body, as: UTF8.self)
                guard text.contains("\nmedledger_leader 1\n") else { continue }
                let epoch = text.split(separator: "\n").first { $0.hasPrefix("medledger_leader_epoch ") }
                    .flatMap { UInt64($0.split(separator: " ")[1]) } ?? 0
                leaders.append((name, epoch))
            }
            if let leader = leaders.max(by: { $0.1 < $1.1 }) { return leader.0 }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LedgerError(.internal, "no node reports that it leads within \(timeout)")
    }

    /// A fresh transaction signed by the collector of `organization`.
    func transaction(_ organization: String, serial: Int, timestamp: Int64 = Clock.nowMilliseconds()) throws -> (id: Hash256, envelope: [UInt8]) {
        guard let signer = collectors[organization] else { throw LedgerError(.invalidArgument, "no collector for \(organization)") }
        let action = DeviceAction.register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())
        let (id, envelope) = signer.transaction(network: definition.networkID, contract: "devices", action: action.name,
                                                arguments: action.arguments, timestamp: timestamp)
        return (id, envelope.encoded)
    }

    /// Progress: submits one probe to each of `through` (every running node by default), and
    /// returns how long after `since` the last probe was committed on every running node.
    /// A probe a node refuses is resubmitted until `timeout`.
    @discardableResult
    func progress(since: ContinuousClock.Instant, through: [String]? = nil, committedOn: [String]? = nil, what: String,
                  timeout: Duration = .seconds(60)) async throws -> Duration {
        let deadline = ContinuousClock.now + timeout
        var serial = 900_000_000 + Int.random(in: 0..<90_000_000)
        var probes: [Hash256] = []
        for name in through ?? runningNames {
            while true {
                serial += 1
                let (id, envelope) = try transaction(name, serial: serial)
                if case .success = await submit(envelope, to: name) {
                    probes.append(id)
                    break
                }
                guard ContinuousClock.now < deadline else { throw LedgerError(.unavailable, "\(name) acknowledged no probe within \(timeout)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        for id in probes {
            for name in committedOn ?? runningNames {
                while true {
                    let answer = await status(id, on: name, wait: 5)
                    if answer?.status == "committed" { break }
                    if answer?.status == "rejected" {
                        throw LedgerError(.internal, "probe \(id.hex.prefix(12)), acknowledged, was refused in execution on \(name): \(answer?.code ?? "") \(answer?.message ?? "")")
                    }
                    guard ContinuousClock.now < deadline else {
                        throw LedgerError(.unavailable, "probe \(id.hex.prefix(12)) not committed on \(name) within \(timeout)")
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - since
        timeline.note("progress (\(what)): probes committed on every node \(elapsed.inSeconds) after it")
        return elapsed
    }

    /// Makes `name` the leader: every other node is stopped (SIGSTOP) until `name` holds etcd's
    /// leader key (asked of etcd, not of the node: a node with a skewed clock refuses signed
    /// reads), then continued. The old leader's lease runs out meanwhile: about a TTL.
    func makeLeader(_ name: String, timeout: Duration = .seconds(30)) async throws {
        let others = runningNames.filter { $0 != name }
        for other in others { try await pause(other) }
        do {
            let deadline = ContinuousClock.now + timeout
            while try await leaderKeyHolder() != name {
                guard ContinuousClock.now < deadline else { throw LedgerError(.unavailable, "\(name) did not take the lead within \(timeout)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        } catch {
            for other in others { try? await resume(other) }
            throw error
        }
        for other in others { try await resume(other) }
        timeline.note("\(name) leads")
    }

    /// Waits until `name` reaches the height the other running nodes have now; returns how long it took.
    @discardableResult
    func catchUp(_ name: String, since: ContinuousClock.Instant, timeout: Duration = .seconds(60)) async throws -> Duration {
        var target: UInt64 = 0
        for other in runningNames where other != name { target = max(target, await height(other) ?? 0) }
        let deadline = ContinuousClock.now + timeout
        var reached: UInt64 = 0
        while ContinuousClock.now < deadline {
            reached = await height(name) ?? 0
            if reached >= target {
                let elapsed = ContinuousClock.now - since
                timeline.note("\(name) caught up to height \(target) \(elapsed.inSeconds) after its restart")
                return elapsed
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LedgerError(.unavailable, "\(name) reached \(reached) of \(target) within \(timeout)")
    }

    /// Cuts `name` off etcd (it was started `proxied`): nothing moves on its connections.
    func cut(_ name: String) {
        for proxy in proxies[name] ?? [] { proxy.cut() }
        timeline.note("\(name) cut off from etcd")
    }

    func heal(_ name: String) {
        for proxy in proxies[name] ?? [] { proxy.heal() }
        timeline.note("\(name) reconnected to etcd")
    }

    /// Whether any process started for `name` wrote `text` to its stderr (its log).
    func logged(_ name: String, _ text: String) -> Bool {
        started.withLock { $0 }.contains { $0.0 == name && $0.1.errors.withLock { $0 }.contains(text) }
    }

    // MARK: Stop

    /// SIGKILLs every process this network started that still runs, and removes its directory.
    func stop(printingErrors: Bool) async {
        let all = started.withLock { $0 }
        for (name, process) in all {
            process.send(SIGCONT)
            process.send(SIGKILL)
            _ = await process.waitForExit(timeout: .seconds(10))
            let errors = process.errors.withLock { $0 }
            if printingErrors, !errors.isEmpty { print("[\(name) pid \(process.pid) stderr]\n\(errors.suffix(3000))") }
        }
        running.withLock { $0 = [:] }
        if printingErrors {
            for member in etcd.members.indices {
                let lines = etcd.output(of: member).filter { $0.contains("\"level\":\"warn\"") || $0.contains("\"level\":\"error\"") }
                if !lines.isEmpty { print("[etcd m\(member) warnings]\n\(lines.suffix(20).joined(separator: "\n"))") }
            }
        }
        for proxy in proxies.values.joined() { proxy.close() }
        await etcd.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
