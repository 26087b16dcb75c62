public import Crypto
import Foundation

/// A patient record as it leaves the client: `"MLR1" ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)`,
/// the 4-byte header authenticated as associated data. Its SHA-256 is the record id; the key is a
/// fresh 256-bit data key per record (docs/formats.md §17.1).
public enum SealedRecord {
    public static let magic: [UInt8] = Array("MLR1".utf8)
    public static let overhead = 4 + 12 + 16
    /// The largest sealed record a node accepts in one upload by default.
    public static let maxUploadBytes = 64 << 20

    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, nonce: AES.GCM.Nonce = AES.GCM.Nonce()) throws(LedgerError) -> [UInt8] {
        guard key.bitCount == 256 else { throw LedgerError(.invalidArgument, "a record data key is 256 bits") }
        do {
            let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: magic)
            guard let combined = box.combined else { throw LedgerError(.internal, "record encryption failed") }
            // nonce ‖ ciphertext ‖ tag in one contiguous copy into uninitialised memory (appending
            // the parts element by element cost 2 ms per MiB, zero-filling first another pass).
            return [UInt8](unsafeUninitializedCapacity: magic.count + combined.count) { buffer, count in
                _ = UnsafeMutableBufferPointer(rebasing: buffer[..<magic.count]).initialize(from: magic)
                count = magic.count + combined.copyBytes(to: UnsafeMutableBufferPointer(rebasing: buffer[magic.count...]))
            }
        } catch {
            throw LedgerError(.internal, "record encryption failed")
        }
    }

    /// The plaintext, or `verification_failed` when the blob was altered or the key is not its key.
    public static func open(_ blob: [UInt8], key: SymmetricKey) throws(LedgerError) -> [UInt8] {
        guard blob.count >= overhead, Array(blob.prefix(4)) == magic else {
            throw LedgerError(.malformedEncoding, "a sealed record starts with MLR1 and holds at least \(overhead) bytes")
        }
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: blob[4..<16]), ciphertext: blob[16..<(blob.count - 16)],
                                            tag: blob[(blob.count - 16)...])
            return Array(try AES.GCM.open(box, using: key, authenticating: magic))
        } catch {
            throw LedgerError(.verificationFailed, "the sealed record does not authenticate under this data key")
        }
    }
}

/// A 256-bit data key wrapped for a key-agreement public key with HPKE (RFC 9180 base mode,
/// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM): `enc (65) ‖ ciphertext (32) ‖ tag (16)`.
/// The HPKE `info` names what the key is for, so a wrap made for one record or reader never
/// opens as another's (docs/formats.md §17.2).
public enum KeyWrap {
    public static let ciphersuite = HPKE.Ciphersuite.P256_SHA256_AES_GCM_256

    /// The holder's wrap of a record's data key, carried in the anchor.
    public static func holderInfo(record: Hash256) -> [UInt8] {
        Array("MedLedger record key v1".utf8) + record.bytes
    }

    /// The holder's re-wrap for a reader under a recorded grant (never on the ledger).
    public static func readerInfo(record: Hash256, decision: Hash256) -> [UInt8] {
        Array("MedLedger access key v1".utf8) + record.bytes + decision.bytes
    }

    public static func wrap(_ key: SymmetricKey, for recipient: P256.KeyAgreement.PublicKey, info: [UInt8]) throws(LedgerError) -> [UInt8] {
        try wrap(key, for: P256Encapsulation(recipient), info: info)
    }

    static func wrap(_ key: SymmetricKey, for recipient: P256Encapsulation, info: [UInt8]) throws(LedgerError) -> [UInt8] {
        guard key.bitCount == 256 else { throw LedgerError(.invalidArgument, "a record data key is 256 bits") }
        do {
            var sender = try HPKE.Sender(recipientKey: recipient, ciphersuite: ciphersuite, info: Data(info))
            let sealed = try key.withUnsafeBytes { bytes in try sender.seal(Data(bytes)) }
            return Array(sender.encapsulatedKey) + Array(sealed)
        } catch {
            throw LedgerError(.internal, "key wrapping failed")
        }
    }

    public static func unwrap(_ wrapped: [UInt8], with privateKey: P256.KeyAgreement.PrivateKey, info: [UInt8]) throws(LedgerError) -> SymmetricKey {
        guard wrapped.count == RecordPut.wrappedKeyLength else {
            throw LedgerError(.malformedEncoding, "a wrapped key is \(RecordPut.wrappedKeyLength) bytes, got \(wrapped.count)")
        }
        do {
            var recipient = try HPKE.Recipient(privateKey: privateKey, ciphersuite: ciphersuite, info: Data(info),
                                               encapsulatedKey: Data(wrapped[0..<65]))
            let key = try recipient.open(Data(wrapped[65...]))
            return SymmetricKey(data: key)
        } catch {
            throw LedgerError(.verificationFailed, "the wrapped key does not open with this key for this purpose")
        }
    }

    /// A fresh P-256 key-agreement key from 32 random bytes (a vault key, an HPKE ephemeral key).
    /// swift-crypto's `P256.KeyAgreement.PrivateKey()` also runs a FIPS pairwise-consistency test
    /// (an ECDSA signature and its verification) on every key it generates: 79 µs against 10 µs
    /// here (`bench --records`), more than half of a key wrap.
    public static func newPrivateKey() -> P256.KeyAgreement.PrivateKey {
        while true {
            // A scalar of 0 or ≥ the group order (probability about 2⁻³²) is refused; draw again.
            // Straight from the random key's storage (zeroed when it is freed), no copy.
            if let key = SymmetricKey(size: .bits256).withUnsafeBytes({ try? P256.KeyAgreement.PrivateKey(rawRepresentation: $0) }) {
                return key
            }
        }
    }

    /// Whether `bytes` is an X9.63 P-256 public key on the curve.
    public static func isValidPublicKey(_ bytes: [UInt8]) -> Bool {
        bytes.count == RecordPut.publicKeyLength && (try? P256.KeyAgreement.PublicKey(x963Representation: bytes)) != nil
    }
}

/// DHKEM(P-256, HKDF-SHA256), RFC 9180 §4.1, for swift-crypto's HPKE: the same KEM as
/// `P256.KeyAgreement.PublicKey`'s own conformance, with the ephemeral key from
/// ``KeyWrap/newPrivateKey()`` (the key schedule and the AEAD stay swift-crypto's). Known answers:
/// the CFRG vector for this ciphersuite, both directions, and interoperation with swift-crypto's
/// DHKEM (`RecordCryptoTests`).
struct P256Encapsulation: HPKEKEMPublicKey {
    typealias EphemeralPrivateKey = Decapsulation

    let key: P256.KeyAgreement.PublicKey
    /// Set only by known-answer tests.
    let ephemeral: P256.KeyAgreement.PrivateKey?

    init(_ key: P256.KeyAgreement.PublicKey, ephemeral: P256.KeyAgreement.PrivateKey? = nil) {
        self.key = key
        self.ephemeral = ephemeral
    }

    init<D: ContiguousBytes>(_ serialization: D, kem: HPKE.KEM) throws {
        guard kem == .P256_HKDF_SHA256 else { throw HPKE.Errors.inconsistentCiphersuiteAndKey }
        self.init(try P256.KeyAgreement.PublicKey(x963Representation: serialization))
    }

    func hpkeRepresentation(kem: HPKE.KEM) throws -> Data {
        guard kem == .P256_HKDF_SHA256 else { throw HPKE.Errors.inconsistentCiphersuiteAndKey }
        return key.x963Representation
    }

    func encapsulate() throws -> KEM.EncapsulationResult {
        let ephemeral = self.ephemeral ?? KeyWrap.newPrivateKey()
        let enc = ephemeral.publicKey.x963Representation
        let secret = try Self.extractAndExpand(ephemeral.sharedSecretFromKeyAgreement(with: key), context: enc + key.x963Representation)
        return KEM.EncapsulationResult(sharedSecret: secret, encapsulated: enc)
    }

    /// `ExtractAndExpand(dh, kem_context)` with `suite_id = "KEM" ‖ I2OSP(0x0010, 2)`, Nsecret = 32.
    static func extractAndExpand(_ dh: SharedSecret, context: Data) -> SymmetricKey {
        let suite = Array("HPKE-v1".utf8) + Array("KEM".utf8) + [0x00, 0x10]
        let ikm = suite + Array("eae_prk".utf8) + dh.withUnsafeBytes { Array($0) }
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: ikm), salt: [UInt8]())
        let info = [0x00, 0x20] + suite + Array("shared_secret".utf8) + Array(context)
        return HKDF<SHA256>.expand(pseudoRandomKey: prk, info: info, outputByteCount: 32)
    }

    /// The recipient's side of the same KEM (swift-crypto's own DHKEM opens these wraps as well).
    struct Decapsulation: HPKEKEMPrivateKeyGeneration {
        let key: P256.KeyAgreement.PrivateKey

        init() { key = KeyWrap.newPrivateKey() }
        init(_ key: P256.KeyAgreement.PrivateKey) { self.key = key }
        static func generate() -> Decapsulation { Decapsulation() }

        var publicKey: P256Encapsulation { P256Encapsulation(key.publicKey) }

        func decapsulate(_ encapsulated: Data) throws -> SymmetricKey {
            let sender = try P256.KeyAgreement.PublicKey(x963Representation: encapsulated)
            return P256Encapsulation.extractAndExpand(try key.sharedSecretFromKeyAgreement(with: sender),
                                                      context: encapsulated + key.publicKey.x963Representation)
        }
    }
}

/// A patient's pseudonym at one hospital: HMAC-SHA256 under the hospital's pseudonym secret of
/// `"MedLedger patient v1" ‖ 0x00 ‖ hospital id ‖ 0x00 ‖ identifier` (the identifier as the
/// hospital knows it: an MRN, a national number). Without the secret a pseudonym cannot be linked
/// to a person, nor one hospital's pseudonym to another's (docs/patient-data.md).
public enum PatientPseudonym {
    public static func derive(identifier: String, hospital: String, secret: SymmetricKey) -> Hash256 {
        var message = Array("MedLedger patient v1".utf8)
        message.append(0)
        message.append(contentsOf: hospital.utf8)
        message.append(0)
        message.append(contentsOf: identifier.utf8)
        return Hash256(unchecked: Array(HMAC<SHA256>.authenticationCode(for: message, using: secret)))
    }
}
