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

    /// What a node does first: charge the ask for the state of `height` (default: the latest block).
    static func charge(_ net: TestNetwork, _ ask: Envelope, signer: String = "st-mary/node", height: UInt64? = nil) -> Envelope {
        net.transaction(signer, contract: "research", action: "charge", arguments: ResearchCharge(query: ask, height: height ?? net.height).encoded)
    }

    /// Then, once the charge committed: evaluate, add noise, sign the answer.
    static func answer(_ net: TestNetwork, _ ask: Envelope, signer: String = "st-mary/node", height: UInt64,
                       edit: (inout QueryAnswer) -> Void = { _ in }) throws -> Envelope {
        let request = try QueryRequest(decoding: try ask.payload().arguments)
        let records = net.ledger.sortedEntries.filter { $0.key.hasPrefix("dev/") }.compactMap { try? DeviceRecord(decoding: $0.value) }
        let table = DeviceTable(records: records, height: height, time: net.time)
        let policy = NetworkConfig().research
        var random = SplitMix64(seed: 42)
        var answer = QueryRelease.answer(request, exact: table.evaluate(request.spec, policy: policy, hospitals: ["north-general", "st-mary"]),
                                         policy: policy, hospitals: ["north-general", "st-mary"], height: height,
                                         referenceTime: net.time, using: &random)
        edit(&answer)
        return net.transaction(signer, contract: "research", action: "answer",
                               arguments: ResearchAnswer(key: request.key(height: height), answer: answer).encoded)
    }

    /// Charge, then answer, in two blocks; the two outcomes.
    static func ask(_ net: inout TestNetwork, _ ask: Envelope) throws -> (LedgerError?, LedgerError?) {
        let height = net.height
        let charged = net.apply(Self.charge(net, ask, height: height)).first ?? nil
        let answered = net.apply(try Self.answer(net, ask, height: height)).first ?? nil
        return (charged, answered)
    }

    static func record(_ net: TestNetwork, _ ask: Envelope) throws -> QueryRecord {
        let askRecord = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(ask.id))))
        return try QueryRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.query(askRecord.key))))
    }

    /// A digest of all state (comparing it whole prints too much on failure).
    static func digest(_ net: TestNetwork) -> Hash256 {
        Hash256.of(parts: net.ledger.sortedEntries.flatMap { [Array($0.key.utf8), $0.value] })
    }

    static func spent(_ net: TestNetwork, _ name: String = "research/researcher") -> BudgetUsage? {
        (try? net.ledger.value(forKey: StateKey.researchSpent(net.identity(name).fingerprint))).flatMap { $0 }
            .flatMap { try? BudgetUsage(decoding: $0) }
    }

    /// Every node evaluates a question before the block after its charge's, so an answer in the
    /// charge's own block could not be checked: refused.
    @Test func anAnswerInItsChargesBlockIsRefused() throws {
        var net = try Self.network()
        let ask = Self.ask(net)
        let both = net.apply([Self.charge(net, ask, height: net.height).encoded, try Self.answer(net, ask, height: net.height).encoded])
        #expect(both.count == 2 && both[0] == nil, "\(both)")
        #expect(both.last??.code == .invalidArgument, "\(both)")
    }

    @Test func chargeDebitsBeforeAnyNoiseAndTheAnswerIsRecordedWithItsHash() throws {
        var net = try Self.network()
        let ask = Self.ask(net)
        let height = net.height
        let charge = Self.charge(net, ask)
        #expect(net.apply(charge) == [nil])
        // Charged: debited and pending, no value anywhere yet.
        #expect(Self.spent(net)?.spent == PrivacyBudget(epsilonMicros: 500_000, deltaPicos: 0))
        #expect(Self.spent(net)?.queries == 1)
        let pending = try Self.record(net, ask)
        #expect(pending.answer == nil && pending.height == height && pending.node == net.identity("st-mary/node").fingerprint)
        let askRecord = try QueryAskRecord(decoding: try #require(try net.ledger.value(forKey: StateKey.queryAsk(ask.id))))
        #expect(askRecord.chargeTransaction == charge.id)

        let answer = try Self.answer(net, ask, height: height)
        #expect(net.apply(answer) == [nil])
        let record = try Self.record(net, ask)
        #expect(record.asker == net.identity("research/researcher").fingerprint)
        #expect(record.askID == ask.id)
        #expect(record.answerTransaction == answer.id)
        #expect(record.answerHash == Hash256.of(try #require(record.answer).encoded))
        #expect(record.cost.epsilonMicros == 500_000)
        guard case .count(let value) = record.answer?.result else { Issue.record("not a count"); return }
        #expect(value.noise.mechanism == .laplace)
        #expect(value.noise.scaleNumerator == 2 && value.noise.scaleDenominator == 1)  // b = Δ/ε = 1/0.5
        // One answer per question.
        #expect(net.apply(try Self.answer(net, ask, height: height)).first??.code == .duplicateTransaction)
        #expect(Self.spent(net)?.queries == 1)
    }

    @Test func theSameQuestionAboutTheSameBlockIsFree() throws {
        var net = try Self.network()
        let first = Self.ask(net)
        let answeredHeight = net.height
        #expect(try Self.ask(&net, first) == (nil, nil))
        // The same signed ask again: refused (already charged); the node returns the record instead.
        #expect(net.apply(Self.charge(net, first, height: answeredHeight)).first??.code == .duplicateTransaction)
        // A new ask with the same question about the same block: free, pointing at the same question,
        // and no second answer is accepted for it.
        net.time += 1
        let second = Self.ask(net, asOf: answeredHeight)
        #expect(net.apply(Self.charge(net, second, height: answeredHeight)) == [nil])
        #expect(net.apply(try Self.answer(net, second, height: answeredHeight)).first??.code == .duplicateTransaction)
        #expect(Self.spent(net)?.spent.epsilonMicros == 500_000)
        #expect(try Self.record(net, first) == (try Self.record(net, second)))
        #expect(try Self.record(net, second).askID == first.id)
        // Another block height is another question: it costs again.
        #expect(try Self.ask(&net, Self.ask(net)) == (nil, nil))
        #expect(Self.spent(net)?.spent.epsilonMicros == 1_000_000)
    }

    @Test func concurrentChargesInOneBlockNeverOverspend() throws {
        var net = try Self.network()
        // Four different questions of ε 0.3 each against a budget of 1.0, all ordered into one block.
        let charges = (0..<4).map { i in
            Self.charge(net, Self.ask(net, epsilon: 300_000, filters: [.range(.usageHours, lower: Int64(i), upper: nil)])).encoded
        }
        let results = net.apply(charges)
        #expect(results.filter { $0 == nil }.count == 3)
        #expect(results.compactMap { $0?.code } == [.budgetExhausted])
        #expect(Self.spent(net)?.spent.epsilonMicros == 900_000)
    }

    @Test func exhaustedBudgetRefusesTheChargeAndWritesNothingUntilTheNextPeriod() throws {
        var net = try Self.network()
        #expect(try Self.ask(&net, Self.ask(net, epsilon: 1_000_000)) == (nil, nil))
        let before = Self.digest(net)
        let over = Self.ask(net, epsilon: 1000, filters: [.oneOf(.hospital, ["st-mary"])])
        let refused = net.apply(Self.charge(net, over))
        #expect(refused.first??.code == .budgetExhausted)
        #expect(refused.first??.message.contains("remains") == true)
        #expect(Self.digest(net) == before)
        // Without a charge there is nothing to answer: a node cannot release first and charge never.
        #expect(net.apply(try Self.answer(net, over, height: net.height)).first??.code == .notFound)
        #expect(Self.digest(net) == before)
        // A new period (30 days later by block time) renews the budget.
        net.time += 30 * 86_400_000
        #expect(try Self.ask(&net, Self.ask(net, epsilon: 1000)) == (nil, nil))
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
        let results = net.apply((0..<3).map { i in
            Self.charge(net, Self.ask(net, epsilon: 900_000, filters: [.range(.usageHours, lower: Int64(i), upper: nil)])).encoded
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
            // Only researchers ask (by default), only nodes charge.
            (Self.charge(net, Self.ask(net, "st-mary/collector")), .forbidden),
            (Self.charge(net, ask, signer: "research/researcher"), .forbidden),
            // A researcher cannot order a bare ask around the node.
            (ask, .forbidden),
            (Self.charge(net, forged), .badSignature),
            // A charge about a block that does not exist yet.
            (Self.charge(net, Self.ask(net), height: net.height + 100), .invalidArgument),
            // ε above the per-query maximum.
            (Self.charge(net, Self.ask(net, epsilon: 2_000_000)), .invalidArgument),
        ]
        for (index, (envelope, code)) in cases.enumerated() {
            let result = net.apply(envelope)
            #expect(result.first??.code == code, "case \(index): expected \(code), got \(String(describing: result.first ?? nil))")
        }
        #expect(Self.digest(net) == before)

        // Answers must come from the charging node with the structure the request implies.
        let height = net.height
        let sumAsk = Self.ask(net, kind: .sum(.usageHours))
        // Both in one block, so both questions describe block `height`.
        #expect(net.apply([Self.charge(net, ask, height: height).encoded, Self.charge(net, sumAsk, height: height).encoded]) == [nil, nil])
        let wrongAnswers: [(Envelope, LedgerError.Code)] = [
            (try Self.answer(net, ask, signer: "north-general/node", height: height), .forbidden),
            (try Self.answer(net, ask, height: height) { answer in
                if case .count(var value) = answer.result {
                    value.noise.epsilonMicros = 1_000_000
                    answer.result = .count(value)
                }
            }, .invalidArgument),
            // The right ε but a smaller Laplace scale than Δ/ε (less noise than claimed).
            (try Self.answer(net, ask, height: height) { answer in
                if case .count(var value) = answer.result {
                    value.noise.scaleNumerator = 1
                    answer.result = .count(value)
                }
            }, .invalidArgument),
            (try Self.answer(net, sumAsk, height: height) { answer in
                if case .sum(let value, _, let upper) = answer.result { answer.result = .sum(value, lower: -5, upper: upper) }
            }, .invalidArgument),
        ]
        for (index, (envelope, code)) in wrongAnswers.enumerated() {
            let result = net.apply(envelope)
            #expect(result.first??.code == code, "answer case \(index): expected \(code), got \(String(describing: result.first ?? nil))")
        }
        #expect(try Self.record(net, ask).answer == nil)

        // A revoked researcher can no longer be charged.
        #expect(net.apply(net.governance("research/admin", "revoke", net.identity("research/researcher").fingerprint.bytes)) == [nil])
        net.time += 1
        #expect(net.apply(Self.charge(net, Self.ask(net))).first??.code == .certificateRevoked)
    }
}
