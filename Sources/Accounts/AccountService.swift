internal import GRDB
public import LedgerCore

/// The rules of web accounts over an ``AccountStore``: creation with a one-time password, login
/// with lockout and TOTP, sessions, password changes, TOTP enrolment and what administrators do.
///
/// ```swift
/// let service = try AccountService(store: store)
/// let (admin, password) = try service.createAccount(organization: "St Mary", username: "ada@stmary.org",
///                                                   role: .admin, createdBy: nil, now: now)
/// switch try service.login(username: "ada@stmary.org", password: password, totp: nil, now: now) {
/// case .session(let token, _, let mustChange, let enrol): …   // set the cookie; restrict the session if either
/// case .totpRequired: …                                        // ask for the authenticator's code
/// }
/// let (account, session) = try service.authenticate(token: cookie, now: now)   // every request
/// ```
///
/// Time is always passed in (`now`, Unix milliseconds): the service reads no clock, so tests and
/// the caller decide what time it is. Every change of several rows is one write transaction.
/// Sessions are handed out as tokens that only the caller holds: the store keeps their SHA-256.
public final class AccountService: Sendable {
    public let store: AccountStore
    /// The scrypt parameters of new hashes; a stored hash made with weaker ones is replaced at the
    /// next successful login.
    public let passwordParameters: PasswordHash.Parameters
    public let policy: PasswordPolicy
    /// A hash of a random password, verified in place of a real one when the user name is unknown
    /// or the account locked, so that such a refusal costs the same scrypt time as a wrong password.
    let dummyHash: PasswordHash

    /// Consecutive failed logins that lock an account.
    public static let maximumFailedAttempts = 5
    /// How long a lockout lasts: 15 minutes.
    public static let lockoutDuration: Int64 = 15 * 60_000
    /// A session ends 12 hours after its login, however active.
    public static let sessionLifetime: Int64 = 12 * 3_600_000
    /// A session ends after 30 minutes without a request.
    public static let idleTimeout: Int64 = 30 * 60_000
    /// `last_seen_at` is written at most once a minute per session, not at every request.
    public static let lastSeenResolution: Int64 = 60_000
    /// The roles a person's account may have (not `node`, `collector` or `device`).
    public static let humanRoles: Set<Role> = [.admin, .researcher, .auditor, .clinician, .patient, .delegate]
    /// The issuer shown by authenticator apps.
    public static let totpIssuer = "MedLedger"

    public init(store: AccountStore, passwordParameters: PasswordHash.Parameters = .default,
                policy: PasswordPolicy = PasswordPolicy()) throws(LedgerError) {
        self.store = store
        self.passwordParameters = passwordParameters
        self.policy = policy
        dummyHash = try PasswordHash(hashing: Secrets.newOneTimePassword(), parameters: passwordParameters)
    }

    /// Creates an account with a random one-time password, which must be changed at the first
    /// login; only its hash is stored. `createdBy` is the administrator who creates it (an admin
    /// of the same organisation with TOTP), or nil for the node's operator (the first admin).
    ///
    /// Refuses (`invalid_argument`) an empty or over-long user name or organisation, control or
    /// format characters, spaces or `:` in a user name, and a role that is not a person's
    /// (``humanRoles``); (`account_exists`) a user name taken, case-insensitively after NFKC.
    public func createAccount(organization: String, username: String, role: Role, createdBy: Int64?,
                              now: Int64) throws(LedgerError) -> (account: Account, oneTimePassword: String) {
        let username = try Account.validated(username, what: "user name", maximum: Account.maximumUsernameLength, allowsSpaces: false)
        let organization = try Account.validated(organization, what: "organisation name", maximum: Account.maximumOrganizationLength,
                                                 allowsSpaces: true)
        guard Self.humanRoles.contains(role) else {
            throw LedgerError(.invalidArgument, "an account's role is one of \(Self.humanRoles.map(\.rawValue).sorted()), not \(role.rawValue)")
        }
        let oneTimePassword = Secrets.newOneTimePassword()
        let hash = try PasswordHash(hashing: oneTimePassword, parameters: passwordParameters).encoded
        let account = try store.write { db in
            if let createdBy { try Self.requireAdministrator(db, actor: createdBy, organization: organization) }
            let key = Account.usernameKey(username)
            guard try AccountStore.storedAccount(db, usernameKey: key) == nil else {
                throw LedgerError(.accountExists, "the user name \(username) is taken")
            }
            try db.execute(sql: """
                INSERT INTO account (organization, username, username_key, role, password_hash, must_change, created_at)
                VALUES (?, ?, ?, ?, ?, 1, ?)
                """, arguments: [organization, username, key, role.rawValue, hash, now])
            let id = db.lastInsertedRowID
            try AccountStore.record(db, .accountCreated, account: id, actor: createdBy, at: now)
            guard let created = try AccountStore.storedAccount(db, id: id) else { throw LedgerError(.storage, "the new account is missing") }
            return created.account
        }
        return (account, oneTimePassword)
    }

    /// Refuses (`forbidden`) unless `actor` is an enabled administrator of `organization` with a
    /// confirmed second factor.
    static func requireAdministrator(_ db: Database, actor: Int64, organization: String) throws {
        guard let admin = try AccountStore.storedAccount(db, id: actor)?.account, admin.role == .admin, !admin.isDisabled,
              admin.organization == organization else {
            throw LedgerError(.forbidden, "only an administrator of \(organization) may do this")
        }
        guard admin.totpConfirmed else {
            throw LedgerError(.forbidden, "an administrator enrols a TOTP authenticator before administering accounts")
        }
    }

    /// The account with `id`, or `not_found`.
    static func existing(_ db: Database, id: Int64) throws -> StoredAccount {
        guard let stored = try AccountStore.storedAccount(db, id: id) else { throw LedgerError(.notFound, "no account \(id)") }
        return stored
    }
}
