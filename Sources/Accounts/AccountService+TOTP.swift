internal import GRDB
public import LedgerCore

extension AccountService {
    /// Starts enrolling a TOTP authenticator for the session's account: a fresh 160-bit secret,
    /// stored sealed and unconfirmed (replacing an unconfirmed one). Returns the secret in Base32
    /// (to type in) and the `otpauth://` URI (for a QR code), issuer "MedLedger", account the user
    /// name: show them once, never log them. Refuses (`forbidden`) an account whose TOTP is already
    /// confirmed: replacing a second factor is an administrator's ``resetTOTP(accountID:by:now:)``.
    ///
    /// Asks for the account's password again, like ``changePassword(token:current:new:now:)`` (a
    /// wrong one counts towards the lockout): a stolen session token alone must not bind the
    /// thief's authenticator and lock the owner out (red-team finding).
    public func beginTOTPEnrolment(token: String, password: String, now: Int64) throws(LedgerError) -> (secretBase32: String, otpauthURI: String) {
        let (account, session) = try authenticate(token: token, now: now)
        let stored = try store.read { db in try Self.existing(db, id: account.id) }
        if let until = stored.account.lockedUntil, stored.account.isLocked(at: now) { throw Self.lockedError(until: until, now: now) }
        guard try verify(password, against: stored) else { throw try failedAttempt(stored, now: now) }
        guard !account.totpConfirmed else {
            throw LedgerError(.forbidden, "a TOTP authenticator is already enrolled: an administrator can reset it")
        }
        let secret = TOTP.newSecret()
        let totp = try TOTP(secret: secret)
        let sealed = try store.key.seal(secret, account: account.id, purpose: "totp")
        let uri = try totp.otpauthURI(issuer: Self.totpIssuer, account: account.username)
        try store.write { db in
            _ = try Self.liveSession(db, digest: session.tokenDigest, now: now)
            try db.execute(sql: "UPDATE account SET totp_secret = ?, totp_last_step = NULL WHERE id = ? AND totp_confirmed = 0",
                           arguments: [sealed, account.id])
            guard db.changesCount == 1 else { throw LedgerError(.forbidden, "a TOTP authenticator is already enrolled") }
            try AccountStore.record(db, .totpEnrolmentStarted, account: account.id, at: now)
        }
        return (totp.base32Secret, uri)
    }

    /// Confirms an enrolment with a code from the authenticator: TOTP is required at every login
    /// from now on, the code's step is stored (it cannot be used again), and the session is marked
    /// MFA-verified under a new token, which is returned. The old token and every other session of
    /// the account are revoked: a session opened before MFA must not count as an enrolled
    /// administrator's (red-team finding). Refuses
    /// (`invalid_argument`) when no enrolment was begun or the code does not match.
    public func confirmTOTPEnrolment(token: String, code: String, now: Int64) throws(LedgerError) -> String {
        let (account, session) = try authenticate(token: token, now: now)
        let stored = try store.read { db in try Self.existing(db, id: account.id) }
        guard stored.sealedTOTPSecret != nil, !stored.account.totpConfirmed else {
            throw LedgerError(.invalidArgument, "no TOTP enrolment was begun for this account")
        }
        guard let step = try totpGenerator(for: stored).verify(code.filter { !$0.isWhitespace }, at: now / 1000,
                                                                lastUsedStep: stored.totpLastStep) else {
            throw LedgerError(.invalidArgument, "the code is not the authenticator's current one: check its clock and try the next code")
        }
        return try rotate(session, of: stored, now: now, event: .totpEnrolled, revokingAll: true, mfaVerified: true) { db in
            try db.execute(sql: "UPDATE account SET totp_confirmed = 1, totp_last_step = ? WHERE id = ?", arguments: [step, stored.id])
        }
    }

    /// Removes an account's TOTP authenticator (lost phone) and ends its sessions: the next login
    /// needs the password only, and an administrator must enrol again.
    public func resetTOTP(accountID: Int64, by actor: Int64, now: Int64) throws(LedgerError) {
        try store.write { db in
            let target = try Self.existing(db, id: accountID)
            try Self.requireAdministrator(db, actor: actor, organization: target.account.organization)
            try db.execute(sql: "UPDATE account SET totp_secret = NULL, totp_confirmed = 0, totp_last_step = NULL WHERE id = ?",
                           arguments: [accountID])
            try AccountStore.revokeSessions(db, accountID: accountID, at: now)
            try AccountStore.record(db, .totpReset, account: accountID, actor: actor, at: now)
        }
    }
}
