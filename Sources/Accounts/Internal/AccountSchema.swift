internal import GRDB

/// The account store's migrations: append-only, SQL only, never app types, so every old database
/// migrates. Times are Unix milliseconds; booleans are 0 or 1.
enum AccountSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                -- AUTOINCREMENT: an id is never reused, so the events of a deleted account never name another.
                CREATE TABLE account (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    organization TEXT NOT NULL,
                    -- NFKC as created; username_key (NFKC, lowercase) makes it unique and finds it at login.
                    username TEXT NOT NULL,
                    username_key TEXT NOT NULL UNIQUE,
                    role TEXT NOT NULL,
                    -- PasswordHash.encoded: $scrypt$ln=…,r=…,p=…$salt$hash.
                    password_hash TEXT NOT NULL,
                    must_change INTEGER NOT NULL,
                    -- AES-256-GCM (nonce, ciphertext, tag) under the store key, bound to the account id.
                    totp_secret BLOB,
                    totp_last_step INTEGER,
                    totp_confirmed INTEGER NOT NULL DEFAULT 0,
                    failed_attempts INTEGER NOT NULL DEFAULT 0,
                    locked_until INTEGER,
                    member_fingerprint TEXT,
                    created_at INTEGER NOT NULL,
                    disabled_at INTEGER
                );
                -- Known by the SHA-256 of the token, never the token.
                CREATE TABLE session (
                    token_hash BLOB PRIMARY KEY,
                    account_id INTEGER NOT NULL REFERENCES account(id),
                    mfa_verified INTEGER NOT NULL,
                    csrf_hash BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    last_seen_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    revoked_at INTEGER
                ) WITHOUT ROWID;
                CREATE INDEX session_account ON session(account_id);
                -- The outbox of a later ledger audit: no user names, passwords, tokens or secrets.
                CREATE TABLE account_event (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    account_id INTEGER,
                    actor_account_id INTEGER
                );
                """)
        }
        return migrator
    }
}
