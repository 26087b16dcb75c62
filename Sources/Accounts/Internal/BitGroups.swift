/// Regrouping bits between bytes and `width`-bit symbols (5 for Base32, 6 for Base64), most
/// significant bit first: the common core of both codecs.
enum BitGroups {
    /// The symbol values of `bytes`; the last symbol is completed with zero bits.
    static func symbols(of bytes: some Sequence<UInt8>, width: Int) -> [UInt8] {
        let mask: UInt32 = (1 << UInt32(width)) - 1
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= width {
                bits -= width
                out.append(UInt8(buffer >> UInt32(bits) & mask))
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(UInt8(buffer << UInt32(width - bits) & mask)) }
        return out
    }

    /// The bytes that `symbols` (each below 2^`width`) spell, or nil when the bits left over after
    /// the last whole byte are not all zero: a canonical encoding has them zero.
    static func bytes(of symbols: [UInt8], width: Int) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(symbols.count * width / 8)
        var buffer: UInt32 = 0
        var bits = 0
        for symbol in symbols {
            buffer = buffer << UInt32(width) | UInt32(symbol)
            bits += width
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        return buffer == 0 ? out : nil
    }
}
