import Crypto
public import Foundation
import Logging
public import LedgerCore
import Contracts
import LedgerStore
import Synchronization

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

    /// The decision `id` about one of the patient's records.
    public func decision(_ pseudonym: Hash256, _ id: Hash256) throws(LedgerError) -> ConsentDecision? {
        try committed(ConsentDecision.self, StateKey.decision(id)).flatMap { $0.patient == pseudonym ? $0 : nil }
    }

    /// A page of the patient's disclosure log, oldest first: every decision about their records,
    /// after the cursor `after` (``cursor(of:)`` of the last one seen).
    public func disclosures(_ pseudonym: Hash256, after: String? = nil, limit: Int = 1000) throws(LedgerError) -> [ConsentDecision] {
        try load(indexed(StateKey.disclosurePrefix(pseudonym), after: after, limit: limit)) { id throws(LedgerError) in
            try committed(ConsentDecision.self, StateKey.decision(id))
        }
    }

    /// A page of the patient's records, in storing order.
    public func patientRecords(_ pseudonym: Hash256, after: String? = nil, limit: Int = 1000) throws(LedgerError) -> [RecordAnchor] {
        try load(indexed(StateKey.patientRecordPrefix(pseudonym), after: after, limit: limit)) { id throws(LedgerError) in try anchor(id) }
    }

    /// A page of the break-glass accesses awaiting review, oldest first: to `organization`'s
    /// records, or (nil, oversight) to every organisation's, grouped by organisation.
    public func breakGlassQueue(_ organization: String?, after: String? = nil, limit: Int = 1000) throws(LedgerError) -> [ConsentDecision] {
        let prefix = organization.map(StateKey.breakGlassQueuePrefix) ?? "bgq/"
        return try load(indexed(prefix, after: organization == nil ? nil : after, limit: limit)) { id throws(LedgerError) in
            try committed(ConsentDecision.self, StateKey.decision(id))
        }
    }

    /// The paging cursor after an entry of a time-ordered index (`<time key>/<id>`).
    public static func cursor(time: Int64, id: Hash256) -> String { StateKey.timeKey(time) + "/" + id.hex }

    func load<T>(_ ids: [Hash256], _ value: (Hash256) throws(LedgerError) -> T?) throws(LedgerError) -> [T] {
        var values: [T] = []
        for id in ids { if let found = try value(id) { values.append(found) } }
        return values
    }

    /// The ids of an index `<prefix><time key>/<id>`, in time order, after `cursor`.
    func indexed(_ prefix: String, after cursor: String?, limit: Int) throws(LedgerError) -> [Hash256] {
        try storage { try store.state(prefix: prefix, limit: limit, after: cursor.map { prefix + $0 }) }
            .compactMap { Hash256(hex: String($0.key.suffix(64))) }
    }

    /// A new upload of a sealed record to this node's store (``RecordUpload``: streamed to disk).
    public func beginRecordUpload() throws(LedgerError) -> RecordUpload {
        guard let records else { throw LedgerError(.unavailable, "this node keeps no patient records") }
        return try records.beginUpload()
    }

    /// Stores an uploaded sealed record — only if its SHA-256 is `declared`, when given (the hash
    /// the uploader signed) — and answers the blob's hash, the record id it will have here, and
    /// the vault key to wrap its data key for.
    public func acceptRecord(_ upload: RecordUpload, declared: Hash256? = nil) throws(LedgerError) -> (blob: Hash256, record: Hash256, holderKey: [UInt8]) {
        guard let records else { throw LedgerError(.unavailable, "this node keeps no patient records") }
        let hash = try upload.finish()
        if let declared, declared != hash {
            upload.discard()
            throw LedgerError(.badSignature, "the body is not the one whose hash was signed")
        }
        // An erased record's ciphertext is not taken back (a collector's outbox may resend it).
        let record = RecordAnchor.recordID(holder: organization, blob: hash)
        if let anchor = try anchor(record), anchor.erasedAt != nil {
            upload.discard()
            throw LedgerError(.recordErased, "record \(record.hex.prefix(16))… was erased; it is not stored again")
        }
        let key = try records.accept(upload, id: hash)
        if records.claimSweep(now: Date()) {
            Task.detached { [self] in sweepRecords() }
        }
        return (hash, record, Array(key.x963Representation))
    }

    /// Stores a sealed record held in memory (see the upload form).
    public func acceptRecord(_ blob: [UInt8]) throws(LedgerError) -> (blob: Hash256, record: Hash256, holderKey: [UInt8]) {
        let upload = try beginRecordUpload()
        try upload.append(blob)
        return try acceptRecord(upload)
    }

    /// Key rotation, the holder's half: re-seals record `id` under a fresh data key and stores the
    /// new blob with its own vault key, answering the `put` for the `records.rotate` transaction
    /// the holder's admin signs. The plaintext exists only in this call's memory; the old vault key
    /// and blob are shredded once the rotation commits (as for an erasure).
    ///
    /// A record has at most one pending rotation: asked again before it commits, the node answers
    /// the same one (two admins racing sign the same anchor; red-team finding: every prepare left
    /// a full copy). Once the record is erased or rotated, or the copy is anchored by anything but
    /// this rotation, the copy is shredded (``settlePendingRotations(_:)``).
    public func prepareRotation(record id: Hash256) throws(LedgerError) -> RecordPut {
        guard let records else { throw LedgerError(.unavailable, "this node keeps no patient records") }
        return try records.rotating.withLock { _ throws(LedgerError) -> RecordPut in
            guard let anchor = try anchor(id) else { throw LedgerError(.unknownRecord, "no record \(id.hex.prefix(16))… is anchored") }
            guard anchor.erasedAt == nil else { throw LedgerError(.recordErased, "record \(id.hex.prefix(16))… was erased or rotated") }
            guard anchor.holder == organization else {
                throw LedgerError(.forbidden, "record \(id.hex.prefix(16))… is held by \(anchor.holder): its own node rotates it")
            }
            if let pending = records.pendingRotation(of: id) {
                if records.blobFile(pending.id) != nil, try records.vaultKey(pending.id) != nil { return pending }
                try records.shred(pending.id)
                records.clearPendingRotation(id)
            }
            let put = try reseal(anchor, records)
            try records.setPendingRotation(id, put)
            return put
        }
    }

    func reseal(_ anchor: RecordAnchor, _ records: RecordStore) throws(LedgerError) -> RecordPut {
        let id = anchor.id
        guard let oldKey = try records.dataKey(for: anchor), let oldBlob = try records.blob(anchor.put.id) else {
            throw LedgerError(.notFound, "this node's vault holds no key or blob for record \(id.hex.prefix(16))…")
        }
        let key = SymmetricKey(size: .bits256)
        let blob = try SealedRecord.seal(SealedRecord.open(oldBlob, key: oldKey), key: key)
        let (hash, _, holderKey) = try acceptRecord(blob)
        guard let vault = try? P256.KeyAgreement.PublicKey(x963Representation: holderKey) else {
            throw LedgerError(.internal, "the new vault key is not a P-256 point")
        }
        return RecordPut(id: hash, size: UInt64(blob.count), category: anchor.put.category, device: anchor.put.device, patient: anchor.put.patient,
                         holderKey: holderKey, wrappedKey: try KeyWrap.wrap(key, for: vault, info: KeyWrap.holderInfo(record: hash)))
    }

    /// The record that replaced a rotated one.
    public func rotation(of id: Hash256) throws(LedgerError) -> Hash256? {
        try storage { try store.value(forKey: StateKey.rotation(id)) }.flatMap { Hash256(bytes: $0) }
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
        // A block dated far ahead (a leader's clock, or its own far-dated transactions) would
        // stretch the window: a decision from this node's future is not honoured.
        guard decision.decidedAt <= now.addingSaturating(Int64(clamping: config.clockSkewMilliseconds)) else {
            throw LedgerError(.forbidden, "the decision is dated ahead of this node's clock; request access again")
        }
        // Red-team finding: a revocation did not stop a release under a grant decided before it.
        // The consent that granted must still hold now.
        switch decision.basis {
        case .consent:
            let rule = try consentState(anchor.put.patient).rules.first { $0.id == decision.rule }
            guard let rule, (rule.terms.expiresAt ?? .max) > now else {
                throw LedgerError(.forbidden, "the rule that granted this access was revoked or has expired; request access again")
            }
        case .patient:
            guard try patientEntry(anchor.put.patient)?.speaksFor(reader) == true else {
                throw LedgerError(.forbidden, "the reader no longer speaks for this patient")
            }
        case .breakGlass, .deny, .noConsent:
            break
        }
        return (anchor, decision)
    }

    /// The record's data key wrapped for the reader's registered encryption key, under a grant.
    public func releaseKey(record id: Hash256, decision decisionID: Hash256, reader: Hash256, now: Int64) throws(LedgerError)
        -> (wrapped: [UInt8], decision: ConsentDecision, anchor: RecordAnchor) {
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
        return (wrapped, decision, anchor)
    }

    /// The sealed blob's file and size, under a grant (served in chunks, never read whole).
    public func releaseBlob(record id: Hash256, decision decisionID: Hash256, reader: Hash256, now: Int64) throws(LedgerError) -> (path: String, size: Int) {
        let (anchor, _) = try grantedAccess(record: id, decision: decisionID, reader: reader, now: now)
        guard let file = records?.blobFile(anchor.put.id) else { throw LedgerError(.notFound, "this node holds no blob for record \(id.hex.prefix(16))…") }
        return file
    }

    // MARK: Crypto-shredding

    /// After a commit: destroys the vault key and blob of every record of this organisation the
    /// block erased, and settles pending rotations. A failure is logged and retried at the next
    /// start (``sweepRecords(now:)``).
    func shredErased(_ writes: WriteSet) {
        guard let records else { return }
        // Only a block that writes an anchor can settle a pending rotation (an erasure, a rotation,
        // a put of the copy): the others, most blocks, do not list the pending folder.
        var anchors = false
        defer { if anchors { settlePendingRotations() } }
        for (key, value) in writes.entries where key.hasPrefix("rec/") {
            anchors = true
            guard let value, let anchor = try? RecordAnchor(decoding: value), anchor.erasedAt != nil, anchor.holder == organization else { continue }
            // Red-team finding: a rotation to a copy this node does not hold destroyed the record.
            if (try? successorMissing(of: anchor.id)) != false {
                logger.error("a rotation names a successor this node does not hold: the original record's key and blob are kept",
                             metadata: ["record": "\(anchor.id.hex.prefix(16))"])
                continue
            }
            do throws(LedgerError) {
                try records.shred(anchor.put.id)
                logger.info("erased record shredded", metadata: ["record": "\(anchor.id.hex.prefix(16))"])
            } catch {
                logger.error("could not shred an erased record; retried at the next start", metadata: ["record": "\(anchor.id.hex.prefix(16))", "error": "\(error)"])
            }
        }
    }

    /// Pending rotations whose fate is known: committed (the copy is the record now: the mark goes),
    /// or their record erased or rotated to another copy, or the copy anchored by an ordinary put
    /// (it was made for a rotation only): the copy is shredded. Reads committed state (after a
    /// commit, or at start); a read that fails leaves the rotation pending.
    func settlePendingRotations() {
        guard let records else { return }
        for (record, put) in records.pendingRotations() {
            let copy = RecordAnchor.recordID(holder: organization, blob: put.id)
            let (successor, source, copyAnchored): (Hash256?, RecordAnchor?, Bool)
            do { (successor, source, copyAnchored) = (try rotation(of: record), try anchor(record), try anchor(copy) != nil) } catch { continue }
            if successor == copy {
                records.clearPendingRotation(record)
                continue
            }
            guard source?.erasedAt != nil || copyAnchored else { continue }
            do throws(LedgerError) {
                try records.shred(put.id)
                records.clearPendingRotation(record)
                logger.info("pending rotation shredded", metadata: ["record": "\(record.hex.prefix(16))", "why": "\(copyAnchored ? "anchored by a put" : "record erased or rotated")"])
            } catch {
                logger.error("could not shred a pending rotation; retried at the next start", metadata: ["record": "\(record.hex.prefix(16))", "error": "\(error)"])
            }
        }
    }

    /// At start, then at most hourly (on an upload): shreds what a crash between an erasure's
    /// commit and its shredding left behind, and uploads nobody anchored — a client that stopped
    /// between upload and anchor — once their files are older than the store's
    /// ``RecordStore/orphanGrace``. Answers how many it removed.
    ///
    /// Shredding cannot be undone, so "nobody anchored" must be what the network says, not a local
    /// state that is behind (red-team finding: a node rebuilding its database from the log shredded
    /// every record older than a week at start). Age is measured up to the ledger's own tip time
    /// (a state restored from an old backup, or one being rebuilt, has an old tip), and a node of a
    /// replicated network removes unanchored uploads only once it holds every height the other
    /// nodes have published.
    @discardableResult
    public func sweepRecords(now: Date = Date()) -> Int {
        guard let records else { return 0 }
        settlePendingRotations()
        let tip = self.tip
        let reference = min(now, Date(timeIntervalSince1970: Double(tip.timestamp) / 1000))
        let peers = peerCheckpoints
        let current = replication == nil || (!peers.isEmpty && peers.allSatisfy { $0.height <= tip.height })
        // A pending rotation's copy is kept while its record lives (an admin may sign it any time;
        // it is shredded with the record): removing it would make that rotation lose the record.
        let pending = Set(records.pendingRotations().map(\.put.id))
        var removed = 0
        for blob in records.held() where !pending.contains(blob) {
            // A state read that fails keeps the files: the sweep removes only what it knows is dead.
            let found: RecordAnchor?
            do { found = try anchor(RecordAnchor.recordID(holder: organization, blob: blob)) } catch { continue }
            if let anchor = found {
                guard anchor.erasedAt != nil, (try? successorMissing(of: anchor.id)) == false else { continue }
                if (try? records.shred(blob)) != nil { removed += 1 }
            } else if current {
                // Checked and removed under the store's lock: an upload of the same blob meanwhile
                // refreshes its age and keeps it (red-team finding).
                if records.removeIfOlder(blob, than: reference - records.orphanGrace) {
                    logger.info("unanchored upload removed", metadata: ["blob": "\(blob.hex.prefix(16))"])
                    removed += 1
                }
            }
        }
        return removed
    }

    /// Whether `record` was rotated (committed state) to a successor whose blob or vault key this
    /// node does not hold — an admin signed a rotation its node never prepared — so that the
    /// original must be kept.
    func successorMissing(of record: Hash256) throws(LedgerError) -> Bool {
        guard let records, let successor = try rotation(of: record) else { return false }
        guard let anchored = try anchor(successor) else { return true }
        if records.blobFile(anchored.put.id) == nil { return true }
        return try records.vaultKey(anchored.put.id) == nil
    }

    // MARK: Reading committed state

    func committed<T: BinaryCodable>(_ type: T.Type, _ key: String) throws(LedgerError) -> T? {
        guard let bytes = try storage({ try store.value(forKey: key) }) else { return nil }
        return try T(decoding: bytes)
    }

    func storage<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do { return try body() } catch let error as LedgerError { throw error } catch {
            throw LedgerError(.storage, "state read failed: \(error)")
        }
    }
}
