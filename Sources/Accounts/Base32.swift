public import LedgerCore

/// Base32 with the RFC 4648 §6 alphabet (`A`–`Z`, `2`–`7`): the encoding of TOTP secrets in
/// `otpauth://` URIs and of the secrets that people type into an authenticator by hand.
///
/// ```swift
/// Base32.encode(Array("foo".utf8))                  // "MZXW6"
/// Base32.encode(Array("foo".utf8), padding: true)   // "MZXW6==="
/// try Base32.decode("mzxw 6===")                    // [0x66, 0x6f, 0x6f]
/// ```
public enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// The uppercase Base32 of `bytes`, without `=` padding unless `padding` (otpauth URIs carry none).
    public static func encode(_ bytes: some Sequence<UInt8>, padding: Bool = false) -> String {
        var out = BitGroups.symbols(of: bytes, width: 5).map { alphabet[Int($0)] }
        if padding {
            while out.count % 8 != 0 { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of a Base32 text. Letters may be of either case, ASCII spaces are ignored (people
    /// type secrets in groups of four), and `=` padding is optional but, when present, complete and
    /// only at the end. Refuses (`malformed_encoding`) any other character, a length no byte string
    /// encodes to (1, 3 or 6 symbols after the last full group of 8), and unused trailing bits that
    /// are not zero, so one byte string has one spelling.
    public static func decode(_ text: String) throws(LedgerError) -> [UInt8] {
        var symbols: [UInt8] = []
        var padding = 0
        for char in text.utf8 where char != UInt8(ascii: " ") {
            if char == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0 else {
                throw LedgerError(.malformedEncoding, "Base32 has a character after its '=' padding")
            }
            guard let value = value(of: char) else {
                throw LedgerError(.malformedEncoding, "Base32 has a character outside A–Z and 2–7")
            }
            symbols.append(value)
        }
        let tail = symbols.count % 8
        guard [0, 2, 4, 5, 7].contains(tail) else {
            throw LedgerError(.malformedEncoding, "Base32 of \(symbols.count) symbols does not encode whole bytes")
        }
        if padding > 0, (symbols.count + padding) % 8 != 0 || padding >= 8 || tail == 0 {
            throw LedgerError(.malformedEncoding, "Base32 padding does not complete a group of 8 symbols")
        }

        guard let bytes = BitGroups.bytes(of: symbols, width: 5) else {
            throw LedgerError(.malformedEncoding, "Base32 has non-zero bits after its last byte")
        }
        return bytes
    }

    private static func value(of char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): char - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): char - UInt8(ascii: "a")
        case UInt8(ascii: "2")...UInt8(ascii: "7"): char - UInt8(ascii: "2") + 26
        default: nil
        }
    }
}
