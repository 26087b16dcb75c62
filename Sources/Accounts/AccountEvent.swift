/// One entry of the account outbox: what happened to which account and who did it, for a later
/// audit on the ledger. It never holds a user name, password, token or secret: an account is
/// named by its id, and a login under an unknown user name by no account at all.
public struct AccountEvent: Sendable, Hashable, CustomStringConvertible {
    public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let accountCreated = Kind(rawValue: "account_created")
        public static let login = Kind(rawValue: "login")
        /// A refused login: unknown user, wrong password or code, locked or disabled account.
        public static let loginFailed = Kind(rawValue: "login_failed")
        /// The failure that locked the account.
        public static let accountLocked = Kind(rawValue: "account_locked")
        public static let logout = Kind(rawValue: "logout")
        public static let passwordChanged = Kind(rawValue: "password_changed")
        public static let passwordReset = Kind(rawValue: "password_reset")
        public static let totpEnrolmentStarted = Kind(rawValue: "totp_enrolment_started")
        public static let totpEnrolled = Kind(rawValue: "totp_enrolled")
        public static let totpReset = Kind(rawValue: "totp_reset")
        public static let sessionsRevoked = Kind(rawValue: "sessions_revoked")
        public static let accountDisabled = Kind(rawValue: "account_disabled")
        public static let memberAssigned = Kind(rawValue: "member_assigned")
    }

    /// Increasing: the outbox is read in this order.
    public let id: Int64
    /// Unix milliseconds.
    public let time: Int64
    public let kind: Kind
    /// The account it happened to; nil for a login under an unknown user name.
    public let accountID: Int64?
    /// The account that did it, when an administrator acted on another account.
    public let actorID: Int64?

    public init(id: Int64, time: Int64, kind: Kind, accountID: Int64?, actorID: Int64?) {
        self.id = id
        self.time = time
        self.kind = kind
        self.accountID = accountID
        self.actorID = actorID
    }

    public var description: String {
        "AccountEvent(\(id), \(kind) at \(time), account \(accountID.map(String.init) ?? "none")\(actorID.map { ", by \($0)" } ?? ""))"
    }
}
