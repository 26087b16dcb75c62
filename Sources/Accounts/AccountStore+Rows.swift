internal import Foundation
internal import GRDB
public import LedgerCore

/// The transactions and row operations that ``AccountService`` composes. A write runs in one
/// SQLite transaction: an error anywhere rolls back every row it changed.
extension AccountStore {
    /// A read from a consistent snapshot. A `LedgerError` thrown inside passes through unchanged;
    /// any other (SQLite's) becomes `storage_error`.
    func read<T>(_ body: (Database) throws -> T) throws(LedgerError) -> T {
        do {
            return try pool.read(body)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.storage, "account store: \(error)")
        }
    }

    /// One write transaction (writes are serialised): committed if `body` returns, rolled back if it throws.
    func write<T>(_ body: (Database) throws -> T) throws(LedgerError) -> T {
        do {
            return try pool.write(body)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.storage, "account store: \(error)")
        }
    }

    static func storedAccount(_ db: Database, id: Int64) throws -> StoredAccount? {
        try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = ?", arguments: [id]).map { row in try StoredAccount(row: row) }
    }

    static func storedAccount(_ db: Database, usernameKey: String) throws -> StoredAccount? {
        try Row.fetchOne(db, sql: "SELECT * FROM account WHERE username_key = ?", arguments: [usernameKey]).map { row in try StoredAccount(row: row) }
    }

    static func session(_ db: Database, digest: Data) throws -> Session? {
        try Row.fetchOne(db, sql: "SELECT * FROM session WHERE token_hash = ?", arguments: [digest]).map(Session.init(row:))
    }

    /// Inserts a session for a fresh token and returns it; the token itself is never written.
    static func insertSession(_ db: Database, token: String, accountID: Int64, mfaVerified: Bool,
                              createdAt: Int64, lastSeenAt: Int64, expiresAt: Int64) throws -> Session {
        let session = Session(tokenDigest: Secrets.digest(token), csrfDigest: Secrets.digest(Secrets.csrfToken(for: token)),
                              accountID: accountID, mfaVerified: mfaVerified, createdAt: createdAt, lastSeenAt: lastSeenAt,
                              expiresAt: expiresAt, revokedAt: nil)
        try db.execute(sql: """
            INSERT INTO session (token_hash, account_id, mfa_verified, csrf_hash, created_at, last_seen_at, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [session.tokenDigest, accountID, mfaVerified, session.csrfDigest, createdAt, lastSeenAt, expiresAt])
        return session
    }

    /// Revokes every live session of an account; returns how many.
    @discardableResult
    static func revokeSessions(_ db: Database, accountID: Int64, at now: Int64) throws -> Int {
        try db.execute(sql: "UPDATE session SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL", arguments: [now, accountID])
        return db.changesCount
    }

    static func revokeSession(_ db: Database, digest: Data, at now: Int64) throws {
        try db.execute(sql: "UPDATE session SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL", arguments: [now, digest])
    }

    /// Appends to the outbox: only a kind, a time and account ids.
    static func record(_ db: Database, _ kind: AccountEvent.Kind, account: Int64?, actor: Int64? = nil, at now: Int64) throws {
        try db.execute(sql: "INSERT INTO account_event (time, kind, account_id, actor_account_id) VALUES (?, ?, ?, ?)",
                       arguments: [now, kind.rawValue, account, actor])
    }
}
