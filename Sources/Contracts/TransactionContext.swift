public import LedgerCore

/// Everything a contract may see and do while executing one transaction.
///
/// Reads see the committed state, then earlier transactions of the same block, then this
/// transaction's own writes. Writes are captured here and only here; the executor decides whether
/// they are kept. There is no clock but ``blockTime`` and no randomness.
public struct TransactionContext {
    public let id: Hash256
    public let payload: TransactionPayload
    /// The creator; `nil` only for the genesis transaction, whose creator is defined by it.
    public let creator: Member?
    public let height: UInt64
    public let blockTime: Int64

    let base: any LedgerView
    let block: WriteSet
    public private(set) var writes = WriteSet()

    init(id: Hash256, payload: TransactionPayload, creator: Member?, height: UInt64, blockTime: Int64, base: any LedgerView, block: WriteSet) {
        self.id = id
        self.payload = payload
        self.creator = creator
        self.height = height
        self.blockTime = blockTime
        self.base = base
        self.block = block
    }

    public func get(_ key: String) throws(LedgerError) -> [UInt8]? {
        if let pending = writes.lookup(key) { return pending }
        if let pending = block.lookup(key) { return pending }
        return try base.value(forKey: key)
    }

    public func get<T: BinaryCodable>(_ type: T.Type, _ key: String) throws(LedgerError) -> T? {
        guard let bytes = try get(key) else { return nil }
        return try T(decoding: bytes)
    }

    public mutating func put(_ key: String, _ value: some BinaryCodable) {
        writes.set(key, value.encoded)
    }

    public mutating func put(_ key: String, bytes: [UInt8]) {
        writes.set(key, bytes)
    }

    public mutating func delete(_ key: String) {
        writes.set(key, nil)
    }

    /// The creator, or a refusal when there is none (only genesis runs without one).
    public func requireCreator() throws(LedgerError) -> Member {
        guard let creator else { throw LedgerError(.unknownMember, "transaction has no registered creator") }
        return creator
    }

    public func require(role allowed: Set<Role>, action: String) throws(LedgerError) -> Member {
        let creator = try requireCreator()
        guard allowed.contains(creator.role) else {
            throw LedgerError(.forbidden, "role \(creator.role.rawValue) may not \(action); allowed: \(allowed.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        return creator
    }

    public func organization(_ id: String) throws(LedgerError) -> Organization? {
        try get(Organization.self, StateKey.organization(id))
    }

    public func config() throws(LedgerError) -> NetworkConfig {
        guard let config = try get(NetworkConfig.self, StateKey.config) else {
            throw LedgerError(.internal, "network configuration missing from state")
        }
        return config
    }
}

/// A deterministic built-in contract.
public protocol Contract: Sendable {
    var name: String { get }
    func execute(_ context: inout TransactionContext) throws(LedgerError)
    /// Checks that need no state (encoding, identifier syntax, required fields, the creator's
    /// role), so admission can refuse a hopeless transaction before it is ordered. Execution
    /// repeats every check; this is only the early answer.
    func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError)
}

extension Contract {
    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {}
}
