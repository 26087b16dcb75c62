/// Patient data on the ledger: anchors of encrypted off-chain records, patients' consent, and the
/// access decisions taken under it (docs/patient-data.md, docs/formats.md §17).
///
/// The ledger never holds a clear patient identifier, a record's contents or a key able to open it:
/// a patient is a keyed pseudonym (``PatientPseudonym``), a record is the hash and size of its
/// ciphertext, and its data key is wrapped for a key only the holding hospital's node keeps.

/// Why a reader asks for a record: HL7 v3 PurposeOfUse codes (a subset).
public enum PurposeOfUse: String, Sendable, Hashable, CaseIterable, Comparable {
    case treatment = "TREAT"
    /// Emergency treatment: the purpose of break-glass access.
    case emergencyTreatment = "ETREAT"
    case continuityOfCare = "COC"
    case research = "HRESCH"
    case publicHealth = "PUBHLTH"
    case operations = "HOPERAT"
    case payment = "HPAYMT"
    /// The patient's own request (or their delegate's).
    case patientRequest = "PATRQT"

    public static func < (lhs: PurposeOfUse, rhs: PurposeOfUse) -> Bool { lhs.rawValue < rhs.rawValue }
}

public enum RecordCategory {
    /// 1…64 of `a-z`, `0-9` and `_` (`device_readings`, `report`, `fhir_observation`, …).
    public static func isValid(_ category: String) -> Bool {
        !category.isEmpty && category.utf8.count <= 64
            && category.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}

/// What a `records.put` transaction declares; the contract adds who stored it, where and when.
public struct RecordPut: BinaryCodable, Hashable {
    /// An uncompressed P-256 point (X9.63).
    public static let publicKeyLength = 65
    /// HPKE encapsulated key (65) ‖ sealed 32-byte data key with its 16-byte tag.
    public static let wrappedKeyLength = 65 + 32 + 16
    /// The largest record a hospital may anchor (its store may set a lower limit).
    public static let maxSize: UInt64 = 1 << 30

    /// SHA-256 of the sealed blob (``SealedRecord``): the blob's address in the holder's store. The
    /// record's id on the ledger is ``RecordAnchor/recordID(holder:blob:)``.
    public var id: Hash256
    /// Length of the sealed blob in bytes.
    public var size: UInt64
    public var category: String
    /// The device the record came from (any spelling of its UDI; stored canonical).
    public var device: String?
    /// The patient's pseudonym at the storing hospital.
    public var patient: Hash256
    /// The holder's per-record key-agreement public key (X9.63), issued by its node's vault.
    public var holderKey: [UInt8]
    /// The data key wrapped for ``holderKey`` (``KeyWrap``).
    public var wrappedKey: [UInt8]

    public init(id: Hash256, size: UInt64, category: String, device: String?, patient: Hash256, holderKey: [UInt8], wrappedKey: [UInt8]) {
        self.id = id
        self.size = size
        self.category = category
        self.device = device
        self.patient = patient
        self.holderKey = holderKey
        self.wrappedKey = wrappedKey
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(size)
        writer.write(category)
        writer.writeOptional(device)
        writer.write(patient)
        writer.writeRaw(holderKey)
        writer.writeRaw(wrappedKey)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        id = try reader.readHash("record id")
        size = try reader.readUInt64("record size")
        category = try reader.readString("record category", maxLength: 64)
        device = try reader.readOptionalString("record device", maxLength: 128)
        patient = try reader.readHash("record patient")
        holderKey = try reader.readRaw(count: Self.publicKeyLength, "record holder key")
        wrappedKey = try reader.readRaw(count: Self.wrappedKeyLength, "record wrapped key")
    }
}

/// A record's anchor as the ledger keeps it (`rec/<id>`).
public struct RecordAnchor: BinaryCodable, Hashable {
    public var put: RecordPut
    /// The organisation whose node stores the blob and its vault key.
    public var holder: String
    public var storedBy: Hash256
    public var storedAt: Int64
    /// Block time of the erasure; after it no access is decided and the holder has shredded the key.
    public var erasedAt: Int64?

    public init(put: RecordPut, holder: String, storedBy: Hash256, storedAt: Int64, erasedAt: Int64? = nil) {
        self.put = put
        self.holder = holder
        self.storedBy = storedBy
        self.storedAt = storedAt
        self.erasedAt = erasedAt
    }

    /// The record id: SHA-256 of `"MedLedger record v1"` ‖ 0x00 ‖ holder ‖ 0x00 ‖ blob hash. Bound to
    /// the holder, so another hospital that saw a pending anchor cannot take its id: the same blob
    /// anchored elsewhere is another record.
    public var id: Hash256 { Self.recordID(holder: holder, blob: put.id) }

    public static func recordID(holder: String, blob: Hash256) -> Hash256 {
        var bytes = Array("MedLedger record v1".utf8)
        bytes.append(0)
        bytes.append(contentsOf: holder.utf8)
        bytes.append(0)
        bytes.append(contentsOf: blob.bytes)
        return Hash256.of(bytes)
    }

    public func encode(to writer: inout BinaryWriter) {
        put.encode(to: &writer)
        writer.write(holder)
        writer.write(storedBy)
        writer.write(storedAt)
        writer.writeOptional(erasedAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        put = try RecordPut(from: &reader)
        holder = try reader.readString("anchor holder", maxLength: 64)
        storedBy = try reader.readHash("anchor storedBy")
        storedAt = try reader.readInt64("anchor storedAt")
        erasedAt = try reader.readOptionalInt64("anchor erasedAt")
    }
}

/// A member's key-agreement public key (`ek/<fingerprint>`): what granted keys are wrapped for.
/// Separate from the signing key by design: a signing key never decrypts anything.
public struct EncryptionKey: BinaryCodable, Hashable {
    public var publicKey: [UInt8]
    public var registeredAt: Int64

    public init(publicKey: [UInt8], registeredAt: Int64) {
        self.publicKey = publicKey
        self.registeredAt = registeredAt
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(publicKey)
        writer.write(registeredAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        publicKey = try reader.readRaw(count: RecordPut.publicKeyLength, "encryption key")
        registeredAt = try reader.readInt64("encryption key registeredAt")
    }
}

/// A patient enrolled at a hospital (`pat/<pseudonym>`): the pseudonym bound to the patient's own
/// member identity and the delegates who may act for them.
public struct PatientEntry: BinaryCodable, Hashable {
    public static let maxDelegates = 16

    public var pseudonym: Hash256
    public var hospital: String
    /// The patient's member certificate fingerprint (role `patient`, issued by the hospital's CA).
    public var patient: Hash256
    /// Delegates' fingerprints (role `delegate`), sorted.
    public var delegates: [Hash256]
    public var enrolledAt: Int64

    public init(pseudonym: Hash256, hospital: String, patient: Hash256, delegates: [Hash256] = [], enrolledAt: Int64) {
        self.pseudonym = pseudonym
        self.hospital = hospital
        self.patient = patient
        self.delegates = delegates
        self.enrolledAt = enrolledAt
    }

    /// The patient or one of their delegates.
    public func speaksFor(_ fingerprint: Hash256) -> Bool {
        fingerprint == patient || delegates.contains(fingerprint)
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(pseudonym)
        writer.write(hospital)
        writer.write(patient)
        writer.write(array: delegates)
        writer.write(enrolledAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        pseudonym = try reader.readHash("patient pseudonym")
        hospital = try reader.readString("patient hospital", maxLength: 64)
        patient = try reader.readHash("patient member")
        delegates = try reader.readArray("patient delegates", maxCount: Self.maxDelegates)
        enrolledAt = try reader.readInt64("patient enrolledAt")
    }
}

extension Hash256: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.write(self) }
    public init(from reader: inout BinaryReader) throws(LedgerError) { self = try reader.readHash("hash") }
}

/// Whom a consent rule speaks about.
public enum Grantee: BinaryCodable, Hashable {
    /// Every member of an organisation.
    case organization(String)
    /// Every member with a role, of one organisation or (`nil`) of any.
    case role(Role, organization: String?)
    /// One member, by certificate fingerprint.
    case member(Hash256)

    public func matches(_ member: Member) -> Bool {
        switch self {
        case .organization(let id): member.organization == id
        case .role(let role, let organization): member.role == role && (organization == nil || organization == member.organization)
        case .member(let fingerprint): member.fingerprint == fingerprint
        }
    }

    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .organization(let id):
            writer.write(UInt8(1))
            writer.write(id)
        case .role(let role, let organization):
            writer.write(UInt8(2))
            writer.write(role.rawValue)
            writer.writeOptional(organization)
        case .member(let fingerprint):
            writer.write(UInt8(3))
            writer.write(fingerprint)
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        switch try reader.readUInt8("grantee tag") {
        case 1: self = .organization(try reader.readString("grantee organization", maxLength: 64))
        case 2: self = .role(try reader.readEnum("grantee role"), organization: try reader.readOptionalString("grantee organization", maxLength: 64))
        case 3: self = .member(try reader.readHash("grantee member"))
        case let tag: throw LedgerError(.malformedEncoding, "grantee: unknown tag \(tag)")
        }
    }
}

/// What a patient permits or denies: to whom, for which records, for what, until when.
public struct ConsentTerms: BinaryCodable, Hashable {
    public enum Effect: String, Sendable, Hashable { case permit, deny }
    public static let maxScope = 32

    public var effect: Effect
    public var grantee: Grantee
    /// Record categories covered; empty means every category. Sorted, unique.
    public var categories: [String]
    /// Devices covered (canonical UDIs); empty means records of every device (and of none). Sorted, unique.
    public var devices: [String]
    /// Purposes covered; never empty. Sorted, unique.
    public var purposes: [PurposeOfUse]
    /// Block time after which the rule no longer applies; `nil`: until revoked.
    public var expiresAt: Int64?

    public init(effect: Effect, grantee: Grantee, categories: [String] = [], devices: [String] = [], purposes: [PurposeOfUse], expiresAt: Int64? = nil) {
        self.effect = effect
        self.grantee = grantee
        self.categories = categories
        self.devices = devices
        self.purposes = purposes
        self.expiresAt = expiresAt
    }

    /// Whether the rule speaks about `member` reading `anchor` for `purpose` at `time`.
    public func covers(_ member: Member, _ anchor: RecordAnchor, purpose: PurposeOfUse, at time: Int64) -> Bool {
        if let expiresAt, expiresAt <= time { return false }
        guard purposes.contains(purpose), grantee.matches(member) else { return false }
        if !categories.isEmpty, !categories.contains(anchor.put.category) { return false }
        if !devices.isEmpty {
            guard let device = anchor.put.device, devices.contains(device) else { return false }
        }
        return true
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(effect.rawValue)
        grantee.encode(to: &writer)
        writer.write(strings: categories)
        writer.write(strings: devices)
        writer.write(strings: purposes.map(\.rawValue))
        writer.writeOptional(expiresAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        effect = try reader.readEnum("consent effect")
        grantee = try Grantee(from: &reader)
        categories = try reader.readStrings("consent categories", maxCount: Self.maxScope)
        devices = try reader.readStrings("consent devices", maxCount: Self.maxScope)
        let purposes = try reader.readStrings("consent purposes", maxCount: PurposeOfUse.allCases.count)
        self.purposes = []
        for raw in purposes {
            guard let purpose = PurposeOfUse(rawValue: raw) else {
                throw LedgerError(.malformedEncoding, "consent purposes: unknown purpose of use \(raw.prefix(16))")
            }
            self.purposes.append(purpose)
        }
        expiresAt = try reader.readOptionalInt64("consent expiresAt")
    }
}

/// A rule in force: the terms, the transaction that granted them (its id names the rule), by whom and when.
public struct ConsentRule: BinaryCodable, Hashable {
    public var id: Hash256
    public var terms: ConsentTerms
    public var grantedBy: Hash256
    public var grantedAt: Int64

    public init(id: Hash256, terms: ConsentTerms, grantedBy: Hash256, grantedAt: Int64) {
        self.id = id
        self.terms = terms
        self.grantedBy = grantedBy
        self.grantedAt = grantedAt
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        terms.encode(to: &writer)
        writer.write(grantedBy)
        writer.write(grantedAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        id = try reader.readHash("rule id")
        terms = try ConsentTerms(from: &reader)
        grantedBy = try reader.readHash("rule grantedBy")
        grantedAt = try reader.readInt64("rule grantedAt")
    }
}

/// A patient's consent (`cns/<pseudonym>`): the rules in force, in id order. Every change bumps
/// ``version``; the store's per-key history keeps every earlier version.
public struct ConsentState: BinaryCodable, Hashable {
    public static let maxRules = 256
    /// The largest encoded state a grant may leave: every grant and revoke rewrites the whole value
    /// (and the store keeps each version), so this bounds what one small transaction can write.
    public static let maxEncodedBytes = 16 * 1024

    public var version: UInt64
    public var rules: [ConsentRule]

    public init(version: UInt64 = 0, rules: [ConsentRule] = []) {
        self.version = version
        self.rules = rules
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(version)
        writer.write(array: rules)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        version = try reader.readUInt64("consent version")
        rules = try reader.readArray("consent rules", maxCount: Self.maxRules)
    }
}

/// One access decision (`dis/<pseudonym>/<id>`): the patient's disclosure log is the set of these.
public struct ConsentDecision: BinaryCodable, Hashable {
    public enum Basis: String, Sendable, Hashable {
        /// A permit rule matched and no deny rule did.
        case consent
        /// A deny rule matched (it overrides every permit).
        case deny
        /// No rule matched.
        case noConsent = "no_consent"
        /// The reader is the patient or one of their delegates.
        case patient
        /// Emergency access without consent, with a reason; queued for review.
        case breakGlass = "break_glass"
    }

    /// The deciding transaction's id.
    public var id: Hash256
    public var record: Hash256
    public var patient: Hash256
    public var holder: String
    public var reader: Hash256
    public var readerOrganization: String
    public var readerRole: Role
    public var purpose: PurposeOfUse
    public var granted: Bool
    public var basis: Basis
    /// The rule that decided, for ``Basis/consent`` and ``Basis/deny``.
    public var rule: Hash256?
    /// The break-glass reason.
    public var reason: String?
    public var decidedAt: Int64
    /// When granted: the end of the window in which the holder releases the key.
    public var expiresAt: Int64?

    public init(id: Hash256, record: Hash256, patient: Hash256, holder: String, reader: Hash256, readerOrganization: String, readerRole: Role,
                purpose: PurposeOfUse, granted: Bool, basis: Basis, rule: Hash256?, reason: String?, decidedAt: Int64, expiresAt: Int64?) {
        self.id = id
        self.record = record
        self.patient = patient
        self.holder = holder
        self.reader = reader
        self.readerOrganization = readerOrganization
        self.readerRole = readerRole
        self.purpose = purpose
        self.granted = granted
        self.basis = basis
        self.rule = rule
        self.reason = reason
        self.decidedAt = decidedAt
        self.expiresAt = expiresAt
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(record)
        writer.write(patient)
        writer.write(holder)
        writer.write(reader)
        writer.write(readerOrganization)
        writer.write(readerRole.rawValue)
        writer.write(purpose.rawValue)
        writer.write(granted)
        writer.write(basis.rawValue)
        writer.write(rule != nil)
        if let rule { writer.write(rule) }
        writer.writeOptional(reason)
        writer.write(decidedAt)
        writer.writeOptional(expiresAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        id = try reader.readHash("decision id")
        record = try reader.readHash("decision record")
        patient = try reader.readHash("decision patient")
        holder = try reader.readString("decision holder", maxLength: 64)
        self.reader = try reader.readHash("decision reader")
        readerOrganization = try reader.readString("decision reader organization", maxLength: 64)
        readerRole = try reader.readEnum("decision reader role")
        purpose = try reader.readEnum("decision purpose")
        granted = try reader.readBool("decision granted")
        basis = try reader.readEnum("decision basis")
        rule = try reader.readBool("decision rule") ? try reader.readHash("decision rule") : nil
        reason = try reader.readOptionalString("decision reason", maxLength: ConsentAction.maxReasonLength)
        decidedAt = try reader.readInt64("decision decidedAt")
        expiresAt = try reader.readOptionalInt64("decision expiresAt")
    }
}

/// A privacy officer's review of a break-glass access (`bgr/<decision id>`).
public struct BreakGlassReview: BinaryCodable, Hashable {
    public var reviewer: Hash256
    public var reviewedAt: Int64
    public var note: String

    public init(reviewer: Hash256, reviewedAt: Int64, note: String) {
        self.reviewer = reviewer
        self.reviewedAt = reviewedAt
        self.note = note
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(reviewer)
        writer.write(reviewedAt)
        writer.write(note)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        reviewer = try reader.readHash("review reviewer")
        reviewedAt = try reader.readInt64("review reviewedAt")
        note = try reader.readString("review note", maxLength: ConsentAction.maxReasonLength)
    }
}

/// The actions of the `records` contract.
public enum RecordAction: Sendable, Hashable {
    /// The signer's key-agreement public key (X9.63), replacing any earlier one.
    case registerKey([UInt8])
    case put(RecordPut)
    /// Crypto-shredding: the holder destroys the record's vault key and blob once this commits.
    case erase(record: Hash256, reason: String)
    /// Key rotation: the holder's node re-sealed the record under a fresh data key as `put`; the
    /// new anchor replaces `record`, which is then erased and shredded like an erasure.
    case rotate(record: Hash256, put: RecordPut)

    public var name: String {
        switch self {
        case .registerKey: "register_key"
        case .put: "put"
        case .erase: "erase"
        case .rotate: "rotate"
        }
    }

    public var arguments: [UInt8] {
        var writer = BinaryWriter()
        switch self {
        case .registerKey(let key): writer.writeRaw(key)
        case .put(let put): put.encode(to: &writer)
        case .erase(let record, let reason):
            writer.write(record)
            writer.write(reason)
        case .rotate(let record, let put):
            writer.write(record)
            put.encode(to: &writer)
        }
        return writer.bytes
    }

    public init(action: String, arguments: [UInt8]) throws(LedgerError) {
        var reader = BinaryReader(arguments)
        switch action {
        case "register_key": self = .registerKey(try reader.readRaw(count: RecordPut.publicKeyLength, "encryption key"))
        case "put": self = .put(try RecordPut(from: &reader))
        case "erase": self = .erase(record: try reader.readHash("record id"), reason: try reader.readString("erase reason", maxLength: ConsentAction.maxReasonLength))
        case "rotate": self = .rotate(record: try reader.readHash("record id"), put: try RecordPut(from: &reader))
        default: throw LedgerError(.unknownAction, "records contract has no action \(action.prefix(64))")
        }
        try reader.expectEnd("records.\(action) arguments")
    }
}

/// The actions of the `consent` contract.
public enum ConsentAction: Sendable, Hashable {
    public static let maxReasonLength = 512

    /// A hospital admin registers a patient's or a delegate's certificate, issued by the
    /// hospital's CA, at once: people who speak only for themselves need no governance vote.
    case register(certificate: [UInt8])
    /// A hospital admin binds a pseudonym to the patient's member identity.
    case enrol(patient: Hash256, member: Hash256)
    /// The patient appoints a delegate; the patient or the hospital's admin removes one.
    case delegate(patient: Hash256, member: Hash256, add: Bool)
    /// The patient or a delegate adds a rule; its id is this transaction's id.
    case grant(patient: Hash256, terms: ConsentTerms)
    /// The patient or a delegate removes a rule at once.
    case revoke(patient: Hash256, rule: Hash256)
    /// A reader asks to read a record for a purpose; the decision is recorded either way.
    case request(record: Hash256, purpose: PurposeOfUse)
    /// A clinician's emergency access without consent (purpose ETREAT), with a reason.
    case breakGlass(record: Hash256, reason: String)
    /// The holder's admin reviews a break-glass access, taking it off the review queue.
    case review(patient: Hash256, decision: Hash256, note: String)

    public var name: String {
        switch self {
        case .register: "register"
        case .enrol: "enrol"
        case .delegate: "delegate"
        case .grant: "grant"
        case .revoke: "revoke"
        case .request: "request"
        case .breakGlass: "break_glass"
        case .review: "review"
        }
    }

    public var arguments: [UInt8] {
        var writer = BinaryWriter()
        switch self {
        case .register(let certificate):
            writer.writeBytes(certificate)
        case .enrol(let patient, let member):
            writer.write(patient)
            writer.write(member)
        case .delegate(let patient, let member, let add):
            writer.write(patient)
            writer.write(member)
            writer.write(add)
        case .grant(let patient, let terms):
            writer.write(patient)
            terms.encode(to: &writer)
        case .revoke(let patient, let rule):
            writer.write(patient)
            writer.write(rule)
        case .request(let record, let purpose):
            writer.write(record)
            writer.write(purpose.rawValue)
        case .breakGlass(let record, let reason):
            writer.write(record)
            writer.write(reason)
        case .review(let patient, let decision, let note):
            writer.write(patient)
            writer.write(decision)
            writer.write(note)
        }
        return writer.bytes
    }

    public init(action: String, arguments: [UInt8]) throws(LedgerError) {
        var reader = BinaryReader(arguments)
        switch action {
        case "register": self = .register(certificate: try reader.readBytes("certificate", maxLength: 16_384))
        case "enrol": self = .enrol(patient: try reader.readHash("patient"), member: try reader.readHash("member"))
        case "delegate": self = .delegate(patient: try reader.readHash("patient"), member: try reader.readHash("member"), add: try reader.readBool("add"))
        case "grant": self = .grant(patient: try reader.readHash("patient"), terms: try ConsentTerms(from: &reader))
        case "revoke": self = .revoke(patient: try reader.readHash("patient"), rule: try reader.readHash("rule"))
        case "request": self = .request(record: try reader.readHash("record"), purpose: try reader.readEnum("purpose"))
        case "break_glass": self = .breakGlass(record: try reader.readHash("record"), reason: try reader.readString("reason", maxLength: Self.maxReasonLength))
        case "review": self = .review(patient: try reader.readHash("patient"), decision: try reader.readHash("decision"),
                                      note: try reader.readString("note", maxLength: Self.maxReasonLength))
        default: throw LedgerError(.unknownAction, "consent contract has no action \(action.prefix(64))")
        }
        try reader.expectEnd("consent.\(action) arguments")
    }
}

extension Int64 {
    /// `self + other`, or `Int64.max` / `Int64.min` where it would overflow (block time plus a window).
    public func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
