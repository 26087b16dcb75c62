/// What a login with the right password gives (a wrong one is an `unauthenticated` error).
public enum LoginOutcome: Sendable, Hashable, CustomStringConvertible {
    /// A new session. Send `token` as the session cookie; the store keeps only its SHA-256.
    /// `mustChangePassword`: the password is a one-time one, so the session may only change it.
    /// `needsTOTPEnrolment`: an administrator without a second factor, so the session may only enrol one.
    case session(token: String, account: Account, mustChangePassword: Bool, needsTOTPEnrolment: Bool)
    /// The password was right and the account has TOTP, but no code was given: ask for one and log
    /// in again with both. Not a failed attempt, and no session.
    case totpRequired

    public var description: String {
        switch self {
        case .session(_, let account, let mustChange, let enrol):
            "LoginOutcome.session(token redacted, \(account), mustChangePassword \(mustChange), needsTOTPEnrolment \(enrol))"
        case .totpRequired: "LoginOutcome.totpRequired"
        }
    }
}
