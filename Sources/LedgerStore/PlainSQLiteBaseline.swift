import Foundation
import GRDB

/// The "traditional centralised approach" the seed papers compare against: the same records
/// inserted into one plain SQLite table, with the same durability settings (WAL, synchronous=FULL)
/// and the same batching as blocks, but no signatures, no chain and no Merkle log.
public enum PlainSQLiteBaseline {
    public struct Record: Sendable {
        public var key: String
        public var event: String
        public var value: Int64
        public var payload: [UInt8]
        public init(key: String, event: String, value: Int64, payload: [UInt8]) {
            self.key = key
            self.event = event
            self.value = value
            self.payload = payload
        }
    }

    /// Inserts `records` in transactions of `batchSize` and returns records per second.
    public static func run(path: String, records: [Record], batchSize: Int) throws -> Double {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS device_events (id INTEGER PRIMARY KEY, udi TEXT NOT NULL, event TEXT NOT NULL, value INTEGER, payload BLOB)")
        }
        let start = Date()
        var index = 0
        while index < records.count {
            let slice = records[index..<min(index + batchSize, records.count)]
            try pool.write { db in
                let statement = try db.cachedStatement(sql: "INSERT INTO device_events (udi, event, value, payload) VALUES (?, ?, ?, ?)")
                for record in slice {
                    try statement.execute(arguments: [record.key, record.event, record.value, Data(record.payload)])
                }
            }
            index += slice.count
        }
        let seconds = Date().timeIntervalSince(start)
        return Double(records.count) / max(seconds, 1e-9)
    }
}

extension LedgerStore {
    /// Runs a read-only SQL query over this database and returns how long it took, in ms: the
    /// plain-SQL baseline of `medledger bench --queries` (never used to answer researchers).
    public func timeBaselineQuery(_ sql: String, arguments: [String]) throws -> Double {
        try writer.read { db in
            let started = ContinuousClock.now
            _ = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments))
            let elapsed = (ContinuousClock.now - started).components
            return Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        }
    }
}
