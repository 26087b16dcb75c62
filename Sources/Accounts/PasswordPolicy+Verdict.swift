extension PasswordPolicy {
    /// The outcome of ``PasswordPolicy/evaluate(_:accountName:)``.
    public enum Verdict: Sendable, Hashable {
        case accepted
        /// Every reason the password was refused, never empty.
        case refused([Refusal])

        public var isAccepted: Bool { self == .accepted }

        /// The reasons, empty when accepted.
        public var refusals: [Refusal] {
            if case .refused(let reasons) = self { reasons } else { [] }
        }
    }

    /// Why a password was refused; ``message`` tells the person what to change.
    public enum Refusal: Sendable, Hashable, CustomStringConvertible {
        /// Fewer code points than the minimum (after NFKC).
        case tooShort(minimum: Int, length: Int)
        /// More code points than the maximum (after NFKC). Never truncated.
        case tooLong(maximum: Int)
        /// In the common-password list.
        case common
        /// Is or contains the account name.
        case containsAccountName
        /// Contains a word that names the service.
        case containsContextWord(String)
        /// One character, two, or a short unit repeated.
        case repetitive
        /// A run of the alphabet, the digits or a keyboard row.
        case sequential

        /// A sentence for the person choosing the password. It never quotes the password.
        public var message: String {
            switch self {
            case .tooShort(let minimum, let length):
                "Use at least \(minimum) characters (this one has \(length)). Spaces are allowed: a few unrelated words make a good password."
            case .tooLong(let maximum):
                "Use at most \(maximum) characters. A longer password is refused rather than cut short."
            case .common:
                "This is one of the most common passwords, which attackers try first: choose another."
            case .containsAccountName:
                "Leave your account name out of the password."
            case .containsContextWord(let word):
                "Leave the word \"\(word)\" out of the password: it is the first an attacker tries here."
            case .repetitive:
                "Avoid repeating a character or a short pattern (like \"aaaa\" or \"abab\")."
            case .sequential:
                "Avoid runs of the alphabet, digits or keyboard (like \"abcd\", \"1234\" or \"qwerty\")."
            }
        }

        public var description: String { message }
    }
}
