public import Crypto

/// The network noise secret K: 32 bytes held only by node operators, from which the noise of every
/// research answer is derived (see ``seed(network:epoch:question:)`` and docs/privacy.md).
///
/// It is recorded on the ledger only wrapped (``NoiseKeyEpoch``): for each node, an ECIES box to
/// the node's registered P-256 key, and a commitment that lets every node check that it unwrapped
/// the same K as everyone else. It is never logged and never written to disk in the clear; its
/// `description` says nothing about it.
public struct NoiseSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    static let commitmentLabel = Array("medledger/noise-key/commitment/v1".utf8)
    static let wrapLabel = Array("medledger/noise-key/wrap/v1".utf8)
    static let seedLabel = Array("medledger/dp-noise/v1".utf8)

    private let key: SymmetricKey

    /// A fresh secret from the system CSPRNG.
    public init() { key = SymmetricKey(size: .bits256) }

    /// - Precondition: 32 bytes.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a noise secret is 32 bytes")
        key = SymmetricKey(data: bytes)
    }

    public var description: String { "NoiseSecret(redacted)" }
    public var debugDescription: String { description }

    /// SHA-256("medledger/noise-key/commitment/v1" ‖ u32be(epoch) ‖ K).
    public func commitment(epoch: UInt32) -> Hash256 {
        var message = Self.commitmentLabel + epoch.bigEndianBytes
        key.withUnsafeBytes { message.append(contentsOf: $0) }
        return Hash256.of(message)
    }

    /// The seed of the noise of one question: HMAC-SHA256(K, "medledger/dp-noise/v1" ‖ network ‖
    /// u32be(epoch) ‖ question key). The question key (``QueryRequest/key(height:)``) names the
    /// request and the block it describes, so one question has one noise, whoever computes it.
    public func seed(network: Hash256, epoch: UInt32, question: Hash256) -> [UInt8] {
        let message = Self.seedLabel + network.bytes + epoch.bigEndianBytes + question.bytes
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }

    /// Wraps K for each recipient (node fingerprint and registered public key), sorted by
    /// fingerprint, as the record of `epoch`.
    public func wrapped(epoch: UInt32, to recipients: [(fingerprint: Hash256, publicKey: P256.Signing.PublicKey)]) throws(LedgerError) -> NoiseKeyEpoch {
        var boxes: [WrappedNoiseKey] = []
        for recipient in recipients.sorted(by: { $0.fingerprint.bytes.lexicographicallyPrecedes($1.fingerprint.bytes) }) {
            boxes.append(try wrap(epoch: epoch, fingerprint: recipient.fingerprint, publicKey: recipient.publicKey))
        }
        return NoiseKeyEpoch(epoch: epoch, commitment: commitment(epoch: epoch), wrapped: boxes)
    }

    /// ECIES: an ephemeral P-256 key agreement with the recipient's key, HKDF-SHA256 (salt: the
    /// ephemeral and the recipient's public keys, x9.63; info: label ‖ u32be(epoch) ‖ fingerprint)
    /// to a 256-bit key, then ChaCha20-Poly1305 of K with the info as associated data.
    func wrap(epoch: UInt32, fingerprint: Hash256, publicKey: P256.Signing.PublicKey) throws(LedgerError) -> WrappedNoiseKey {
        do {
            let recipient = try P256.KeyAgreement.PublicKey(rawRepresentation: publicKey.rawRepresentation)
            let ephemeral = P256.KeyAgreement.PrivateKey()
            let ephemeralBytes = Array(ephemeral.publicKey.x963Representation)
            let shared = try ephemeral.sharedSecretFromKeyAgreement(with: recipient)
            let (wrapKey, info) = Self.wrapKey(shared, ephemeral: ephemeralBytes, recipient: Array(recipient.x963Representation),
                                               epoch: epoch, fingerprint: fingerprint)
            let sealed = try key.withUnsafeBytes { secret in
                try ChaChaPoly.seal(Array(secret), using: wrapKey, authenticating: info).combined
            }
            return WrappedNoiseKey(recipient: fingerprint, ephemeralPublicKey: ephemeralBytes, sealed: Array(sealed))
        } catch {
            throw LedgerError(.internal, "cannot wrap the noise secret for node \(fingerprint.hex.prefix(16))…")
        }
    }

    /// Unwraps the secret of `record` with this node's key, and checks it against the commitment.
    /// Fails (`forbidden`) when the node is not a recipient, (`verification_failed`) when the box
    /// does not open or the secret does not match the commitment.
    public static func unwrap(_ record: NoiseKeyEpoch, fingerprint: Hash256, privateKey: P256.Signing.PrivateKey) throws(LedgerError) -> NoiseSecret {
        guard let box = record.wrapped.first(where: { $0.recipient == fingerprint }) else {
            throw LedgerError(.forbidden, "noise key epoch \(record.epoch) is not wrapped to node \(fingerprint.hex.prefix(16))…")
        }
        let secret: NoiseSecret
        do {
            let own = try P256.KeyAgreement.PrivateKey(rawRepresentation: privateKey.rawRepresentation)
            let ephemeral = try P256.KeyAgreement.PublicKey(x963Representation: box.ephemeralPublicKey)
            let shared = try own.sharedSecretFromKeyAgreement(with: ephemeral)
            let (wrapKey, info) = wrapKey(shared, ephemeral: box.ephemeralPublicKey, recipient: Array(own.publicKey.x963Representation),
                                          epoch: record.epoch, fingerprint: fingerprint)
            let opened = try ChaChaPoly.open(try ChaChaPoly.SealedBox(combined: box.sealed), using: wrapKey, authenticating: info)
            guard opened.count == 32 else { throw LedgerError(.verificationFailed, "short secret") }
            secret = NoiseSecret(bytes: Array(opened))
        } catch {
            throw LedgerError(.verificationFailed, "the noise key of epoch \(record.epoch) does not open with this node's key")
        }
        guard secret.commitment(epoch: record.epoch) == record.commitment else {
            throw LedgerError(.verificationFailed, "the noise key of epoch \(record.epoch) does not match its commitment")
        }
        return secret
    }

    static func wrapKey(_ shared: SharedSecret, ephemeral: [UInt8], recipient: [UInt8], epoch: UInt32,
                        fingerprint: Hash256) -> (SymmetricKey, [UInt8]) {
        let info = wrapLabel + epoch.bigEndianBytes + fingerprint.bytes
        let key = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: ephemeral + recipient, sharedInfo: info, outputByteCount: 32)
        return (key, info)
    }
}

/// K wrapped to one node.
public struct WrappedNoiseKey: BinaryCodable, Sendable, Hashable {
    /// The node member's certificate fingerprint.
    public var recipient: Hash256
    /// The ephemeral P-256 public key, x9.63 uncompressed (65 bytes).
    public var ephemeralPublicKey: [UInt8]
    /// ChaCha20-Poly1305 combined box: nonce (12) ‖ ciphertext (32) ‖ tag (16).
    public var sealed: [UInt8]

    public init(recipient: Hash256, ephemeralPublicKey: [UInt8], sealed: [UInt8]) {
        self.recipient = recipient
        self.ephemeralPublicKey = ephemeralPublicKey
        self.sealed = sealed
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(recipient)
        writer.writeRaw(ephemeralPublicKey)
        writer.writeRaw(sealed)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        recipient = try reader.readHash("wrapped key recipient")
        ephemeralPublicKey = try reader.readRaw(count: 65, "wrapped key ephemeral public key")
        sealed = try reader.readRaw(count: 60, "wrapped key box")
    }
}

/// One epoch of the network noise secret as the ledger records it (state key `rnk`).
public struct NoiseKeyEpoch: BinaryCodable, Sendable, Hashable {
    /// 1 at genesis, +1 at every rotation.
    public var epoch: UInt32
    /// ``NoiseSecret/commitment(epoch:)`` of the secret.
    public var commitment: Hash256
    /// One box per node, sorted by recipient fingerprint, no recipient twice.
    public var wrapped: [WrappedNoiseKey]

    public init(epoch: UInt32, commitment: Hash256, wrapped: [WrappedNoiseKey]) {
        self.epoch = epoch
        self.commitment = commitment
        self.wrapped = wrapped
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(epoch)
        writer.write(commitment)
        writer.write(array: wrapped)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        epoch = try reader.readUInt32("noise key epoch")
        commitment = try reader.readHash("noise key commitment")
        wrapped = try reader.readArray("noise key boxes", maxCount: 1000)
    }

    /// Recipients sorted strictly ascending (so none twice) and at least one.
    public func validate() throws(LedgerError) {
        guard epoch >= 1 else { throw LedgerError(.invalidArgument, "noise key epochs start at 1") }
        guard !wrapped.isEmpty else { throw LedgerError(.invalidArgument, "a noise key must be wrapped to at least one node") }
        for (a, b) in zip(wrapped, wrapped.dropFirst()) where !a.recipient.bytes.lexicographicallyPrecedes(b.recipient.bytes) {
            throw LedgerError(.invalidArgument, "noise key boxes must be sorted by recipient, each recipient once")
        }
    }
}

extension UInt32 {
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }
}
