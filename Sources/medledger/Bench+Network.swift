import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Node
import Collector
import Launcher
import Etcd

extension Bench {
    struct NetworkResult: Encodable {
        var orgs: Int
        var etcd_members: Int
        var tx_count: Int
        /// Transactions committed per second on every node: all of them, divided by the time from
        /// the first submission until the last node had the last one.
        var committed_tps_every_node: Double
        /// Per node: its own time to hold all of them.
        var committed_tps_by_node: [String: Double]
        /// Submission (HTTP 202, in etcd's queue) to committed on every node.
        var p50_ms: Double
        var p99_ms: Double
        var max_ms: Double
        /// Submission to 202 (the queue write).
        var acknowledge_p50_ms: Double
        var acknowledge_p99_ms: Double
        var submitted_tps: Double
        /// --rate: the offered load (nil: as fast as the clients go).
        var offered_rate: Double?
        var blocks: UInt64
        var batch_size: UInt32
        var batch_timeout_ms: UInt32
        var clients_per_node: Int
        /// Envelopes per submission request (1: one request per transaction).
        var submit_batch: Int
        var failed_submissions: Int
        /// etcd's gRPC traffic, from every member's own /metrics (etcd_network_client_grpc_{received,sent}_bytes_total).
        var etcd_client_received_bytes_per_s: Double
        var etcd_client_sent_bytes_per_s: Double
        /// Growth of the members' backend databases (etcd_mvcc_db_total_size_in_bytes, summed) during the run.
        var etcd_db_growth_bytes: Int64
        /// SIGKILL of the leader node → the first commit of a new transaction on a surviving node (with --failover).
        var failover_ms: Double?
        var lease_ttl_s: Int
        /// A sequential 8 KiB put to this etcd cluster, before the load (the floor of one queue write).
        var etcd_put_8k_p50_ms: Double
        var solo: Result
        var ratio_to_solo: Double
        var cores: Int
        var load_average: String
    }

    func runNetwork() async throws {
        guard (1...EnvelopeBatch.maxCount).contains(submitBatch) else { throw UserError("--submit-batch must be 1…\(EnvelopeBatch.maxCount)") }
        say("solo baseline (in this process)")
        let (solo, failure) = try await measureSolo()
        if let failure { throw UserError("the solo baseline's ledger failed verification: \(failure)") }
        say("solo: \(solo.ledger_tps) tx/s; starting a network of \(orgs) nodes and \(etcdMembers) etcd members")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("medledger-bench-network-\(UUID().uuidString.prefix(8))").path
        var options = LocalNetwork.Options(directory: directory, executable: LocalNetwork.currentExecutable)
        options.organizations = orgs
        options.etcdMembers = etcdMembers
        options.collectors = false
        options.leaseTTL = 3
        options.config = NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs)
        let table: ProcessTable
        do {
            table = try await LocalNetwork.up(options, logger: Logger(label: "medledger.bench")) { self.say($0) }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
        let stopAll = { @Sendable () async in
            _ = await DetachedProcess.stop(table.processes, grace: .seconds(15))
            ProcessTable.remove(directory: directory)
        }
        let result: NetworkResult
        do {
            result = try await measureNetwork(table, directory: directory, solo: solo)
        } catch {
            await stopAll()
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
        await stopAll()
        if !keep { try? FileManager.default.removeItem(atPath: directory) }
        Output.json(result, pretty: !json)
    }

    final class NetworkTracker: Sendable {
        let submitted = Mutex([Hash256: Double]())
        let acknowledged = Mutex([Double]())
        let failures = Mutex(0)
        /// Per node: id → when this node was first seen to hold it.
        let committed: Mutex<[[Hash256: Double]]>
        init(nodes: Int) { committed = Mutex(Array(repeating: [:], count: nodes)) }

    }

    func measureNetwork(_ table: ProcessTable, directory: String, solo: Result) async throws -> NetworkResult {
        let definition = try NetworkDefinition.load(directory: directory)
        let reader = NodeClient.Signer(identity: try LocalNetwork.statusIdentity(definition, directory: directory), network: definition.networkID)
        let nodes = table.nodes
        let urls = nodes.map { URL(string: $0.endpoint!)! }
        let readers = urls.map { NodeClient(baseURL: $0, signer: reader) }
        let ports = urls.map { $0.port ?? 80 }
        let (_, collectors) = try Self.hospitalCollectors(definition, directory: directory)
        guard !collectors.isEmpty else { throw UserError("--network needs at least one hospital (--orgs 1 or more)") }

        // Setup (untimed): register devices through the first node, wait until every node has them.
        var simulators = collectors.indices.map { DeviceSimulator(hospital: "h\($0)", seed: UInt64($0 + 7)) }
        let today = Clock.nowMilliseconds() / 86_400_000
        var registered: [(udi: String, collector: Int)] = []
        var registrations: [[UInt8]] = []
        var lastID = Hash256.zero
        for index in 0..<devices {
            let collector = index % collectors.count
            let device = simulators[collector].newDevice(today: today)
            let action = DeviceAction.register(udi: device.udi, attributes: device.attributes)
            let (id, envelope) = collectors[collector].transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
            registrations.append(envelope.encoded)
            registered.append((device.udi, collector))
            lastID = id
        }
        let refused = Mutex(0)
        await SocketSubmitter.submit(registrations, ports: ports, connectionsPerPort: clients, batch: 100, began: { _ in }) { _, ok, _ in
            if !ok { refused.withLock { $0 += 1 } }
        }
        guard refused.withLock({ $0 }) == 0 else { throw UserError("\(refused.withLock { $0 }) device registrations were refused") }
        for client in readers {
            let status = try await client.status(lastID, wait: 60)
            guard status.status == "committed" else { throw UserError("device registration did not commit: \(status.status)") }
        }
        say("registered \(devices) devices on every node; signing \(transactions) updates")
        let signed: [(id: Hash256, bytes: [UInt8])] = (0..<transactions).map { index in
            let device = registered[index % registered.count]
            var changes = DeviceAttributes()
            changes.usageHours = Int64(index)
            let action = DeviceAction.update(udi: device.udi, event: "usage", changes: changes)
            let (id, envelope) = collectors[device.collector].transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
            return (id, envelope.encoded)
        }
        let putLatency = try await Self.etcdPutLatency(table)
        let targets = Set(signed.map(\.id))
        let startHeights = try await readers.asyncMap { try await $0.chain().height }
        let etcdBefore = await Self.etcdMetrics(table)

        // Every node is watched: its new blocks are read as they commit, and every id in them timed.
        let tracker = NetworkTracker(nodes: nodes.count)
        let watchers = readers.enumerated().map { index, client in
            Task { () throws -> Double in
                var height = startHeights[index]
                var seen = 0
                while seen < targets.count {
                    try Task.checkCancellation()
                    let tip = try await client.chain().height
                    if tip == height {
                        // The API has no cheap "wait for the next block" read; ask again soon.
                        try await Task.sleep(for: .milliseconds(10))
                        continue
                    }
                    for next in (height + 1)...tip {
                        // The block as sealed (binary), not its JSON view: encoding a view of
                        // thousands of transactions cost the nodes under test CPU for the measurement.
                        let (status, body) = try await client.raw("/v1/blocks/\(next)", accept: LedgerNode.blockMediaType)
                        guard status == 200 else { throw LedgerError(.unavailable, "block \(next): HTTP \(status)") }
                        let now = Date().timeIntervalSince1970
                        let ids = try Block(decoding: [UInt8](body)).envelopes.compactMap { try? Envelope(decoding: $0).id }.filter(targets.contains)
                        // A transaction queued twice (a retried queue write) is in two blocks: count it once.
                        seen = tracker.committed.withLock { state in
                            for id in ids where state[index][id] == nil { state[index][id] = now }
                            return state[index].count
                        }
                    }
                    height = tip
                }
                return Date().timeIntervalSince1970
            }
        }
        let start = Date().timeIntervalSince1970
        let progress = ProgressLine("network benchmark")
        let ids = signed.map(\.id)
        await SocketSubmitter.submit(signed.map(\.bytes), ports: ports, connectionsPerPort: clients, rate: rate, batch: submitBatch, began: { index in
            tracker.submitted.withLock { $0[ids[index]] = Date().timeIntervalSince1970 }
        }) { index, ok, seconds in
            if ok { tracker.acknowledged.withLock { $0.append(seconds) } } else { tracker.failures.withLock { $0 += 1 } }
            if index % 500 == 0 { progress.update(UInt64(index), of: UInt64(ids.count)) }
        }
        let submittedAt = Date().timeIntervalSince1970
        progress.finish()
        say("submitted \(signed.count) in \(String(format: "%.1f", submittedAt - start)) s; waiting for every node")
        let deadline = Task {
            try await Task.sleep(for: .seconds(max(120, transactions / 200)))
            for watcher in watchers { watcher.cancel() }
        }
        var finishes: [Double] = []
        for watcher in watchers {
            do { finishes.append(try await watcher.value) } catch {
                throw UserError("a node did not commit every transaction in time (\(error)); logs in \(directory)/logs (use --keep)")
            }
        }
        deadline.cancel()
        let elapsed = (finishes.max() ?? start) - start
        let etcdAfter = await Self.etcdMetrics(table)
        let endHeights = try await readers.asyncMap { try await $0.chain().height }

        let submitted = tracker.submitted.withLock { $0 }
        let committed = tracker.committed.withLock { $0 }
        let latencies = signed.compactMap { entry -> Double? in
            guard let at = submitted[entry.id] else { return nil }
            let everywhere = committed.map { $0[entry.id] }
            guard everywhere.allSatisfy({ $0 != nil }) else { return nil }
            return everywhere.compactMap { $0 }.max()! - at
        }.sorted()
        let acknowledged = tracker.acknowledged.withLock { $0 }.sorted()
        var perNode: [String: Double] = [:]
        for (index, record) in nodes.enumerated() { perNode[record.name] = (Double(targets.count) / (finishes[index] - start)).rounded() }

        var failoverMilliseconds: Double?
        if failover { failoverMilliseconds = try await measureFailover(table, definition: definition, directory: directory, readers: readers) }

        let tps = Double(targets.count) / max(elapsed, 1e-9)
        let duration = max(elapsed, 1e-9)
        var load = "?"
        if let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) { load = text.split(separator: " ").prefix(3).joined(separator: " ") }
        return NetworkResult(
            orgs: nodes.count, etcd_members: table.etcdMembers.count, tx_count: targets.count, committed_tps_every_node: tps.rounded(),
            committed_tps_by_node: perNode, p50_ms: Self.percentile(latencies, 0.5) * 1000, p99_ms: Self.percentile(latencies, 0.99) * 1000,
            max_ms: (latencies.last ?? 0) * 1000, acknowledge_p50_ms: Self.percentile(acknowledged, 0.5) * 1000,
            acknowledge_p99_ms: Self.percentile(acknowledged, 0.99) * 1000,
            submitted_tps: (Double(signed.count) / max(submittedAt - start, 1e-9)).rounded(), offered_rate: rate,
            blocks: (endHeights.min() ?? 0) - (startHeights.min() ?? 0), batch_size: batchSize, batch_timeout_ms: batchTimeoutMs,
            clients_per_node: clients, submit_batch: submitBatch, failed_submissions: tracker.failures.withLock { $0 },
            etcd_client_received_bytes_per_s: ((etcdAfter.received - etcdBefore.received) / duration).rounded(),
            etcd_client_sent_bytes_per_s: ((etcdAfter.sent - etcdBefore.sent) / duration).rounded(),
            etcd_db_growth_bytes: Int64(etcdAfter.database - etcdBefore.database), failover_ms: failoverMilliseconds, lease_ttl_s: 3,
            etcd_put_8k_p50_ms: putLatency,
            solo: solo, ratio_to_solo: tps / max(solo.ledger_tps, 1), cores: ProcessInfo.processInfo.activeProcessorCount, load_average: load
        )
    }

    /// The median of 100 sequential 8 KiB puts (about one queue entry of 20 transactions).
    static func etcdPutLatency(_ table: ProcessTable) async throws -> Double {
        let endpoints = table.etcdMembers.compactMap { $0.endpoint?.replacingOccurrences(of: "http://", with: "") }
        var logger = Logger(label: "medledger.bench.etcd")
        logger.logLevel = .critical
        return try await withEtcdClient(endpoints: endpoints, logger: logger) { client in
            var times: [Double] = []
            let value = [UInt8](repeating: 0x61, count: 8192)
            for index in 0..<100 {
                let start = ContinuousClock.now
                _ = try await client.put(Array("/bench/put/\(index)".utf8), value)
                let elapsed = ContinuousClock.now - start
                times.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            }
            _ = try await client.delete(prefix: Array("/bench/".utf8))
            return Self.percentile(times.sorted(), 0.5)
        }
    }

    /// Sums of etcd's own counters over every member's client URL (`GET /metrics`).
    static func etcdMetrics(_ table: ProcessTable) async -> (received: Double, sent: Double, database: Double) {
        var totals = (received: 0.0, sent: 0.0, database: 0.0)
        for member in table.etcdMembers {
            guard let endpoint = member.endpoint, let url = URL(string: endpoint + "/metrics"),
                  let (data, _) = try? await URLSession.shared.data(from: url) else { continue }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let value = Double(parts[1]) else { continue }
                switch parts[0] {
                case "etcd_network_client_grpc_received_bytes_total": totals.received += value
                case "etcd_network_client_grpc_sent_bytes_total": totals.sent += value
                case "etcd_mvcc_db_total_size_in_bytes": totals.database += value
                default: break
                }
            }
        }
        return totals
    }

    /// SIGKILL the node that leads (recorded pid, start time checked), then submit one transaction
    /// to a survivor and time until it is committed there.
    func measureFailover(_ table: ProcessTable, definition: NetworkDefinition, directory: String, readers: [NodeClient]) async throws -> Double? {
        var leader: Int?
        for (index, client) in readers.enumerated() {
            if let status: NodeStatus = try? await client.get("v1/node"), status.leaderEpoch != nil { leader = index }
        }
        guard let leader, readers.count > 1 else { return nil }
        let record = table.nodes[leader]
        guard DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime) else { return nil }
        let survivor = (leader + 1) % readers.count
        let (_, collectors) = try Self.hospitalCollectors(definition, directory: directory)
        var simulator = DeviceSimulator(hospital: "failover", seed: 99)
        let device = simulator.newDevice(today: Clock.nowMilliseconds() / 86_400_000)
        let action = DeviceAction.register(udi: device.udi, attributes: device.attributes)
        let (id, envelope) = collectors[0].transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
        say("failover: SIGKILL \(record.name) (pid \(record.pid)), submitting to \(table.nodes[survivor].name)")
        let killed = Date().timeIntervalSince1970
        kill(record.pid, SIGKILL)
        _ = try await NodeClient(baseURL: readers[survivor].baseURL).submit(envelope.encoded)
        let status = try await readers[survivor].status(id, wait: 60)
        guard status.status == "committed" else { return nil }
        return ((Date().timeIntervalSince1970 - killed) * 1000).rounded()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
