import Synchronization
public import LedgerCore
import Contracts
import LedgerStore
import Research

/// The research oracle of `medledger verify`. With a node's key it re-checks every recorded
/// answer's values as the nodes did: it keeps a device table along the replay, evaluates each
/// charged question at the block it describes and recomputes the answer with the noise secret it
/// unwraps. Without a key, or for an epoch the key is not a recipient of, it cannot recompute the
/// values: it replays the verdict recorded for each answer (refused as `answer_mismatch` or not)
/// and counts those answers as unchecked.
public final class ResearchReplayChecker: ResearchOracle {
    struct State {
        var mismatched: Set<Hash256> = []
        var checked: UInt64 = 0
        var unchecked: UInt64 = 0
        var table = DeviceTable(height: 0, time: 0)
        /// Questions about a past block (`asOfHeight`), by that block: evaluated as the replay passes it.
        var pastQuestions: [UInt64: [QueryRequest]] = [:]
    }

    let identity: SigningIdentity?
    let oracle: NodeResearchOracle?
    let state = Mutex(State())

    /// - Parameter identity: a node's key (its data directory), or nil for an auditor.
    public init(network: Hash256, identity: SigningIdentity?) {
        self.identity = identity
        self.oracle = identity.map { _ in NodeResearchOracle(network: network) }
    }

    /// Answers whose values were recomputed, and answers replayed as recorded.
    public var checked: UInt64 { state.withLock { $0.checked } }
    public var unchecked: UInt64 { state.withLock { $0.unchecked } }

    /// Before replaying the charges of the whole chain: notes the questions about past blocks.
    /// `page(limit, beforeSequence)` reads research transactions newest first (the verifier's snapshot).
    public func notePastQuestions(_ page: (Int, UInt64?) throws -> [StoredTransaction]) throws {
        guard oracle != nil else { return }
        var before: UInt64?
        while true {
            let page = try page(1000, before)
            guard let last = page.last else { break }
            for transaction in page where transaction.action == "charge" {
                guard let envelope = try? Envelope(decoding: transaction.envelope), let payload = try? envelope.payload(),
                      let request = NodeResearchOracle.request(ofCharge: payload.arguments), let asOf = request.asOfHeight else { continue }
                state.withLock { $0.pastQuestions[asOf, default: []].append(request) }
            }
            before = last.sequence
        }
    }

    /// Before block `height` executes over `replay` (the state after block `height − 1`).
    public func prepare(_ block: StoredBlock, height: UInt64, replay: MemoryLedger) {
        let mismatch = LedgerError.Code.answerMismatch.ledgerStatus
        state.withLock { $0.mismatched = Set(block.transactions.filter { $0.result.status == mismatch }.map(\.id)) }
        guard let oracle, height > 0, let policy = Self.policy(replay) else { return }
        let hospitals = Self.hospitals(replay)
        for transaction in block.transactions {
            guard let envelope = try? Envelope(decoding: transaction.envelope), let payload = try? envelope.payload(),
                  payload.contract == ResearchContract.name, payload.action == "charge",
                  let request = NodeResearchOracle.currentQuestion(ofCharge: payload.arguments, policy: policy)
            else { continue }
            let key = request.key(height: height - 1)
            guard oracle.evaluation(question: key) == nil else { continue }
            let evaluation = state.withLock { state in
                NodeResearchOracle.Evaluation(aggregate: state.table.evaluate(request.spec, policy: policy, hospitals: hospitals),
                                              time: state.table.time, hospitals: hospitals)
            }
            oracle.remember(evaluation, question: key)
        }
    }

    /// After block `height` (time `time`) applied `writes`, leaving `replay`.
    public func apply(_ writes: WriteSet, height: UInt64, time: Int64, replay: MemoryLedger) {
        guard let oracle, let identity else { return }
        state.withLock { $0.table.apply(writes.deviceRecords, height: height, time: time) }
        if let bytes = writes.entries[StateKey.noiseKey] ?? nil, let record = try? NoiseKeyEpoch(decoding: bytes),
           let secret = try? NoiseSecret.unwrap(record, fingerprint: identity.fingerprint, privateKey: identity.privateKey) {
            oracle.install(secret, epoch: record.epoch)
        }
        let past = state.withLock { $0.pastQuestions.removeValue(forKey: height) } ?? []
        guard !past.isEmpty, let policy = Self.policy(replay) else { return }
        let hospitals = Self.hospitals(replay)
        for request in past where (try? request.validate(policy: policy)) != nil {
            let evaluation = state.withLock { state in
                NodeResearchOracle.Evaluation(aggregate: state.table.evaluate(request.spec, policy: policy, hospitals: hospitals),
                                              time: state.table.time, hospitals: hospitals)
            }
            oracle.remember(evaluation, question: request.key(height: height))
        }
    }

    public func check(_ answer: QueryAnswer, for record: QueryRecord, policy: ResearchPolicy, noiseKey: NoiseKeyEpoch,
                      transaction: Hash256) throws(LedgerError) -> Bool? {
        if let oracle, oracle.holdsSecret(epoch: noiseKey.epoch) {
            // A question the replay did not evaluate is a verification failure (storage_error).
            let verdict = try oracle.check(answer, for: record, policy: policy, noiseKey: noiseKey, transaction: transaction)
            state.withLock { $0.checked += 1 }
            return verdict
        }
        return state.withLock { state in
            state.unchecked += 1
            return state.mismatched.contains(transaction) ? false : nil
        }
    }

    static func policy(_ replay: MemoryLedger) -> ResearchPolicy? {
        (try? replay.value(forKey: StateKey.config)).flatMap { $0 }.flatMap { try? NetworkConfig(decoding: $0) }?.research
    }

    static func hospitals(_ replay: MemoryLedger) -> [String] {
        replay.state.compactMap { key, value -> String? in
            guard key.hasPrefix("org/"), let organization = try? Organization(decoding: value), organization.kind == .hospital else { return nil }
            return organization.id
        }.sorted()
    }
}
