internal import Foundation
internal import GRDB
public import LedgerCore

extension AccountService {
    /// The account and session of a session token, for every request. Refuses (`unauthenticated`)
    /// a token that is malformed, unknown, revoked, past its absolute lifetime
    /// (``sessionLifetime`` from login) or idle for ``idleTimeout``; (`account_disabled`) the
    /// session of a disabled account. Records the activity at most once per ``lastSeenResolution``.
    public func authenticate(token: String, now: Int64) throws(LedgerError) -> (account: Account, session: Session) {
        guard Secrets.isWellFormedToken(token) else { throw Self.unknownSession }
        let digest = Secrets.digest(token)
        let (stored, session) = try store.read { db in try Self.liveSession(db, digest: digest, now: now) }
        guard now - session.lastSeenAt >= Self.lastSeenResolution else { return (stored.account, session) }
        let seen = try store.write { db in
            try db.execute(sql: "UPDATE session SET last_seen_at = ? WHERE token_hash = ? AND revoked_at IS NULL", arguments: [now, digest])
            guard db.changesCount == 1 else { throw Self.endedSession }
            return try Self.liveSession(db, digest: digest, now: now)
        }
        return (seen.0.account, seen.1)
    }

    /// The CSRF token of a session token: put it in every form, and check a posted one with
    /// ``Session/accepts(csrfToken:)``. It is derived from the token, so it changes at every rotation.
    public func csrfToken(forSession token: String) -> String {
        Secrets.csrfToken(for: token)
    }

    /// Ends the session of `token`, if it is live; nothing for an unknown or ended one.
    public func logout(token: String, now: Int64) throws(LedgerError) {
        guard Secrets.isWellFormedToken(token) else { return }
        let digest = Secrets.digest(token)
        try store.write { db in
            guard let session = try AccountStore.session(db, digest: digest), session.revokedAt == nil else { return }
            try AccountStore.revokeSession(db, digest: digest, at: now)
            try AccountStore.record(db, .logout, account: session.accountID, at: now)
        }
    }

    /// Changes the password of the session's account and returns the session's new token.
    ///
    /// Checks the current password (a wrong one counts as a failed login; a locked account is
    /// refused), then the policy (`weak_password`, also when the new password is the current one).
    /// Then, in one transaction: stores the new hash, clears the must-change flag, revokes every
    /// session of the account, this one included, and replaces this one by a new token with the
    /// same lifetime, so no old token, stolen or fixed, survives the change.
    public func changePassword(token: String, current: String, new: String, now: Int64) throws(LedgerError) -> String {
        let (account, session) = try authenticate(token: token, now: now)
        let stored = try store.read { db in try Self.existing(db, id: account.id) }
        if let until = stored.account.lockedUntil, stored.account.isLocked(at: now) { throw Self.lockedError(until: until, now: now) }
        guard try verify(current, against: stored) else { throw try failedAttempt(stored, now: now) }
        // What a login reads (red-team finding: a decomposed passphrase within the policy's 128
        // code points was longer than a login takes, so it could never log in again).
        guard new.utf8.count <= Self.maximumLoginInputBytes else {
            throw LedgerError(.weakPassword, "the new password is longer than \(Self.maximumLoginInputBytes) bytes: choose a shorter one")
        }
        guard new.nfkc != current.nfkc else { throw LedgerError(.weakPassword, "the new password is the current one: choose another") }
        try policy.check(new, accountName: account.username)
        let hash = try PasswordHash(hashing: new, parameters: passwordParameters).encoded
        return try rotate(session, of: stored, now: now, event: .passwordChanged, revokingAll: true) { db in
            try db.execute(sql: "UPDATE account SET password_hash = ?, must_change = 0, failed_attempts = 0 WHERE id = ?",
                           arguments: [hash, stored.id])
        }
    }

    /// In one transaction: checks that the session is still live and the account unchanged since
    /// `stored` was read (its password hash and TOTP state), applies `update`, revokes the session
    /// (or, with `revokingAll`, every session of the account), inserts its replacement under a new
    /// token with the same lifetime and records `event`. Returns the new token.
    func rotate(_ session: Session, of stored: StoredAccount, now: Int64, event: AccountEvent.Kind, revokingAll: Bool,
                mfaVerified: Bool? = nil, _ update: (Database) throws -> Void) throws(LedgerError) -> String {
        let token = Secrets.newToken()
        try store.write { db in
            let (fresh, _) = try Self.liveSession(db, digest: session.tokenDigest, now: now)
            guard fresh.passwordHash == stored.passwordHash, fresh.sealedTOTPSecret == stored.sealedTOTPSecret,
                  fresh.account.totpConfirmed == stored.account.totpConfirmed else {
                throw LedgerError(.unavailable, "the account changed while this request was handled: try again")
            }
            try update(db)
            if revokingAll {
                try AccountStore.revokeSessions(db, accountID: stored.id, at: now)
            } else {
                try AccountStore.revokeSession(db, digest: session.tokenDigest, at: now)
            }
            _ = try AccountStore.insertSession(db, token: token, accountID: stored.id, mfaVerified: mfaVerified ?? session.mfaVerified,
                                               createdAt: session.createdAt, lastSeenAt: now, expiresAt: session.expiresAt)
            try AccountStore.record(db, event, account: stored.id, at: now)
        }
        return token
    }

    /// The session of `digest` and its account, refused unless live at `now`.
    static func liveSession(_ db: Database, digest: Data, now: Int64) throws -> (StoredAccount, Session) {
        guard let session = try AccountStore.session(db, digest: digest),
              let stored = try AccountStore.storedAccount(db, id: session.accountID) else { throw unknownSession }
        guard session.revokedAt == nil else { throw endedSession }
        guard now < session.expiresAt else {
            throw LedgerError(.unauthenticated, "the session expired \(sessionLifetime / 3_600_000) hours after its login: log in again")
        }
        guard now - session.lastSeenAt < idleTimeout else {
            throw LedgerError(.unauthenticated, "the session ended after \(idleTimeout / 60_000) minutes without activity: log in again")
        }
        guard !stored.account.isDisabled else { throw LedgerError(.accountDisabled, "this account is disabled") }
        return (stored, session)
    }

    static var unknownSession: LedgerError { LedgerError(.unauthenticated, "no such session: log in") }
    static var endedSession: LedgerError { LedgerError(.unauthenticated, "the session was ended: log in again") }
}
