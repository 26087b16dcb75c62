public import LedgerCore

/// Where a submitted transaction stands.
public enum TransactionStatus: Sendable, Hashable {
    /// Never seen by this node (or refused at admission).
    case unknown
    /// Admitted and waiting to be ordered into a block.
    case pending
    case committed(height: UInt64, index: UInt32, sequence: UInt64)
    /// Ordered, but refused by execution: recorded in the block with this code; wrote nothing.
    case rejected(height: UInt64, index: UInt32, sequence: UInt64, code: LedgerError.Code, message: String?)

    public var isFinal: Bool {
        switch self {
        case .committed, .rejected: true
        case .unknown, .pending: false
        }
    }
}

/// A committed block as seen by event subscribers.
public struct CommittedBlockEvent: Sendable, Codable, Hashable {
    public struct Transaction: Sendable, Codable, Hashable {
        public var id: Hash256
        public var index: UInt32
        public var sequence: UInt64
        public var status: String
        public var code: String?
        public var contract: String
        public var action: String
        public var creator: Hash256
    }

    public var height: UInt64
    public var hash: Hash256
    public var timestamp: Int64
    public var logSize: UInt64
    public var logRoot: Hash256
    public var transactions: [Transaction]

    enum CodingKeys: String, CodingKey {
        case height, hash, timestamp, transactions
        case logSize = "log_size"
        case logRoot = "log_root"
    }
}
