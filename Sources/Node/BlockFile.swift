public import LedgerCore

extension Block: BinaryCodable {
    /// `"MLK1" ‖ bytes header ‖ bytes signature ‖ u32 count ‖ (bytes envelope)*`
    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Array("MLK1".utf8))
        writer.writeBytes(header.encoded)
        writer.writeBytes(signature)
        writer.write(UInt32(envelopes.count))
        for envelope in envelopes { writer.writeBytes(envelope) }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readRaw(count: 4, "block magic") == Array("MLK1".utf8) else {
            throw LedgerError(.malformedEncoding, "block: expected magic MLK1")
        }
        let header = try BlockHeader(decoding: try reader.readBytes("block header", maxLength: 1024))
        let signature = try reader.readBytes("block signature", maxLength: 64)
        guard signature.count == 64 else { throw LedgerError(.malformedEncoding, "block: signature must be 64 bytes") }
        let count = Int(try reader.readUInt32("block count"))
        guard count == Int(header.transactionCount), count <= reader.remaining else {
            throw LedgerError(.malformedEncoding, "block: transaction count does not match the header")
        }
        var envelopes: [[UInt8]] = []
        for _ in 0..<count { envelopes.append(try reader.readBytes("block envelope", maxLength: 1 << 20)) }
        self.init(header: header, signature: signature, envelopes: envelopes)
    }
}
