public import LedgerCore
public import Contracts

/// A transaction as committed, with its place in the chain and the log.
public struct StoredTransaction: Sendable, Hashable {
    /// Index in the global Merkle log.
    public var sequence: UInt64
    public var id: Hash256
    public var height: UInt64
    public var index: UInt32
    public var envelope: [UInt8]
    public var result: TransactionResult
    public var creator: Hash256
    public var contract: String
    public var action: String
    public var timestamp: Int64

    public init(sequence: UInt64, id: Hash256, height: UInt64, index: UInt32, envelope: [UInt8], result: TransactionResult,
                creator: Hash256, contract: String, action: String, timestamp: Int64) {
        self.sequence = sequence
        self.id = id
        self.height = height
        self.index = index
        self.envelope = envelope
        self.result = result
        self.creator = creator
        self.contract = contract
        self.action = action
        self.timestamp = timestamp
    }

    public var leaf: LogLeaf {
        LogLeaf(height: height, index: index, transactionID: id, envelopeHash: Hash256.of(envelope), result: result)
    }
}

/// A block as stored: the signed header and its transactions.
public struct StoredBlock: Sendable, Hashable {
    public var header: BlockHeader
    public var headerBytes: [UInt8]
    public var signature: [UInt8]
    public var transactions: [StoredTransaction]

    public init(header: BlockHeader, headerBytes: [UInt8], signature: [UInt8], transactions: [StoredTransaction]) {
        self.header = header
        self.headerBytes = headerBytes
        self.signature = signature
        self.transactions = transactions
    }
}

/// Everything one block commit writes, applied in one SQLite transaction.
public struct CommitBatch: Sendable {
    public var header: BlockHeader
    public var signature: [UInt8]
    public var transactions: [StoredTransaction]
    public var transactionWrites: [WriteSet]
    public var writes: WriteSet
    public var merkleNodes: [(level: Int, index: UInt64, hash: Hash256)]
    public var checkpoint: Checkpoint?
    public var refusals: [Refusal]

    public init(header: BlockHeader, signature: [UInt8], transactions: [StoredTransaction], transactionWrites: [WriteSet],
                writes: WriteSet, merkleNodes: [(level: Int, index: UInt64, hash: Hash256)], checkpoint: Checkpoint?, refusals: [Refusal]) {
        self.header = header
        self.signature = signature
        self.transactions = transactions
        self.transactionWrites = transactionWrites
        self.writes = writes
        self.merkleNodes = merkleNodes
        self.checkpoint = checkpoint
        self.refusals = refusals
    }
}

/// A node's signed statement of what it committed at a height.
///
/// Body: `"MLC1" ‖ u64 height ‖ blockHash ‖ stateRoot ‖ u64 logSize ‖ logRoot`.
public struct Checkpoint: Sendable, Hashable {
    public var height: UInt64
    public var blockHash: Hash256
    public var stateRoot: Hash256
    public var logSize: UInt64
    public var logRoot: Hash256
    public var signer: Hash256
    public var signature: [UInt8]

    public init(height: UInt64, blockHash: Hash256, stateRoot: Hash256, logSize: UInt64, logRoot: Hash256, signer: Hash256, signature: [UInt8]) {
        self.height = height
        self.blockHash = blockHash
        self.stateRoot = stateRoot
        self.logSize = logSize
        self.logRoot = logRoot
        self.signer = signer
        self.signature = signature
    }

    public static func body(height: UInt64, blockHash: Hash256, stateRoot: Hash256, logSize: UInt64, logRoot: Hash256) -> [UInt8] {
        PublishedCheckpoint.Statement(height: height, blockHash: blockHash, stateRoot: stateRoot, logSize: logSize, logRoot: logRoot).body
    }

    public var body: [UInt8] { Self.body(height: height, blockHash: blockHash, stateRoot: stateRoot, logSize: logSize, logRoot: logRoot) }
}

/// A refused submission, kept in the node's local audit table.
public struct Refusal: Sendable, Hashable {
    public var time: Int64
    public var transactionID: Hash256?
    public var creator: Hash256?
    public var code: LedgerError.Code
    public var message: String

    public init(time: Int64, transactionID: Hash256?, creator: Hash256?, code: LedgerError.Code, message: String) {
        self.time = time
        self.transactionID = transactionID
        self.creator = creator
        self.code = code
        self.message = message
    }
}

/// One version of a state key, with the transaction that wrote it.
public struct HistoryEntry: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]?
    public var transaction: StoredTransaction
    public var blockTime: Int64
}
