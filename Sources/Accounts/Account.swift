public import LedgerCore

/// A person's web account on one organisation's node, as the service hands it out: who it is and
/// what state it is in. What it is checked against (the password hash, the sealed TOTP secret and
/// its last used step) stays in the store and is never part of this value.
public struct Account: Sendable, Hashable, Identifiable, CustomStringConvertible {
    /// The row id: assigned once, never reused (events name accounts by it).
    public let id: Int64
    /// The organisation whose node holds the account.
    public let organization: String
    /// The user name in NFKC, as created; unique case-insensitively.
    public let username: String
    /// What the account may do: one of the human roles of ``AccountService/humanRoles``.
    public let role: Role
    /// The password is a one-time one (new or reset) and must be changed before anything else.
    public let mustChangePassword: Bool
    /// A TOTP authenticator is enrolled and confirmed: every login needs its code.
    public let totpConfirmed: Bool
    /// Failed logins since the last success or lockout.
    public let failedAttempts: Int
    /// Logins are refused until this time (Unix milliseconds), if set and in the future.
    public let lockedUntil: Int64?
    /// The ledger member (SHA-256 fingerprint of its certificate, lowercase hex) the account acts as.
    public let memberFingerprint: String?
    /// Unix milliseconds.
    public let createdAt: Int64
    /// When an administrator disabled the account (Unix milliseconds); a disabled account cannot log in.
    public let disabledAt: Int64?

    public init(id: Int64, organization: String, username: String, role: Role, mustChangePassword: Bool, totpConfirmed: Bool,
                failedAttempts: Int, lockedUntil: Int64?, memberFingerprint: String?, createdAt: Int64, disabledAt: Int64?) {
        self.id = id
        self.organization = organization
        self.username = username
        self.role = role
        self.mustChangePassword = mustChangePassword
        self.totpConfirmed = totpConfirmed
        self.failedAttempts = failedAttempts
        self.lockedUntil = lockedUntil
        self.memberFingerprint = memberFingerprint
        self.createdAt = createdAt
        self.disabledAt = disabledAt
    }

    /// Administrators must use a second factor: until one is confirmed, their sessions may do
    /// nothing but enrol it.
    public var needsTOTPEnrolment: Bool { role == .admin && !totpConfirmed }

    public var isDisabled: Bool { disabledAt != nil }

    /// Whether logins are refused at `now` because of failed attempts.
    public func isLocked(at now: Int64) -> Bool {
        lockedUntil.map { now < $0 } ?? false
    }

    public var description: String { "Account(\(id), \(role.rawValue) of \(organization))" }
}

extension Account {
    /// The key that makes user names unique and finds them at login: NFKC, then lowercase.
    static func usernameKey(_ username: String) -> String {
        // Upper then lower case: a closer case fold than lower case alone, under which `STRASSE`
        // and `straße`, or `ΟΔΟΣ` and `οδος`, were two user names (red-team finding).
        username.nfkc.uppercased().lowercased()
    }

    /// The longest user name, in Unicode scalars after NFKC (an e-mail address fits).
    public static let maximumUsernameLength = 64
    /// The longest organisation name, in Unicode scalars after NFKC.
    public static let maximumOrganizationLength = 128

    /// `name` in NFKC, refused (`invalid_argument`) when empty, longer than `maximum`, or holding a
    /// control, format, separator or unassigned character, or a `:` (it separates issuer and account
    /// in a TOTP URI). User names have no spaces at all; organisation names may.
    static func validated(_ name: String, what: String, maximum: Int, allowsSpaces: Bool) throws(LedgerError) -> String {
        let normalised = name.nfkc
        let scalars = normalised.unicodeScalars
        guard !scalars.isEmpty else { throw LedgerError(.invalidArgument, "a \(what) is not empty") }
        guard scalars.count <= maximum else {
            throw LedgerError(.invalidArgument, "a \(what) has at most \(maximum) characters, this one \(scalars.count)")
        }
        for scalar in scalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
                throw LedgerError(.invalidArgument, "a \(what) has no control, format or unassigned characters")
            case .spaceSeparator where !allowsSpaces:
                throw LedgerError(.invalidArgument, "a \(what) has no spaces")
            default:
                guard scalar != ":" else { throw LedgerError(.invalidArgument, "a \(what) has no ':'") }
            }
        }
        guard !scalars.first!.properties.isWhitespace, !scalars.last!.properties.isWhitespace else {
            throw LedgerError(.invalidArgument, "a \(what) does not start or end with a space")
        }
        return normalised
    }
}
