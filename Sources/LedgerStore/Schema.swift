import GRDB

/// Append-only migrations. They use SQL only, never app types, so old databases always migrate.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE blocks (
                    height INTEGER PRIMARY KEY,
                    hash BLOB NOT NULL UNIQUE,
                    header BLOB NOT NULL,
                    signature BLOB NOT NULL,
                    tx_count INTEGER NOT NULL,
                    timestamp INTEGER NOT NULL
                );
                -- seq is the transaction's index in the global Merkle log.
                CREATE TABLE transactions (
                    seq INTEGER PRIMARY KEY,
                    tx_id BLOB NOT NULL,
                    height INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    envelope BLOB NOT NULL,
                    status INTEGER NOT NULL,
                    write_set_hash BLOB NOT NULL,
                    creator BLOB NOT NULL,
                    contract TEXT NOT NULL,
                    action TEXT NOT NULL,
                    timestamp INTEGER NOT NULL
                );
                -- Not unique: a replayed transaction that reaches a block is stored there as refused.
                CREATE INDEX transactions_id ON transactions(tx_id);
                CREATE INDEX transactions_height ON transactions(height, idx);
                CREATE TABLE state (
                    key TEXT PRIMARY KEY,
                    value BLOB NOT NULL,
                    seq INTEGER NOT NULL
                ) WITHOUT ROWID;
                -- Every version of every key: value NULL means deleted.
                CREATE TABLE history (
                    key TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    value BLOB,
                    PRIMARY KEY (key, seq)
                ) WITHOUT ROWID;
                -- Perfect subtrees of the global log: node (level, idx) covers leaves idx·2^level ..< (idx+1)·2^level.
                CREATE TABLE merkle (
                    level INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (level, idx)
                ) WITHOUT ROWID;
                -- Typed projection of device state for queries; rebuilt from state if lost.
                CREATE TABLE devices (
                    udi TEXT PRIMARY KEY,
                    owner TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    manufacturer TEXT,
                    model TEXT,
                    firmware_version TEXT,
                    device_type TEXT,
                    category TEXT,
                    speciality TEXT,
                    location TEXT,
                    production_date INTEGER,
                    last_service_date INTEGER,
                    warranty_expiry INTEGER,
                    usage_hours INTEGER,
                    battery_level INTEGER,
                    sync_frequency_seconds INTEGER,
                    last_sync INTEGER,
                    active INTEGER,
                    version INTEGER NOT NULL,
                    registered_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                -- Only the index the API uses; query indexes come with the queries that need them
                -- (each index is another B-tree every device update dirties).
                CREATE INDEX devices_owner ON devices(owner);
                -- Signed checkpoints: (height, block hash, state root, log root) by a node.
                CREATE TABLE checkpoints (
                    height INTEGER NOT NULL,
                    signer BLOB NOT NULL,
                    body BLOB NOT NULL,
                    signature BLOB NOT NULL,
                    PRIMARY KEY (height, signer)
                );
                -- Local audit of refused submissions (never on the ledger: refusals are not ordered).
                CREATE TABLE refusals (
                    id INTEGER PRIMARY KEY,
                    time INTEGER NOT NULL,
                    tx_id BLOB,
                    creator BLOB,
                    code TEXT NOT NULL,
                    message TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v2") { db in
            // The research audit trail lists research transactions; a partial index holds only
            // those, so device traffic pays nothing for it.
            try db.execute(sql: "CREATE INDEX transactions_research ON transactions(seq) WHERE contract = 'research'")
        }
        migrator.registerMigration("governance-index") { db in
            // Proofs carry every governance transaction up to their tree head (docs/formats.md §7.4);
            // governance is rare, so a partial index keeps that lookup off the device traffic.
            try db.execute(sql: "CREATE INDEX transactions_governance ON transactions(seq) WHERE contract = 'governance'")
        }
        return migrator
    }
}
