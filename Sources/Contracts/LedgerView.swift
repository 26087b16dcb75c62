public import LedgerCore

/// Read access to committed ledger state, as contracts and the executor need it.
///
/// The node serves it from SQLite; `medledger verify` from an in-memory replay. Implementations
/// must return committed values only.
public protocol LedgerView {
    func value(forKey key: String) throws(LedgerError) -> [UInt8]?
    func containsTransaction(_ id: Hash256) throws(LedgerError) -> Bool
}

/// Ledger state keys. Keys are UTF-8 strings; the prefix names the kind of value.
public enum StateKey {
    public static let config = "cfg"
    public static let organizationIndex = "orgs"
    public static let networkName = "net"
    public static func organization(_ id: String) -> String { "org/" + id }
    public static func member(_ fingerprint: Hash256) -> String { "mem/" + fingerprint.hex }
    public static func proposal(_ id: Hash256) -> String { "prop/" + id.hex }
    /// `udi` must be canonical (``UDI/canonicalKey(_:)``): other spellings of the same device name no key.
    public static func device(_ udi: String) -> String { DeviceRecord.key(udi) }
    /// A released query answer, by its key (``QueryRequest/key(height:)``).
    public static func query(_ key: Hash256) -> String { "rq/" + key.hex }
    /// The key of the answer given to a researcher's `research.ask` transaction, by its id.
    public static func queryAsk(_ id: Hash256) -> String { "rqa/" + id.hex }
    /// A researcher's spending in the current period.
    public static func researchSpent(_ fingerprint: Hash256) -> String { "rspent/" + fingerprint.hex }
    /// A researcher's budget per period when governance set one (otherwise the policy's default).
    public static func researchBudget(_ fingerprint: Hash256) -> String { "rbud/" + fingerprint.hex }
    /// The current epoch of the network noise secret, wrapped to the nodes (``NoiseKeyEpoch``).
    public static let noiseKey = "rnk"
    /// A member's key-agreement public key (``EncryptionKey``).
    public static func encryptionKey(_ fingerprint: Hash256) -> String { "ek/" + fingerprint.hex }
    /// A patient record's anchor (``RecordAnchor``), by the SHA-256 of its sealed blob.
    public static func record(_ id: Hash256) -> String { "rec/" + id.hex }
    /// The record that replaced a rotated one (its 32-byte id): `rot/<old record id>`.
    public static func rotation(_ id: Hash256) -> String { "rot/" + id.hex }
    /// The index of a patient's records (empty value), in storing order:
    /// `prec/<pseudonym>/<time key>/<record id>`.
    public static func patientRecord(_ pseudonym: Hash256, _ time: Int64, _ id: Hash256) -> String {
        patientRecordPrefix(pseudonym) + timeKey(time) + "/" + id.hex
    }
    public static func patientRecordPrefix(_ pseudonym: Hash256) -> String { "prec/" + pseudonym.hex + "/" }
    /// A patient enrolled at a hospital (``PatientEntry``), by pseudonym.
    public static func patient(_ pseudonym: Hash256) -> String { "pat/" + pseudonym.hex }
    /// A patient's consent rules (``ConsentState``).
    public static func consent(_ pseudonym: Hash256) -> String { "cns/" + pseudonym.hex }
    /// An access decision (``ConsentDecision``), by the id of the transaction that took it.
    public static func decision(_ id: Hash256) -> String { "acc/" + id.hex }
    /// The patient's disclosure log (empty values), in decision order:
    /// `dis/<pseudonym>/<time key>/<decision id>`.
    public static func disclosure(_ pseudonym: Hash256, _ time: Int64, _ decision: Hash256) -> String {
        disclosurePrefix(pseudonym) + timeKey(time) + "/" + decision.hex
    }
    public static func disclosurePrefix(_ pseudonym: Hash256) -> String { "dis/" + pseudonym.hex + "/" }
    /// A break-glass access awaiting the holder's review (empty value), in decision order.
    public static func breakGlassQueue(_ organization: String, _ time: Int64, _ decision: Hash256) -> String {
        breakGlassQueuePrefix(organization) + timeKey(time) + "/" + decision.hex
    }
    public static func breakGlassQueuePrefix(_ organization: String) -> String { "bgq/" + organization + "/" }
    /// A block time as 16 lower-case hex digits whose byte order is time order (the sign bit flipped).
    public static func timeKey(_ time: Int64) -> String {
        let bits = UInt64(bitPattern: time) ^ (1 << 63)
        return Hex.encode((0..<8).map { UInt8(truncatingIfNeeded: bits >> (56 - 8 * $0)) })
    }
    /// The review of a break-glass access (``BreakGlassReview``).
    public static func breakGlassReview(_ decision: Hash256) -> String { "bgr/" + decision.hex }
}

/// The writes of one transaction or block: key → new value, `nil` meaning deleted.
public struct WriteSet: Sendable, Hashable {
    public private(set) var entries: [String: [UInt8]?] = [:]

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

    public mutating func set(_ key: String, _ value: [UInt8]?) { entries[key] = .some(value) }

    public func lookup(_ key: String) -> [UInt8]?? { entries[key] }

    public mutating func merge(_ other: WriteSet) {
        for (key, value) in other.entries { entries[key] = .some(value) }
    }

    /// Entries sorted by key (byte order): the only order in which a write set is ever observed.
    public var sorted: [(key: String, value: [UInt8]?)] {
        entries.map { ($0.key, $0.value) }.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    /// `u32 count ‖ (string key ‖ u8 present ‖ [bytes value])*` in key order.
    public var encoded: [UInt8] {
        var writer = BinaryWriter()
        let sorted = sorted
        writer.write(UInt32(sorted.count))
        for entry in sorted {
            writer.write(entry.key)
            writer.write(entry.value != nil)
            if let value = entry.value { writer.writeBytes(value) }
        }
        return writer.bytes
    }

    public var hash: Hash256 { Hash256.of(encoded) }
}
