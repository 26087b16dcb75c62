#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GRDB
public import LedgerCore

/// The collector's durable outbox: every signed transaction is stored before it is sent and
/// removed only once the node reports it final (committed or rejected). After a crash the
/// collector sends what is left; a resend of a transaction the node already has is harmless
/// (the node answers `duplicate_transaction` and the status query tells the outcome).
public final class Outbox: Sendable {
    let queue: DatabaseQueue

    public init(path: String) throws {
        // Signed transactions waiting to be sent: owner-only, like the node's ledger.
        try DatabaseFiles.restrictPermissions(path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        queue = try DatabaseQueue(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE outbox (
                    tx_id BLOB PRIMARY KEY,
                    envelope BLOB NOT NULL,
                    created INTEGER NOT NULL
                );
                CREATE TABLE outcomes (
                    tx_id BLOB PRIMARY KEY,
                    status TEXT NOT NULL,
                    code TEXT,
                    height INTEGER
                );
                """)
        }
        try migrator.migrate(queue)
    }

    public func add(id: Hash256, envelope: [UInt8]) throws {
        try queue.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO outbox (tx_id, envelope, created) VALUES (?, ?, ?)",
                           arguments: [Data(id.bytes), Data(envelope), Clock.nowMilliseconds()])
        }
    }

    public func complete(id: Hash256, status: String, code: String?, height: UInt64?) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM outbox WHERE tx_id = ?", arguments: [Data(id.bytes)])
            try db.execute(sql: "INSERT OR REPLACE INTO outcomes (tx_id, status, code, height) VALUES (?, ?, ?, ?)",
                           arguments: [Data(id.bytes), status, code, height.map { Int64($0) }])
        }
    }

    public func pending() throws -> [(id: Hash256, envelope: [UInt8])] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT tx_id, envelope FROM outbox ORDER BY created").compactMap { row in
                guard let id = Hash256(bytes: [UInt8](row["tx_id"] as Data)) else { return nil }
                return (id, [UInt8](row["envelope"] as Data))
            }
        }
    }

    public func outcomeCounts() throws -> [String: Int] {
        try queue.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM outcomes GROUP BY status") {
                counts[row["status"]] = row["n"]
            }
            return counts
        }
    }
}
