import Foundation
import GRDB
public import LedgerCore
public import Contracts

extension LedgerStore {
    /// Runs `body` over a consistent snapshot of committed state, as a ``LedgerView``.
    public func withView<T>(_ body: (any LedgerView) throws -> T) throws -> T {
        try writer.read { db in try body(DatabaseView(db: db)) }
    }

    /// Appends one block and everything it changes, atomically.
    public func commit(_ batch: CommitBatch) throws {
        try writer.write { db in
            let header = batch.header
            let headerBytes = header.encoded
            try db.execute(
                sql: "INSERT INTO blocks (height, hash, header, signature, tx_count, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [Int64(header.height), Data(Hash256.of(headerBytes).bytes), Data(headerBytes), Data(batch.signature),
                            Int64(header.transactionCount), header.timestamp]
            )
            let insertTransaction = try db.cachedStatement(sql: """
                INSERT INTO transactions (seq, tx_id, height, idx, envelope, status, write_set_hash, creator, contract, action, timestamp)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let insertHistory = try db.cachedStatement(sql: "INSERT INTO history (key, seq, value) VALUES (?, ?, ?)")
            for (transaction, writes) in zip(batch.transactions, batch.transactionWrites) {
                try insertTransaction.execute(arguments: [
                    Int64(transaction.sequence), Data(transaction.id.bytes), Int64(transaction.height), Int64(transaction.index),
                    Data(transaction.envelope), Int64(transaction.result.status), Data(transaction.result.writeSetHash.bytes),
                    Data(transaction.creator.bytes), transaction.contract, transaction.action, transaction.timestamp,
                ])
                for entry in writes.sorted {
                    try insertHistory.execute(arguments: [entry.key, Int64(transaction.sequence), entry.value.map { Data($0) }])
                }
            }
            let lastSequence = batch.transactions.last.map { Int64($0.sequence) } ?? 0
            let upsertState = try db.cachedStatement(sql: "INSERT OR REPLACE INTO state (key, value, seq) VALUES (?, ?, ?)")
            let deleteState = try db.cachedStatement(sql: "DELETE FROM state WHERE key = ?")
            for entry in batch.writes.sorted {
                if let value = entry.value {
                    try upsertState.execute(arguments: [entry.key, Data(value), lastSequence])
                } else {
                    try deleteState.execute(arguments: [entry.key])
                }
                if entry.key.hasPrefix("dev/") {
                    try DeviceProjection.apply(db, key: entry.key, value: entry.value)
                }
            }
            let insertNode = try db.cachedStatement(sql: "INSERT INTO merkle (level, idx, hash) VALUES (?, ?, ?)")
            for node in batch.merkleNodes {
                try insertNode.execute(arguments: [node.level, Int64(node.index), Data(node.hash.bytes)])
            }
            if let checkpoint = batch.checkpoint {
                try db.execute(sql: "INSERT INTO checkpoints (height, signer, body, signature) VALUES (?, ?, ?, ?)",
                               arguments: [Int64(checkpoint.height), Data(checkpoint.signer.bytes), Data(checkpoint.body), Data(checkpoint.signature)])
            }
            try Self.insert(db, refusals: batch.refusals)
        }
    }

    /// Records refusals on their own (when no block is being committed).
    public func record(refusals: [Refusal]) throws {
        try record(refusals: refusals, keep: Self.maxStoredRefusals)
    }

    /// Refusal rows kept on disk: the newest ones; older ones are pruned from the low end, so ids
    /// stay contiguous (a flood of junk submissions cannot grow the database without bound).
    public static let maxStoredRefusals: Int64 = 1_000_000

    static func insert(_ db: Database, refusals: [Refusal], keep: Int64 = maxStoredRefusals) throws {
        guard !refusals.isEmpty else { return }
        let statement = try db.cachedStatement(sql: "INSERT INTO refusals (time, tx_id, creator, code, message) VALUES (?, ?, ?, ?, ?)")
        for refusal in refusals {
            try statement.execute(arguments: [refusal.time, refusal.transactionID.map { Data($0.bytes) }, refusal.creator.map { Data($0.bytes) },
                                              refusal.code.rawValue, refusal.message])
        }
        try db.execute(sql: "DELETE FROM refusals WHERE id <= (SELECT MAX(id) FROM refusals) - ?", arguments: [keep])
    }

    /// As ``record(refusals:)`` with another retention (tests use a small one).
    package func record(refusals: [Refusal], keep: Int64) throws {
        guard !refusals.isEmpty else { return }
        try writer.write { db in try Self.insert(db, refusals: refusals, keep: keep) }
    }
}

/// A ``LedgerView`` over one read transaction.
struct DatabaseView: LedgerView {
    let db: Database

    func value(forKey key: String) throws(LedgerError) -> [UInt8]? {
        do { return try LedgerStore.value(db, key) } catch { throw LedgerError(.storage, "state read failed: \(error)") }
    }

    func containsTransaction(_ id: Hash256) throws(LedgerError) -> Bool {
        do { return try LedgerStore.containsTransaction(db, id) } catch { throw LedgerError(.storage, "transaction lookup failed: \(error)") }
    }
}

/// Keeps the typed `devices` table equal to the `dev/` entries of state.
public enum DeviceProjection {
    static func apply(_ db: Database, key: String, value: [UInt8]?) throws {
        guard let value else {
            try db.execute(sql: "DELETE FROM devices WHERE udi = ?", arguments: [String(key.dropFirst(4))])
            return
        }
        let record = try DeviceRecord(decoding: value)
        let statement = try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO devices (\(columnNames.joined(separator: ", ")))
            VALUES (\(Array(repeating: "?", count: columnNames.count).joined(separator: ", ")))
            """)
        try statement.execute(arguments: StatementArguments(columns(of: record)))
    }

    /// The columns of `devices`, in the order of ``columns(of:)``.
    static let columnNames = [
        "udi", "owner", "status", "manufacturer", "model", "firmware_version", "device_type", "category", "speciality",
        "location", "production_date", "last_service_date", "warranty_expiry", "usage_hours", "battery_level",
        "sync_frequency_seconds", "last_sync", "active", "version", "registered_at", "updated_at",
    ]

    /// The `devices` row `verify` expects for a device record, each value as SQL literal text.
    public static func row(of record: DeviceRecord) -> [String] { columns(of: record).map(\.description) }

    /// The `devices` row of a device record, as the projection stores it.
    static func columns(of record: DeviceRecord) -> [DatabaseValue] {
        let a = record.attributes
        let values: [(any DatabaseValueConvertible)?] = [
            record.udi, record.owner, Int64(record.status.rawValue), a.manufacturer, a.model, a.firmwareVersion, a.deviceType,
            a.category, a.speciality, a.location, a.productionDate, a.lastServiceDate, a.warrantyExpiry, a.usageHours,
            a.batteryLevel, a.syncFrequencySeconds, a.lastSync, a.active, Int64(record.version), record.registeredAt, record.updatedAt,
        ]
        return values.map { $0?.databaseValue ?? .null }
    }
}
