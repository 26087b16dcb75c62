import ArgumentParser
import Crypto
import Foundation
import Logging
import Synchronization
import LedgerCore
import LedgerStore
import Node
import Collector

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the full pipeline of an embedded node against a plain SQLite baseline; print JSON.",
        discussion: """
            Pre-signs device-update transactions, pushes them through admission (signature and certificate \
            checks), solo ordering, execution and atomic commit, and reports throughput and submit→commit \
            latency. In the same run it inserts the same records into a plain SQLite table (baseline_tps), \
            re-verifies the resulting chain (verify_tps), and measures raw P-256 verification on one core.

            Examples:
              medledger bench --json                          # as fast as it goes
              medledger bench --json --rate 2000 --transactions 20000   # latency at 2,000 tx/s offered
              medledger bench --queries --devices 1000000 --json        # research-query latency
              medledger bench --auth --repetitions 2000 --json          # cost of signed API reads
              medledger bench --records --json                          # patient records: encryption, storage, decisions
              medledger bench --network --orgs 4 --etcd 3 --json --failover   # etcd ordering, real processes
            """
    )

    @Option(name: .long, help: "Device-update transactions to push through the pipeline.")
    var transactions = 50_000

    @Option(name: .long, help: "Devices registered before the timed phase.")
    var devices = 1_000

    @Option(name: .long, help: "Offered load in transactions per second (default: unlimited).")
    var rate: Double?

    @Option(name: .long, help: "Block size (transactions).")
    var batchSize: UInt32 = 5000

    @Option(name: .long, help: "Block timeout in milliseconds.")
    var batchTimeoutMs: UInt32 = 10

    @Flag(name: .long, help: "Print only the JSON result.")
    var json = false

    @Flag(name: .long, help: "Keep the benchmark's ledger directory.")
    var keep = false

    @Flag(name: .long, help: "Benchmark research queries over --devices devices instead of the write pipeline.")
    var queries = false

    @Option(name: .long, help: "Repetitions per query type (--queries), requests per measure (--auth, at least 100).")
    var repetitions = 50

    @Flag(name: .long, help: "Measure what authenticating an API read costs (sign, verify, HTTP) against unauthenticated requests.")
    var auth = false

    @Flag(name: .long, help: "Benchmark patient records: envelope encryption vs plain AES-GCM, records stored/s, access-decision latency at --rate (default 200/s).")
    var records = false

    @Option(name: .long, help: "With --records: bytes per record.")
    var recordBytes = 64 * 1024

    struct Result: Encodable {
        var tx_count: Int
        var ledger_tps: Double
        var p50_ms: Double
        var p99_ms: Double
        var max_ms: Double
        var offered_rate: Double?
        var blocks: UInt64
        var batch_size: UInt32
        var baseline_tps: Double
        var ledger_vs_baseline: Double
        var verify_tps: Double
        var verify_ok: Bool
        var ecdsa_verify_per_core_per_s: Double
        var cores: Int
        var rejected: Int
    }

    @Flag(name: .long, help: "Benchmark a local network of real processes (--orgs nodes, --etcd members) against the solo node, same run.")
    var network = false

    @Option(name: .long, help: "With --network: organisations, each running a node.")
    var orgs = 4

    @Option(name: .customLong("etcd"), help: "With --network: etcd members.")
    var etcdMembers = 3

    @Flag(name: .long, help: "With --network: also SIGKILL the leader node and time the next commit.")
    var failover = false

    @Option(name: .long, help: "With --network: concurrent submitters (keep-alive connections) per node; 64 measured best on 2 cores (16: 377, 32: 764, 64: 1,328, 128: 740 tx/s).")
    var clients = 64

    @Option(name: .customLong("submit-batch"), help: "With --network: envelopes per submission request (1: POST /v1/transactions; more: POST /v1/transactions/batch, at most 1000).")
    var submitBatch = 1

    func run() async throws {
        if queries { return try await runQueries() }
        if auth { return try await runAuth() }
        if records { return try await runRecords() }
        if network { return try await runNetwork() }
        let (result, failure) = try await measureSolo()
        Output.json(result, pretty: !json)
        if let failure { throw UserError("the benchmark's ledger failed verification: \(failure)") }
    }

    /// The solo node's pipeline (in this process) and the plain SQLite baseline; the failure
    /// `verify` found, if any.
    func measureSolo() async throws -> (Result, String?) {
        let (directory, definition, node, runner) = try startNetwork(NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs))
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }

        // Setup (untimed): register devices.
        let (hospitals, collectors) = try Self.hospitalCollectors(definition, directory: directory)
        var simulators = hospitals.enumerated().map { DeviceSimulator(hospital: $0.element.id, seed: UInt64($0.offset + 7)) }
        let today = Clock.nowMilliseconds() / 86_400_000
        var registered: [(udi: String, collector: Int)] = []
        var lastID = Hash256.zero
        for index in 0..<devices {
            let collector = index % collectors.count
            let device = simulators[collector].newDevice(today: today)
            let action = DeviceAction.register(udi: device.udi, attributes: device.attributes)
            let (_, envelope) = collectors[collector].transaction(network: node.network, contract: "devices", action: action.name, arguments: action.arguments)
            lastID = try node.submit(envelope.encoded)
            registered.append((device.udi, collector))
        }
        _ = try await node.waitForCommit(lastID, timeout: .seconds(120))
        say("registered \(devices) devices; signing \(transactions) updates")

        // Pre-sign the timed workload.
        let signed: [(id: Hash256, bytes: [UInt8], udi: String, hours: Int64)] = (0..<transactions).map { index in
            let device = registered[index % registered.count]
            var changes = DeviceAttributes()
            changes.usageHours = Int64(index)
            let action = DeviceAction.update(udi: device.udi, event: "usage", changes: changes)
            let (id, envelope) = collectors[device.collector].transaction(network: node.network, contract: "devices", action: action.name, arguments: action.arguments)
            return (id, envelope.encoded, device.udi, Int64(index))
        }

        // Commit times come from the event stream.
        let tracker = Tracker()
        let target = transactions
        let startHeight = node.tip.height
        let events = try node.events(from: nil)
        let watcher = Task {
            for await event in events {
                let now = Date().timeIntervalSince1970
                var done = 0
                var rejected = 0
                var blockLatencies: [Double] = []
                tracker.submitted.withLock { times in
                    for transaction in event.transactions {
                        if let start = times.removeValue(forKey: transaction.id) { blockLatencies.append(now - start) }
                        done += 1
                        if transaction.status != "committed" { rejected += 1 }
                    }
                }
                tracker.latencies.withLock { $0.append(contentsOf: blockLatencies) }
                let total = tracker.finished.withLock { state -> Int in
                    state.count += done
                    state.rejected += rejected
                    state.last = now
                    return state.count
                }
                if total >= target { return }
            }
        }

        let progress = ProgressLine("benchmark")
        let start = Date().timeIntervalSince1970
        if let rate {
            for (index, transaction) in signed.enumerated() {
                let due = start + Double(index) / rate
                let wait = due - Date().timeIntervalSince1970
                if wait > 0.0005 { try await Task.sleep(for: .microseconds(Int(wait * 1_000_000))) }
                tracker.submitted.withLock { $0[transaction.id] = Date().timeIntervalSince1970 }
                try node.submit(transaction.bytes)
                if index % 1000 == 0 { progress.update(UInt64(index), of: UInt64(signed.count)) }
            }
        } else {
            let workers = ProcessInfo.processInfo.activeProcessorCount
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        var index = worker
                        while index < signed.count {
                            let transaction = signed[index]
                            tracker.submitted.withLock { $0[transaction.id] = Date().timeIntervalSince1970 }
                            try node.submit(transaction.bytes)
                            index += workers
                            if worker == 0, index % 1000 < workers { progress.update(UInt64(index), of: UInt64(signed.count)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        await watcher.value
        progress.finish()
        let (count, rejected, last) = tracker.finished.withLock { $0 }
        let elapsed = last - start
        let sorted = tracker.latencies.withLock { $0 }.sorted()
        func percentile(_ p: Double) -> Double { Self.percentile(sorted, p) * 1000 }
        let blocks = node.tip.height - startHeight
        node.shutdown()
        try await runner.value

        say("baseline: plain SQLite inserts")
        let records = signed.map { PlainSQLiteBaseline.Record(key: $0.udi, event: "usage", value: $0.hours, payload: $0.bytes) }
        let baseline = try PlainSQLiteBaseline.run(path: directory + "/baseline.sqlite", records: records, batchSize: Int(batchSize))

        say("verifying the chain")
        let report = ChainVerifier.verify(store: try LedgerStore(readOnlyPath: directory + "/" + NetworkDefinition.databaseFileName))

        let ecdsa = Self.measureECDSA()
        let ledgerTPS = Double(count) / max(elapsed, 1e-9)
        let result = Result(
            tx_count: count, ledger_tps: ledgerTPS.rounded(), p50_ms: percentile(0.5), p99_ms: percentile(0.99),
            max_ms: (sorted.last ?? 0) * 1000, offered_rate: rate, blocks: blocks, batch_size: batchSize,
            baseline_tps: baseline.rounded(), ledger_vs_baseline: ledgerTPS / baseline, verify_tps: report.transactionsPerSecond.rounded(),
            verify_ok: report.ok, ecdsa_verify_per_core_per_s: ecdsa.rounded(), cores: ProcessInfo.processInfo.activeProcessorCount,
            rejected: rejected
        )
        return (result, report.ok ? nil : report.failure ?? "verification failed")
    }

    /// A fresh demo-shaped network with `config` in a temporary directory, and its node running.
    func startNetwork(_ config: NetworkConfig) throws -> (String, NetworkDefinition, LedgerNode, Task<Void, any Error>) {
        Logs.bootstrap(level: .error)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("medledger-bench-\(UUID().uuidString)").path
        var spec = NetworkSpec.demo
        spec.config = config
        let definition = try NetworkBuilder.build(spec, directory: directory)
        let node = try LedgerNode(directory: directory, logger: Logger(label: "medledger.bench"))
        return (directory, definition, node, Task { try await node.run() })
    }

    /// The hospitals and each one's collector identity.
    static func hospitalCollectors(_ definition: NetworkDefinition, directory: String) throws -> ([NetworkDefinition.OrganizationEntry], [SigningIdentity]) {
        let hospitals = definition.organizations.filter { $0.kind == .hospital }
        let collectors = try hospitals.map { organization in
            try definition.identity(organization.members.first { $0.role == .collector }!, of: organization, directory: directory)
        }
        return (hospitals, collectors)
    }

    /// Progress for a person: on stderr, unless --json output goes to a pipe.
    func say(_ line: String) {
        if !json || Terminal.isInteractive { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    /// Submit and commit times shared between the submitters and the event watcher.
    final class Tracker: Sendable {
        let submitted = Mutex([Hash256: Double]())
        let latencies = Mutex([Double]())
        let finished = Mutex((count: 0, rejected: 0, last: 0.0))
    }

    /// Single-core P-256 verifications per second: the physical limit of admission.
    static func measureECDSA() -> Double {
        let key = P256.Signing.PrivateKey()
        let message = [UInt8](repeating: 7, count: 200)
        let signature = try! key.signature(for: message)
        let iterations = 3000
        let start = Date()
        var valid = 0
        for _ in 0..<iterations where key.publicKey.isValidSignature(signature, for: message) { valid += 1 }
        precondition(valid == iterations)
        return Double(iterations) / Date().timeIntervalSince(start)
    }
}

extension Bench {
    /// The `p` quantile (0…1) of `sorted` (ascending) by the nearest-rank rule; 0 when empty.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}
