import Foundation
public import GRDB
public import LedgerCore

extension LedgerStore {
    /// Runs `body` inside one read transaction: every read through the ``LedgerSnapshot`` sees the
    /// same committed state (SQLite WAL snapshot), even while a node keeps committing blocks.
    /// `medledger verify` reads the whole ledger this way.
    public func snapshot<T>(_ body: (LedgerSnapshot) throws -> T) throws -> T {
        try writer.read { db in try body(LedgerSnapshot(db: db)) }
    }

    /// Governance transactions at log positions `from ..< before`, in log order, each with its
    /// block's time.
    public func governanceTransactions(from: UInt64, before: UInt64) throws -> [(transaction: StoredTransaction, blockTime: Int64)] {
        try writer.read { db in
            // The index exists once the database has migrated (a read-only open does not migrate).
            let indexed = try Bool.fetchOne(db, sql: "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'transactions_governance'") ?? false
            return try Row.fetchAll(db, sql: """
                SELECT t.*, b.timestamp AS block_time FROM transactions t \(indexed ? "INDEXED BY transactions_governance" : "")
                JOIN blocks b ON b.height = t.height
                WHERE t.contract = 'governance' AND t.seq >= ? AND t.seq < ? ORDER BY t.seq
                """, arguments: [Int64(min(from, UInt64(Int64.max))), Int64(min(before, UInt64(Int64.max)))])
                .map { (try LedgerStore.transaction($0), $0["block_time"]) }
        }
    }
}

/// Raw reads of every table for verification, all within one read transaction. Nothing here
/// interprets derived columns: the verifier compares them with what it derives itself.
public struct LedgerSnapshot {
    let db: Database

    /// A `blocks` row with its derived columns as stored.
    public struct BlockRow {
        public var block: StoredBlock
        public var hash: [UInt8]
        public var transactionCount: Int64
        public var timestamp: Int64
    }

    /// A `checkpoints` row as stored.
    public struct CheckpointRow {
        public var height: Int64
        public var signer: [UInt8]
        public var body: [UInt8]
        public var signature: [UInt8]
    }

    /// A `refusals` row as stored.
    public struct RefusalRow {
        public var id: Int64
        public var time: Int64
        public var transactionID: [UInt8]?
        public var creator: [UInt8]?
        public var code: String
        public var message: String
    }

    /// The column list of `devices`, in the order ``DeviceProjection/columns(of:)`` produces values.
    public static let deviceColumns = DeviceProjection.columnNames

    /// The SQLite storage class each column read by ``LedgerStore`` must have ("blob?" allows NULL).
    /// A value of another type would otherwise stop the reader (GRDB traps on failed conversions).
    static let columnTypes: [(table: String, columns: [(String, String)])] = [
        ("blocks", [("height", "integer"), ("hash", "blob"), ("header", "blob"), ("signature", "blob"), ("tx_count", "integer"),
                    ("timestamp", "integer")]),
        ("transactions", [("seq", "integer"), ("tx_id", "blob"), ("height", "integer"), ("idx", "integer"), ("envelope", "blob"),
                          ("status", "integer"), ("write_set_hash", "blob"), ("creator", "blob"), ("contract", "text"),
                          ("action", "text"), ("timestamp", "integer")]),
        ("state", [("key", "text"), ("value", "blob"), ("seq", "integer")]),
        ("history", [("key", "text"), ("seq", "integer"), ("value", "blob?")]),
        ("merkle", [("level", "integer"), ("idx", "integer"), ("hash", "blob")]),
        ("checkpoints", [("height", "integer"), ("signer", "blob"), ("body", "blob"), ("signature", "blob")]),
    ]

    /// The first stored value whose SQLite type is not its column's, as "table.column", if any.
    public func firstValueOfTheWrongType() throws -> String? {
        for (table, columns) in Self.columnTypes {
            let cases = columns.map { column, type in
                type.hasSuffix("?")
                    ? "WHEN typeof(\(column)) NOT IN ('\(type.dropLast())', 'null') THEN '\(column)'"
                    : "WHEN typeof(\(column)) != '\(type)' THEN '\(column)'"
            }
            let sql = "SELECT CASE \(cases.joined(separator: " ")) END AS bad FROM \(table) WHERE bad IS NOT NULL LIMIT 1"
            if let column = try String.fetchOne(db, sql: sql) { return "\(table).\(column)" }
        }
        return nil
    }

    public func count(_ table: String) throws -> Int64 {
        precondition(["blocks", "transactions", "state", "history", "merkle", "devices", "checkpoints", "refusals"].contains(table))
        return try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
    }

    /// The highest and lowest stored block heights.
    public func heightRange() throws -> (min: Int64, max: Int64)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT MIN(height), MAX(height) FROM blocks"),
              let low = row[0] as Int64?, let high = row[1] as Int64? else { return nil }
        return (low, high)
    }

    public func block(at height: UInt64) throws -> BlockRow? {
        guard let row = try Row.fetchOne(db, sql: "SELECT hash, tx_count, timestamp FROM blocks WHERE height = ?", arguments: [Int64(height)]),
              let block = try LedgerStore.block(db, at: height)
        else { return nil }
        return BlockRow(block: block, hash: [UInt8](row["hash"] as Data), transactionCount: row["tx_count"], timestamp: row["timestamp"])
    }

    /// The first damage SQLite itself finds (a page, or an index that no longer matches its table:
    /// lookups by transaction id and the research audit trail read through indexes), or a schema
    /// (tables, indexes, triggers, views) other than the one the recorded migrations create; nil
    /// when both are intact.
    public func structuralProblem() throws -> String? {
        let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check(10)")
        if integrity != ["ok"] { return "SQLite integrity check: " + integrity.joined(separator: "; ") }
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
        let known = Schema.migrator.migrations
        guard !applied.isEmpty, applied.count <= known.count, Array(known.prefix(applied.count)) == applied else {
            return "grdb_migrations lists \(applied), not a prefix of this version's migrations \(known)"
        }
        let reference = try DatabaseQueue()
        try Schema.migrator.migrate(reference, upTo: applied[applied.count - 1])
        let query = "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || IFNULL(sql, '') FROM sqlite_master ORDER BY type, name"
        let expected = try reference.read { try String.fetchAll($0, sql: query) }
        let stored = try String.fetchAll(db, sql: query)
        guard stored == expected else {
            let extra = stored.filter { !expected.contains($0) }.map { $0.prefix(120) }
            let missing = expected.filter { !stored.contains($0) }.map { $0.prefix(120) }
            return "the schema differs from the migrations' (unexpected: \(extra); missing: \(missing))"
        }
        return nil
    }

    /// Research transactions, newest first (as ``LedgerStore/researchTransactions(limit:beforeSequence:)``).
    public func researchTransactions(limit: Int, beforeSequence: UInt64?) throws -> [StoredTransaction] {
        try LedgerStore.researchTransactions(db, limit: limit, beforeSequence: beforeSequence)
    }

    public func merkleNode(level: Int, index: UInt64) throws -> Hash256? {
        try LedgerStore.merkleNode(db, level, index)
    }

    /// Every `state` row in key order.
    public func forEachStateEntry(_ body: (String, [UInt8], Int64) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT key, value, seq FROM state ORDER BY key")
        while let row = try cursor.next() { try body(row["key"], [UInt8](row["value"] as Data), row["seq"]) }
    }

    /// Every `history` row, ordered by log position then key (one sort of the table).
    public func forEachHistoryRow(_ body: (Int64, String, [UInt8]?) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT seq, key, value FROM history ORDER BY seq, key")
        while let row = try cursor.next() { try body(row["seq"], row["key"], (row["value"] as Data?).map { [UInt8]($0) }) }
    }

    /// Every `devices` row in UDI order: its UDI and its stored values of ``deviceColumns``, each
    /// as SQL literal text (type included), comparable with ``DeviceProjection/row(of:)``.
    public func forEachDeviceRow(_ body: (String, [String]) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT \(Self.deviceColumns.joined(separator: ", ")) FROM devices ORDER BY udi")
        while let row = try cursor.next() {
            let values = Array(row.databaseValues)
            try body(String.fromDatabaseValue(values[0]) ?? values[0].description, values.map(\.description))
        }
    }

    public func checkpoints(at height: UInt64) throws -> [CheckpointRow] {
        try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE height = ? ORDER BY signer", arguments: [Int64(height)]).map(Self.checkpoint)
    }

    static func checkpoint(_ row: Row) -> CheckpointRow {
        CheckpointRow(height: row["height"], signer: [UInt8](row["signer"] as Data), body: [UInt8](row["body"] as Data),
                      signature: [UInt8](row["signature"] as Data))
    }

    /// Every `refusals` row in id order; values of the wrong SQLite type are reported as such.
    public func forEachRefusalRow(_ body: (RefusalRow?) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT id, time, tx_id, creator, code, message FROM refusals ORDER BY id")
        while let row = try cursor.next() {
            let values = Array(row.databaseValues)
            guard case .int64(let id) = values[0].storage, case .int64(let time) = values[1].storage,
                  let transactionID = Self.optionalBlob(values[2]), let creator = Self.optionalBlob(values[3]),
                  case .string(let code) = values[4].storage, case .string(let message) = values[5].storage
            else {
                try body(nil)
                continue
            }
            try body(RefusalRow(id: id, time: time, transactionID: transactionID, creator: creator, code: code, message: message))
        }
    }

    /// `.some(nil)` for NULL, `.some(bytes)` for a blob, `nil` for any other type.
    static func optionalBlob(_ value: DatabaseValue) -> [UInt8]?? {
        switch value.storage {
        case .null: return .some(nil)
        case .blob(let data): return .some([UInt8](data))
        default: return nil
        }
    }
}
