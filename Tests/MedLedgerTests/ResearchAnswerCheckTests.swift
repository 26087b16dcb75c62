import Testing
import Crypto
import Logging
import Foundation
import LedgerCore
import Contracts
import LedgerStore
import Node
import Privacy
import Research
import LedgerTesting

/// Recorded DP answers are checked by every node: the exact aggregate and the noise derived from
/// the network noise secret are recomputed, so a fabricated value is refused.
@Suite("Checkable research answers")
struct ResearchAnswerCheckTests {
    static let researcher = "medtech-research/researcher"

    static func research(_ harness: NodeHarness, _ signer: String, _ action: String, _ arguments: [UInt8]) throws -> Envelope {
        try harness.identity(signer).transaction(network: harness.node.network, contract: "research", action: action, arguments: arguments).envelope
    }

    static func rejection(_ status: TransactionStatus) -> LedgerError.Code? {
        if case .rejected(_, _, _, let code, _) = status { return code }
        return nil
    }

    static func record(_ node: LedgerNode, _ key: Hash256) throws -> QueryRecord? {
        try node.store.value(forKey: StateKey.query(key)).map { try QueryRecord(decoding: $0) }
    }

    /// A question charged by `signer` (a registered node) through the harness node; its record.
    static func charge(_ harness: NodeHarness, by signer: String, filters: [QueryFilter] = []) async throws -> QueryRecord {
        let ask = try ResearchNodeTests.ask(harness, .count, epsilon: 1_000_000, filters: filters)
        let charge = ResearchCharge(query: ask, height: harness.node.tip.height)
        let status = try await harness.commit(try research(harness, signer, "charge", charge.encoded))
        #expect(Self.rejection(status) == nil, "\(status)")
        let askRecord = try QueryAskRecord(decoding: try #require(try harness.node.store.value(forKey: StateKey.queryAsk(ask.id))))
        return try #require(try record(harness.node, askRecord.key))
    }

    /// The regression of issue 7, finding 6: the research organisation's own registered node
    /// charged a question and answered it with a made-up count (4242 for a true count of 7), and
    /// the contract, checking only the answer's structure, recorded it. Now refused.
    @Test func aFabricatedAnswerFromAnotherOrganisationsNodeIsRefused() async throws {
        let harness = try NodeHarness(research: ResearchNodeTests.precise)
        _ = try await ResearchNodeTests.register(harness, hospital: "st-mary", count: 7, seed: 11)
        let node = harness.node
        let record = try await Self.charge(harness, by: "medtech-research/node")
        let policy = node.config.research
        var random = SecureRandom()
        let fabricated = QueryRelease.answer(record.request, exact: .count(4242), policy: policy, hospitals: [],
                                             height: record.height, referenceTime: node.tip.timestamp, using: &random)
        let status = try await harness.commit(try Self.research(harness, "medtech-research/node", "answer",
                                                                ResearchAnswer(key: record.key, answer: fabricated).encoded))
        #expect(Self.rejection(status) == .answerMismatch)
        #expect(try Self.record(node, record.key)?.answer == nil)
        try await harness.stop()
    }

    /// Off by one, replayed from another question, or sent by a node that did not charge: refused.
    /// The honest answer — the only one that passes — is what the charging node computes with the
    /// noise secret, whoever that node is.
    @Test func onlyTheAnswerEveryNodeComputesIsRecorded() async throws {
        let harness = try NodeHarness(research: ResearchNodeTests.precise)
        _ = try await ResearchNodeTests.register(harness, hospital: "st-mary", count: 5, seed: 3)
        let node = harness.node
        let policy = node.config.research
        let noiseKey = try #require(try node.noiseKeyEpoch())
        let first = try await Self.charge(harness, by: "medtech-research/node")
        let second = try await Self.charge(harness, by: "medtech-research/node", filters: [.range(.usageHours, lower: 0, upper: nil)])
        if node.researchOracle.evaluation(question: second.key) == nil { Issue.record("the charge's question was not evaluated") }
        let honest = try #require(node.researchOracle.answer(for: first, policy: policy, noiseKey: noiseKey))
        guard case .count(var value) = honest.result else { Issue.record("not a count"); return }
        value.value += 1
        var offByOne = honest
        offByOne.result = .count(value)
        func submit(_ signer: String, _ key: Hash256, _ answer: QueryAnswer) async throws -> LedgerError.Code? {
            Self.rejection(try await harness.commit(try Self.research(harness, signer, "answer", ResearchAnswer(key: key, answer: answer).encoded)))
        }
        #expect(try await submit("medtech-research/node", first.key, offByOne) == .answerMismatch)
        // The first question's honest answer replayed for the second question (same kind), about
        // the second one's block: refused unless it happens to be that question's answer too.
        var replayed = honest
        replayed.height = second.height
        let honestSecond = try #require(node.researchOracle.answer(for: second, policy: policy, noiseKey: noiseKey))
        #expect(try await submit("medtech-research/node", second.key, replayed) == (replayed == honestSecond ? nil : .answerMismatch))
        #expect(try await submit("medtech-research/node", second.key, honest) != nil)
        // A node that did not charge the question.
        #expect(try await submit("st-mary/node", first.key, honest) == .forbidden)
        #expect(try await submit("medtech-research/node", first.key, honest) == nil)
        #expect(try Self.record(node, first.key)?.answer == honest)
        // A question about a past block, answered through the node (evaluated from history).
        let past = try await node.answerQuery(try ResearchNodeTests.ask(harness, .count, epsilon: 1_000_000, filters: [.range(.usageHours, lower: 1, upper: nil)],
                                                                          asOf: first.height).encoded)
        #expect(past.record.height == first.height && !past.cached)
        try await harness.stop()

        // verify: with a node's key every answer's values are recomputed; without, the recorded
        // verdicts (three refusals for mismatch included) are replayed and counted.
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        let keyed = ChainVerifier.verify(store: store, noiseKeyHolder: try harness.identity("north-general/node"))
        #expect(keyed.ok, "\(keyed.failure ?? "")")
        #expect(keyed.checkedResearchAnswers >= 4 && keyed.uncheckedResearchAnswers == 0,
                "checked \(keyed.checkedResearchAnswers), unchecked \(keyed.uncheckedResearchAnswers)")
        let auditor = ChainVerifier.verify(store: store)
        #expect(auditor.ok, "\(auditor.failure ?? "")")
        #expect(auditor.checkedResearchAnswers == 0 && auditor.uncheckedResearchAnswers == keyed.checkedResearchAnswers)
    }

    /// The released value is a function of the secret and the question: computed again (as after
    /// a restart, or at a retry whose first answer never reached the ledger) it is the same.
    @Test func aRetryCannotChangeTheReleasedValue() async throws {
        let harness = try NodeHarness(research: ResearchNodeTests.precise)
        _ = try await ResearchNodeTests.register(harness, hospital: "st-mary", count: 6, seed: 9)
        let node = harness.node
        let ask = try ResearchNodeTests.ask(harness, .sum(.usageHours), epsilon: 300_000)
        let outcome = try await node.answerQuery(ask.encoded)
        let noiseKey = try #require(try node.noiseKeyEpoch())
        node.researchOracle.forget(question: outcome.record.key)
        let again = try await node.answerQuery(ask.encoded)
        #expect(again.answer == outcome.answer)
        // Recomputed from the stored state and the secret, as a retry after a refused admission does.
        let record = try #require(try Self.record(node, outcome.record.key))
        node.researchOracle.forget(question: record.key)
        try node.rememberEvaluation(of: record)
        let recomputed = try #require(node.researchOracle.answer(for: record, policy: node.config.research, noiseKey: noiseKey))
        #expect(recomputed == outcome.answer)
        try await harness.stop()
    }

    /// Two nodes opened independently (own databases) on the same network unwrap the same secret
    /// and compute the same noise for the same question; another secret gives other noise.
    @Test func sameQuestionSameNoiseOnIndependentNodesAndOtherNoiseUnderAnotherSecret() async throws {
        let harness = try NodeHarness(research: ResearchNodeTests.precise)
        let other = try LedgerNode(directory: harness.directory, identity: "north-general/node",
                                   databasePath: harness.directory + "/second.sqlite", logger: Logger.quiet)
        let noiseKey = try #require(try other.noiseKeyEpoch())
        #expect(harness.node.researchOracle.holdsSecret(epoch: noiseKey.epoch) && other.researchOracle.holdsSecret(epoch: noiseKey.epoch))
        let request = QueryRequest(spec: QuerySpec(kind: .count, filters: []).canonical, mechanism: .laplace, epsilonMicros: 500_000)
        let record = QueryRecord(key: request.key(height: 0), asker: .zero, askID: .zero, request: request, height: 0,
                                 cost: PrivacyBudget(epsilonMicros: 500_000, deltaPicos: 0), node: .zero, chargedAt: 0)
        let evaluation = NodeResearchOracle.Evaluation(aggregate: .count(100), time: 0, hospitals: [])
        harness.node.researchOracle.remember(evaluation, question: record.key)
        other.researchOracle.remember(evaluation, question: record.key)
        let policy = harness.node.config.research
        let one = try #require(harness.node.researchOracle.answer(for: record, policy: policy, noiseKey: noiseKey))
        let two = try #require(other.researchOracle.answer(for: record, policy: policy, noiseKey: noiseKey))
        #expect(one == two)
        // Another secret: over 32 questions the noise differs somewhere (b = 2: P(equal) ≈ 0.46 each).
        let stranger = NodeResearchOracle(network: harness.node.network)
        stranger.install(NoiseSecret(), epoch: noiseKey.epoch)
        var differs = false
        for height in UInt64(0)..<32 {
            var question = record
            question.key = request.key(height: height)
            question.height = height
            harness.node.researchOracle.remember(evaluation, question: question.key)
            stranger.remember(evaluation, question: question.key)
            if harness.node.researchOracle.answer(for: question, policy: policy, noiseKey: noiseKey)
                != stranger.answer(for: question, policy: policy, noiseKey: noiseKey) { differs = true }
        }
        #expect(differs)
        try await harness.stop()
    }

    /// Rotation: a node operator wraps a fresh secret to every current node, an admin proposes it,
    /// a majority approves; every node unwraps the new epoch. A non-admin cannot propose it, a box
    /// for a member that is not a node and a skipped epoch are refused.
    @Test func governanceRotatesTheNoiseSecret() async throws {
        let harness = try NodeHarness(research: ResearchNodeTests.precise)
        let node = harness.node
        let next = try node.nextNoiseKeyEpoch()
        #expect(next.epoch == 2 && next.wrapped.count == 5)
        /// The refusal code, at admission or in execution (nil: committed).
        func governance(_ signer: String, _ action: String, _ arguments: [UInt8]) async throws -> LedgerError.Code? {
            let envelope = try harness.identity(signer).transaction(network: node.network, contract: "governance",
                                                                    action: action, arguments: arguments).envelope
            do { return Self.rejection(try await harness.commit(envelope)) } catch let error as LedgerError { return error.code }
        }
        // Not an admin.
        #expect((try await governance("st-mary/node", "propose", ProposalAction.rotateNoiseKey(next).encoded)) == .forbidden)
        // A box for a researcher, and a skipped epoch.
        let researcher = try harness.identity(Self.researcher)
        let toResearcher = try NoiseSecret().wrapped(epoch: 2, to: [(researcher.fingerprint, researcher.privateKey.publicKey)])
        #expect((try await governance("st-mary/admin", "propose", ProposalAction.rotateNoiseKey(toResearcher).encoded)) == .invalidArgument)
        var skipped = next
        skipped.epoch = 3
        #expect((try await governance("st-mary/admin", "propose", ProposalAction.rotateNoiseKey(skipped).encoded)) == .invalidArgument)

        let propose = try harness.identity("st-mary/admin").transaction(network: node.network, contract: "governance", action: "propose",
                                                                        arguments: ProposalAction.rotateNoiseKey(next).encoded).envelope
        #expect(Self.rejection(try await harness.commit(propose)) == nil)
        for admin in ["north-general/admin", "city-childrens/admin"] {
            var writer = BinaryWriter()
            writer.write(propose.id)
            #expect((try await governance(admin, "approve", writer.bytes)) == nil)
        }
        #expect(try node.noiseKeyEpoch()?.epoch == 2)
        #expect(node.researchOracle.holdsSecret(epoch: 2))
        // Queries are answered and checked under the new epoch.
        _ = try await ResearchNodeTests.register(harness, hospital: "st-mary", count: 2, seed: 1)
        let outcome = try await node.answerQuery(try ResearchNodeTests.ask(harness, .count, epsilon: 1_000_000).encoded)
        #expect(outcome.answer.height == outcome.record.height)
        try await harness.stop()
    }
}

extension ResearchAnswerCheckTests {
    /// The floating-point parts of an answer (Gaussian σ², open-domain threshold, half-widths) are
    /// recomputed identically by two oracles holding the same secret: a Gaussian open-domain
    /// grouped count and a Gaussian average, compared byte for byte.
    @Test func gaussianAndOpenDomainAnswersAreReproducible() throws {
        let secret = NoiseSecret()
        let noiseKey = NoiseKeyEpoch(epoch: 1, commitment: secret.commitment(epoch: 1), wrapped: [])
        let policy = ResearchPolicy()
        let one = NodeResearchOracle(network: .zero), two = NodeResearchOracle(network: .zero)
        for oracle in [one, two] { oracle.install(secret, epoch: 1) }
        let cases: [(QueryKind, ExactAggregate)] = [
            (.groupedCount(.field(.manufacturer)), .groups([ReleasedGroup(label: "acme", value: 40), ReleasedGroup(label: "zenith", value: 3)])),
            (.average(.batteryLevel), .average(count: 50, centeredSum: -120)),
        ]
        for (kind, aggregate) in cases {
            let request = QueryRequest(spec: QuerySpec(kind: kind, filters: []).canonical, mechanism: .gaussian, epsilonMicros: 1_000_000)
            try request.validate(policy: policy)
            let record = QueryRecord(key: request.key(height: 3), asker: .zero, askID: .zero, request: request, height: 3,
                                     cost: request.cost(policy: policy), node: .zero, chargedAt: 0)
            for oracle in [one, two] {
                oracle.remember(.init(aggregate: aggregate, time: 1, hospitals: ["st-mary"]), question: record.key)
            }
            let first = try #require(one.answer(for: record, policy: policy, noiseKey: noiseKey))
            #expect(first.encoded == (try #require(two.answer(for: record, policy: policy, noiseKey: noiseKey))).encoded)
            #expect(try one.check(first, for: record, policy: policy, noiseKey: noiseKey, transaction: .zero) == true)
        }
    }
}
