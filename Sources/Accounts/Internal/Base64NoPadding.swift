/// Standard Base64 (RFC 4648 §4 alphabet) without `=` padding, the encoding of the salt and hash
/// fields of PHC strings. Decoding is strict: only the alphabet, no padding, no length that encodes
/// no whole bytes, and zero unused trailing bits, so a stored hash has exactly one spelling.
enum Base64NoPadding {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        String(decoding: BitGroups.symbols(of: bytes, width: 6).map { alphabet[Int($0)] }, as: UTF8.self)
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        var symbols: [UInt8] = []
        for char in text.utf8 {
            guard let value = value(of: char) else { return nil }
            symbols.append(value)
        }
        guard symbols.count % 4 != 1 else { return nil }
        return BitGroups.bytes(of: symbols, width: 6)
    }

    private static func value(of char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): char - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): char - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
