#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
public import GRDB
public import LedgerCore
public import Contracts

/// A node's SQLite database (GRDB, WAL): blocks, transactions, world state with per-key history,
/// the global Merkle log's perfect subtrees, the typed device projection, checkpoints and the local
/// refusal audit. One block is one SQLite transaction, so a crash leaves whole blocks or none.
public final class LedgerStore: Sendable {
    public let path: String
    let writer: any DatabaseWriter

    /// Opens (creating and migrating if needed) the database at `path`.
    public init(path: String) throws {
        self.path = path
        // Owner-only (0600), the WAL files included.
        try DatabaseFiles.restrictPermissions(path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // FULL: a committed block survives power loss, not only a process crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // A 64 MiB page cache and memory-mapped reads: lookups stop copying pages from the kernel.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
        }
        configuration.maximumReaderCount = 8
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Schema.migrator.migrate(pool)
        writer = pool
    }

    /// Opens an existing database without writing to it (verify, export, proof).
    public init(readOnlyPath path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw LedgerError(.notFound, "no ledger database at \(path)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        writer = try DatabaseQueue(path: path, configuration: configuration)
    }

    // MARK: Reads

    /// The header of the last committed block, if any.
    public func tip() throws -> BlockHeader? {
        try writer.read { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT header FROM blocks ORDER BY height DESC LIMIT 1") else { return nil }
            return try BlockHeader(decoding: [UInt8](data))
        }
    }

    /// The header of the block at `height`, if this store holds it.
    public func header(at height: UInt64) throws -> BlockHeader? {
        guard let height = Int64(exactly: height) else { return nil }
        return try writer.read { db in
            try Data.fetchOne(db, sql: "SELECT header FROM blocks WHERE height = ?", arguments: [height]).map { try BlockHeader(decoding: [UInt8]($0)) }
        }
    }

    public func block(at height: UInt64) throws -> StoredBlock? {
        try writer.read { db in try Self.block(db, at: height) }
    }

    static func block(_ db: Database, at height: UInt64) throws -> StoredBlock? {
        // Heights are stored as SQLite integers (Int64): a larger one names no block.
        guard let height = Int64(exactly: height),
              let row = try Row.fetchOne(db, sql: "SELECT header, signature FROM blocks WHERE height = ?", arguments: [height]) else {
            return nil
        }
        let headerBytes = [UInt8](row["header"] as Data)
        let rows = try Row.fetchAll(db, sql: "SELECT * FROM transactions WHERE height = ? ORDER BY idx", arguments: [height])
        return StoredBlock(
            header: try BlockHeader(decoding: headerBytes), headerBytes: headerBytes,
            signature: [UInt8](row["signature"] as Data), transactions: try rows.map(transaction)
        )
    }

    public func transaction(id: Hash256) throws -> StoredTransaction? {
        try writer.read { db in
            // The first occurrence is the original; later ones can only be refused replays.
            try Row.fetchOne(db, sql: "SELECT * FROM transactions WHERE tx_id = ? ORDER BY seq LIMIT 1", arguments: [Data(id.bytes)])
                .map(Self.transaction)
        }
    }

    public func transaction(sequence: UInt64) throws -> StoredTransaction? {
        try writer.read { db in
            guard let sequence = Int64(exactly: sequence) else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM transactions WHERE seq = ?", arguments: [sequence]).map(Self.transaction)
        }
    }

    static func transaction(_ row: Row) throws -> StoredTransaction {
        guard let id = Hash256(bytes: [UInt8](row["tx_id"] as Data)),
              let writeSetHash = Hash256(bytes: [UInt8](row["write_set_hash"] as Data)),
              let creator = Hash256(bytes: [UInt8](row["creator"] as Data))
        else { throw LedgerError(.storage, "transactions row has a malformed hash") }
        // A damaged row is a storage error, never a trap (verify reports it; the node answers 500).
        guard let sequence = UInt64(exactly: row["seq"] as Int64), let height = UInt64(exactly: row["height"] as Int64),
              let index = UInt32(exactly: row["idx"] as Int64), let status = UInt16(exactly: row["status"] as Int64)
        else { throw LedgerError(.storage, "transactions row has an integer out of range") }
        return StoredTransaction(
            sequence: sequence, id: id, height: height,
            index: index, envelope: [UInt8](row["envelope"] as Data),
            result: TransactionResult(status: status, writeSetHash: writeSetHash),
            creator: creator, contract: row["contract"], action: row["action"], timestamp: row["timestamp"]
        )
    }

    public func value(forKey key: String) throws -> [UInt8]? {
        try writer.read { db in try Self.value(db, key) }
    }

    static func value(_ db: Database, _ key: String) throws -> [UInt8]? {
        let statement = try db.cachedStatement(sql: "SELECT value FROM state WHERE key = ?")
        return try Data.fetchOne(statement, arguments: [key]).map { [UInt8]($0) }
    }

    static func containsTransaction(_ db: Database, _ id: Hash256) throws -> Bool {
        let statement = try db.cachedStatement(sql: "SELECT 1 FROM transactions WHERE tx_id = ?")
        return try Bool.fetchOne(statement, arguments: [Data(id.bytes)]) != nil
    }

    public func containsTransaction(_ id: Hash256) throws -> Bool {
        try writer.read { db in try Self.containsTransaction(db, id) }
    }

    /// Every version of `key`, oldest first, with the transaction and block time that wrote it.
    /// Every version of `key`, oldest first; `limit` and `offset` page through them.
    public func history(key: String, limit: Int = -1, offset: Int = 0) throws -> [HistoryEntry] {
        try writer.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT h.value AS hvalue, t.*, b.timestamp AS block_time FROM history h
                JOIN transactions t ON t.seq = h.seq JOIN blocks b ON b.height = t.height
                WHERE h.key = ? ORDER BY h.seq LIMIT ? OFFSET ?
                """, arguments: [key, limit, offset])
            return try rows.map { row in
                HistoryEntry(key: key, value: (row["hvalue"] as Data?).map { [UInt8]($0) },
                             transaction: try Self.transaction(row), blockTime: row["block_time"])
            }
        }
    }

    /// All state entries with a key prefix, in key order.
    public func state(prefix: String, limit: Int = 1000, after: String? = nil) throws -> [(key: String, value: [UInt8])] {
        try writer.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT key, value FROM state WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?
                """, arguments: [prefix, prefix + "\u{10FFFF}", after ?? "", limit])
            return rows.map { ($0["key"], [UInt8]($0["value"] as Data)) }
        }
    }

    /// Every state entry in key order, for verification.
    public func forEachStateEntry(_ body: (String, [UInt8]) throws -> Void) throws {
        try writer.read { db in
            let cursor = try Row.fetchCursor(db, sql: "SELECT key, value FROM state ORDER BY key")
            while let row = try cursor.next() {
                try body(row["key"], [UInt8](row["value"] as Data))
            }
        }
    }

    public func recentRefusals(limit: Int) throws -> [Refusal] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM refusals ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                Refusal(time: row["time"], transactionID: (row["tx_id"] as Data?).flatMap { Hash256(bytes: [UInt8]($0)) },
                        creator: (row["creator"] as Data?).flatMap { Hash256(bytes: [UInt8]($0)) },
                        code: LedgerError.Code(rawValue: row["code"]), message: row["message"])
            }
        }
    }

    // MARK: Merkle log

    public func merkleNode(level: Int, index: UInt64) throws -> Hash256? {
        try writer.read { db in try Self.merkleNode(db, level, index) }
    }

    static func merkleNode(_ db: Database, _ level: Int, _ index: UInt64) throws -> Hash256? {
        let statement = try db.cachedStatement(sql: "SELECT hash FROM merkle WHERE level = ? AND idx = ?")
        guard let index = Int64(exactly: index) else { return nil }
        return try Data.fetchOne(statement, arguments: [level, index]).flatMap { Hash256(bytes: [UInt8]($0)) }
    }

    /// The frontier of the log as committed.
    public func frontier(size: UInt64) throws -> MerkleFrontier {
        try writer.read { db in
            var hashes: [Hash256] = []
            for subtree in MerkleFrontier.subtrees(ofSize: size) {
                guard let hash = try Self.merkleNode(db, subtree.level, subtree.index) else {
                    throw LedgerError(.storage, "Merkle node (\(subtree.level), \(subtree.index)) is missing")
                }
                hashes.append(hash)
            }
            return MerkleFrontier(size: size, hashes: hashes)
        }
    }

    /// `MTH(D[lo..<hi])` from stored perfect subtrees.
    func subtreeHash(_ db: Database, _ lo: UInt64, _ hi: UInt64) throws -> Hash256 {
        let n = hi - lo
        if n & (n - 1) == 0, lo % n == 0 {
            let level = n.trailingZeroBitCount
            guard let hash = try Self.merkleNode(db, level, lo >> UInt64(level)) else {
                throw LedgerError(.storage, "Merkle node (\(level), \(lo >> UInt64(level))) is missing")
            }
            return hash
        }
        var k: UInt64 = 1
        while k << 1 < n { k <<= 1 }
        return MerkleTree.nodeHash(try subtreeHash(db, lo, lo + k), try subtreeHash(db, lo + k, hi))
    }

    public func inclusionProof(sequence: UInt64, size: UInt64) throws -> [Hash256] {
        try writer.read { db in
            try MerkleTree.inclusionProof(index: sequence, size: size) { try subtreeHash(db, $0, $1) }
        }
    }

    public func consistencyProof(first: UInt64, second: UInt64) throws -> [Hash256] {
        try writer.read { db in
            try MerkleTree.consistencyProof(first: first, second: second) { try subtreeHash(db, $0, $1) }
        }
    }
}

extension LedgerStore {
    /// UDIs from the device projection, optionally of one owner, in UDI order.
    public func deviceUDIs(owner: String?, limit: Int, offset: Int) throws -> [String] {
        try writer.read { db in
            if let owner {
                return try String.fetchAll(db, sql: "SELECT udi FROM devices WHERE owner = ? ORDER BY udi LIMIT ? OFFSET ?",
                                           arguments: [owner, limit, offset])
            }
            return try String.fetchAll(db, sql: "SELECT udi FROM devices ORDER BY udi LIMIT ? OFFSET ?", arguments: [limit, offset])
        }
    }
}
