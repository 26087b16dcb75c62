internal import GRDB
public import LedgerCore

/// What administrators do to other accounts. `by` is the acting account: an enabled administrator
/// of the same organisation with a confirmed TOTP authenticator (else `forbidden`); each action is
/// one transaction and one outbox event naming both accounts.
extension AccountService {
    /// Ends every live session of an account; returns how many. An account may do this to itself
    /// ("log out everywhere"); to another, only its organisation's administrator.
    @discardableResult
    public func revokeSessions(accountID: Int64, by actor: Int64, now: Int64) throws(LedgerError) -> Int {
        try store.write { db in
            let target = try Self.existing(db, id: accountID)
            if actor != accountID { try Self.requireAdministrator(db, actor: actor, organization: target.account.organization) }
            let count = try AccountStore.revokeSessions(db, accountID: accountID, at: now)
            try AccountStore.record(db, .sessionsRevoked, account: accountID, actor: actor, at: now)
            return count
        }
    }

    /// Disables an account and ends its sessions: it can no longer log in or use a session. An
    /// administrator cannot disable their own account (so an organisation keeps one).
    public func disable(accountID: Int64, by actor: Int64, now: Int64) throws(LedgerError) {
        guard accountID != actor else { throw LedgerError(.forbidden, "an administrator cannot disable their own account") }
        try store.write { db in
            let target = try Self.existing(db, id: accountID)
            try Self.requireAdministrator(db, actor: actor, organization: target.account.organization)
            try db.execute(sql: "UPDATE account SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?", arguments: [now, accountID])
            try AccountStore.revokeSessions(db, accountID: accountID, at: now)
            try AccountStore.record(db, .accountDisabled, account: accountID, actor: actor, at: now)
        }
    }

    /// Gives an account a new one-time password (returned; only its hash is stored), which must be
    /// changed at the next login; ends its sessions and lifts a lockout. Not for one's own account:
    /// that is ``changePassword(token:current:new:now:)``, which asks for the current password.
    public func resetPassword(accountID: Int64, by actor: Int64, now: Int64) throws(LedgerError) -> String {
        guard accountID != actor else { throw LedgerError(.forbidden, "change your own password with the current one") }
        let oneTimePassword = Secrets.newOneTimePassword()
        let hash = try PasswordHash(hashing: oneTimePassword, parameters: passwordParameters).encoded
        try store.write { db in
            let target = try Self.existing(db, id: accountID)
            try Self.requireAdministrator(db, actor: actor, organization: target.account.organization)
            try db.execute(sql: """
                UPDATE account SET password_hash = ?, must_change = 1, failed_attempts = 0, locked_until = NULL WHERE id = ?
                """, arguments: [hash, accountID])
            try AccountStore.revokeSessions(db, accountID: accountID, at: now)
            try AccountStore.record(db, .passwordReset, account: accountID, actor: actor, at: now)
        }
        return oneTimePassword
    }

    /// Records the ledger member an account acts as: the SHA-256 fingerprint of its certificate,
    /// 64 lowercase hex digits (else `invalid_argument`), or nil to detach it.
    public func assignMember(accountID: Int64, fingerprint: String?, by actor: Int64, now: Int64) throws(LedgerError) {
        if let fingerprint {
            guard fingerprint.utf8.count == 64, fingerprint.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                throw LedgerError(.invalidArgument, "a member fingerprint is 64 lowercase hex digits")
            }
        }
        try store.write { db in
            let target = try Self.existing(db, id: accountID)
            try Self.requireAdministrator(db, actor: actor, organization: target.account.organization)
            try db.execute(sql: "UPDATE account SET member_fingerprint = ? WHERE id = ?", arguments: [fingerprint, accountID])
            try AccountStore.record(db, .memberAssigned, account: accountID, actor: actor, at: now)
        }
    }
}
