internal import Crypto
internal import Foundation

/// The random values and one-way digests of accounts: session tokens, CSRF tokens and one-time
/// passwords. Everything random comes from `SystemRandomNumberGenerator` (the kernel's CSPRNG).
enum Secrets {
    /// The bytes of a session token: 256 bits.
    static let tokenByteCount = 32
    /// The length of a session token as text (unpadded base64url of 32 bytes).
    static let tokenLength = 43

    /// Letters and digits that no typeface confuses: no `0`/`o`, `1`/`l`/`i`, no capitals.
    static let oneTimeAlphabet = Array("23456789abcdefghjkmnpqrstuvwxyz".utf8)
    /// 24 characters of 31: about 119 bits.
    static let oneTimeLength = 24

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// A fresh session token: 32 random bytes, unpadded base64url.
    static func newToken() -> String {
        Base64URL.encode(randomBytes(tokenByteCount))
    }

    /// A fresh one-time password for a new or reset account (`Int.random(in:using:)` is unbiased).
    static func newOneTimePassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let characters = (0..<oneTimeLength).map { _ in oneTimeAlphabet[Int.random(in: 0..<oneTimeAlphabet.count, using: &generator)] }
        return String(decoding: characters, as: UTF8.self)
    }

    /// What the store keeps of a token: its SHA-256, never the token.
    static func digest(_ token: String) -> Data {
        Data(SHA256.hash(data: Array(token.utf8)))
    }

    /// The CSRF token of a session: HMAC-SHA256 of a fixed label under the session token (OWASP's
    /// HMAC-based token pattern), so the server can put it into every form it renders from the
    /// cookie alone, and it changes whenever the session token does.
    static func csrfToken(for sessionToken: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("MedLedger CSRF v1".utf8), using: SymmetricKey(data: Array(sessionToken.utf8)))
        return Base64URL.encode(Array(mac))
    }

    /// Whether a session token has the shape of one this store issues (43 base64url characters).
    static func isWellFormedToken(_ token: String) -> Bool {
        token.utf8.count == tokenLength && Base64URL.isWellFormed(token)
    }
}
