import Synchronization
public import Contracts

/// Puts admitted transactions into one total order, delivered as batches destined for the next
/// block heights in turn.
///
/// `solo` orders in-process. The `etcd` orderer (a later capability) satisfies the same protocol:
/// it forwards submissions to the leader, and the leader's batches become blocks appended to etcd
/// with a compare-and-swap on the height.
public protocol Orderer: Sendable {
    /// Accepts an admitted transaction for ordering.
    func submit(_ transaction: PreparedTransaction)
    /// Ordered batches. A single consumer turns each into the next block.
    var batches: AsyncStream<[PreparedTransaction]> { get }
    /// Cuts anything pending and ends ``batches``.
    func finish()
}

/// The in-process orderer for one machine: a ``BlockCutter`` behind a mutex, with real timers.
public final class SoloOrderer: Orderer {
    struct State {
        var cutter: BlockCutter<PreparedTransaction>
        var finished = false
    }

    private let state: Mutex<State>
    private let timeout: Duration
    private let continuation: AsyncStream<[PreparedTransaction]>.Continuation
    public let batches: AsyncStream<[PreparedTransaction]>

    public init(batchSize: Int, batchTimeout: Duration) {
        state = Mutex(State(cutter: BlockCutter(batchSize: batchSize)))
        timeout = batchTimeout
        (batches, continuation) = AsyncStream.makeStream(of: [PreparedTransaction].self, bufferingPolicy: .unbounded)
    }

    public func submit(_ transaction: PreparedTransaction) {
        let directives = state.withLock { state -> [BlockCutter<PreparedTransaction>.Directive] in
            guard !state.finished else { return [] }
            let directives = state.cutter.enqueue(transaction)
            // Yield under the lock so batches leave in cut order.
            for case .cut(let batch) in directives { continuation.yield(batch) }
            return directives
        }
        for case .armTimer(let generation) in directives {
            Task { [timeout] in
                try? await Task.sleep(for: timeout)
                self.timerFired(generation)
            }
        }
    }

    /// Changes the batch size (a governance configuration change).
    public func setBatchSize(_ size: Int) {
        state.withLock { $0.cutter.batchSize = max(1, size) }
    }

    func timerFired(_ generation: UInt64) {
        state.withLock { state in
            for case .cut(let batch) in state.cutter.timerFired(generation: generation) { continuation.yield(batch) }
        }
    }

    /// Cuts what is pending now rather than when the timer fires: someone is waiting on exactly
    /// this block (a research answer is returned only once its budget debit commits).
    public func cutPending() {
        state.withLock { state in
            guard !state.finished else { return }
            for case .cut(let batch) in state.cutter.flush() { continuation.yield(batch) }
        }
    }

    public func finish() {
        state.withLock { state in
            guard !state.finished else { return }
            state.finished = true
            for case .cut(let batch) in state.cutter.flush() { continuation.yield(batch) }
            continuation.finish()
        }
    }
}
