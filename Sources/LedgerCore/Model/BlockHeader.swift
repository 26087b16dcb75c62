/// A block header. The block hash is SHA-256 of the encoded header; the proposing node signs the
/// same bytes. A header commits to the ordered transactions *and* their execution results (through
/// the Merkle leaves), so a node that executes differently is detected at the first block.
public struct BlockHeader: BinaryCodable, Hashable {
    /// "MLB2" (MLB1 had no epoch)
    public static let magic: [UInt8] = Array("MLB2".utf8)

    public var height: UInt64
    public var previousHash: Hash256
    /// Block time in milliseconds since the Unix epoch, chosen by the proposer; contracts use it as "now".
    public var timestamp: Int64
    public var transactionCount: UInt32
    /// RFC 9162 Merkle root over this block's leaves only.
    public var transactionRoot: Hash256
    /// Size of the global transaction log after this block.
    public var logSize: UInt64
    /// RFC 9162 root of the global transaction log after this block.
    public var logRoot: Hash256
    /// Running commitment to every state change: SHA-256("MLS1" ‖ previous stateRoot ‖ block write-set hash).
    public var stateRoot: Hash256
    /// SHA-256 of the proposing node's certificate.
    public var proposer: Hash256
    /// The proposer's leadership epoch: 0 for a solo node; with etcd ordering, the etcd revision at
    /// which the proposer's leader key was created. Never decreases along the chain, so a deposed
    /// leader's block (an older epoch) is refused even where its signature is valid.
    public var epoch: UInt64

    public init(height: UInt64, previousHash: Hash256, timestamp: Int64, transactionCount: UInt32, transactionRoot: Hash256,
                logSize: UInt64, logRoot: Hash256, stateRoot: Hash256, proposer: Hash256, epoch: UInt64 = 0) {
        self.height = height
        self.previousHash = previousHash
        self.timestamp = timestamp
        self.transactionCount = transactionCount
        self.transactionRoot = transactionRoot
        self.logSize = logSize
        self.logRoot = logRoot
        self.stateRoot = stateRoot
        self.proposer = proposer
        self.epoch = epoch
    }

    public var hash: Hash256 { Hash256.of(encoded) }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Self.magic)
        writer.write(height)
        writer.write(previousHash)
        writer.write(timestamp)
        writer.write(transactionCount)
        writer.write(transactionRoot)
        writer.write(logSize)
        writer.write(logRoot)
        writer.write(stateRoot)
        writer.write(proposer)
        writer.write(epoch)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readRaw(count: 4, "header magic") == Self.magic else {
            throw LedgerError(.malformedEncoding, "block header: expected magic MLB2 (a ledger written before leader epochs must be re-created)")
        }
        height = try reader.readUInt64("header height")
        previousHash = try reader.readHash("header previousHash")
        timestamp = try reader.readInt64("header timestamp")
        transactionCount = try reader.readUInt32("header transactionCount")
        transactionRoot = try reader.readHash("header transactionRoot")
        logSize = try reader.readUInt64("header logSize")
        logRoot = try reader.readHash("header logRoot")
        stateRoot = try reader.readHash("header stateRoot")
        proposer = try reader.readHash("header proposer")
        epoch = try reader.readUInt64("header epoch")
    }

    /// The next state root given this block's write-set hash.
    public static func nextStateRoot(previous: Hash256, blockWriteSetHash: Hash256) -> Hash256 {
        Hash256.of(parts: [Array("MLS1".utf8), previous.bytes, blockWriteSetHash.bytes])
    }
}

/// A sealed block: header bytes, the proposer's signature over them, and the ordered envelopes.
public struct Block: Sendable, Hashable {
    public var header: BlockHeader
    /// Raw 64-byte P-256 signature over the encoded header.
    public var signature: [UInt8]
    public var envelopes: [[UInt8]]

    public init(header: BlockHeader, signature: [UInt8], envelopes: [[UInt8]]) {
        self.header = header
        self.signature = signature
        self.envelopes = envelopes
    }
}

/// The executed outcome of one transaction: its status and a hash of what it wrote.
public struct TransactionResult: Sendable, Hashable {
    /// 0 = committed; otherwise ``LedgerError/Code/ledgerStatus`` of the refusal.
    public var status: UInt16
    public var writeSetHash: Hash256

    public init(status: UInt16, writeSetHash: Hash256) {
        self.status = status
        self.writeSetHash = writeSetHash
    }

    public var isCommitted: Bool { status == 0 }
}

/// The data of one leaf of the global transaction log (before RFC 9162 leaf hashing).
///
/// `u8 1 ‖ u64 height ‖ u32 index ‖ txID(32) ‖ SHA-256(envelope)(32) ‖ u16 status ‖ writeSetHash(32)`
public struct LogLeaf: BinaryCodable, Hashable {
    public var height: UInt64
    public var index: UInt32
    public var transactionID: Hash256
    public var envelopeHash: Hash256
    public var result: TransactionResult

    public init(height: UInt64, index: UInt32, transactionID: Hash256, envelopeHash: Hash256, result: TransactionResult) {
        self.height = height
        self.index = index
        self.transactionID = transactionID
        self.envelopeHash = envelopeHash
        self.result = result
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(UInt8(1))
        writer.write(height)
        writer.write(index)
        writer.write(transactionID)
        writer.write(envelopeHash)
        writer.write(result.status)
        writer.write(result.writeSetHash)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readUInt8("leaf version") == 1 else {
            throw LedgerError(.malformedEncoding, "log leaf: unsupported version")
        }
        height = try reader.readUInt64("leaf height")
        index = try reader.readUInt32("leaf index")
        transactionID = try reader.readHash("leaf transactionID")
        envelopeHash = try reader.readHash("leaf envelopeHash")
        let status = try reader.readUInt16("leaf status")
        result = TransactionResult(status: status, writeSetHash: try reader.readHash("leaf writeSetHash"))
    }

    /// RFC 9162 leaf hash: SHA-256(0x00 ‖ leaf data).
    public var leafHash: Hash256 { MerkleTree.leafHash(encoded) }
}
