import Crypto
import Logging
public import LedgerCore
import Contracts
import LedgerStore

/// Patient records at their holder's node: committed anchors, consent and decisions read from the
/// store; keys released only under a recorded, unexpired grant to the reader who holds it.
extension LedgerNode {
    public func anchor(_ id: Hash256) throws(LedgerError) -> RecordAnchor? {
        try committed(RecordAnchor.self, StateKey.record(id))
    }

    public func patientEntry(_ pseudonym: Hash256) throws(LedgerError) -> PatientEntry? {
        try committed(PatientEntry.self, StateKey.patient(pseudonym))
    }

    public func consentState(_ pseudonym: Hash256) throws(LedgerError) -> ConsentState {
        try committed(ConsentState.self, StateKey.consent(pseudonym)) ?? ConsentState()
    }

    public func decision(_ pseudonym: Hash256, _ id: Hash256) throws(LedgerError) -> ConsentDecision? {
        try committed(ConsentDecision.self, StateKey.disclosure(pseudonym, id))
    }

    /// The patient's disclosure log: every decision about their records, oldest first.
    public func disclosures(_ pseudonym: Hash256, limit: Int = 1000) throws(LedgerError) -> [ConsentDecision] {
        try prefixed(StateKey.disclosurePrefix(pseudonym), limit: limit) { bytes throws(LedgerError) in try ConsentDecision(decoding: bytes) }
            .sorted { ($0.decidedAt, $0.id) < ($1.decidedAt, $1.id) }
    }

    /// The anchors of the patient's records.
    public func patientRecords(_ pseudonym: Hash256, limit: Int = 1000) throws(LedgerError) -> [RecordAnchor] {
        let ids = try storage { try store.state(prefix: StateKey.patientRecordPrefix(pseudonym), limit: limit) }
            .compactMap { Hash256(hex: String($0.key.dropFirst(StateKey.patientRecordPrefix(pseudonym).count))) }
        var anchors: [RecordAnchor] = []
        for id in ids { if let anchor = try anchor(id) { anchors.append(anchor) } }
        return anchors.sorted { ($0.storedAt, $0.id) < ($1.storedAt, $1.id) }
    }

    /// Break-glass accesses to `organization`'s records awaiting review (nil: every organisation's).
    public func breakGlassQueue(_ organization: String?, limit: Int = 1000) throws(LedgerError) -> [ConsentDecision] {
        let prefix = organization.map(StateKey.breakGlassQueuePrefix) ?? "bgq/"
        var decisions: [ConsentDecision] = []
        for entry in try storage({ try store.state(prefix: prefix, limit: limit) }) {
            guard let pseudonym = Hash256(bytes: entry.value), let id = Hash256(hex: String(entry.key.suffix(64))),
                  let decision = try committed(ConsentDecision.self, StateKey.disclosure(pseudonym, id)) else { continue }
            decisions.append(decision)
        }
        return decisions.sorted { ($0.decidedAt, $0.id) < ($1.decidedAt, $1.id) }
    }

    /// Stores a sealed record uploaded by a member of this node's organisation and returns its id
    /// and the vault key the client wraps its data key for.
    public func acceptRecord(_ blob: [UInt8]) throws(LedgerError) -> (id: Hash256, holderKey: [UInt8]) {
        guard let records else { throw LedgerError(.unavailable, "this node keeps no patient records") }
        let (id, key) = try records.accept(blob)
        return (id, Array(key.x963Representation))
    }

    /// The checks before anything of a record is served to `reader` under `decision`, at `now`
    /// (the node's clock, ms): the record is this node's and not erased, the decision is about it,
    /// names the reader, granted, and its window is open.
    public func grantedAccess(record id: Hash256, decision decisionID: Hash256, reader: Hash256, now: Int64) throws(LedgerError) -> (RecordAnchor, ConsentDecision) {
        guard let anchor = try anchor(id) else { throw LedgerError(.unknownRecord, "no record \(id.hex.prefix(16))… is anchored") }
        guard anchor.erasedAt == nil else { throw LedgerError(.recordErased, "record \(id.hex.prefix(16))… was erased") }
        guard anchor.holder == organization, records != nil else {
            throw LedgerError(.notFound, "record \(id.hex.prefix(16))… is held by \(anchor.holder): ask its node")
        }
        guard let decision = try decision(anchor.put.patient, decisionID), decision.record == id else {
            throw LedgerError(.notFound, "no access decision \(decisionID.hex.prefix(16))… about this record is committed (request access first)")
        }
        guard decision.reader == reader else { throw LedgerError(.forbidden, "that decision was taken for another reader") }
        guard decision.granted else { throw LedgerError(.forbidden, "access was denied (\(decision.basis.rawValue))") }
        guard let expiresAt = decision.expiresAt, now < expiresAt else {
            throw LedgerError(.forbidden, "the grant's window closed at \(decision.expiresAt ?? 0); request access again")
        }
        return (anchor, decision)
    }

    /// The record's data key wrapped for the reader's registered encryption key, under a grant.
    public func releaseKey(record id: Hash256, decision decisionID: Hash256, reader: Hash256, now: Int64) throws(LedgerError) -> (wrapped: [UInt8], decision: ConsentDecision) {
        let (anchor, decision) = try grantedAccess(record: id, decision: decisionID, reader: reader, now: now)
        guard let registered = try committed(EncryptionKey.self, StateKey.encryptionKey(reader)),
              let readerKey = try? P256.KeyAgreement.PublicKey(x963Representation: registered.publicKey) else {
            throw LedgerError(.missingField, "the reader has no registered encryption key")
        }
        guard let dataKey = try records?.dataKey(for: anchor) else {
            throw LedgerError(.notFound, "this node's vault holds no key for record \(id.hex.prefix(16))…")
        }
        let wrapped = try KeyWrap.wrap(dataKey, for: readerKey, info: KeyWrap.readerInfo(record: id, decision: decisionID))
        logger.info("record key released", metadata: ["record": "\(id.hex.prefix(16))", "decision": "\(decisionID.hex.prefix(16))",
                                                     "reader": "\(reader.hex.prefix(16))"])
        return (wrapped, decision)
    }

    /// The sealed blob, under a grant.
    public func releaseBlob(record id: Hash256, decision decisionID: Hash256, reader: Hash256, now: Int64) throws(LedgerError) -> [UInt8] {
        _ = try grantedAccess(record: id, decision: decisionID, reader: reader, now: now)
        guard let blob = try records?.blob(id) else { throw LedgerError(.notFound, "this node holds no blob for record \(id.hex.prefix(16))…") }
        return blob
    }

    // MARK: Crypto-shredding

    /// After a commit: destroys the vault key and blob of every record of this organisation the
    /// block erased. A failure is logged and retried at the next start (``shredErasedRecords()``).
    func shredErased(_ writes: WriteSet) {
        guard let records else { return }
        for (key, value) in writes.entries where key.hasPrefix("rec/") {
            guard let value, let anchor = try? RecordAnchor(decoding: value), anchor.erasedAt != nil, anchor.holder == organization else { continue }
            do throws(LedgerError) {
                try records.shred(anchor.id)
                logger.info("erased record shredded", metadata: ["record": "\(anchor.id.hex.prefix(16))"])
            } catch {
                logger.error("could not shred an erased record; retried at the next start", metadata: ["record": "\(anchor.id.hex.prefix(16))", "error": "\(error)"])
            }
        }
    }

    /// At start: shreds what a crash between an erasure's commit and its shredding left behind.
    func shredErasedRecords() {
        guard let records else { return }
        for id in records.heldRecords() {
            guard let anchor = try? anchor(id), anchor.erasedAt != nil else { continue }
            try? records.shred(id)
        }
    }

    // MARK: Reading committed state

    func committed<T: BinaryCodable>(_ type: T.Type, _ key: String) throws(LedgerError) -> T? {
        guard let bytes = try storage({ try store.value(forKey: key) }) else { return nil }
        return try T(decoding: bytes)
    }

    func prefixed<T>(_ prefix: String, limit: Int, _ decode: ([UInt8]) throws(LedgerError) -> T) throws(LedgerError) -> [T] {
        var values: [T] = []
        for entry in try storage({ try store.state(prefix: prefix, limit: limit) }) { values.append(try decode(entry.value)) }
        return values
    }

    func storage<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do { return try body() } catch let error as LedgerError { throw error } catch {
            throw LedgerError(.storage, "state read failed: \(error)")
        }
    }
}
