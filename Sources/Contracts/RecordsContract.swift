public import LedgerCore

/// Anchors of encrypted off-chain patient records, and members' key-agreement keys.
///
/// Actions:
/// - `register_key(public key)`: any member publishes the key-agreement key that granted data keys
///   are wrapped for (never its signing key), replacing an earlier one.
/// - `put(RecordPut)`: a hospital member (admin, collector, clinician) anchors a sealed record of a
///   patient enrolled at its hospital, optionally from one of its devices; the hospital becomes the
///   holder. The ciphertext, its data key and the vault key that opens the wrap stay with the holder.
/// - `erase(record, reason)`: the patient, a delegate or the holder's admin erases a record; the
///   holder's node then destroys its vault key and blob (crypto-shredding) while the anchor stays.
/// - `rotate(record, put)`: the holder's admin replaces a record by the same content re-sealed
///   under a fresh data key (its node prepares `put`): same patient, category and device; the old
///   anchor is erased (and shredded) in the same transaction and `rot/<old>` names the new one.
public struct RecordsContract: Contract {
    public static let name = "records"
    public var name: String { Self.name }

    static let writers: Set<Role> = [.admin, .collector, .clinician]

    public init() {}

    public func execute(_ context: inout TransactionContext) throws(LedgerError) {
        let action = try RecordAction(action: context.payload.action, arguments: context.payload.arguments)
        let creator = try context.requireCreator()
        try Self.validate(action, creator: creator)
        switch action {
        case .registerKey(let key):
            context.put(StateKey.encryptionKey(creator.fingerprint), EncryptionKey(publicKey: key, registeredAt: context.blockTime))

        case .put(let put):
            try Self.anchor(put, &context, creator: creator)

        case .rotate(let id, let put):
            var old = try context.liveRecord(id)
            guard old.holder == creator.organization else {
                throw LedgerError(.forbidden, "only an admin of \(old.holder), the holder, rotates this record's key")
            }
            // The device was the holder's when the record was stored; it may have changed hands
            // since (red-team finding: such records could never be re-keyed).
            guard put.patient == old.put.patient, put.category == old.put.category, try put.device.map(UDI.canonicalKey) == old.put.device else {
                throw LedgerError(.invalidArgument, "a rotated record keeps its patient, category and device")
            }
            let new = try Self.anchor(put, &context, creator: creator, checkingDevice: false)
            old.erasedAt = context.blockTime
            context.put(StateKey.record(id), old)
            context.put(StateKey.rotation(id), bytes: new.id.bytes)

        case .erase(let id, _):
            var anchor = try context.liveRecord(id)
            let patient = try context.patient(anchor.put.patient)
            guard patient.speaksFor(creator.fingerprint) || (creator.role == .admin && creator.organization == anchor.holder) else {
                throw LedgerError(.forbidden, "only the patient, a delegate or an admin of \(anchor.holder) may erase this record")
            }
            anchor.erasedAt = context.blockTime
            context.put(StateKey.record(id), anchor)
        }
    }

    /// Anchors `put` for the creator's hospital: the patient enrolled there, the device its own.
    @discardableResult
    static func anchor(_ put: RecordPut, _ context: inout TransactionContext, creator: Member, checkingDevice: Bool = true) throws(LedgerError) -> RecordAnchor {
        var put = put
        guard let organization = try context.organization(creator.organization), organization.kind == .hospital else {
            throw LedgerError(.forbidden, "only hospitals store patient records; \(creator.organization) is not a hospital")
        }
        let patient = try context.patient(put.patient)
        guard patient.hospital == creator.organization else {
            throw LedgerError(.forbidden, "the patient is enrolled at \(patient.hospital), not \(creator.organization)")
        }
        if let device = put.device {
            let key = try UDI.canonicalKey(device)
            if checkingDevice {
                guard let record = try context.get(DeviceRecord.self, StateKey.device(key)) else {
                    throw LedgerError(.unknownDevice, "no device \(device)")
                }
                guard record.owner == creator.organization else {
                    throw LedgerError(.forbidden, "device \(device) belongs to \(record.owner)")
                }
            }
            put.device = key
        }
        // The id is bound to the holder (red-team finding: another hospital could anchor a
        // pending id first and block the holder's own anchor for good).
        let anchor = RecordAnchor(put: put, holder: creator.organization, storedBy: creator.fingerprint, storedAt: context.blockTime)
        guard try context.get(StateKey.record(anchor.id)) == nil else {
            throw LedgerError(.recordExists, "record \(anchor.id.hex.prefix(16))… is already anchored")
        }
        context.put(StateKey.record(anchor.id), anchor)
        context.put(StateKey.patientRecord(put.patient, context.blockTime, anchor.id), bytes: [])
        return anchor
    }

    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {
        try Self.validate(RecordAction(action: payload.action, arguments: payload.arguments), creator: creator)
    }

    static func validate(_ action: RecordAction, creator: Member) throws(LedgerError) {
        switch action {
        case .registerKey(let key):
            guard KeyWrap.isValidPublicKey(key) else {
                throw LedgerError(.invalidArgument, "an encryption key is an uncompressed P-256 point (65 bytes, X9.63) on the curve")
            }
        case .put(let put), .rotate(_, let put):
            if case .rotate = action, creator.role != .admin {
                throw LedgerError(.forbidden, "only the holder's admin rotates a record's key, not a \(creator.role.rawValue)")
            }
            guard writers.contains(creator.role) else {
                throw LedgerError(.forbidden, "role \(creator.role.rawValue) may not store patient records; allowed: admin, clinician, collector")
            }
            guard RecordCategory.isValid(put.category) else {
                throw LedgerError(.invalidArgument, "a record category is 1...64 of a-z, 0-9 and _")
            }
            guard put.size >= UInt64(SealedRecord.overhead), put.size <= RecordPut.maxSize else {
                throw LedgerError(.invalidArgument, "a sealed record holds \(SealedRecord.overhead)...\(RecordPut.maxSize) bytes, not \(put.size)")
            }
            guard KeyWrap.isValidPublicKey(put.holderKey), KeyWrap.isValidPublicKey(Array(put.wrappedKey.prefix(RecordPut.publicKeyLength))) else {
                throw LedgerError(.invalidArgument, "the holder key and the wrap's encapsulated key must be P-256 points")
            }
        case .erase(_, let reason):
            try ConsentContract.validateReason(reason, what: "an erasure")
        }
    }
}

extension TransactionContext {
    /// The enrolled patient with this pseudonym.
    func patient(_ pseudonym: Hash256) throws(LedgerError) -> PatientEntry {
        guard let entry = try get(PatientEntry.self, StateKey.patient(pseudonym)) else {
            throw LedgerError(.unknownPatient, "no patient is enrolled under pseudonym \(pseudonym.hex.prefix(16))…")
        }
        return entry
    }

    /// The anchor of a record that exists and was not erased.
    func liveRecord(_ id: Hash256) throws(LedgerError) -> RecordAnchor {
        guard let anchor = try get(RecordAnchor.self, StateKey.record(id)) else {
            throw LedgerError(.unknownRecord, "no record \(id.hex.prefix(16))… is anchored")
        }
        guard anchor.erasedAt == nil else { throw LedgerError(.recordErased, "record \(id.hex.prefix(16))… was erased") }
        return anchor
    }
}
