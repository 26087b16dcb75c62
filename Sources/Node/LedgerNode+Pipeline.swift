import Crypto
import Foundation
import Synchronization
import Logging
public import LedgerCore
import Contracts
import LedgerStore
import Ordering

extension LedgerNode {
    // MARK: Admission

    /// Admits a transaction for ordering and returns its id at once.
    ///
    /// Checks, in order: size, encoding, network, creator (registered, organisation active, not
    /// revoked, certificate valid now), timestamp skew, signature, replay, and the contract's
    /// stateless preflight. Every refusal throws a ``LedgerError`` with its code, is counted, and
    /// is written to the node's audit table; nothing is ordered. Safe to call concurrently.
    @discardableResult
    public func submit(_ bytes: [UInt8]) throws(LedgerError) -> Hash256 {
        do {
            return try admit(bytes)
        } catch {
            refuse(error, bytes: bytes)
            throw error
        }
    }

    private func admit(_ bytes: [UInt8]) throws(LedgerError) -> Hash256 {
        if let divergence { throw LedgerError(.diverged, "this node stopped at height \(divergence.height) (why: GET /v1/node, signed by a member)") }
        let pendingCount = chain.withLock { $0.pending.count }
        guard pendingCount < Self.maxPending else {
            throw LedgerError(.overloaded, "\(pendingCount) transactions are waiting to be ordered; retry later")
        }
        let (envelope, payload, member) = try checkSigned(bytes)
        guard let contract = executor.contract(named: payload.contract) else {
            throw LedgerError(.unknownAction, "no contract named \(payload.contract)")
        }
        try contract.preflight(payload, creator: member)
        let id = envelope.id
        // Claim the id before looking at the database: the committer clears a pending id only after
        // the block holding it is stored, so a resubmission is caught by one check or the other.
        let claimed = chain.withLock { state -> Bool in
            guard state.pending[id] == nil else { return false }
            state.pending[id] = Admitted(time: Date().timeIntervalSince1970, signature: envelope.signature)
            return true
        }
        guard claimed else { throw LedgerError(.duplicateTransaction, "transaction \(id.hex.prefix(16))… is already pending") }
        let known: Bool
        do { known = try store.containsTransaction(id) } catch {
            _ = chain.withLock { $0.pending.removeValue(forKey: id) }
            throw LedgerError(.storage, "replay check failed")
        }
        if known {
            _ = chain.withLock { $0.pending.removeValue(forKey: id) }
            throw LedgerError(.duplicateTransaction, "transaction \(id.hex.prefix(16))… is already on the ledger")
        }
        let prepared = PreparedTransaction(envelope: envelope, bytes: bytes, payload: payload, signatureVerified: true)
        if let replication { replication.submissions.add(prepared) } else { orderer.submit(prepared) }
        return id
    }

    /// The checks every signed envelope passes before anything acts on it: size, encoding,
    /// network, creator (registered, organisation active, not revoked, certificate valid now),
    /// timestamp skew against this node's clock, signature.
    func checkSigned(_ bytes: [UInt8]) throws(LedgerError) -> (Envelope, TransactionPayload, Member) {
        let config = chain.withLock { $0.config }
        guard bytes.count <= Int(config.maxTransactionBytes) else {
            throw LedgerError(.payloadTooLarge, "transaction is \(bytes.count) bytes; the limit is \(config.maxTransactionBytes)")
        }
        let envelope = try Envelope(decoding: bytes)
        let payload = try envelope.payload()
        guard payload.network == network else {
            throw LedgerError(.wrongNetwork, "transaction is for network \(payload.network.hex.prefix(16))…, this node serves \(network.hex.prefix(16))…")
        }
        guard let cached = chain.withLock({ $0.members[payload.creator] }) else {
            throw LedgerError(.unknownMember, "creator certificate \(payload.creator.hex.prefix(16))… is not a registered member of this network")
        }
        let member = cached.member
        guard cached.organizationActive else {
            throw LedgerError(.unknownOrganization, "organisation \(member.organization) is not an active member")
        }
        if member.revokedAt != nil { throw LedgerError(.certificateRevoked, "creator certificate has been revoked") }
        let now = Clock.nowMilliseconds()
        guard member.certificate.notBefore <= now, now <= member.certificate.notAfter else {
            throw LedgerError(.certificateExpired, "creator certificate is not valid now")
        }
        let (difference, overflow) = payload.timestamp.subtractingReportingOverflow(now)
        guard !overflow, difference.magnitude <= config.clockSkewMilliseconds else {
            throw LedgerError(.timestampSkew, "transaction time is more than \(config.clockSkewMilliseconds / 1000) s from this node's clock; check the client's clock")
        }
        guard SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: cached.key) else {
            throw LedgerError(.badSignature, "signature does not verify against the creator's certificate")
        }
        return (envelope, payload, member)
    }

    /// Audits a submission refused before it reached admission (the HTTP layer: a body too large
    /// or not an envelope), exactly like admission's own refusals.
    public func recordRefusal(_ error: LedgerError, bytes: [UInt8]) {
        refuse(error, bytes: bytes)
    }

    func refuse(_ error: LedgerError, bytes: [UInt8]) {
        metrics.refused(code: error.code.rawValue)
        let envelope = try? Envelope(decoding: bytes)
        // The creator a payload names is recorded only when its signature is that member's:
        // anyone can name anyone, and the audit must not blame a member for a forgery.
        var creator: Hash256?
        if error.code != .badSignature, let envelope, let claimed = (try? envelope.payload())?.creator,
           let key = chain.withLock({ $0.members[claimed]?.key }),
           SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key) {
            creator = claimed
        }
        let refusal = Refusal(time: Clock.nowMilliseconds(), transactionID: envelope?.id,
                              creator: creator, code: error.code, message: error.message)
        let schedule = chain.withLock { state -> Bool in
            if state.refusals.count < Self.maxBufferedRefusals { state.refusals.append(refusal) } else { state.refusalsDropped += 1 }
            defer { state.refusalFlushScheduled = true }
            return !state.refusalFlushScheduled
        }
        logger.debug("refused submission", metadata: ["code": "\(error.code)"])
        if schedule {
            // Refusals normally ride along with the next block; when the ledger is idle they are
            // flushed on their own shortly after.
            Task {
                try? await Task.sleep(for: .milliseconds(500))
                do { try self.store.record(refusals: self.takeRefusals()) } catch {
                    self.logger.error("cannot record refusals", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Refusals waiting to be written to the audit table (they ride along with the next block).
    /// Refusals held in memory between flushes; past it a flood is recorded as one summary row.
    static let maxBufferedRefusals = 10_000

    func takeRefusals() -> [Refusal] {
        chain.withLock { state in
            defer {
                state.refusals = []
                state.refusalsDropped = 0
                state.refusalFlushScheduled = false
            }
            guard state.refusalsDropped > 0 else { return state.refusals }
            // A flood is still on the audit trail: as a count, not silently lost.
            return state.refusals + [Refusal(time: Clock.nowMilliseconds(), transactionID: nil, creator: nil, code: .overloaded,
                                             message: "\(state.refusalsDropped) further refusals in this interval were not recorded one by one (all are counted in /metrics)")]
        }
    }

    // MARK: Ordering → execution → commit

    /// Consumes ordered batches until the orderer finishes. Returns after the last block commits.
    /// Throws if a block cannot be committed: the node must stop rather than diverge.
    public func run() async throws {
        if let replication {
            try await runReplicated(replication)
        } else {
            for await batch in orderer.batches {
                try commitBlock(batch)
            }
        }
        try store.record(refusals: takeRefusals())
        logger.info("node stopped", metadata: ["height": "\(tip.height)"])
    }

    /// Stops admitting, cuts what is pending, and lets ``run()`` finish.
    public func shutdown() {
        orderer.finish()
        if let replication {
            replication.stopping.withLock { $0 = true }
            replication.committed.close()
            replication.stop.finish()
        }
    }

    /// Follows the log, campaigns for leadership and cross-checks checkpoints until ``shutdown()``.
    /// A storage failure stops the node. A divergence halts it: it stops ordering and following, and
    /// until shut down answers only status and metrics, saying why (it must not serve a state the
    /// network does not share, and an operator must be able to see why it stopped).
    func runReplicated(_ replication: Replication) async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.follow(replication) }
                group.addTask { try await self.lead(replication) }
                group.addTask { try await self.crossCheck(replication) }
                group.addTask { try await self.publishCheckpoints(replication) }
                group.addTask { for await _ in replication.stopped {} }
                defer { group.cancelAll() }
                do {
                    try await group.next()
                } catch where replication.stopping.withLock({ $0 }) {
                    // Shutting down: a loop that noticed first is not a failure.
                }
            }
        } catch where divergence != nil {
            // Tell the others what this node computed (bounded: etcd may be what is failing).
            if let own = replication.checkpoints.own.withLock({ $0 }) {
                _ = try? await withTimeout(.seconds(5)) { try await replication.log.publish(own) }
            }
            _ = await replication.committed.wait(until: .max)
        }
    }

    func commitBlock(_ batch: [PreparedTransaction]) throws {
        try commit(try seal(batch, epoch: 0))
    }

    /// A block built here or received from the leader, executed on this node and ready to commit.
    struct ExecutedBlock {
        var transactions: [PreparedTransaction]
        var assembled: AssembledBlock
        var headerBytes: [UInt8]
        var signature: [UInt8]
        var started: ContinuousClock.Instant

        var header: BlockHeader { assembled.header }
    }

    /// The time of a new block: this node's clock (or `floor`, if later), but no later than half
    /// the skew window after the median time of the batch's signed transactions, and never before
    /// the previous block.
    ///
    /// Block time is the sealing node's word (followers only check that it does not go back), and
    /// every transaction is checked against it. With the clock alone, a leader whose clock was
    /// minutes ahead put block time minutes ahead, and every transaction acknowledged after it was
    /// refused as skewed until real time caught up. The transactions' times (each checked at
    /// admission against the clock of the node that took it) bound that: a leader's fast clock can
    /// no longer refuse what every other clock accepts. They only ever hold block time back, never
    /// push it forward (a future time in one signed transaction must not move the chain's clock
    /// for good), and a minority of odd times cannot move the median. A leader's `floor` (the block
    /// it took over at plus its monotonic time since) keeps block time moving when its wall clock
    /// is behind; it is bounded the same way, so a chain that is ahead still waits for real time.
    /// With a right clock nothing changes.
    ///
    /// A batch without a verified signed time (only envelopes that do not decode, or creators
    /// registered in the same block) gives no evidence of the time: block time stands still.
    static func blockTime(now: Int64, floor: Int64 = .min, previous: Int64, batch: [PreparedTransaction], skew: UInt64) -> Int64 {
        guard let latest = latestBlockTime(batch: batch, skew: skew) else { return previous }
        return max(min(max(now, floor), latest), previous)
    }

    /// The latest time a block of `batch` may carry (unless the previous block's is later): half the
    /// skew window after the median time of its transactions with verified signatures; nil when it
    /// has none (or the sum overflows). Followers and `medledger verify` refuse a block above
    /// ``latestBlockTime(previous:batch:skew:)``: it depends only on the block and committed state,
    /// so a leader's clock cannot move the chain's clock ahead of the signed times.
    static func latestBlockTime(batch: [PreparedTransaction], skew: UInt64) -> Int64? {
        let times = batch.compactMap { $0.signatureVerified ? $0.payload?.timestamp : nil }.sorted()
        guard !times.isEmpty else { return nil }
        let (latest, overflow) = times[times.count / 2].addingReportingOverflow(Int64(clamping: skew / 2))
        return overflow ? nil : latest
    }

    /// The latest time a block of `batch` after a block of time `previous` may carry.
    static func latestBlockTime(previous: Int64, batch: [PreparedTransaction], skew: UInt64) -> Int64 {
        max(latestBlockTime(batch: batch, skew: skew) ?? previous, previous)
    }

    /// Executes `batch` as the next block on committed state and signs its header as proposer.
    /// `clockFloor`: a time this node's clock is taken to be at least (a leader's running count).
    /// `parent`: a block executed here and not yet committed (or just committed), to build on; the
    /// block under it must be committed.
    func seal(_ batch: [PreparedTransaction], epoch: UInt64, clockFloor: Int64 = .min, on parent: ExecutedBlock? = nil) throws -> ExecutedBlock {
        let (tip, tipFrontier, skew) = chain.withLock { ($0.tip, $0.frontier, $0.config.clockSkewMilliseconds) }
        let (previous, frontier) = parent.map { ($0.header, $0.assembled.frontier) } ?? (tip, tipFrontier)
        let blockTime = Self.blockTime(now: Clock.nowMilliseconds(), floor: clockFloor, previous: previous.timestamp, batch: batch, skew: skew)
        let started = ContinuousClock.now
        let assembled = try execute(batch, previous: previous, frontier: frontier, blockTime: blockTime, proposer: identity.fingerprint,
                                    epoch: epoch, pending: parent)
        let headerBytes = assembled.header.encoded
        return ExecutedBlock(transactions: batch, assembled: assembled, headerBytes: headerBytes, signature: identity.sign(headerBytes),
                             started: started)
    }

    /// Executes `batch` as the block after `previous` on committed state (plus the writes of
    /// `pending`, an executed block not yet committed): the one execution path of the sealing
    /// leader and of a follower checking the leader's block.
    func execute(_ batch: [PreparedTransaction], previous: BlockHeader, frontier: MerkleFrontier, blockTime: Int64,
                 proposer: Hash256, epoch: UInt64, pending: ExecutedBlock? = nil) throws -> AssembledBlock {
        // Research answers are checked against exact aggregates evaluated here, before execution,
        // while the device table still describes the previous block.
        try prepareResearch(batch, height: previous.height + 1)
        return try store.withView { committed in
            var view = committed
            if let pending { view = PendingBlockView(base: committed, block: pending) }
            return try BlockAssembler.assemble(batch, network: network, previous: previous, blockTime: blockTime,
                                               proposer: proposer, epoch: epoch, frontier: frontier, base: view, executor: executor)
        }
    }

    /// Whether `writes` change what this node caches from state: members, organisations, configuration.
    static func changesCaches(_ writes: WriteSet) -> Bool {
        writes.entries.keys.contains { $0.hasPrefix("mem/") || $0.hasPrefix("org/") || $0 == StateKey.config }
    }

    /// Commits an executed block (one SQLite transaction, with this node's signed checkpoint of
    /// it), then updates the in-memory chain and wakes waiters and subscribers.
    func commit(_ block: ExecutedBlock) throws {
        let (assembled, batch) = (block.assembled, block.transactions)
        let header = assembled.header
        let headerBytes = block.headerBytes
        let blockHash = Hash256.of(headerBytes)
        let body = Checkpoint.body(height: header.height, blockHash: blockHash, stateRoot: header.stateRoot,
                                   logSize: header.logSize, logRoot: header.logRoot)
        let checkpoint = Checkpoint(height: header.height, blockHash: blockHash, stateRoot: header.stateRoot, logSize: header.logSize,
                                    logRoot: header.logRoot, signer: identity.fingerprint, signature: identity.sign(body))
        let previousSize = header.logSize - UInt64(batch.count)
        let commitBatch = Self.batch(for: assembled, transactions: batch, firstSequence: previousSize,
                                     signature: block.signature, checkpoint: checkpoint, refusals: takeRefusals())
        let started = block.started
        let executed = ContinuousClock.now
        do {
            try store.commit(commitBatch)
            replication?.checkpoints.own.withLock {
                $0 = PublishedCheckpoint(signer: identity.fingerprint, body: body, signature: checkpoint.signature)
            }
        } catch {
            logger.critical("block commit failed; stopping", metadata: ["height": "\(header.height)", "error": "\(error)"])
            throw error
        }
        applyToDeviceTable(assembled.execution.writes, height: header.height, time: header.timestamp)
        settleResearch(assembled.execution.writes)
        shredErased(assembled.execution.writes)
        let reloaded = Self.changesCaches(assembled.execution.writes) ? try Self.loadMembership(store) : nil
        let now = Date().timeIntervalSince1970
        var latencies: [Double] = []
        var rejectedCodes: [String] = []
        let pendingCount = chain.withLock { state -> Int in
            state.tip = header
            state.frontier = assembled.frontier
            if let (config, members, _) = reloaded {
                state.config = config
                state.members = members
            }
            for (transaction, refusal) in zip(batch, assembled.execution.refusals) {
                if let admitted = state.pending.removeValue(forKey: transaction.id) { latencies.append(now - admitted.time) }
                if let refusal {
                    rejectedCodes.append(refusal.code.rawValue)
                    state.rejectionMessages[transaction.id] = refusal.message
                    state.rejectionOrder.append(transaction.id)
                }
            }
            if state.rejectionOrder.count > 10_000 {
                for id in state.rejectionOrder.prefix(1000) { state.rejectionMessages.removeValue(forKey: id) }
                state.rejectionOrder.removeFirst(1000)
            }
            return state.pending.count
        }
        if let (config, members, _) = reloaded {
            orderer.setBatchSize(Int(config.batchSize))
            if members[identity.fingerprint]?.member.revokedAt != nil {
                logger.critical("this node's certificate was revoked; it stops sealing blocks", metadata: ["height": "\(header.height)"])
                throw LedgerError(.certificateRevoked, "this node's certificate was revoked at block \(header.height)")
            }
        }
        metrics.blockCommitted(height: header.height, committed: batch.count - rejectedCodes.count, rejectedCodes: rejectedCodes,
                               latencies: latencies, pending: pendingCount)

        let event = Self.event(for: StoredBlock(header: header, headerBytes: headerBytes, signature: commitBatch.signature,
                                                transactions: commitBatch.transactions))
        var wake: [(CheckedContinuation<TransactionStatus, Never>, TransactionStatus)] = []
        let subscribers = listeners.withLock { state -> [BlockSubscription] in
            for (transaction, refusal) in zip(commitBatch.transactions, assembled.execution.refusals) {
                guard let waiters = state.waiters.removeValue(forKey: transaction.id) else { continue }
                let status: TransactionStatus = refusal.map {
                    .rejected(height: transaction.height, index: transaction.index, sequence: transaction.sequence, code: $0.code, message: $0.message)
                } ?? .committed(height: transaction.height, index: transaction.index, sequence: transaction.sequence)
                for waiter in waiters { wake.append((waiter.continuation, status)) }
            }
            return Array(state.subscribers.values)
        }
        for (continuation, status) in wake { continuation.resume(returning: status) }
        for subscriber in subscribers { subscriber.deliver(event) }
        let finished = ContinuousClock.now
        logger.debug("block committed", metadata: [
            "height": "\(header.height)", "transactions": "\(batch.count)",
            "execute_ms": "\((executed - started).milliseconds)", "commit_ms": "\((finished - executed).milliseconds)",
        ])
    }
}

/// Committed state with an executed, not yet committed block on top: its writes, and its
/// transactions as already on the ledger. Consistent whether or not the block is committed
/// meanwhile (then both layers say the same).
struct PendingBlockView: LedgerView {
    let base: any LedgerView
    let writes: WriteSet
    let transactions: Set<Hash256>

    init(base: any LedgerView, block: LedgerNode.ExecutedBlock) {
        self.base = base
        writes = block.assembled.execution.writes
        transactions = Set(block.transactions.map(\.id))
    }

    func value(forKey key: String) throws(LedgerError) -> [UInt8]? {
        if let pending = writes.lookup(key) { return pending }
        return try base.value(forKey: key)
    }

    func containsTransaction(_ id: Hash256) throws(LedgerError) -> Bool {
        if transactions.contains(id) { return true }
        return try base.containsTransaction(id)
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
