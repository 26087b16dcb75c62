public import LedgerCore

/// What a new password must be, after NIST SP 800-63B §5.1.1.2 (memorized secrets): long enough,
/// not too long to hash, and not one an attacker tries first. No composition rules (no "one
/// digit, one symbol"), and any character is allowed, spaces included: a passphrase of a few
/// words is the intended kind of password.
///
/// ```swift
/// switch PasswordPolicy().evaluate(password, accountName: "alice@example.org") {
/// case .accepted: account.passwordHash = try PasswordHash(hashing: password).encoded
/// case .refused(let reasons): return .badRequest(reasons.map(\.message))
/// }
/// ```
///
/// Lengths are counted in Unicode scalars of the NFKC form (SP 800-63B: "each Unicode code point
/// SHALL be counted as a single character"), the same form ``PasswordHash`` hashes. All
/// comparisons are case-insensitive. A password is refused when it:
/// * is shorter than ``minimumLength`` (12) or longer than ``maximumLength`` (128): a long one is
///   refused, never truncated, so what the person typed is what is hashed;
/// * is in the list of common passwords (Django's, 19,640 entries: ``CommonPasswords``);
/// * is or contains the account name, or the local part of an e-mail account name;
/// * contains a context word of the service (``contextWords``, by default "medledger");
/// * is one character or a short unit repeated (`aaaaaaaaaaaa`, `abababababab`, `qwertyqwerty`),
///   or a run of the alphabet, the digits or a keyboard row, forwards or backwards, with wrap-around
///   (`abcdefghijkl`, `123456789012`, `qwertyuiopas`).
public struct PasswordPolicy: Sendable, Hashable {
    public var minimumLength: Int
    public var maximumLength: Int
    /// Words that name the service, lowercase; a password containing one is refused.
    public var contextWords: [String]

    public init(minimumLength: Int = 12, maximumLength: Int = 128, contextWords: [String] = ["medledger"]) {
        self.minimumLength = minimumLength
        self.maximumLength = maximumLength
        self.contextWords = contextWords
    }

    /// Whether `password` may be set for the account named `accountName`, and if not, every
    /// reason, each with a message for the person choosing it. The messages never repeat the password.
    public func evaluate(_ password: String, accountName: String) -> Verdict {
        // Refuse a megabyte before normalising it: decomposition never drops a scalar and
        // composition folds at most 4 into one (U+1F82, the longest canonical decomposition), so
        // more than 4 × maximumLength scalars cannot come out at maximumLength or fewer.
        guard password.unicodeScalars.count <= 4 * maximumLength else {
            return .refused([.tooLong(maximum: maximumLength)])
        }
        let normalised = password.nfkc
        let length = normalised.unicodeScalars.count
        if length > maximumLength { return .refused([.tooLong(maximum: maximumLength)]) }

        var reasons: [Refusal] = []
        if length < minimumLength { reasons.append(.tooShort(minimum: minimumLength, length: length)) }
        let folded = normalised.lowercased()
        if Self.isCommon(folded) { reasons.append(.common) }
        if Self.accountNames(accountName).contains(where: { folded.contains($0) }) { reasons.append(.containsAccountName) }
        for word in contextWords where !word.isEmpty && folded.contains(word.nfkc.lowercased()) {
            reasons.append(.containsContextWord(word))
        }
        if Self.isRepetitive(folded) {
            reasons.append(.repetitive)
        } else if Self.isSequential(folded) {
            reasons.append(.sequential)
        }
        return reasons.isEmpty ? .accepted : .refused(reasons)
    }

    /// ``evaluate(_:accountName:)`` as a throwing check: `weak_password`, with every reason's
    /// message, when the password is refused.
    public func check(_ password: String, accountName: String) throws(LedgerError) {
        if case .refused(let reasons) = evaluate(password, accountName: accountName) {
            throw LedgerError(.weakPassword, reasons.map(\.message).joined(separator: " "))
        }
    }

    /// Whether `password` is in the common-password list, case-insensitively, after NFKC.
    public static func isCommon(_ password: String) -> Bool {
        CommonPasswords.entries.contains(password.nfkc.lowercased())
    }

    /// The names a password may not contain: the account name and, for an e-mail address, its
    /// local part, lowercase in NFKC. Names shorter than 3 characters are left out: every long
    /// password contains some two letters.
    static func accountNames(_ accountName: String) -> [String] {
        let name = accountName.nfkc.lowercased().trimmingSpaces
        var names = [name]
        if let at = name.lastIndex(of: "@") { names.append(String(name[..<at])) }
        return names.filter { $0.unicodeScalars.count >= 3 }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
