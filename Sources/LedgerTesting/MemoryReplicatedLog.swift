import Synchronization
public import LedgerCore
public import Ordering

/// An in-process ``ReplicatedLog`` with etcd's semantics (one revision counter, leader epochs from
/// it, compare-and-swap appends, atomic queue deletes), for unit tests of the replication logic
/// in one process. Real networks and the fault tests use ``EtcdReplicatedLog`` on real etcd.
public final class MemoryReplicatedLog: ReplicatedLog {
    final class Lease: Leadership {
        let epoch: UInt64
        let held = Mutex(true)
        let waiters = Mutex<[Int: CheckedContinuation<Void, Never>]>([:])
        let nextWaiter = Mutex(0)
        weak let log: MemoryReplicatedLog?

        init(epoch: UInt64, log: MemoryReplicatedLog) {
            self.epoch = epoch
            self.log = log
        }

        var isHeld: Bool { held.withLock { $0 } }

        func lost() async {
            let id = nextWaiter.withLock { $0 += 1; return $0 }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let gone = waiters.withLock { waiters -> Bool in
                        guard isHeld, !Task.isCancelled else { return true }
                        waiters[id] = continuation
                        return false
                    }
                    if gone { continuation.resume() }
                }
            } onCancel: {
                waiters.withLock { $0.removeValue(forKey: id) }?.resume()
            }
        }

        func resign() async { log?.end(self) }

        func expire() {
            held.withLock { $0 = false }
            for waiter in waiters.withLock({ waiters in defer { waiters = [:] }; return waiters.values }) { waiter.resume() }
        }
    }

    struct State {
        var revision: UInt64 = 1
        var blocks: [UInt64: [UInt8]] = [:]
        var blockRevisions: [UInt64: UInt64] = [:]
        var leader: Lease?
        var candidates: [Int: CheckedContinuation<Void, Never>] = [:]
        var queue: [QueuePosition: (revision: UInt64, entry: QueueEntry)] = [:]
        var blockWatchers: [Int: AsyncThrowingStream<LoggedBlock, any Error>.Continuation] = [:]
        var queueWatchers: [Int: AsyncThrowingStream<QueueEvent, any Error>.Continuation] = [:]
        var checkpoints: [Hash256: PublishedCheckpoint] = [:]
        var endpoints: [Hash256: String] = [:]
        var checkpointWatchers: [Int: AsyncThrowingStream<PublishedCheckpoint, any Error>.Continuation] = [:]
        var nextWatcher = 0
    }

    let state = Mutex(State())

    public init() {}

    /// Ends the current leader's lease as if it had expired (its process stopped).
    public func expireLeader() {
        let lease = state.withLock { $0.leader }
        if let lease { end(lease) }
    }

    public var currentEpoch: UInt64? { state.withLock { $0.leader?.epoch } }

    func end(_ lease: Lease) {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.leader === lease else { return [] }
            state.leader = nil
            defer { state.candidates = [:] }
            return Array(state.candidates.values)
        }
        lease.expire()
        for candidate in waiting { candidate.resume() }
    }

    public func campaign(candidate: Hash256) async throws -> any Leadership {
        while true {
            try Task.checkCancellation()
            let lease = state.withLock { state -> Lease? in
                guard state.leader == nil else { return nil }
                state.revision += 1
                let lease = Lease(epoch: state.revision, log: self)
                state.leader = lease
                return lease
            }
            if let lease { return lease }
            let id = state.withLock { $0.nextWatcher += 1; return $0.nextWatcher }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let free = state.withLock { state -> Bool in
                        guard state.leader != nil, !Task.isCancelled else { return true }
                        state.candidates[id] = continuation
                        return false
                    }
                    if free { continuation.resume() }
                }
            } onCancel: {
                state.withLock { $0.candidates.removeValue(forKey: id) }?.resume()
            }
        }
    }

    public func append(_ block: Block, encoded: [UInt8], leadership: any Leadership, consumed: [QueuePosition]) async throws -> AppendOutcome {
        let (blockWatchers, queueWatchers, appended, revision) = state.withLock { state in
            guard let leader = state.leader, leader.epoch == leadership.epoch, state.blocks[block.header.height] == nil else {
                return ([AsyncThrowingStream<LoggedBlock, any Error>.Continuation](), [AsyncThrowingStream<QueueEvent, any Error>.Continuation](), false, UInt64(0))
            }
            state.revision += 1
            state.blocks[block.header.height] = encoded
            state.blockRevisions[block.header.height] = state.revision
            for position in consumed { state.queue.removeValue(forKey: position) }
            return (Array(state.blockWatchers.values), Array(state.queueWatchers.values), true, state.revision)
        }
        guard appended else { return .superseded }
        for watcher in blockWatchers { watcher.yield(LoggedBlock(height: block.header.height, encoded: encoded, revision: revision)) }
        for watcher in queueWatchers { for position in consumed { watcher.yield(.removed(position)) } }
        return .appended
    }

    public func blocks(from height: UInt64) -> AsyncThrowingStream<LoggedBlock, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: LoggedBlock.self)
        let id = state.withLock { state -> Int in
            for key in state.blocks.keys.sorted() where key >= height {
                continuation.yield(LoggedBlock(height: key, encoded: state.blocks[key]!, revision: state.blockRevisions[key] ?? 0))
            }
            state.nextWatcher += 1
            state.blockWatchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.blockWatchers.removeValue(forKey: id) } }
        return stream
    }

    public func latestHeight() async throws -> UInt64? {
        latestHeightReads.withLock { $0 += 1 }
        return state.withLock { $0.blocks.keys.max() }
    }

    /// How many times ``latestHeight()`` was called (a status flood must not become a log flood).
    public let latestHeightReads = Mutex(0)

    public func enqueue(_ entry: QueueEntry) async throws {
        let watchers = state.withLock { state in
            state.revision += 1
            state.queue[entry.position] = (state.revision, entry)
            return Array(state.queueWatchers.values)
        }
        for watcher in watchers { watcher.yield(.added(entry)) }
    }

    public func queue() -> AsyncThrowingStream<QueueEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: QueueEvent.self)
        let id = state.withLock { state -> Int in
            for (_, item) in state.queue.sorted(by: { $0.value.revision < $1.value.revision }) { continuation.yield(.added(item.entry)) }
            state.nextWatcher += 1
            state.queueWatchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.queueWatchers.removeValue(forKey: id) } }
        return stream
    }

    public func nextQueueSequence(node: Hash256) async throws -> UInt64 {
        state.withLock { state in (state.queue.keys.filter { $0.node == node }.map(\.sequence).max() ?? 0) + 1 }
    }

    public func publish(_ checkpoint: PublishedCheckpoint) async throws {
        let watchers = state.withLock { state in
            state.checkpoints[checkpoint.signer] = checkpoint
            return Array(state.checkpointWatchers.values)
        }
        for watcher in watchers { watcher.yield(checkpoint) }
    }

    public func checkpoints() -> AsyncThrowingStream<PublishedCheckpoint, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: PublishedCheckpoint.self)
        let id = state.withLock { state -> Int in
            for (_, checkpoint) in state.checkpoints.sorted(by: { $0.key.hex < $1.key.hex }) { continuation.yield(checkpoint) }
            state.nextWatcher += 1
            state.checkpointWatchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.checkpointWatchers.removeValue(forKey: id) } }
        return stream
    }

    /// Every node's latest published checkpoint.
    public var publishedCheckpoints: [Hash256: PublishedCheckpoint] { state.withLock { $0.checkpoints } }

    public func advertise(node: Hash256, endpoint: String) async throws {
        state.withLock { $0.endpoints[node] = endpoint }
    }

    public func endpoints() async throws -> [Hash256: String] { state.withLock { $0.endpoints } }

    public var retention: RetentionPolicy? { nil }

    public func trim(below height: UInt64) async throws {
        state.withLock { state in state.blocks = state.blocks.filter { $0.key >= height } }
    }

    /// Entries still queued (none once every acknowledged transaction is in a block).
    public var queuedEntries: Int { state.withLock { $0.queue.count } }
}
