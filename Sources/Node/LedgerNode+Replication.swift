import Crypto
import Foundation
import Synchronization
import Logging
public import LedgerCore
import Contracts
import LedgerStore
public import Ordering

/// How a node orders transactions.
public enum OrderingMode: Sendable {
    /// In-process (one machine, one node).
    case solo
    /// Through a replicated log shared by every node of the network (etcd).
    case replicated(any ReplicatedLog)
}

/// The state of a node that orders through a ``ReplicatedLog``.
final class Replication: Sendable {
    let log: any ReplicatedLog
    let submissions: SubmissionQueue
    /// The local committed height, for the leader to wait on its own appended blocks.
    let committed: HeightSignal
    /// Blocks this node sealed and appended, by height: committed without executing them again
    /// when they come back through the log unchanged.
    let sealed = Mutex<[UInt64: (encodedHash: Hash256, block: LedgerNode.ExecutedBlock)]>([:])
    /// The epoch this node currently leads in, if it leads.
    let leading = Mutex<UInt64?>(nil)
    let stopping = Mutex(false)
    let stopped: AsyncStream<Void>
    let stop: AsyncStream<Void>.Continuation
    /// The other nodes' checkpoints, and this node's newest one to publish.
    let checkpoints = CheckpointBook()
    /// The log's height as last asked for a status answer, when, and whether a request is asking now.
    let logHeight = Mutex<(height: UInt64?, at: ContinuousClock.Instant?, asking: Bool)>((nil, nil, false))

    init(log: any ReplicatedLog, submissions: SubmissionQueue, height: UInt64) {
        self.log = log
        self.submissions = submissions
        self.committed = HeightSignal(height: height)
        (stopped, stop) = AsyncStream.makeStream(of: Void.self)
    }
}

/// A disagreement between this node and the network: the first height it could not accept, and why.
public struct Divergence: Sendable, Equatable, Codable {
    public var height: UInt64
    public var reason: String
}

/// A height that only grows, and waiters for it to reach a value.
final class HeightSignal: Sendable {
    private struct State {
        var height: UInt64
        var closed = false
        var nextWaiter = 0
        var waiters: [(height: UInt64, id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    private let state: Mutex<State>

    init(height: UInt64) { state = Mutex(State(height: height)) }

    var height: UInt64 { state.withLock { $0.height } }

    func advance(to height: UInt64) {
        let ready = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.height = max(state.height, height)
            let ready = state.waiters.filter { $0.height <= state.height }.map(\.continuation)
            state.waiters.removeAll { $0.height <= state.height }
            return ready
        }
        for continuation in ready { continuation.resume(returning: true) }
    }

    /// Returns true once the height is at least `height`, false if the signal was closed or the
    /// calling task cancelled first.
    func wait(until height: UInt64) async -> Bool {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool? in
                    if state.height >= height { return true }
                    if state.closed || Task.isCancelled { return false }
                    state.waiters.append((height, id, continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    func close() {
        let waiting = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(returning: false) }
    }
}

extension LedgerNode {
    /// The epoch this node leads in, or nil (always nil for a solo node).
    public var leaderEpoch: UInt64? { replication?.leading.withLock { $0 } }

    /// Waits until a submitted transaction is acknowledged by the ordering service: at once for a
    /// solo node (its orderer is in-process), once the replicated log holds it otherwise.
    public func acknowledgement(of id: Hash256, timeout: Duration = .seconds(30)) async throws(LedgerError) {
        guard let replication else { return }
        do { try await replication.submissions.acknowledgement(of: id, timeout: timeout) } catch {
            throw (error as? LedgerError) ?? LedgerError(.unavailable, "\(error)")
        }
    }

    // MARK: Follower: every block, from the log

    /// Applies every block from the log in order: blocks this node sealed are committed as
    /// executed; others are checked (proposer, signature, epoch, chain) and executed again, and
    /// must produce exactly their header.
    func follow(_ replication: Replication) async throws {
        let blocks = replication.log.blocks(from: tip.height + 1)
        for try await logged in blocks {
            let height = tip.height
            if logged.height <= height {
                // Already committed (this node's own append, delivered again after a re-sync).
                let block = try Block(decoding: logged.encoded)
                guard let stored = try store.block(at: logged.height), stored.header.hash == block.header.hash else {
                    throw divergence("block \(logged.height) in the log differs from the block this node committed")
                }
                continue
            }
            if logged.height > height + 1 {
                // The log trimmed the blocks in between: other nodes serve them, checked against
                // this block (itself checked first: the walk back starts from its previous hash).
                try await catchUp(before: try sealedBlock(logged), replication)
            }
            guard logged.height == tip.height + 1 else {
                throw LedgerError(.storage, "the log skipped from block \(tip.height) to \(logged.height)")
            }
            let encodedHash = Hash256.of(logged.encoded)
            if let own = replication.sealed.withLock({ $0.removeValue(forKey: logged.height) }), own.encodedHash == encodedHash {
                try commit(own.block)
            } else {
                try commit(try accept(logged, replication))
            }
            replication.committed.advance(to: logged.height)
            try judgePeers(replication)
        }
    }

    /// A block from the log, checked and executed. A block that fails a check cannot be skipped
    /// (the log is append-only and the next block chains on it): the node halts, saying why.
    func accept(_ logged: LoggedBlock, _ replication: Replication) throws -> ExecutedBlock {
        do {
            return try receive(try sealedBlock(logged))
        } catch let error as LedgerError where divergence == nil && (error.code == .verificationFailed || error.code == .malformedEncoding) {
            throw divergence("block \(logged.height) in the log cannot be accepted: \(error.message)", height: logged.height)
        }
    }

    /// A block from the log, with what can be checked before executing it: it decodes, its key is
    /// its height, it was written once (an append writes a block key exactly once), its epoch is
    /// below the revision that created its key (the leader key an append compares is created
    /// before any block of its epoch: a sealer cannot pick an epoch that shuts out later leaders),
    /// and a registered node signed its header. A failure halts the node (``divergence``).
    func sealedBlock(_ logged: LoggedBlock) throws -> Block {
        let at = "block \(logged.height) in the log"
        let block: Block
        do { block = try Block(decoding: logged.encoded) } catch {
            throw divergence("\(at) does not decode: \(error.message)", height: logged.height)
        }
        let header = block.header
        guard header.height == logged.height else { throw divergence("\(at) says it is block \(header.height)", height: logged.height) }
        guard !logged.overwritten else { throw divergence("\(at) was written more than once (appends write a block once)", height: logged.height) }
        guard logged.revision == 0 || header.epoch < logged.revision else {
            throw divergence("\(at) claims epoch \(header.epoch), not below the revision \(logged.revision) that wrote it", height: logged.height)
        }
        guard let proposer = chain.withLock({ $0.members[header.proposer] }), proposer.member.role == .node,
              SignatureCheck.isValid(signature: block.signature, message: header.encoded, publicKey: proposer.key)
        else { throw divergence("\(at) is not signed by a registered node", height: logged.height) }
        return block
    }

    /// Whether this node's key is a registered, unrevoked node of an active organisation on its
    /// chain (a node admitted later, or revoked, follows but never campaigns).
    var isActiveNode: Bool {
        chain.withLock { state in
            guard let member = state.members[identity.fingerprint] else { return false }
            return member.member.role == .node && member.member.revokedAt == nil && member.organizationActive
        }
    }

    /// Checks a block sealed by another node and executes it on committed state.
    func receive(_ block: Block) throws -> ExecutedBlock {
        let header = block.header
        let (previous, frontier, proposer) = chain.withLock { ($0.tip, $0.frontier, $0.members[header.proposer]) }
        let at = "block \(header.height) from \(header.proposer.hex.prefix(16))…"
        guard header.previousHash == previous.hash else { throw divergence("\(at) does not extend this node's tip \(previous.height)") }
        guard header.epoch >= previous.epoch else {
            throw LedgerError(.verificationFailed, "\(at) has epoch \(header.epoch), older than \(previous.epoch): a deposed leader's block")
        }
        guard header.timestamp >= previous.timestamp else { throw LedgerError(.verificationFailed, "\(at): block time goes backwards") }
        guard let proposer, proposer.member.role == .node else {
            throw LedgerError(.verificationFailed, "\(at): the proposer is not a registered node")
        }
        if let revokedAt = proposer.member.revokedAt, revokedAt <= header.timestamp {
            throw LedgerError(.verificationFailed, "\(at): the proposer's certificate was revoked")
        }
        let headerBytes = header.encoded
        guard SignatureCheck.isValid(signature: block.signature, message: headerBytes, publicKey: proposer.key) else {
            throw LedgerError(.verificationFailed, "\(at): the header signature does not verify")
        }
        let started = ContinuousClock.now
        let transactions = prepared(block.envelopes)
        let skew = chain.withLock { $0.config.clockSkewMilliseconds }
        let latest = Self.latestBlockTime(previous: previous.timestamp, batch: transactions, skew: skew)
        guard header.timestamp <= latest else {
            throw LedgerError(.verificationFailed, "\(at): block time \(header.timestamp) is more than half the skew window after its transactions' median signed time (at most \(latest))")
        }
        // Within the bound, but ahead of this node's clock: a leader whose organisation signed its
        // own far-dated transactions can move the chain's clock so (the bound cannot tell). Not a
        // divergence (clocks differ between nodes), but the operators must know.
        let ahead = header.timestamp &- Clock.nowMilliseconds()
        if ahead > Int64(clamping: skew) {
            metrics.blockTimeAhead()
            logger.warning("a block's time is ahead of this node's clock by more than the skew window", metadata: [
                "height": "\(header.height)", "ahead_ms": "\(ahead)", "proposer": "\(header.proposer.hex.prefix(16))",
            ])
        }
        let assembled = try execute(transactions, previous: previous, frontier: frontier, blockTime: header.timestamp,
                                    proposer: header.proposer, epoch: header.epoch)
        guard assembled.header == header else {
            // Say what this node computed, signed, so the other nodes can judge who is alone.
            replication?.checkpoints.own.withLock { $0 = publishedCheckpoint(of: assembled.header) }
            throw divergence("\(at): executing it here gives a different header (state root \(assembled.header.stateRoot.hex.prefix(16))…, the proposer's \(header.stateRoot.hex.prefix(16))…)")
        }
        return ExecutedBlock(transactions: transactions, assembled: assembled, headerBytes: headerBytes, signature: block.signature,
                             started: started)
    }

    /// Envelopes from the log, with signatures of known members checked on all cores (the executor
    /// judges the rest). An envelope this node admitted and has not yet committed is not verified
    /// again: admission verified exactly these signature bytes over a payload with this hash
    /// (each node skips its own share, one verification in five on a network of four).
    func prepared(_ envelopes: [[UInt8]]) -> [PreparedTransaction] {
        let (members, pending) = chain.withLock { ($0.members, $0.pending) }
        return ChainVerifier.verifySignatures(envelopes, verified: { id, signature in pending[id]?.signature == signature }) {
            members[$0]?.key
        }
    }

    /// Why this node stopped following the network, if it did: it serves no ledger data after it.
    public var divergence: Divergence? { halted.withLock { $0 } }

    func divergence(_ message: String, height: UInt64? = nil) -> LedgerError {
        halted.withLock { $0 = $0 ?? Divergence(height: height ?? tip.height + 1, reason: message) }
        metrics.diverged()
        logger.critical("this node disagrees with the network; it stops", metadata: ["reason": "\(message)"])
        return LedgerError(.verificationFailed, "divergence: \(message)")
    }

    // MARK: Leader: campaign, cut, seal, append

    /// Campaigns for leadership; while leader, cuts blocks from the submission queue, seals them
    /// with the leader epoch and appends them to the log. Loses nothing when deposed: queue entries
    /// leave the queue only in the atomic write that appends the block holding them.
    func lead(_ replication: Replication) async throws {
        let log = replication.log
        var failures = 0
        var toldNotANode = false
        while !Task.isCancelled {
            guard isActiveNode else {
                // Its blocks would be refused by every node: the network would stop on them.
                if !toldNotANode { logger.notice("this node's key is not an active node member of the network yet; it follows and does not campaign") }
                toldNotANode = true
                try await Task.sleep(for: .seconds(1))
                continue
            }
            let leadership: any Leadership
            do {
                leadership = try await log.campaign(candidate: identity.fingerprint)
                failures = 0
            } catch is CancellationError {
                return
            } catch {
                // etcd unreachable or slow: keep following and try again; never stop the node for it.
                failures += 1
                logger.warning("cannot campaign for leadership; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(min(200 * failures, 2000)))
                continue
            }
            replication.leading.withLock { $0 = leadership.epoch }
            logger.info("elected leader", metadata: ["epoch": "\(leadership.epoch)", "height": "\(tip.height)"])
            metrics.leaderChanged(epoch: leadership.epoch, leading: true)
            do {
                try await serve(leadership, replication)
            } catch is CancellationError {
            } catch {
                logger.warning("leadership ended", metadata: ["epoch": "\(leadership.epoch)", "error": "\(error)"])
            }
            replication.leading.withLock { $0 = nil }
            metrics.leaderChanged(epoch: leadership.epoch, leading: false)
            replication.sealed.withLock { $0.removeAll() }
            await Task { await leadership.resign() }.value
            if Task.isCancelled { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func serve(_ leadership: any Leadership, _ replication: Replication) async throws {
        let log = replication.log
        guard leadership.epoch > tip.epoch else {
            // etcd's revisions went backwards (its data was wiped or restored from an old
            // snapshot): every block of this epoch would be refused. An operator must raise etcd's
            // revision above the chain's epoch (docs/operations.md).
            logger.critical("leader epoch is not above the chain's: etcd's revision went backwards", metadata: [
                "epoch": "\(leadership.epoch)", "chain_epoch": "\(tip.epoch)",
            ])
            try await Task.sleep(for: .seconds(5))
            throw LedgerError(.unavailable, "leader epoch \(leadership.epoch) is not above the chain's epoch \(tip.epoch)")
        }
        // Catch up with every block already in the log before sealing on top of it. The log's
        // `tip` key is only a hint: without progress for 10 s this node gives leadership up
        // rather than hold it while waiting for blocks that do not come.
        if let latest = try await log.latestHeight(), latest > tip.height {
            while tip.height < latest {
                let before = tip.height
                let progressed = try? await withTimeout(.seconds(10)) { await replication.committed.wait(until: before + 1) }
                guard progressed == true else {
                    throw LedgerError(.unavailable, "the log's tip says \(latest), but block \(before + 1) does not arrive")
                }
            }
        }
        let queue = QueueBuffer()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await event in log.queue() { queue.apply(event) }
                throw CancellationError()
            }
            group.addTask {
                await leadership.lost()
                throw LedgerError(.unavailable, "leadership lost (lease expired)")
            }
            group.addTask {
                try await self.cutBlocks(leadership, replication, queue: queue)
            }
            group.addTask {
                try await self.trimLog(leadership, replication)
                // No retention policy: nothing to do while leading.
                await leadership.lost()
            }
            defer { group.cancelAll(); queue.close() }
            try await group.next()
        }
    }

    private func cutBlocks(_ leadership: any Leadership, _ replication: Replication, queue: QueueBuffer) async throws {
        // Block time runs on from the block this leader took over at, by its monotonic clock: a
        // leader whose wall clock is behind would otherwise keep block time still (it never goes
        // back) until every transaction is refused as too new.
        let (takenOver, takenAt) = (tip.timestamp, ContinuousClock.now)
        // The last block this leader appended, until it is committed here: the next one is sealed
        // on top of it (executing on committed state plus its writes) while it travels through the
        // log and is committed, instead of after.
        var parent: ExecutedBlock?
        while leadership.isHeld, !Task.isCancelled {
            // At most one block ahead of committed state: the block under the parent must be committed.
            if let height = parent?.header.height {
                guard await replication.committed.wait(until: height - 1) else { return }
            }
            guard let firstArrival = await queue.waitForEntries() else { return }
            let (batchSize, timeout) = chain.withLock { (Int($0.config.batchSize), Int($0.config.batchTimeoutMilliseconds)) }
            if queue.transactionCount < batchSize {
                try await queue.waitUntilFull(batchSize, deadline: firstArrival + .milliseconds(timeout))
            }
            let entries = queue.take(transactions: batchSize, bytes: Self.maxBlockBytes, entries: replication.log.maxEntriesPerAppend)
            guard !entries.isEmpty else { continue }
            // An entry too large for a block (no node writes one) is consumed without its envelopes:
            // kept, it would fail every leader's append in turn and stop ordering.
            let envelopes = entries.flatMap { $0.size > Self.maxBlockBytes ? [] : $0.envelopes }
            guard let (transactions, onto) = await batch(envelopes, after: parent, committed: replication.committed) else { return }
            parent = onto
            let height = (parent?.header.height ?? tip.height) + 1
            let (seconds, attoseconds) = (ContinuousClock.now - takenAt).components
            let elapsed = seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
            let executed = try seal(transactions, epoch: leadership.epoch, clockFloor: takenOver &+ elapsed, on: parent)
            let block = Block(header: executed.header, signature: executed.signature, envelopes: envelopes)
            let encoded = block.encoded
            replication.sealed.withLock { $0[height] = (Hash256.of(encoded), executed) }
            let outcome = try await replication.log.append(block, encoded: encoded, leadership: leadership,
                                                           consumed: entries.map(\.position))
            guard outcome == .appended else {
                replication.sealed.withLock { _ = $0.removeValue(forKey: height) }
                queue.restore(entries)
                throw LedgerError(.unavailable, "block \(height) was superseded: another leader holds the log")
            }
            parent = executed
        }
    }

    /// The transactions of `envelopes`, their signatures checked against the members of the state
    /// they will execute on, and the block to seal them on: `parent` while it is uncommitted and
    /// ``canSeal(_:onUncommitted:)`` allows, otherwise committed state (once `parent` is committed).
    /// Nil when the node stops while waiting.
    func batch(_ envelopes: [[UInt8]], after parent: ExecutedBlock?,
               committed: HeightSignal) async -> (transactions: [PreparedTransaction], parent: ExecutedBlock?)? {
        let transactions = prepared(envelopes)
        guard let parent else { return (transactions, nil) }
        guard !Self.canSeal(transactions, onUncommitted: parent) else {
            return (transactions, tip.height >= parent.header.height ? nil : parent)
        }
        guard await committed.wait(until: parent.header.height) else { return nil }
        // The parent may have changed the members these signatures were checked against.
        return (prepared(envelopes), nil)
    }

    /// Whether `batch` may be sealed on top of `parent` before `parent` is committed. Not when
    /// `parent` changes membership, organisations, configuration or the noise key (what admission
    /// and sealing read from this node's caches, which change at commit: a block revoking this
    /// node must stop it sealing), nor when `batch` holds research transactions (their answers are
    /// checked against the device table, which describes committed blocks only).
    static func canSeal(_ batch: [PreparedTransaction], onUncommitted parent: ExecutedBlock) -> Bool {
        !batch.contains { $0.payload?.contract == ResearchContract.name }
            && !changesCaches(parent.assembled.execution.writes) && !parent.assembled.execution.writes.entries.keys.contains(StateKey.noiseKey)
    }

    /// Most bytes of envelopes in one block (with etcd's default 1.5 MiB request limit).
    static let maxBlockBytes = 1024 * 1024
}

/// The leader's view of the submission queue: live entries in log order.
final class QueueBuffer: Sendable {
    private struct State {
        var entries: [QueueEntry] = []
        var positions: Set<QueuePosition> = []
        var taken: Set<QueuePosition> = []
        var firstArrival: ContinuousClock.Instant?
        var closed = false
        var waiters: [CheckedContinuation<ContinuousClock.Instant?, Never>] = []
    }

    private let state = Mutex(State())

    var transactionCount: Int { state.withLock { $0.entries.reduce(0) { $0 + $1.envelopes.count } } }

    func apply(_ event: QueueEvent) {
        let wake = state.withLock { state -> [CheckedContinuation<ContinuousClock.Instant?, Never>] in
            switch event {
            case .added(let entry):
                guard !state.taken.contains(entry.position), state.positions.insert(entry.position).inserted else { return [] }
                state.entries.append(entry)
                if state.firstArrival == nil { state.firstArrival = .now }
                defer { state.waiters = [] }
                return state.waiters
            case .removed(let position):
                state.taken.remove(position)
                if state.positions.remove(position) != nil { state.entries.removeAll { $0.position == position } }
                if state.entries.isEmpty { state.firstArrival = nil }
                return []
            }
        }
        let first = state.withLock { $0.firstArrival }
        for waiter in wake { waiter.resume(returning: first) }
    }

    /// Waits until at least one entry is queued; returns when the oldest pending one arrived.
    func waitForEntries() async -> ContinuousClock.Instant? {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> ContinuousClock.Instant?? in
                if state.closed { return .some(nil) }
                if !state.entries.isEmpty { return .some(state.firstArrival ?? .now) }
                state.waiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    func waitUntilFull(_ count: Int, deadline: ContinuousClock.Instant) async throws {
        while ContinuousClock.now < deadline, transactionCount < count {
            try await Task.sleep(for: min(.milliseconds(5), deadline - .now))
        }
    }

    /// Takes whole entries in order, up to about `transactions` envelopes and `bytes` bytes (at least one entry).
    func take(transactions: Int, bytes: Int, entries maxEntries: Int) -> [QueueEntry] {
        state.withLock { state in
            var taken: [QueueEntry] = []
            var count = 0
            var size = 0
            for entry in state.entries {
                guard taken.isEmpty || (taken.count < maxEntries && count + entry.envelopes.count <= transactions && size + entry.size <= bytes)
                else { break }
                taken.append(entry)
                count += entry.envelopes.count
                size += entry.size
            }
            state.entries.removeFirst(taken.count)
            for entry in taken {
                state.positions.remove(entry.position)
                state.taken.insert(entry.position)
            }
            state.firstArrival = state.entries.isEmpty ? nil : .now
            return taken
        }
    }

    /// Puts entries back at the front (their block was not appended).
    func restore(_ entries: [QueueEntry]) {
        state.withLock { state in
            for entry in entries.reversed() where state.taken.remove(entry.position) != nil {
                state.entries.insert(entry, at: 0)
                state.positions.insert(entry.position)
            }
            if !state.entries.isEmpty, state.firstArrival == nil { state.firstArrival = .now }
        }
    }

    func close() {
        let waiting = state.withLock { state -> [CheckedContinuation<ContinuousClock.Instant?, Never>] in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiting { waiter.resume(returning: nil) }
    }
}
