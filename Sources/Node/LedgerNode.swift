import Crypto
import Foundation
import Synchronization
public import Logging
public import LedgerCore
public import Contracts
public import LedgerStore
public import Ordering
import Research

/// A member's key, parsed once.
struct CachedMember: Sendable {
    var member: Member
    var key: P256.Signing.PublicKey
    var organizationActive: Bool
    /// The kind of the member's organisation (for API access decisions).
    var organizationKind: OrganizationKind?
}

/// One ledger node: admission, ordering (solo), execution, atomic commit, status, events.
///
/// Pipeline: ``submit(_:)`` checks a transaction and hands it to the ``Orderer``; ``run()``
/// consumes ordered batches, executes each as the next block, seals it with the node's key and
/// commits it (one SQLite transaction), then wakes waiters and event subscribers.
public final class LedgerNode: Sendable {
    public let store: LedgerStore
    public let identity: SigningIdentity
    public let network: Hash256
    public let networkName: String
    public let metrics = NodeMetrics()
    let orderer: SoloOrderer
    /// Set when the node orders through a replicated log (``OrderingMode/replicated(_:)``).
    let replication: Replication?
    let executor: BlockExecutor
    /// Noise secrets and exact aggregates for checking research answers (see ``NodeResearchOracle``).
    public let researchOracle: NodeResearchOracle
    /// This node's off-chain patient records and their vault keys (nil: it keeps none).
    public let records: RecordStore?
    /// This node's organisation (from its certificate): the holder of the records in ``records``.
    public let organization: String
    let logger: Logger

    struct Chain {
        var tip: BlockHeader
        var frontier: MerkleFrontier
        var config: NetworkConfig
        var members: [Hash256: CachedMember]
        /// Admitted, not yet committed, by id.
        var pending: [Hash256: Admitted] = [:]
        var refusals: [Refusal] = []
        var refusalFlushScheduled = false
        var refusalsDropped = 0
        /// Recent execution refusal messages, for status answers (the ledger keeps only the code).
        var rejectionMessages: [Hash256: String] = [:]
        var rejectionOrder: [Hash256] = []
    }

    /// A transaction this node admitted: when, and the signature it verified then.
    struct Admitted {
        /// Seconds since 1970 (monotonic-enough wall clock), for the submit → commit latency.
        var time: Double
        /// The envelope signature admission verified against the creator's key. An envelope with
        /// this id (the payload's hash, so the same creator) and these signature bytes is valid
        /// without verifying it again when it comes back in a block (``LedgerNode/prepared(_:)``).
        var signature: [UInt8]
    }

    struct Waiter {
        var token: Int
        var continuation: CheckedContinuation<TransactionStatus, Never>
    }

    struct Listeners {
        var nextToken = 0
        var waiters: [Hash256: [Waiter]] = [:]
        var subscribers: [Int: BlockSubscription] = [:]
    }

    let chain: Mutex<Chain>
    let listeners = Mutex(Listeners())
    /// Event streams reading old blocks back from the store take turns (``BlockSubscription``).
    let catchUpGate = TurnGate(permits: 1)
    /// The committed device state in columns for research queries; built on the first query.
    let deviceTable = Mutex<DeviceTable?>(nil)
    /// Research work in this process: one charge per ask and at most one noise draw per question.
    struct ResearchState {
        /// Asks being charged.
        var asks: Set<Hash256> = []
        /// Questions whose noise is being drawn.
        var answering: Set<Hash256> = []
        /// Question → the `research.answer` submitted for it, until that transaction is final.
        var submitted: [Hash256: Hash256] = [:]
        /// Questions whose one answer the ledger refused: never drawn again (a second draw would
        /// put a second noisy value on the ledger for one payment).
        var abandoned: [Hash256: String] = [:]
    }
    let research = Mutex(ResearchState())
    /// Set once this node found that it disagrees with the network (see ``divergence``).
    let halted = Mutex<Divergence?>(nil)

    /// Most admitted-but-uncommitted transactions; beyond it submissions get `overloaded`.
    public static let maxPending = 200_000

    /// Opens the node in a node directory (`medledger init`, or `medledger network join`),
    /// committing the genesis block on first start and checking it on every later start. It reads
    /// the network's public files (`network.json`, `genesis.block`) and only its own organisation's
    /// directory (`orgs/<org>/`): by default the node that sealed genesis, else the first founding
    /// node whose key is present.
    public convenience init(directory: String, identity name: String? = nil, databasePath: String? = nil, ordering: OrderingMode = .solo,
                            maxRecordBytes: Int = RecordStore.defaultMaxRecordBytes, logger: Logger) throws {
        let definition = try NetworkDefinition.load(directory: directory)
        let identity = try name.map { name throws(LedgerError) in try definition.identity(named: name, directory: directory) }
            ?? definition.defaultNode(directory: directory)
        let genesis = try NetworkDefinition.loadGenesis(directory: directory)
        guard genesis.header.hash == definition.networkID else {
            throw LedgerError(.invalidConfiguration, "\(directory)/\(NetworkDefinition.genesisFileName) is not the genesis of network \(definition.networkID.hex.prefix(16))… named in \(NetworkDefinition.fileName)")
        }
        try SecureFile.restrictDirectory(directory)
        let store = try LedgerStore(path: databasePath ?? directory + "/" + NetworkDefinition.databaseFileName)
        // Beside its database: two nodes sharing a directory (tests) keep apart.
        let records = try RecordStore(path: databasePath.map { $0 + ".records" } ?? directory + "/records", maxRecordBytes: maxRecordBytes)
        try self.init(store: store, genesis: genesis, identity: identity, ordering: ordering, records: records, logger: logger)
    }

    public init(store: LedgerStore, genesis: Block, identity: SigningIdentity, ordering: OrderingMode = .solo, records: RecordStore? = nil,
                logger: Logger) throws {
        self.store = store
        self.identity = identity
        self.records = records
        self.organization = (try? MemberCertificate(der: identity.certificate.derBytes, root: nil, organization: nil))?.organization ?? ""
        self.logger = logger
        self.network = genesis.header.hash
        let oracle = NodeResearchOracle(network: genesis.header.hash)
        self.researchOracle = oracle
        self.executor = BlockExecutor(research: ResearchContract(oracle: oracle))
        if let stored = try store.block(at: 0) {
            guard stored.header.hash == genesis.header.hash else {
                throw LedgerError(.invalidConfiguration, "the database holds a different network (genesis \(stored.header.hash.hex.prefix(16))…, expected \(genesis.header.hash.hex.prefix(16))…)")
            }
        } else {
            try Self.commitGenesis(genesis, store: store)
        }
        guard let tip = try store.tip() else { throw LedgerError(.storage, "no blocks after genesis commit") }
        let frontier = try store.frontier(size: tip.logSize)
        let (config, members, name) = try Self.loadMembership(store)
        // A solo node seals every block: it must be a node now. A replicated node may be one the
        // network admits later (its database starts at genesis); it follows, and campaigns only
        // once its chain registers it (``isActiveNode``).
        let registered = members[identity.fingerprint].map { $0.member.role == .node && $0.member.revokedAt == nil } ?? false
        if case .solo = ordering, !registered {
            throw LedgerError(.unknownMember, "identity \(identity.fingerprint.hex.prefix(16))… is not a registered, unrevoked node of this network")
        }
        if let member = members[identity.fingerprint], member.member.role != .node || member.member.revokedAt != nil {
            throw LedgerError(.unknownMember, "identity \(identity.fingerprint.hex.prefix(16))… is a \(member.member.role.rawValue) member\(member.member.revokedAt == nil ? "" : ", revoked,") not a node")
        }
        self.networkName = name
        chain = Mutex(Chain(tip: tip, frontier: frontier, config: config, members: members))
        orderer = SoloOrderer(batchSize: Int(config.batchSize), batchTimeout: .milliseconds(Int(config.batchTimeoutMilliseconds)))
        switch ordering {
        case .solo:
            replication = nil
        case .replicated(let log):
            replication = Replication(log: log, submissions: SubmissionQueue(log: log, node: identity.fingerprint, logger: logger),
                                      height: tip.height)
        }
        metrics.blockCommitted(height: tip.height, committed: 0, rejectedCodes: [], latencies: [], pending: 0)
        metrics.certificate(notAfter: Double(certificateNotAfter))
        loadNoiseSecret()
        // The start-up sweep is this hour's: the first upload must not start another one at once
        // (a fresh-clone CI run saw that late sweep race a test's re-upload of an aged blob).
        _ = records?.claimSweep(now: Date())
        sweepRecords()
        // A submission the log could not take releases its claim, so that the client may resubmit it.
        replication?.submissions.onRelease { [weak self] ids in
            self?.chain.withLock { state in for id in ids { state.pending.removeValue(forKey: id) } }
        }
        logger.info("node opened", metadata: ["height": "\(tip.height)", "network": "\(network.hex.prefix(16))", "log_size": "\(tip.logSize)"])
    }

    /// Verifies the genesis block by executing it again, then commits it.
    static func commitGenesis(_ genesis: Block, store: LedgerStore) throws {
        let (prepared, assembled) = try verifiedGenesis(genesis)
        try store.commit(Self.batch(for: assembled, transactions: prepared, firstSequence: 0, signature: genesis.signature,
                                    checkpoint: nil, refusals: []))
    }

    /// Executes the genesis block again and insists that it matches its header, commits every
    /// transaction, and is sealed by a node it registers (docs/formats.md §8.4). Also how an offline
    /// proof verifier learns the founding members from nothing but the network id.
    static func verifiedGenesis(_ genesis: Block) throws(LedgerError) -> ([PreparedTransaction], AssembledBlock) {
        let prepared = genesis.envelopes.map { PreparedTransaction(bytes: $0) }
        let assembled = try BlockAssembler.assemble(prepared, network: .zero, previous: nil, blockTime: genesis.header.timestamp,
                                                proposer: genesis.header.proposer, frontier: MerkleFrontier(),
                                                base: MemoryLedger(), executor: BlockExecutor())
        guard assembled.header == genesis.header, assembled.execution.results.allSatisfy(\.isCommitted) else {
            throw LedgerError(.verificationFailed, "genesis block does not match its own execution")
        }
        guard let proposerBytes = assembled.execution.writes.lookup(StateKey.member(genesis.header.proposer)), let proposerBytes,
              let proposer = try? Member(decoding: proposerBytes), proposer.role == .node,
              let key = try? P256.Signing.PublicKey(rawRepresentation: proposer.certificate.publicKey),
              SignatureCheck.isValid(signature: genesis.signature, message: genesis.header.encoded, publicKey: key)
        else {
            throw LedgerError(.badSignature, "genesis block is not sealed by a node it registers")
        }
        return (prepared, assembled)
    }

    static func batch(for assembled: AssembledBlock, transactions prepared: [PreparedTransaction], firstSequence: UInt64, signature: [UInt8],
                      checkpoint: Checkpoint?, refusals: [Refusal]) -> CommitBatch {
        var transactions: [StoredTransaction] = []
        transactions.reserveCapacity(prepared.count)
        for (index, (leaf, transaction)) in zip(assembled.leaves, prepared).enumerated() {
            let payload = transaction.payload
            transactions.append(StoredTransaction(
                sequence: firstSequence + UInt64(index), id: leaf.transactionID, height: leaf.height, index: leaf.index,
                envelope: transaction.bytes, result: leaf.result, creator: payload?.creator ?? .zero, contract: payload?.contract ?? "",
                action: payload?.action ?? "", timestamp: payload?.timestamp ?? 0
            ))
        }
        return CommitBatch(header: assembled.header, signature: signature, transactions: transactions,
                           transactionWrites: assembled.execution.transactionWrites, writes: assembled.execution.writes,
                           merkleNodes: assembled.merkleNodes, checkpoint: checkpoint, refusals: refusals)
    }

    /// Configuration, members (with parsed keys) and network name from committed state.
    static func loadMembership(_ store: LedgerStore) throws -> (NetworkConfig, [Hash256: CachedMember], String) {
        guard let configBytes = try store.value(forKey: StateKey.config) else {
            throw LedgerError(.storage, "configuration missing from state")
        }
        let config = try NetworkConfig(decoding: configBytes)
        var active: Set<String> = []
        var kinds: [String: OrganizationKind] = [:]
        for (_, value) in try store.state(prefix: "org/", limit: 100_000) {
            let organization = try Organization(decoding: value)
            if organization.active { active.insert(organization.id) }
            kinds[organization.id] = organization.kind
        }
        var members: [Hash256: CachedMember] = [:]
        for (_, value) in try store.state(prefix: "mem/", limit: 10_000_000) {
            let member = try Member(decoding: value)
            let key = try P256.Signing.PublicKey(rawRepresentation: member.certificate.publicKey)
            members[member.fingerprint] = CachedMember(member: member, key: key, organizationActive: active.contains(member.organization),
                                                    organizationKind: kinds[member.organization])
        }
        let name = try store.value(forKey: StateKey.networkName).flatMap { try StringList(decoding: $0).values.first } ?? ""
        return (config, members, name)
    }

    // MARK: Queries

    public var tip: BlockHeader { chain.withLock { $0.tip } }
    public var config: NetworkConfig { chain.withLock { $0.config } }
    public var pendingCount: Int { chain.withLock { $0.pending.count } }

    public func member(_ fingerprint: Hash256) -> Member? {
        chain.withLock { $0.members[fingerprint]?.member }
    }

    public func status(of id: Hash256) throws -> TransactionStatus {
        let (isPending, message) = chain.withLock { ($0.pending[id] != nil, $0.rejectionMessages[id]) }
        if isPending { return .pending }
        guard let stored = try store.transaction(id: id) else { return .unknown }
        if stored.result.isCommitted {
            return .committed(height: stored.height, index: stored.index, sequence: stored.sequence)
        }
        return .rejected(height: stored.height, index: stored.index, sequence: stored.sequence,
                         code: LedgerError.Code(ledgerStatus: stored.result.status), message: message)
    }

    /// Waits until `id` is committed or rejected, or `timeout` passes (then answers its current status).
    public func waitForCommit(_ id: Hash256, timeout: Duration) async throws -> TransactionStatus {
        let current = try status(of: id)
        // With replicated ordering a transaction submitted at another node is unknown here until
        // its block arrives, so a waiter waits for it too.
        if current.isFinal || (current == .unknown && replication == nil) { return current }
        let token = listeners.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<TransactionStatus, Never>) in
            listeners.withLock { $0.waiters[id, default: []].append(Waiter(token: token, continuation: continuation)) }
            // The block may have committed between the status check and registration.
            if let now = try? status(of: id), now.isFinal, let waiter = removeWaiter(id, token) {
                waiter.continuation.resume(returning: now)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                if let waiter = self.removeWaiter(id, token) {
                    waiter.continuation.resume(returning: (try? self.status(of: id)) ?? .pending)
                }
            }
        }
        return result
    }

    func removeWaiter(_ id: Hash256, _ token: Int) -> Waiter? {
        listeners.withLock { state in
            guard var list = state.waiters[id], let index = list.firstIndex(where: { $0.token == token }) else { return nil }
            let waiter = list.remove(at: index)
            state.waiters[id] = list.isEmpty ? nil : list
            return waiter
        }
    }

    /// Most event subscribers at once, and per client (a member, or one address for callers not yet
    /// identified); beyond them `events` answers `overloaded`.
    public static let maxSubscribers = 256
    public static let maxSubscribersPerClient = 8

    /// Committed blocks from `height` on (stored ones first), then live ones as they commit; from the
    /// next block when `height` is nil. The consumer pulls: one that stops reading holds only a few
    /// buffered events (``BlockSubscription``). Call ``BlockSubscription/close()`` when done.
    public func events(from height: UInt64?, client: String = "") throws(LedgerError) -> BlockSubscription {
        let next = height ?? (tip.height + 1)
        return try listeners.withLock { state throws(LedgerError) -> BlockSubscription in
            guard state.subscribers.count < Self.maxSubscribers else {
                throw LedgerError(.overloaded, "too many event subscribers (\(Self.maxSubscribers)); try again later")
            }
            guard state.subscribers.values.count(where: { $0.client == client }) < Self.maxSubscribersPerClient else {
                throw LedgerError(.overloaded, "this client already has \(Self.maxSubscribersPerClient) event streams open")
            }
            state.nextToken += 1
            let subscription = BlockSubscription(token: state.nextToken, client: client, next: next, node: self)
            state.subscribers[state.nextToken] = subscription
            return subscription
        }
    }

    func unsubscribe(_ subscription: BlockSubscription) {
        _ = listeners.withLock { $0.subscribers.removeValue(forKey: subscription.token) }
    }

    static func event(for block: StoredBlock) -> CommittedBlockEvent {
        CommittedBlockEvent(
            height: block.header.height, hash: Hash256.of(block.headerBytes), timestamp: block.header.timestamp,
            logSize: block.header.logSize, logRoot: block.header.logRoot,
            transactions: block.transactions.map { transaction in
                CommittedBlockEvent.Transaction(
                    id: transaction.id, index: transaction.index, sequence: transaction.sequence,
                    status: transaction.result.isCommitted ? "committed" : "rejected",
                    code: transaction.result.isCommitted ? nil : LedgerError.Code(ledgerStatus: transaction.result.status).rawValue,
                    contract: transaction.contract, action: transaction.action, creator: transaction.creator
                )
            }
        )
    }
}
