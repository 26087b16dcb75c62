/// Base64url (RFC 4648 §5: `-` and `_` for `+` and `/`) without padding: the spelling of session
/// tokens, safe in a cookie value and a URL without escaping.
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        String(decoding: BitGroups.symbols(of: bytes, width: 6).map { alphabet[Int($0)] }, as: UTF8.self)
    }

    /// Whether every character of `text` is in the alphabet.
    static func isWellFormed(_ text: String) -> Bool {
        text.utf8.allSatisfy { alphabet.contains($0) }
    }
}
