import Testing
import Foundation
import LedgerCore
import Contracts
import Collector
import Research
import LedgerTesting

/// The research contract over in-memory state: budget debits, the answer cache, refusals.
@Suite("Research contract")
struct ResearchContractTests {
    /// A network with devices and a small budget (ε 1.0 per period).
    static func network(budget: PrivacyBudget = PrivacyBudget(epsilonMicros: 1_000_000, deltaPicos: 10_000)) throws -> TestNetwork {
        var config = NetworkConfig()
        config.research.budget = budget
        var net = try TestNetwork(config: config)
        var simulator = DeviceSimulator(hospital: "st-mary", seed: 1)
        let registrations = (0..<40).map { _ in
            let (udi, attributes) = simulator.newDevice(today: 20_400)
            return net.device("st-mary/collector", .register(udi: udi, attributes: attributes)).encoded
        }
        #expect(net.apply(registrations).allSatisfy { $0 == nil })
        return net
    }

    static func ask(_ net: TestNetwork, _ signer: String = "research/researcher", kind: QueryKind = .count, epsilon: UInt64 = 500_000,
                    mechanism: NoiseMechanism = .laplace, filters: [QueryFilter] = [], asOf: UInt64? = nil) -> Envelope {
        let request = QueryRequest(spec: QuerySpec(kind: kind, filters: filters).canonical, mechanism: mechanism, epsilonMicros: epsilon, asOfHeight: asOf)
        return net.transaction(signer, contract: "research", action: "ask", arguments: request.encoded)
    }

    /// What a node does: evaluate over the current state, add noise, sign the release.
    static func release(_ net: TestNetwork, _ ask: Envelope, signer: String = "st-mary/node", height: UInt64? = nil,
                        edit: (inout QueryAnswer) -> Void = { _ in }) throws -> Envelope {
        let request = try QueryRequest(decoding: try ask.payload().arguments)
        let records = net.ledger.sortedEntries.filter { $0.key.hasPrefix("dev/") }.compactMap { try? DeviceRecord(decoding: $0.value) }
        let table = DeviceTable(records: records, height: height ?? net.height, time: net.time)
        let policy = NetworkConfig().research
        var random = SplitMix64(seed: 42)
        var answer = QueryRelease.answer(request, exact: table.evaluate(request.spec, policy: policy, hospitals: ["north-general", "st-mary"]),
                                         policy: policy, hospitals: ["north-general", "st-mary"], height: table.height,
                                         referenceTime: net.time, using: &random)
        edit(&answer)
        return net.transaction(signer, contract: "research", action: "answer", arguments: ResearchRelease(query: ask, answer: answer).encoded)
    }

    /// A digest of all state (comparing it whole prints too much on failure).
    static func digest(_ net: TestNetwork) -> Hash256 {
        Hash256.of(parts: net.ledger.sortedEntries.flatMap { [Array($0.key.utf8), $0.value] })
    }

    static func spent(_ net: TestNetwork, _ name: String = "research/researcher") -> BudgetUsage? {
        (try? net.ledger.value(forKey: StateKey.researchSpent(net.identity(name).fingerprint))).flatMap { $0 }
            .flatMap { try? BudgetUsage(decoding: $0) }
    }

    @Test func answerDebitsTheBudgetAndIsRecordedWithItsHash() throws {
        var net = try Self.network()
        let ask = Self.ask(net)
        let release = try Self.release(net, ask)
        #expect(net.apply(release) == [nil])
        #expect(Self.spent(net)?.spent == PrivacyBudget(epsilonMicros: 500_000, deltaPicos: 0))
        #expect(Self.spent(net)?.queries == 1)
        let askRecord = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(ask.id))))
        #expect(askRecord.answerTransaction == release.id)
        let record = try QueryRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.query(askRecord.key))))
        #expect(record.asker == net.identity("research/researcher").fingerprint)
        #expect(record.askID == ask.id)
        #expect(record.answerHash == Hash256.of(record.answer.encoded))
        #expect(record.cost.epsilonMicros == 500_000)
        guard case .count(let value) = record.answer.result else { Issue.record("not a count"); return }
        #expect(value.noise.mechanism == .laplace)
        #expect(value.noise.scaleNumerator == 2 && value.noise.scaleDenominator == 1)  // b = Δ/ε = 1/0.5
    }

    @Test func theSameQuestionAboutTheSameBlockIsFreeAndGetsTheRecordedAnswer() throws {
        var net = try Self.network()
        let first = Self.ask(net)
        let answeredHeight = net.height
        #expect(net.apply(try Self.release(net, first)) == [nil])
        // The same signed ask again: refused (already answered); the node returns the record instead.
        #expect(net.apply(try Self.release(net, first)).first??.code == .duplicateTransaction)
        // A new ask with the same question about the same block: free, and pointing at the same answer
        // even though this node drew different noise.
        net.time += 1
        let second = Self.ask(net, asOf: answeredHeight)
        // The release must repeat the recorded answer, not a fresh one...
        let fresh = try Self.release(net, second, height: answeredHeight) { $0.result = .count(NoisyValue(value: 999_999, noise: $0.releases[0])) }
        #expect(net.apply(fresh).first??.code == .invalidArgument)
        // ...which is what a node does (it reads the record before drawing any noise).
        let firstAsk = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(first.id))))
        let recordedAnswer = try QueryRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.query(firstAsk.key)))).answer
        #expect(net.apply(try Self.release(net, second, height: answeredHeight) { $0 = recordedAnswer }) == [nil])
        #expect(Self.spent(net)?.spent.epsilonMicros == 500_000)
        let a = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(first.id))))
        let b = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(second.id))))
        #expect(a.key == b.key)
        let record = try QueryRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.query(a.key))))
        #expect(record.askID == first.id)
        // Another block height is another question: it costs again.
        let third = Self.ask(net)
        #expect(net.apply(try Self.release(net, third)) == [nil])
        #expect(Self.spent(net)?.spent.epsilonMicros == 1_000_000)
    }

    @Test func concurrentQueriesInOneBlockNeverOverspend() throws {
        var net = try Self.network()
        // Four different questions of ε 0.3 each against a budget of 1.0, all ordered into one block.
        let releases = try (0..<4).map { i in
            try Self.release(net, Self.ask(net, epsilon: 300_000, filters: [.range(.usageHours, lower: Int64(i), upper: nil)])).encoded
        }
        let results = net.apply(releases)
        #expect(results.filter { $0 == nil }.count == 3)
        #expect(results.compactMap { $0?.code } == [.budgetExhausted])
        #expect(Self.spent(net)?.spent.epsilonMicros == 900_000)
    }

    @Test func exhaustedBudgetRefusesAndWritesNothingUntilTheNextPeriod() throws {
        var net = try Self.network()
        #expect(net.apply(try Self.release(net, Self.ask(net, epsilon: 1_000_000))) == [nil])
        let before = Self.digest(net)
        let refused = net.apply(try Self.release(net, Self.ask(net, epsilon: 1000, filters: [.oneOf(.hospital, ["st-mary"])])))
        #expect(refused.first??.code == .budgetExhausted)
        #expect(refused.first??.message.contains("remains") == true)
        #expect(Self.digest(net) == before)
        // A new period (30 days later by block time) renews the budget.
        net.time += 30 * 86_400_000
        #expect(net.apply(try Self.release(net, Self.ask(net, epsilon: 1000))) == [nil])
        #expect(Self.spent(net)?.spent.epsilonMicros == 1000)
    }

    @Test func governanceSetsAResearchersBudget() throws {
        var net = try Self.network()
        let researcher = net.identity("research/researcher").fingerprint
        let proposal = net.governance("st-mary/admin", "propose",
                                      ProposalAction.setResearchBudget(researcher, PrivacyBudget(epsilonMicros: 2_000_000, deltaPicos: 0)).encoded)
        #expect(net.apply(proposal) == [nil])
        // A majority of the four organisations: the proposer's, and two more.
        #expect(net.apply(net.governance("north-general/admin", "approve", proposal.id.bytes)) == [nil])
        #expect(net.apply(net.governance("research/admin", "approve", proposal.id.bytes)) == [nil])
        #expect(net.apply(net.governance("regulator/admin", "approve", proposal.id.bytes)).first??.code == .proposalClosed)
        let results = net.apply(try [0, 1, 2].map { i in
            try Self.release(net, Self.ask(net, epsilon: 900_000, filters: [.range(.usageHours, lower: Int64(i), upper: nil)])).encoded
        })
        #expect(results.filter { $0 == nil }.count == 2)
        // A budget for a member whose role may not query is refused at proposal time.
        let collector = net.identity("st-mary/collector").fingerprint
        let wrong = net.apply(net.governance("st-mary/admin", "propose", ProposalAction.setResearchBudget(collector, .zero).encoded))
        #expect(wrong.first??.code == .invalidArgument)
    }

    @Test func refusalsHaveSpecificCodes() throws {
        var net = try Self.network()
        let before = Self.digest(net)
        let ask = Self.ask(net)
        var forged = ask
        forged.signature[10] ^= 1
        let cases: [(Envelope, LedgerError.Code)] = [
            // Only researchers ask (by default), only nodes release.
            (try Self.release(net, Self.ask(net, "st-mary/collector")), .forbidden),
            (try Self.release(net, ask, signer: "research/researcher"), .forbidden),
            // A researcher cannot order a bare ask around the node.
            (ask, .forbidden),
            (try Self.release(net, forged), .badSignature),
            // The node must spend exactly the request's ε with the right sensitivity.
            (try Self.release(net, ask) { answer in
                if case .count(var value) = answer.result {
                    value.noise.epsilonMicros = 1_000_000
                    answer.result = .count(value)
                }
            }, .invalidArgument),
            (try Self.release(net, Self.ask(net, kind: .sum(.usageHours))) { answer in
                if case .sum(let value, _, let upper) = answer.result { answer.result = .sum(value, lower: -5, upper: upper) }
            }, .invalidArgument),
            // An answer about a block that does not exist yet.
            (try Self.release(net, Self.ask(net), height: net.height + 100), .invalidArgument),
            // ε above the per-query maximum; a field without declared bounds.
            (try Self.release(net, Self.ask(net, epsilon: 2_000_000)), .invalidArgument),
        ]
        for (index, (envelope, code)) in cases.enumerated() {
            let result = net.apply(envelope)
            #expect(result.first??.code == code, "case \(index): expected \(code), got \(String(describing: result.first ?? nil))")
        }
        #expect(Self.digest(net) == before)
        // A revoked researcher can no longer be answered.
        #expect(net.apply(net.governance("research/admin", "revoke", net.identity("research/researcher").fingerprint.bytes)) == [nil])
        net.time += 1
        #expect(net.apply(try Self.release(net, Self.ask(net))).first??.code == .certificateRevoked)
    }
}
