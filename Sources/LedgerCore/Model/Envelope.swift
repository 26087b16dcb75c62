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
