import Foundation
import GRDB
public import LedgerCore

extension LedgerStore {
    /// Calls `body` with every device record as of block `height` (nil: the latest), all read in
    /// one snapshot; returns the height and that block's timestamp.
    ///
    /// The latest state comes from `state`; a past one from the per-key history (the newest
    /// version of each `dev/` key written at or before the block's last log entry).
    @discardableResult
    public func forEachDevice(atHeight height: UInt64?, _ body: (DeviceRecord) throws -> Void) throws -> (height: UInt64, time: Int64) {
        try writer.read { db in
            guard let tip = try Row.fetchOne(db, sql: "SELECT height, timestamp FROM blocks ORDER BY height DESC LIMIT 1") else {
                throw LedgerError(.storage, "no blocks")
            }
            guard let tipHeight = UInt64(exactly: tip["height"] as Int64) else { throw LedgerError(.storage, "blocks row has a negative height") }
            let target = height ?? tipHeight
            guard target <= tipHeight, let block = try Row.fetchOne(db, sql: "SELECT header, timestamp FROM blocks WHERE height = ?", arguments: [Int64(target)]) else {
                throw LedgerError(.notFound, "block \(target) is not committed (the tip is \(tipHeight))")
            }
            let time: Int64 = block["timestamp"]
            if target == tipHeight {
                let cursor = try Data.fetchCursor(db, sql: "SELECT value FROM state WHERE key >= 'dev/' AND key < 'dev0'")
                while let value = try cursor.next() { try body(try DeviceRecord(decoding: [UInt8](value))) }
            } else {
                let header = try BlockHeader(decoding: [UInt8](block["header"] as Data))
                // Log entries 0 ..< logSize are in blocks ≤ target.
                let cursor = try Row.fetchCursor(db, sql: """
                    SELECT value, MAX(seq) FROM history WHERE key >= 'dev/' AND key < 'dev0' AND seq < ? GROUP BY key
                    """, arguments: [Int64(header.logSize)])
                while let row = try cursor.next() {
                    if let value = row[0] as Data? { try body(try DeviceRecord(decoding: [UInt8](value))) }
                }
            }
            return (target, time)
        }
    }

    /// The last block whose timestamp is at or before `time` (ms), if any.
    public func height(atTime time: Int64) throws -> UInt64? {
        try writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(height) FROM blocks WHERE timestamp <= ?", arguments: [time]).map(UInt64.init)
        }
    }

    /// Research transactions (answers released, cached or refused), newest first.
    public func researchTransactions(limit: Int, beforeSequence: UInt64? = nil) throws -> [StoredTransaction] {
        try writer.read { db in try Self.researchTransactions(db, limit: limit, beforeSequence: beforeSequence) }
    }

    static func researchTransactions(_ db: Database, limit: Int, beforeSequence: UInt64?) throws -> [StoredTransaction] {
        try Row.fetchAll(db, sql: """
            SELECT * FROM transactions INDEXED BY transactions_research
            WHERE contract = 'research' AND seq < ? ORDER BY seq DESC LIMIT ?
            """, arguments: [Int64(beforeSequence.map { min($0, UInt64(Int64.max)) } ?? UInt64(Int64.max)), limit])
            .map(Self.transaction)
    }
}
