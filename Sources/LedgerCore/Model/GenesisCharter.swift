/// One founding admin's approval of a genesis draft: a P-256 signature, by the key of an admin
/// certificate the draft registers, over `"MLA1" ‖ SHA-256(exact draft bytes)`.
///
/// The draft is the ``GenesisConfig`` encoding the founding organisations assembled from their
/// public material (docs/formats.md §5.2). An approval names nothing else: it cannot be moved to
/// another draft (another hash), and its 4-byte tag keeps it from passing for a transaction, a
/// header or a checkpoint signature.
///
/// ```swift
/// let approval = GenesisApproval(draft: Hash256.of(draftBytes), signer: admin)
/// ```
public struct GenesisApproval: BinaryCodable, Hashable, Sendable {
    /// Fingerprint of the approving admin's certificate.
    public var approver: Hash256
    /// Raw 64-byte `r‖s` ECDSA P-256 signature over ``message(draft:)``.
    public var signature: [UInt8]

    public static let tag = Array("MLA1".utf8)

    public init(approver: Hash256, signature: [UInt8]) {
        self.approver = approver
        self.signature = signature
    }

    /// Signs the draft whose SHA-256 is `draft` with `signer`'s key.
    public init(draft: Hash256, signer: SigningIdentity) {
        approver = signer.fingerprint
        signature = signer.sign(Self.message(draft: draft))
    }

    /// The 36 signed bytes: `"MLA1" ‖ draft hash`.
    public static func message(draft: Hash256) -> [UInt8] { tag + draft.bytes }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(approver)
        writer.writeRaw(signature)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        approver = try reader.readHash("approval approver")
        signature = try reader.readRaw(count: 64, "approval signature")
    }
}

/// The arguments of the genesis transaction (version 2, magic `MLG2`): the exact draft bytes the
/// founding admins approved, and their approvals sorted by approver fingerprint.
///
/// The draft is carried as bytes, not as a nested structure, so every verifier hashes exactly the
/// bytes that were signed (docs/formats.md, golden rule). Genesis arguments of version 1 (a bare
/// ``GenesisConfig``, signed by one admin) carry no approvals and no longer decode.
public struct GenesisCharter: BinaryCodable, Hashable, Sendable {
    public static let magic = Array("MLG2".utf8)
    /// Most approvals one genesis carries (one per founding organisation at most counts).
    public static let maxApprovals = 1000

    /// The exact ``GenesisConfig`` bytes of the approved draft.
    public var draft: [UInt8]
    public var approvals: [GenesisApproval]

    public init(draft: [UInt8], approvals: [GenesisApproval]) {
        self.draft = draft
        self.approvals = approvals
    }

    /// SHA-256 of the draft bytes: what every approval signs (behind its tag).
    public var draftHash: Hash256 { Hash256.of(draft) }

    /// The draft, decoded (it must be exactly one ``GenesisConfig`` encoding).
    public func config() throws(LedgerError) -> GenesisConfig { try GenesisConfig(decoding: draft) }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Self.magic)
        writer.writeBytes(draft)
        writer.write(array: approvals)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readRaw(count: 4, "genesis magic") == Self.magic else {
            throw LedgerError(.malformedEncoding, "genesis arguments must start with MLG2 (an approved draft); a genesis of an older version carries no approvals")
        }
        draft = try reader.readBytes("genesis draft", maxLength: 1 << 20)
        approvals = try reader.readArray("genesis approvals", maxCount: Self.maxApprovals)
    }
}
