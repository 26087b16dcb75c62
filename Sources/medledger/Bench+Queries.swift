import Foundation
import Logging
import LedgerCore
import LedgerStore
import Node
import Collector
import Privacy
import Research

/// `medledger bench --queries`: research-query latency over N devices, with the same aggregates
/// computed by plain SQL on the node's device table as the baseline.
extension Bench {
    struct QueryResult: Encodable {
        var devices: Int
        var repetitions: Int
        var load_seconds: Double
        var table_build_ms: Double
        /// Evaluation over the committed state plus noise: what the query itself costs.
        var count_p50_ms: Double, count_p99_ms: Double
        var grouped_p50_ms: Double, grouped_p99_ms: Double
        var grouped_open_p50_ms: Double, grouped_open_p99_ms: Double
        var sum_p50_ms: Double, sum_p99_ms: Double
        var average_p50_ms: Double, average_p99_ms: Double
        /// The whole round trip through the node: checks, evaluation, noise, ordering the
        /// budget debit and committing it (one fsync'd block).
        var ordered_count_p50_ms: Double, ordered_count_p99_ms: Double
        /// The same aggregates by plain SQL over the node's typed `devices` table.
        var baseline_count_p50_ms: Double
        var baseline_grouped_p50_ms: Double
        var baseline_sum_p50_ms: Double
        var baseline_average_p50_ms: Double
        /// Cost of one noise sample (exact sampler, SecureRandom).
        var noise_us: Double
        var noise_gaussian_us: Double
        /// One released value's noise as answers draw it: the question's seed from the network
        /// noise secret (HMAC-SHA256), a NoiseStream, one discrete Laplace sample (ε 0.1, Δ 1).
        var noise_keyed_us: Double
        var filters: String
    }

    func runQueries() async throws {
        // A budget no real researcher would get: the benchmark measures speed, not privacy.
        let research = ResearchPolicy(budget: PrivacyBudget(epsilonMicros: 1 << 50, deltaPicos: 1 << 50))
        let (directory, definition, node, runner) = try startNetwork(NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs, research: research))
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }

        // Load N devices through the ledger (signed, admitted, ordered, committed), in parallel.
        let (hospitals, collectors) = try Self.hospitalCollectors(definition, directory: directory)
        let first = definition.firstMember(role: .researcher)!
        let researcher = try definition.identity(first.member, of: first.organization, directory: directory)
        let loadStart = Date()
        let progress = ProgressLine("loading devices")
        // One signing worker per hospital: each simulator's serials are distinct from the others'.
        let workers = hospitals.count
        let today = Clock.nowMilliseconds() / 86_400_000
        let total = devices
        let lastIDs = try await withThrowingTaskGroup(of: Hash256.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    let collector = collectors[worker % collectors.count]
                    var simulator = DeviceSimulator(hospital: hospitals[worker % hospitals.count].id, seed: UInt64(worker + 11))
                    var last = Hash256.zero
                    var index = worker
                    while index < total {
                        let device = simulator.newDevice(today: today)
                        let action = DeviceAction.register(udi: device.udi, attributes: device.attributes)
                        let (_, envelope) = collector.transaction(network: node.network, contract: "devices", action: action.name, arguments: action.arguments)
                        while true {
                            do {
                                last = try node.submit(envelope.encoded)
                                break
                            } catch let error as LedgerError where error.code == .overloaded {
                                try await Task.sleep(for: .milliseconds(50))
                            } catch let error as LedgerError where error.code == .duplicateTransaction {
                                break  // a simulated UDI repeated: the device count below is what was loaded
                            }
                        }
                        index += workers
                        if worker == 0, index % 5000 < workers { progress.update(UInt64(index), of: UInt64(total)) }
                    }
                    return last
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for id in lastIDs where id != .zero { _ = try await node.waitForCommit(id, timeout: .seconds(600)) }
        while node.pendingCount > 0 { try await Task.sleep(for: .milliseconds(20)) }
        progress.finish()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        say("loaded \(devices) devices in \(String(format: "%.1f", loadSeconds)) s")

        // Two filters on every query: a hospital set and a battery range (varied per repetition so
        // that each is a new question, not a cached answer).
        let hospitalSet = Array(hospitals.prefix(2).map(\.id))
        func filters(_ i: Int) -> [QueryFilter] {
            [.oneOf(.hospital, hospitalSet), .range(.batteryLevel, lower: Int64(20 + i % 40), upper: nil)]
        }
        func request(_ kind: QueryKind, _ i: Int) -> QueryRequest {
            QueryRequest(spec: QuerySpec(kind: kind, filters: filters(i)).canonical, mechanism: .laplace, epsilonMicros: 100_000 + UInt64(i))
        }
        let policy = node.config.research
        let buildStart = Date()
        let all = QueryRequest(spec: QuerySpec(kind: .count, filters: []), mechanism: .laplace, epsilonMicros: 100_000)
        guard case (.count(let loaded), _, _) = try node.evaluate(all, policy: policy, hospitals: []) else { throw UserError("no count") }
        let tableBuild = Date().timeIntervalSince(buildStart) * 1000

        var random = SecureRandom()
        let kinds: [(String, QueryKind)] = [
            ("count", .count), ("grouped", .groupedCount(.field(.deviceType))), ("grouped_open", .groupedCount(.field(.model))),
            ("sum", .sum(.usageHours)), ("average", .average(.usageHours)),
        ]
        var evaluation: [String: [Double]] = [:]
        for (name, kind) in kinds {
            for i in 0..<repetitions {
                let started = ContinuousClock.now
                let request = request(kind, i)
                let (exact, height, time) = try node.evaluate(request, policy: policy, hospitals: hospitalSet)
                _ = QueryRelease.answer(request, exact: exact, policy: policy, hospitals: hospitalSet, height: height, referenceTime: time, using: &random)
                evaluation[name, default: []].append((ContinuousClock.now - started).seconds * 1000)
            }
        }
        say("evaluation measured; ordered queries")
        var ordered: [Double] = []
        for i in 0..<repetitions {
            let (_, envelope) = researcher.transaction(network: node.network, contract: "research", action: "ask",
                                                       arguments: request(.count, 10_000 + i).encoded)
            let started = ContinuousClock.now
            _ = try await node.answerQuery(envelope.encoded)
            ordered.append((ContinuousClock.now - started).seconds * 1000)
        }

        say("baseline: the same aggregates in plain SQL")
        let placeholders = hospitalSet.map { _ in "?" }.joined(separator: ",")
        let baselineSQL: [(String, String)] = [
            ("count", "SELECT COUNT(*) FROM devices WHERE owner IN (\(placeholders)) AND battery_level >= ?"),
            ("grouped", "SELECT device_type, COUNT(*) FROM devices WHERE owner IN (\(placeholders)) AND battery_level >= ? GROUP BY device_type"),
            ("sum", "SELECT SUM(MIN(MAX(usage_hours, 0), 100000)) FROM devices WHERE owner IN (\(placeholders)) AND battery_level >= ? AND usage_hours IS NOT NULL"),
            ("average", "SELECT COUNT(usage_hours), SUM(MIN(MAX(usage_hours, 0), 100000) - 50000) FROM devices WHERE owner IN (\(placeholders)) AND battery_level >= ?"),
        ]
        var baseline: [String: [Double]] = [:]
        for (name, sql) in baselineSQL {
            for i in 0..<repetitions {
                baseline[name, default: []].append(try node.store.timeBaselineQuery(sql, arguments: hospitalSet + [String(20 + i % 40)]))
            }
        }
        node.shutdown()
        try await runner.value

        let noise = Self.noiseCost(NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000))
        let gaussian = Self.noiseCost(NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 500_000, deltaPicos: 1000))
        let keyed = Self.keyedNoiseCost(NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000))
        func p(_ values: [Double]?, _ q: Double) -> Double {
            (Self.percentile((values ?? []).sorted(), q) * 1000).rounded() / 1000
        }
        let result = QueryResult(
            devices: Int(loaded), repetitions: repetitions, load_seconds: (loadSeconds * 10).rounded() / 10, table_build_ms: tableBuild.rounded(),
            count_p50_ms: p(evaluation["count"], 0.5), count_p99_ms: p(evaluation["count"], 0.99),
            grouped_p50_ms: p(evaluation["grouped"], 0.5), grouped_p99_ms: p(evaluation["grouped"], 0.99),
            grouped_open_p50_ms: p(evaluation["grouped_open"], 0.5), grouped_open_p99_ms: p(evaluation["grouped_open"], 0.99),
            sum_p50_ms: p(evaluation["sum"], 0.5), sum_p99_ms: p(evaluation["sum"], 0.99),
            average_p50_ms: p(evaluation["average"], 0.5), average_p99_ms: p(evaluation["average"], 0.99),
            ordered_count_p50_ms: p(ordered, 0.5), ordered_count_p99_ms: p(ordered, 0.99),
            baseline_count_p50_ms: p(baseline["count"], 0.5), baseline_grouped_p50_ms: p(baseline["grouped"], 0.5),
            baseline_sum_p50_ms: p(baseline["sum"], 0.5), baseline_average_p50_ms: p(baseline["average"], 0.5),
            noise_us: noise, noise_gaussian_us: gaussian, noise_keyed_us: keyed,
            filters: "hospital ∈ {\(hospitalSet.joined(separator: ", "))} and battery_level ≥ 20…59"
        )
        Output.json(result, pretty: !json)
    }

    /// Microseconds per sample, averaged over 200,000 draws with the production generator.
    static func noiseCost(_ noise: NoiseDescription) -> Double {
        var random = SecureRandom()
        let count = 200_000
        var sink: Int64 = 0
        let started = ContinuousClock.now
        for _ in 0..<count { sink &+= noise.sample(using: &random) }
        let elapsed = (ContinuousClock.now - started).seconds
        precondition(sink != .min)
        return (elapsed / Double(count) * 1e6 * 1000).rounded() / 1000
    }

    /// Microseconds per released value on the keyed path, a fresh question each time.
    static func keyedNoiseCost(_ noise: NoiseDescription) -> Double {
        let secret = NoiseSecret()
        let count = 100_000
        var sink: Int64 = 0
        let started = ContinuousClock.now
        for i in 0..<count {
            var stream = NoiseStream(seed: secret.seed(network: .zero, epoch: 1, question: Hash256.of(parts: [withUnsafeBytes(of: i) { Array($0) }])))
            sink &+= noise.sample(using: &stream)
        }
        let elapsed = (ContinuousClock.now - started).seconds
        precondition(sink != .min)
        return (elapsed / Double(count) * 1e6 * 1000).rounded() / 1000
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
