public import LedgerCore
internal import Crypto

/// Time-based one-time passwords (RFC 6238) over HMAC-SHA1 HOTP (RFC 4226), as every authenticator
/// app computes them: the code of a time step `T = ⌊unixSeconds / step⌋` is the HOTP of counter `T`.
///
/// ```swift
/// let secret = TOTP.newSecret()                        // stored with the account, never shown again
/// let totp = try TOTP(secret: secret)
/// let uri = try totp.otpauthURI(issuer: "MedLedger", account: "alice@example.org")  // as a QR code
/// if let step = totp.verify(typed, at: now, lastUsedStep: account.lastTOTPStep) {
///     account.lastTOTPStep = step                      // store before answering, so it is never reused
/// }
/// ```
///
/// HMAC-SHA1 is what authenticators implement; its known weaknesses are in collision resistance,
/// which HMAC does not rely on. The secret never appears in `description`.
public struct TOTP: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The number of digits of a code: 6 (the default, and what every authenticator shows) or 8.
    public let digits: Int
    /// The length of a time step in seconds (30 by default).
    public let step: Int64
    private let key: SymmetricKey

    /// Refuses (`invalid_argument`) a secret shorter than RFC 4226's minimum of 128 bits, a number
    /// of digits other than 6 or 8, and a step that is not positive.
    public init(secret: [UInt8], digits: Int = 6, step: Int64 = 30) throws(LedgerError) {
        guard secret.count >= 16 else {
            throw LedgerError(.invalidArgument, "a TOTP secret has at least 16 bytes (RFC 4226 §4), this one \(secret.count)")
        }
        guard digits == 6 || digits == 8 else {
            throw LedgerError(.invalidArgument, "a TOTP code has 6 or 8 digits, not \(digits)")
        }
        guard step > 0 else {
            throw LedgerError(.invalidArgument, "a TOTP step is a positive number of seconds, not \(step)")
        }
        self.key = SymmetricKey(data: secret)
        self.digits = digits
        self.step = step
    }

    /// A fresh 160-bit secret (the length RFC 4226 §4 recommends) from the system CSPRNG.
    public static func newSecret() -> [UInt8] {
        SymmetricKey(size: SymmetricKeySize(bitCount: 160)).withUnsafeBytes { Array($0) }
    }

    /// The secret as authenticators take it typed in: Base32, no padding.
    public var base32Secret: String { key.withUnsafeBytes { Base32.encode($0) } }

    public var description: String { "TOTP(\(digits) digits, \(step) s, secret redacted)" }
    public var debugDescription: String { description }

    /// The time step of a Unix time: `⌊unixSeconds / step⌋`. A time before 1970 (a broken clock)
    /// counts as step 0, so no negative counter is ever used.
    public func timeStep(at unixSeconds: Int64) -> Int64 {
        unixSeconds < 0 ? 0 : unixSeconds / step
    }

    /// The code for a Unix time, zero-padded to ``digits``.
    public func code(at unixSeconds: Int64) -> String {
        code(counter: UInt64(timeStep(at: unixSeconds)))
    }

    /// The HOTP value (RFC 4226 §5.3) for a counter, zero-padded to ``digits``.
    public func code(counter: UInt64) -> String {
        String(decoding: codeBytes(counter: counter), as: UTF8.self)
    }

    /// Checks a code typed at `unixSeconds` and returns the time step it matched, or nil.
    ///
    /// A code matches when it is the code of the current step or of the one before or after it (a
    /// clock skew or a slow typist of up to one step), and that step is later than `lastUsedStep`,
    /// the step of the last code this account used: a code is accepted once, and never after a
    /// later one. Store the returned step as the new `lastUsedStep` before answering. When two
    /// steps of the window have the same code, the later step is returned.
    ///
    /// Anything but exactly ``digits`` ASCII digits is refused; the comparison takes the same time
    /// wherever the digits differ.
    public func verify(_ code: String, at unixSeconds: Int64, lastUsedStep: Int64?) -> Int64? {
        let typed = Array(code.utf8)
        guard typed.count == digits, typed.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return nil
        }
        let current = timeStep(at: unixSeconds)
        var matched: Int64?
        for offset: Int64 in [-1, 0, 1] {
            let (candidate, overflow) = current.addingReportingOverflow(offset)
            guard !overflow, candidate >= 0 else { continue }
            if let lastUsedStep, candidate <= lastUsedStep { continue }
            if ConstantTime.equal(codeBytes(counter: UInt64(candidate)), typed) {
                matched = candidate
            }
        }
        return matched
    }

    /// HMAC-SHA1 of the big-endian counter, dynamic truncation (RFC 4226 §5.4), then the low
    /// ``digits`` decimal digits as ASCII.
    private func codeBytes(counter: UInt64) -> [UInt8] {
        let message = (0..<8).map { UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * $0)) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        let offset = Int(mac[19] & 0x0f)
        let binary = UInt32(mac[offset] & 0x7f) << 24 | UInt32(mac[offset + 1]) << 16
            | UInt32(mac[offset + 2]) << 8 | UInt32(mac[offset + 3])
        var value = binary % (digits == 8 ? 100_000_000 : 1_000_000)
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        for index in stride(from: digits - 1, through: 0, by: -1) {
            out[index] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        return out
    }
}
