import Foundation
import Synchronization
import Logging
import LedgerCore
import Contracts
import Ordering

/// Admitted transactions on their way into the replicated log's submission queue.
///
/// Admission appends here; one flusher at a time writes everything accumulated since the last
/// write as one queue entry (group commit: one replicated write for many transactions), and a
/// transaction is acknowledged to its client only once the entry holding it is in the log. A write
/// whose outcome is unknown is retried with the same position, so at worst an entry is queued twice;
/// the second copy of a transaction then executes as a replay and is refused, never applied twice.
final class SubmissionQueue: Sendable {
    struct State {
        var buffer: [PreparedTransaction] = []
        var bufferBytes = 0
        var flushing = false
        var nextSequence: UInt64?
        var waiters: [Hash256: [CheckedContinuation<Void, any Error>]] = [:]
        /// Recently acknowledged ids, for a waiter that arrives after its entry was written.
        var acknowledged: Set<Hash256> = []
        var acknowledgedOrder: [Hash256] = []
        var failed: [Hash256: LedgerError] = [:]
    }

    /// Most envelopes and bytes in one queue entry (etcd's request limit is 1.5 MiB by default).
    static let maxEntryCount = 1_000
    static let maxEntryBytes = 512 * 1024
    static let acknowledgedMemory = 100_000

    let log: any ReplicatedLog
    let node: Hash256
    let logger: Logger
    /// Called with the ids of transactions that could not be queued (admission releases their claim).
    let release = Mutex<(@Sendable ([Hash256]) -> Void)?>(nil)
    let state = Mutex(State())

    init(log: any ReplicatedLog, node: Hash256, logger: Logger) {
        self.log = log
        self.node = node
        self.logger = logger
    }

    func onRelease(_ body: @escaping @Sendable ([Hash256]) -> Void) {
        release.withLock { $0 = body }
    }

    func add(_ transaction: PreparedTransaction) {
        let start = state.withLock { state -> Bool in
            state.buffer.append(transaction)
            state.bufferBytes += transaction.bytes.count
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if start { Task { await self.flush() } }
    }

    /// Returns once `id` is in the replicated log's queue; throws if it could not be written.
    func acknowledgement(of id: Hash256, timeout: Duration) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let outcome = self.state.withLock { state -> Result<Void, LedgerError>? in
                        if state.acknowledged.contains(id) { return .success(()) }
                        if let error = state.failed.removeValue(forKey: id) { return .failure(error) }
                        state.waiters[id, default: []].append(continuation)
                        return nil
                    }
                    if let outcome { continuation.resume(with: outcome) }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw LedgerError(.unavailable, "the ordering service did not acknowledge the transaction within \(timeout); it may still be ordered — check its status before resubmitting")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func flush() async {
        while let batch = takeBatch() {
            do {
                let sequence = try await reserveSequence()
                let entry = QueueEntry(position: QueuePosition(node: node, sequence: sequence), envelopes: batch.map(\.bytes))
                try await write(entry)
                settle(batch.map(\.id), error: nil)
            } catch {
                let failure = (error as? LedgerError) ?? LedgerError(.unavailable, "the ordering service is unavailable: \(error)")
                logger.error("cannot queue transactions for ordering", metadata: ["count": "\(batch.count)", "error": "\(failure.message)"])
                release.withLock { $0 }?(batch.map(\.id))
                settle(batch.map(\.id), error: failure)
            }
        }
    }

    /// Writes an entry, retrying for a while: the position is fixed, so a retry after an unknown
    /// outcome overwrites the same key rather than adding another.
    private func write(_ entry: QueueEntry) async throws {
        var delay = Duration.milliseconds(50)
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                try await log.enqueue(entry)
                return
            } catch {
                guard ContinuousClock.now + delay < deadline else { throw error }
                logger.warning("queue write failed; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }

    private func reserveSequence() async throws -> UInt64 {
        if let next = state.withLock({ state -> UInt64? in
            defer { if state.nextSequence != nil { state.nextSequence! += 1 } }
            return state.nextSequence
        }) { return next }
        let first = try await log.nextQueueSequence(node: node)
        return state.withLock { state in
            let sequence = max(first, state.nextSequence ?? 0)
            state.nextSequence = sequence + 1
            return sequence
        }
    }

    private func takeBatch() -> [PreparedTransaction]? {
        state.withLock { state in
            guard !state.buffer.isEmpty else {
                state.flushing = false
                return nil
            }
            var count = 0
            var bytes = 0
            for transaction in state.buffer {
                guard count < Self.maxEntryCount, count == 0 || bytes + transaction.bytes.count <= Self.maxEntryBytes else { break }
                count += 1
                bytes += transaction.bytes.count
            }
            let batch = Array(state.buffer.prefix(count))
            state.buffer.removeFirst(count)
            state.bufferBytes -= bytes
            return batch
        }
    }

    private func settle(_ ids: [Hash256], error: LedgerError?) {
        var wake: [(CheckedContinuation<Void, any Error>)] = []
        state.withLock { state in
            for id in ids {
                wake.append(contentsOf: state.waiters.removeValue(forKey: id) ?? [])
                if let error {
                    state.failed[id] = error
                } else {
                    state.acknowledged.insert(id)
                    state.acknowledgedOrder.append(id)
                }
            }
            if state.acknowledgedOrder.count > Self.acknowledgedMemory {
                let drop = state.acknowledgedOrder.count - Self.acknowledgedMemory / 2
                for id in state.acknowledgedOrder.prefix(drop) { state.acknowledged.remove(id) }
                state.acknowledgedOrder.removeFirst(drop)
            }
            if state.failed.count > Self.acknowledgedMemory { state.failed.removeAll() }
        }
        for continuation in wake {
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }
}
