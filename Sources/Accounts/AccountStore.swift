#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import Foundation
internal import GRDB
public import LedgerCore

/// The web accounts of one organisation's node: a SQLite database (GRDB, WAL), normally
/// `DIR/accounts.sqlite`, with the tables `account`, `session` and `account_event`
/// (`Internal/AccountSchema.swift`), and its key file beside it (`DIR/accounts.key`).
///
/// ```swift
/// let store = try AccountStore(path: dir + "/accounts.sqlite")
/// let service = try AccountService(store: store)
/// ```
///
/// The database, its `-wal` and `-shm` files and the key file are readable by the owner only
/// (0600). Passwords are stored as scrypt hashes, session and CSRF tokens as SHA-256 digests, TOTP
/// secrets sealed with AES-256-GCM under the key file's key. Deleted rows are overwritten
/// (`secure_delete`). The rules (lockout, sessions, enrolment) are ``AccountService``'s; the store
/// reads and writes rows.
public final class AccountStore: Sendable {
    public let path: String
    public let keyPath: String
    let pool: DatabasePool
    let key: StoreKey

    /// Opens (creating and migrating if needed) the database at `path`, with its key at `keyPath`
    /// (by default ``defaultKeyPath(for:)``), created at the first open.
    public init(path: String, keyPath: String? = nil) throws(LedgerError) {
        let keyPath = keyPath ?? Self.defaultKeyPath(for: path)
        self.path = path
        self.keyPath = keyPath
        let isNew = access(path, F_OK) != 0
        // The key first: a database never exists without the key its secrets are sealed under.
        key = try StoreKey.load(at: keyPath, creating: isNew)
        try DatabaseFiles.restrictPermissions(path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try AccountSchema.migrator.migrate(pool)
        } catch {
            throw LedgerError(.storage, "cannot open the account store \(path): \(error)")
        }
    }

    /// `DIR/accounts.key` for `DIR/accounts.sqlite`; otherwise the database path with `.key` appended.
    public static func defaultKeyPath(for path: String) -> String {
        path.hasSuffix(".sqlite") ? String(path.dropLast(".sqlite".count)) + ".key" : path + ".key"
    }

    // MARK: Reads

    public func account(id: Int64) throws(LedgerError) -> Account? {
        try read { db in try Self.storedAccount(db, id: id)?.account }
    }

    /// The account of a user name, compared case-insensitively after NFKC.
    public func account(username: String) throws(LedgerError) -> Account? {
        try read { db in try Self.storedAccount(db, usernameKey: Account.usernameKey(username))?.account }
    }

    /// Every account, in id order.
    public func accounts() throws(LedgerError) -> [Account] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM account ORDER BY id").map { row in try StoredAccount(row: row).account }
        }
    }

    /// The sessions of an account, newest first (revoked and expired ones included until deleted).
    public func sessions(accountID: Int64) throws(LedgerError) -> [Session] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM session WHERE account_id = ? ORDER BY created_at DESC", arguments: [accountID])
                .map(Session.init(row:))
        }
    }

    /// Outbox events with an id above `id`, oldest first.
    public func events(after id: Int64 = 0, limit: Int = 1000) throws(LedgerError) -> [AccountEvent] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM account_event WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit])
                .map { AccountEvent(id: $0["id"], time: $0["time"], kind: .init(rawValue: $0["kind"]), accountID: $0["account_id"], actorID: $0["actor_account_id"]) }
        }
    }

    /// Deletes the sessions that ended (expired or revoked) before `time`.
    @discardableResult
    public func deleteSessions(endedBefore time: Int64) throws(LedgerError) -> Int {
        try write { db in
            try db.execute(sql: "DELETE FROM session WHERE expires_at < ? OR revoked_at < ?", arguments: [time, time])
            return db.changesCount
        }
    }
}
