internal import GRDB
public import LedgerCore

extension AccountService {
    /// The one refusal of a login with an unknown user name, a wrong password or a wrong TOTP code:
    /// same code, same message, so the answer does not tell which.
    static var loginRefused: LedgerError {
        LedgerError(.unauthenticated, "the user name, password or authentication code is not right")
    }

    /// The longest user name and password a login reads; longer ones are wrong without normalising them.
    static let maximumLoginInputBytes = 1024

    /// Logs in with a password and, for an account with TOTP, its current code.
    ///
    /// - A wrong password or code, or an unknown user name, is `unauthenticated` with the same
    ///   message; an unknown user name still costs one scrypt hash. After ``maximumFailedAttempts``
    ///   consecutive failures the account is locked for ``lockoutDuration``: `account_locked`, even
    ///   with the right password, until then. A success resets the count.
    /// - The right password without a code, for an account with TOTP: ``LoginOutcome/totpRequired``,
    ///   not counted as a failure. A code is accepted once (its step is stored with the session).
    /// - A disabled account: `account_disabled` (after its password was checked).
    /// - An administrator without TOTP gets a session with `needsTOTPEnrolment`.
    ///
    /// Every login and refused login is recorded in the outbox, and every lockout.
    public func login(username: String, password: String, totp: String?, now: Int64) throws(LedgerError) -> LoginOutcome {
        let oversized = username.utf8.count > Self.maximumLoginInputBytes || password.utf8.count > Self.maximumLoginInputBytes
        let found: StoredAccount? = if oversized { nil } else {
            try store.read { db in try AccountStore.storedAccount(db, usernameKey: Account.usernameKey(username)) }
        }
        guard let stored = found else {
            _ = try dummyHash.verify(oversized ? "" : password)
            try store.write { db in try AccountStore.record(db, .loginFailed, account: nil, at: now) }
            throw Self.loginRefused
        }
        if let until = stored.account.lockedUntil, stored.account.isLocked(at: now) {
            _ = try dummyHash.verify(password)
            try store.write { db in try AccountStore.record(db, .loginFailed, account: stored.id, at: now) }
            throw Self.lockedError(until: until, now: now)
        }
        guard try verify(password, against: stored) else { throw try failedAttempt(stored, now: now) }
        if stored.account.isDisabled {
            try store.write { db in try AccountStore.record(db, .loginFailed, account: stored.id, at: now) }
            throw LedgerError(.accountDisabled, "this account is disabled: ask an administrator of \(stored.account.organization)")
        }
        var step: Int64?
        if stored.account.totpConfirmed {
            guard let code = totp, !code.allSatisfy(\.isWhitespace) else { return .totpRequired }
            guard let matched = try totpGenerator(for: stored).verify(code.filter { !$0.isWhitespace }, at: now / 1000,
                                                                     lastUsedStep: stored.totpLastStep) else {
                throw try failedAttempt(stored, now: now)
            }
            step = matched
        }
        let rehashed = try PasswordHash.needsRehash(stored.passwordHash, current: passwordParameters)
            ? PasswordHash(hashing: password, parameters: passwordParameters).encoded : stored.passwordHash
        let token = Secrets.newToken()
        let account = try store.write { db in
            // Nothing that was checked changed meanwhile (a concurrent login with the same code, a reset, a lock).
            guard let fresh = try AccountStore.storedAccount(db, id: stored.id), fresh.passwordHash == stored.passwordHash,
                  fresh.totpLastStep == stored.totpLastStep, fresh.account.totpConfirmed == stored.account.totpConfirmed,
                  !fresh.account.isLocked(at: now), !fresh.account.isDisabled else {
                throw Self.loginRefused
            }
            try db.execute(sql: """
                UPDATE account SET failed_attempts = 0, locked_until = NULL, password_hash = ?,
                    totp_last_step = COALESCE(?, totp_last_step) WHERE id = ?
                """, arguments: [rehashed, step, stored.id])
            _ = try AccountStore.insertSession(db, token: token, accountID: stored.id, mfaVerified: step != nil, createdAt: now,
                                               lastSeenAt: now, expiresAt: now + Self.sessionLifetime)
            try AccountStore.record(db, .login, account: stored.id, at: now)
            return try Self.existing(db, id: stored.id).account
        }
        return .session(token: token, account: account, mustChangePassword: account.mustChangePassword,
                        needsTOTPEnrolment: account.needsTOTPEnrolment)
    }

    /// Whether `password` is the account's (scrypt, constant-time comparison). An over-long one is
    /// wrong, checked against the dummy hash so it costs the same.
    func verify(_ password: String, against stored: StoredAccount) throws(LedgerError) -> Bool {
        guard password.utf8.count <= Self.maximumLoginInputBytes else {
            _ = try dummyHash.verify("")
            return false
        }
        do {
            return try PasswordHash.verify(password, against: stored.passwordHash)
        } catch {
            throw LedgerError(.storage, "the password hash of account \(stored.id) is unreadable: \(error.message)")
        }
    }

    /// The TOTP generator of an account's enrolled (or pending) secret.
    func totpGenerator(for stored: StoredAccount) throws(LedgerError) -> TOTP {
        guard let sealed = stored.sealedTOTPSecret else { throw LedgerError(.storage, "account \(stored.id) has no TOTP secret") }
        return try TOTP(secret: store.key.unseal(sealed, account: stored.id, purpose: "totp"))
    }

    /// Counts a failed attempt (in one transaction with its events) and returns the error to throw:
    /// ``loginRefused``, or `account_locked` for the failure that reaches the limit.
    func failedAttempt(_ stored: StoredAccount, now: Int64) throws(LedgerError) -> LedgerError {
        let lockedUntil: Int64? = try store.write { db in
            try db.execute(sql: "UPDATE account SET failed_attempts = failed_attempts + 1 WHERE id = ?", arguments: [stored.id])
            try AccountStore.record(db, .loginFailed, account: stored.id, at: now)
            let failures = try Int.fetchOne(db, sql: "SELECT failed_attempts FROM account WHERE id = ?", arguments: [stored.id]) ?? 0
            guard failures >= Self.maximumFailedAttempts else { return nil }
            let until = now + Self.lockoutDuration
            try db.execute(sql: "UPDATE account SET failed_attempts = 0, locked_until = ? WHERE id = ?", arguments: [until, stored.id])
            try AccountStore.record(db, .accountLocked, account: stored.id, at: now)
            return until
        }
        return lockedUntil.map { Self.lockedError(until: $0, now: now) } ?? Self.loginRefused
    }

    static func lockedError(until: Int64, now: Int64) -> LedgerError {
        let minutes = max(1, (until - now + 59_999) / 60_000)
        return LedgerError(.accountLocked, "too many failed logins: this account is locked for \(minutes) more minute\(minutes == 1 ? "" : "s")"
                           + " (\(AccountService.lockoutDuration / 60_000) minutes after \(maximumFailedAttempts) failures)")
    }
}
