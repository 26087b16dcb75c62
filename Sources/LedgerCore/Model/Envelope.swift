/// A transaction as submitted and stored: the payload bytes and a signature over exactly those bytes.
///
/// Encoding: `u8 version (1) ‖ bytes payload ‖ bytes signature`, where the signature is the
/// 64-byte raw ECDSA P-256 `r ‖ s` over SHA-256(payload). See docs/formats.md.
public struct Envelope: BinaryCodable, Hashable {
    public static let version: UInt8 = 1

    public var payloadBytes: [UInt8]
    public var signature: [UInt8]

    public init(payloadBytes: [UInt8], signature: [UInt8]) {
        self.payloadBytes = payloadBytes
        self.signature = signature
    }

    /// The transaction id: SHA-256 of the payload bytes.
    public var id: Hash256 { Hash256.of(payloadBytes) }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(Self.version)
        writer.writeBytes(payloadBytes)
        writer.writeBytes(signature)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        let version = try reader.readUInt8("envelope version")
        guard version == Self.version else {
            throw LedgerError(.malformedEncoding, "envelope: unsupported version \(version), expected \(Self.version)")
        }
        payloadBytes = try reader.readBytes("envelope payload", maxLength: 1 << 20)
        signature = try reader.readBytes("envelope signature", maxLength: 128)
        guard signature.count == 64 else {
            throw LedgerError(.malformedEncoding, "envelope: signature must be 64 bytes (raw P-256 r‖s), got \(signature.count)")
        }
    }

    /// Decodes the payload. Fails with ``LedgerError/Code/malformedEncoding`` on bad bytes.
    public func payload() throws(LedgerError) -> TransactionPayload {
        try TransactionPayload(decoding: payloadBytes)
    }
}

/// Envelopes submitted together (`POST /v1/transactions/batch`, docs/formats.md §4.3):
/// `"MLTB" ‖ u32 count (1…maxCount) ‖ count × bytes envelope`. Each envelope is admitted on its own;
/// the batch is only the transport (one request for many, as a collector drains its outbox).
public struct EnvelopeBatch: BinaryCodable, Hashable {
    /// Most envelopes in one batch (the submission queue writes at most 1,000 per entry).
    public static let maxCount = 1_000
    static let magic = Array("MLTB".utf8)
    /// The body's media type.
    public static let mediaType = "application/vnd.medledger.envelopes"

    public var envelopes: [[UInt8]]

    public init(_ envelopes: [[UInt8]]) {
        self.envelopes = envelopes
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Self.magic)
        writer.write(UInt32(envelopes.count))
        for envelope in envelopes { writer.writeBytes(envelope) }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readRaw(count: 4, "batch magic") == Self.magic else {
            throw LedgerError(.malformedEncoding, "batch: expected magic MLTB")
        }
        let count = Int(try reader.readUInt32("batch count"))
        guard (1...Self.maxCount).contains(count) else {
            throw LedgerError(.malformedEncoding, "batch: \(count) envelopes; a batch holds 1…\(Self.maxCount)")
        }
        // Each envelope takes at least its 4-byte length: a count beyond that is a lie, not a reason to reserve.
        guard count * 4 <= reader.remaining else { throw LedgerError(.malformedEncoding, "batch: count exceeds its bytes") }
        var envelopes: [[UInt8]] = []
        envelopes.reserveCapacity(count)
        for _ in 0..<count { envelopes.append(try reader.readBytes("batch envelope", maxLength: reader.remaining)) }
        self.envelopes = envelopes
    }
}
