import Testing
import Foundation
import LedgerCore
import Contracts
import LedgerStore
import Node
import Collector
import LedgerTesting

/// Research queries through a real node: SQLite, ordering, the in-memory device table, audit.
@Suite("Research queries on a node")
struct ResearchNodeTests {
    /// ε up to 100 per query: discrete Laplace noise at b = 0.01 is 0 except with probability
    /// 2e^-100/(1+e^-100), so answers can be checked exactly without switching noise off.
    static let precise = ResearchPolicy(maxEpsilonMicrosPerQuery: 100_000_000,
                                        budget: PrivacyBudget(epsilonMicros: 10_000_000_000, deltaPicos: 1_000_000_000))

    static func register(_ harness: NodeHarness, hospital: String, count: Int, seed: UInt64) async throws -> Int64 {
        var simulator = DeviceSimulator(hospital: hospital, seed: seed)
        var last = Hash256.zero
        for _ in 0..<count {
            let (udi, attributes) = simulator.newDevice(today: Clock.nowMilliseconds() / 86_400_000)
            last = try harness.node.submit(try harness.sign("\(hospital)/collector", .register(udi: udi, attributes: attributes)).encoded)
        }
        guard case .committed(let height, _, _) = try await harness.node.waitForCommit(last, timeout: .seconds(30)) else {
            throw LedgerError(.internal, "registrations did not commit")
        }
        return Int64(height)
    }

    static func ask(_ harness: NodeHarness, _ kind: QueryKind, epsilon: UInt64 = 100_000_000, filters: [QueryFilter] = [],
                    asOf: UInt64? = nil, signer: String = "medtech-research/researcher") throws -> Envelope {
        let request = QueryRequest(spec: QuerySpec(kind: kind, filters: filters).canonical, mechanism: .laplace, epsilonMicros: epsilon, asOfHeight: asOf)
        return try harness.identity(signer).transaction(network: harness.node.network, contract: "research", action: "ask",
                                                        arguments: request.encoded).envelope
    }

    /// The code the node refuses `ask` with (nil if it answers).
    static func refusal(_ node: LedgerNode, _ ask: Envelope) async -> LedgerError.Code? {
        do throws(LedgerError) {
            _ = try await node.answerQuery(ask.encoded)
            return nil
        } catch {
            return error.code
        }
    }

    static func count(_ outcome: QueryOutcome) -> Int64? {
        if case .count(let value) = outcome.answer.result { return value.value }
        return nil
    }

    @Test func answersMatchTheStateTheyDescribeIncludingPastBlocks() async throws {
        let harness = try NodeHarness(research: Self.precise)
        let firstHeight = try await Self.register(harness, hospital: "st-mary", count: 20, seed: 1)
        let node = harness.node
        let before = try await node.answerQuery(try Self.ask(harness, .count).encoded)
        #expect(Self.count(before) == 20)
        #expect(!before.cached)
        _ = try await Self.register(harness, hospital: "north-general", count: 7, seed: 2)

        // The latest state, then the state as of the first registrations' block.
        let latest = try await node.answerQuery(try Self.ask(harness, .count).encoded)
        #expect(Self.count(latest) == 27)
        let past = try await node.answerQuery(try Self.ask(harness, .count, asOf: UInt64(firstHeight)).encoded)
        #expect(Self.count(past) == 20)
        #expect(past.answer.height == UInt64(firstHeight))
        // It is the question first asked about that very block: the recorded answer, free.
        #expect(before.answer.height == UInt64(firstHeight))
        #expect(past.cached && past.record.answerHash == before.record.answerHash)
        let filtered = try await node.answerQuery(try Self.ask(harness, .count, filters: [.oneOf(.hospital, ["north-general"])]).encoded)
        #expect(Self.count(filtered) == 7)

        // A closed-domain grouping releases every hospital, the empty one included.
        let grouped = try await node.answerQuery(try Self.ask(harness, .groupedCount(.field(.hospital))).encoded)
        guard case .grouped(let groups, _, let threshold) = grouped.answer.result else { Issue.record("not grouped"); return }
        #expect(threshold == nil)
        #expect(groups.map(\.label) == ["(other)", "city-childrens", "north-general", "st-mary"])
        #expect(groups.map(\.value) == [0, 0, 7, 27 - 7])

        // An average releases a noisy sum and a noisy count; at this ε both are exact.
        let average = try await node.answerQuery(try Self.ask(harness, .average(.usageHours), epsilon: 50_000_000).encoded)
        guard case .average(let sum, let count, let center, _, _) = average.answer.result else { Issue.record("not an average"); return }
        #expect(count.value == 27)
        #expect(center == 50_000)
        #expect(count.noise.epsilonMicros == 25_000_000 && sum.noise.epsilonMicros == 25_000_000)

        // A query about a block that does not exist is refused before anything is spent.
        #expect(await Self.refusal(node, try Self.ask(harness, .count, asOf: 10_000)) == .notFound)

        // Every node replaying the chain reaches the same state, budgets and recorded answers included.
        try await harness.stop()
        let report = ChainVerifier.verify(store: try LedgerStore(readOnlyPath: harness.databasePath))
        #expect(report.ok, "\(report.failure ?? "")")
        let researcher = try harness.identity("medtech-research/researcher").fingerprint
        let usage = try BudgetUsage(decoding: try #require(try LedgerStore(readOnlyPath: harness.databasePath).value(forKey: StateKey.researchSpent(researcher))))
        #expect(usage.queries == 5)
    }

    @Test func concurrentQueriesNeverOverspend() async throws {
        var policy = ResearchPolicy()
        policy.budget = PrivacyBudget(epsilonMicros: 1_000_000, deltaPicos: 0)
        let harness = try NodeHarness(research: policy)
        _ = try await Self.register(harness, hospital: "st-mary", count: 5, seed: 3)
        let node = harness.node
        // Eight different questions of ε 0.3 from two concurrent clients of one researcher.
        let envelopes = try (0..<8).map { i in
            try Self.ask(harness, .count, epsilon: 300_000, filters: [.range(.usageHours, lower: Int64(i), upper: nil)]).encoded
        }
        let outcomes = await withTaskGroup(of: Result<QueryOutcome, LedgerError>.self) { group in
            for envelope in envelopes {
                group.addTask {
                    do throws(LedgerError) { return .success(try await node.answerQuery(envelope)) } catch { return .failure(error) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let answered = outcomes.filter { if case .success = $0 { true } else { false } }
        let refusals = outcomes.compactMap { if case .failure(let error) = $0 { error.code } else { nil } }
        #expect(answered.count == 3)
        #expect(refusals == Array(repeating: LedgerError.Code.budgetExhausted, count: 5))
        let (limit, usage) = try node.budget(of: try harness.identity("medtech-research/researcher").fingerprint)
        #expect(limit.epsilonMicros == 1_000_000)
        #expect(usage.spent.epsilonMicros == 900_000)
        #expect(BudgetAccount.remaining(usage, limit: limit).epsilonMicros == 100_000)
        // The refused ones are on the ledger as refused charges (the audit trail), and they carry no
        // value: only the three paid questions were ever answered.
        let log = try node.store.researchTransactions(limit: 100)
        #expect(log.filter { $0.action == "charge" }.count == 8)
        #expect(log.filter { !$0.result.isCommitted }.map(\.action) == Array(repeating: "charge", count: 5))
        #expect(log.filter { $0.action == "answer" }.count == 3)
        try await harness.stop()
    }

    @Test func askingAgainReturnsTheRecordedAnswerForFree() async throws {
        let harness = try NodeHarness()
        _ = try await Self.register(harness, hospital: "st-mary", count: 5, seed: 4)
        let node = harness.node
        let ask = try Self.ask(harness, .count, epsilon: 500_000)
        let first = try await node.answerQuery(ask.encoded)
        // The same signed query again (a retry): the same answer, nothing spent.
        let retry = try await node.answerQuery(ask.encoded)
        #expect(retry.record == first.record)
        #expect(retry.answerTransaction == first.answerTransaction)
        // A newly signed identical question about the same block: the recorded answer, free.
        let again = try await node.answerQuery(try Self.ask(harness, .count, epsilon: 500_000, asOf: first.answer.height).encoded)
        #expect(again.cached)
        #expect(again.record.answerHash == first.record.answerHash)
        let (_, usage) = try node.budget(of: try harness.identity("medtech-research/researcher").fingerprint)
        #expect(usage.spent.epsilonMicros == 500_000)
        #expect(usage.queries == 1)
        try await harness.stop()
    }

    @Test func concurrentIdenticalAsksShareOneChargeAndOneDraw() async throws {
        let harness = try NodeHarness()
        _ = try await Self.register(harness, hospital: "st-mary", count: 4, seed: 6)
        let node = harness.node
        let ask = try Self.ask(harness, .count, epsilon: 500_000).encoded
        let outcomes = try await withThrowingTaskGroup(of: QueryOutcome.self) { group in
            for _ in 0..<6 { group.addTask { try await node.answerQuery(ask) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(outcomes.map(\.answerTransaction)).count == 1)
        #expect(Set(outcomes.map { Hash256.of($0.answer.encoded) }).count == 1)
        let log = try node.store.researchTransactions(limit: 100)
        #expect(log.filter { $0.action == "answer" }.count == 1, "one noise draw, ever")
        #expect(log.filter { $0.action == "charge" && $0.result.isCommitted }.count == 1)
        try await harness.stop()
    }

    @Test func retriesAfterTimeoutsNeverDrawTwice() async throws {
        let harness = try NodeHarness()
        _ = try await Self.register(harness, hospital: "st-mary", count: 4, seed: 7)
        let node = harness.node
        // Clients with no patience at all (each wait gives up after about a millisecond, shorter
        // than a durable commit here) retry the same signed ask until they get the answer: charges
        // and answers are in flight across retries, and none may be drawn twice.
        var timeouts = 0
        for question in 0..<5 {
            let ask = try Self.ask(harness, .sum(.usageHours), epsilon: 200_000, filters: [.range(.usageHours, lower: Int64(question), upper: nil)]).encoded
            var outcome: QueryOutcome?
            for _ in 0..<5000 where outcome == nil {
                do throws(LedgerError) {
                    outcome = try await node.answerQuery(ask, timeout: .zero)
                } catch {
                    #expect(error.code == .overloaded, "\(error)")
                    timeouts += 1
                }
            }
            #expect(outcome != nil)
        }
        let log = try node.store.researchTransactions(limit: 1000)
        // Retried charges of an ask already charged are refused as duplicates and carry no value.
        #expect(log.filter { $0.action == "charge" && $0.result.isCommitted }.count == 5)
        #expect(log.filter { $0.action == "answer" }.count == 5, "one noise draw per question, ever (\(timeouts) timeouts)")
        try await harness.stop()
    }

    @Test func refusalsAreAuditedAndReleaseNothing() async throws {
        let harness = try NodeHarness()
        _ = try await Self.register(harness, hospital: "st-mary", count: 3, seed: 5)
        let node = harness.node
        // A collector may not ask; the refusal goes to the node's audit table.
        let refused = try Self.ask(harness, .count, epsilon: 500_000, signer: "st-mary/collector")
        #expect(await Self.refusal(node, refused) == .forbidden)
        // ε above the per-query maximum, and a sum over a field without declared bounds.
        #expect(await Self.refusal(node, try Self.ask(harness, .count, epsilon: 5_000_000)) == .invalidArgument)
        #expect(await Self.refusal(node, try Self.ask(harness, .sum(.lastSync))) == .invalidArgument)
        try await harness.stop()
        let audit = try LedgerStore(readOnlyPath: harness.databasePath).recentRefusals(limit: 10)
        #expect(audit.contains { $0.transactionID == refused.id && $0.code == .forbidden })
        #expect(audit.filter { $0.code == .invalidArgument }.count == 2)
        #expect(try LedgerStore(readOnlyPath: harness.databasePath).researchTransactions(limit: 10).isEmpty)
    }
}
