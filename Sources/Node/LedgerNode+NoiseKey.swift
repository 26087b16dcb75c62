import Crypto
import Logging
public import LedgerCore
import Contracts
import LedgerStore
import Research

extension LedgerNode {
    /// The noise key epoch in force on the committed ledger, if the network has one.
    public func noiseKeyEpoch() throws(LedgerError) -> NoiseKeyEpoch? {
        try storeRead { try store.value(forKey: StateKey.noiseKey).map { try NoiseKeyEpoch(decoding: $0) } }
    }

    /// Unwraps the epoch in force with this node's key and keeps the secret in memory. A node that
    /// is not a recipient (it joined after the last rotation) or whose box does not open logs it:
    /// it cannot answer research queries or check answers until a rotation includes it.
    func loadNoiseSecret() {
        do throws(LedgerError) {
            guard let record = try noiseKeyEpoch() else {
                logger.info("the ledger records no noise secret: research answers are checked for structure only")
                return
            }
            guard !researchOracle.holdsSecret(epoch: record.epoch) else { return }
            let secret = try NoiseSecret.unwrap(record, fingerprint: identity.fingerprint, privateKey: identity.privateKey)
            researchOracle.install(secret, epoch: record.epoch)
            logger.info("noise secret unwrapped", metadata: ["epoch": "\(record.epoch)"])
        } catch {
            logger.warning("no noise secret for this node: it neither answers nor checks research answers",
                           metadata: ["code": "\(error.code)"])
        }
    }

    /// A fresh noise secret wrapped to every registered, unrevoked node, as the next epoch: what a
    /// node operator hands to an admin to propose (``ProposalAction/rotateNoiseKey(_:)``). The
    /// secret itself is forgotten here; each node unwraps it once the rotation commits.
    public func nextNoiseKeyEpoch() throws(LedgerError) -> NoiseKeyEpoch {
        let current = try noiseKeyEpoch()?.epoch ?? 0
        let nodes = try storeRead {
            try store.state(prefix: "mem/", limit: 10_000_000).compactMap { entry -> (fingerprint: Hash256, publicKey: P256.Signing.PublicKey)? in
                let member = try Member(decoding: entry.value)
                guard member.role == .node, member.revokedAt == nil,
                      let key = try? P256.Signing.PublicKey(rawRepresentation: member.certificate.publicKey) else { return nil }
                return (member.fingerprint, key)
            }
        }
        return try NoiseSecret().wrapped(epoch: current + 1, to: nodes)
    }

    /// Before block `height` executes: the exact aggregate of every question its research
    /// transactions need, into the oracle. A charge's question about the previous block comes
    /// from the in-memory device table; an answer's question that is not remembered (the node
    /// restarted, or the charge asked about a past block) is evaluated again from history —
    /// only for questions a committed charge paid for.
    func prepareResearch(_ batch: [PreparedTransaction], height: UInt64) throws(LedgerError) {
        guard batch.contains(where: { $0.payload?.contract == ResearchContract.name }),
              let noiseKey = try noiseKeyEpoch(), researchOracle.holdsSecret(epoch: noiseKey.epoch) else { return }
        let policy = config.research
        var hospitals: [String]?
        for transaction in batch {
            guard let payload = transaction.payload, payload.contract == ResearchContract.name else { continue }
            switch payload.action {
            case "charge":
                guard let request = NodeResearchOracle.currentQuestion(ofCharge: payload.arguments, policy: policy) else { continue }
                let key = request.key(height: height - 1)
                guard researchOracle.evaluation(question: key) == nil,
                      try storeRead({ try store.value(forKey: StateKey.query(key)) }) == nil else { continue }
                if hospitals == nil { hospitals = try hospitalIDs() }
                let (aggregate, at, time) = try evaluate(request, policy: policy, hospitals: hospitals!)
                // Only the state of the previous block is in memory; a later block means none.
                guard at == height - 1 else { continue }
                researchOracle.remember(.init(aggregate: aggregate, time: time, hospitals: hospitals!), question: key)
            case "answer":
                guard let release = try? ResearchAnswer(decoding: payload.arguments),
                      researchOracle.evaluation(question: release.key) == nil,
                      let bytes = try storeRead({ try store.value(forKey: StateKey.query(release.key)) }),
                      let record = try? QueryRecord(decoding: bytes), record.answer == nil
                else { continue }
                try rememberEvaluation(of: record)
            default:
                continue
            }
        }
    }

    /// Evaluates a charged question at the block it describes (from history if that is not the
    /// tip), with the hospitals and the research policy of that block, and remembers it.
    public func rememberEvaluation(of record: QueryRecord) throws(LedgerError) {
        let hospitals = try hospitalIDs(atHeight: record.height)
        let policy = try researchPolicy(atHeight: record.height)
        let (aggregate, _, time) = try evaluate(record.request, policy: policy, hospitals: hospitals, height: record.height)
        researchOracle.remember(.init(aggregate: aggregate, time: time, hospitals: hospitals), question: record.key)
    }

    /// After a block committed: forgets the evaluations of questions it answered, and unwraps a
    /// rotated noise secret.
    func settleResearch(_ writes: WriteSet) {
        for (key, value) in writes.entries where key.hasPrefix("rq/") {
            guard let value, let record = try? QueryRecord(decoding: value), record.answer != nil else { continue }
            researchOracle.forget(question: record.key)
        }
        if writes.entries[StateKey.noiseKey] != nil { loadNoiseSecret() }
    }

    /// The research policy in force after block `height` (the last configuration written at or
    /// before it).
    func researchPolicy(atHeight height: UInt64) throws(LedgerError) -> ResearchPolicy {
        try storeRead {
            guard let value = try store.history(key: StateKey.config).last(where: { $0.transaction.height <= height })?.value else {
                throw LedgerError(.storage, "no configuration at block \(height)")
            }
            return try NetworkConfig(decoding: value).research
        }
    }

    /// The hospitals registered at block `height` (organisations are never removed, and their kind
    /// never changes: those whose first write precedes the end of that block).
    func hospitalIDs(atHeight height: UInt64) throws(LedgerError) -> [String] {
        let current = try hospitalIDs()
        return try storeRead {
            guard let end = try store.block(at: height)?.header.logSize else {
                throw LedgerError(.notFound, "block \(height) is not committed")
            }
            return try current.filter { id in
                (try store.history(key: StateKey.organization(id)).first?.transaction.sequence ?? .max) < end
            }
        }
    }
}
