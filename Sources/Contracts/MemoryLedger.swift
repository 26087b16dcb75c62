public import LedgerCore

/// Ledger state held in memory: used to build the genesis block, to replay the chain in
/// `medledger verify` without trusting the database, and in unit tests.
public struct MemoryLedger: LedgerView, Sendable {
    public private(set) var state: [String: [UInt8]] = [:]
    public private(set) var transactionIDs: Set<Hash256> = []

    public init() {}

    public func value(forKey key: String) throws(LedgerError) -> [UInt8]? { state[key] }

    public func containsTransaction(_ id: Hash256) throws(LedgerError) -> Bool { transactionIDs.contains(id) }

    public mutating func apply(_ writes: WriteSet, transactionIDs ids: some Sequence<Hash256>) {
        for (key, value) in writes.entries {
            if let value { state[key] = value } else { state.removeValue(forKey: key) }
        }
        transactionIDs.formUnion(ids)
    }

    /// Entries in key (byte) order.
    public var sortedEntries: [(key: String, value: [UInt8])] {
        state.map { ($0.key, $0.value) }.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }
}
