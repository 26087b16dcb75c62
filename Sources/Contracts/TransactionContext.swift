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

    let overlay: BlockOverlay
    public private(set) var writes = WriteSet()

    init(id: Hash256, payload: TransactionPayload, creator: Member?, height: UInt64, blockTime: Int64, overlay: BlockOverlay) {
        self.id = id
        self.payload = payload
        self.creator = creator
        self.height = height
        self.blockTime = blockTime
        self.overlay = overlay
    }

    public func get(_ key: String) throws(LedgerError) -> [UInt8]? {
        if let pending = writes.lookup(key) { return pending }
        return try overlay.value(forKey: key)
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
        let found = if writes.lookup(StateKey.config) != nil { try get(NetworkConfig.self, StateKey.config) } else { try overlay.config() }
        guard let config = found else {
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

/// The state a block executes against: committed state (read once per key and cached: it cannot
/// change while the block executes) under the writes of the block's earlier transactions.
/// Owned by one executing block; a reference type so that merging a transaction's writes never
/// copies the block's write set.
final class BlockOverlay {
    let base: any LedgerView
    var writes = WriteSet()
    private var committed: [String: [UInt8]?] = [:]
    private var committedMembers: [Hash256: Member] = [:]
    private var committedConfig: NetworkConfig?

    init(base: any LedgerView) {
        self.base = base
    }

    func value(forKey key: String) throws(LedgerError) -> [UInt8]? {
        if let pending = writes.lookup(key) { return pending }
        if let cached = committed[key] { return cached }
        let value = try base.value(forKey: key)
        committed[key] = .some(value)
        return value
    }

    /// The configuration as of this point in the block, decoded once per block when unchanged
    /// (every transaction's skew check reads it).
    func config() throws(LedgerError) -> NetworkConfig? {
        if let pending = writes.lookup(StateKey.config) { return try pending.map { bytes throws(LedgerError) in try NetworkConfig(decoding: bytes) } }
        if let committedConfig { return committedConfig }
        guard let bytes = try value(forKey: StateKey.config) else { return nil }
        let config = try NetworkConfig(decoding: bytes)
        committedConfig = config
        return config
    }

    /// A member as of this point in the block, decoded once per block when unchanged.
    func member(_ fingerprint: Hash256) throws(LedgerError) -> Member? {
        let key = StateKey.member(fingerprint)
        if let pending = writes.lookup(key) { return try pending.map { bytes throws(LedgerError) in try Member(decoding: bytes) } }
        if let cached = committedMembers[fingerprint] { return cached }
        guard let bytes = try value(forKey: key) else { return nil }
        let member = try Member(decoding: bytes)
        committedMembers[fingerprint] = member
        return member
    }
}
