import Synchronization
import LedgerCore
import LedgerStore

/// One subscriber to committed blocks: an `AsyncSequence` that the consumer *pulls*.
///
/// A subscriber that stops reading costs a few buffered events, never a growing queue or a task
/// reading the store on its own: the node only appends the newest block to a small ring (``ringSize``),
/// and a consumer that fell behind reads the blocks it missed from the store when it asks for them.
/// So a slow or stalled client neither holds memory nor competes for the cooperative thread pool.
public final class BlockSubscription: AsyncSequence, Sendable {
    public typealias Element = CommittedBlockEvent

    /// Live events kept for a consumer that is caught up; older ones are read back from the store.
    static let ringSize = 16

    struct State {
        var next: UInt64
        var recent: [CommittedBlockEvent] = []
        var waiting: CheckedContinuation<Void, Never>?
        var closed = false
    }

    let token: Int
    let client: String
    let state: Mutex<State>
    let node: LedgerNode

    init(token: Int, client: String, next: UInt64, node: LedgerNode) {
        self.token = token
        self.client = client
        self.state = Mutex(State(next: next))
        self.node = node
    }

    /// Called by the node after each commit.
    func deliver(_ event: CommittedBlockEvent) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.closed else { return nil }
            state.recent.append(event)
            if state.recent.count > Self.ringSize { state.recent.removeFirst(state.recent.count - Self.ringSize) }
            defer { state.waiting = nil }
            return state.waiting
        }
        waiter?.resume()
    }

    /// Ends the subscription and frees its slot (the HTTP handler calls it when the client goes).
    public func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            state.recent = []
            defer { state.waiting = nil }
            return state.waiting
        }
        waiter?.resume()
        node.unsubscribe(self)
    }

    enum Step {
        case event(CommittedBlockEvent)
        case readStore(UInt64)
        case wait
        case end
    }

    /// The next committed block, in height order with no gaps; nil once closed or cancelled.
    func nextEvent() async -> CommittedBlockEvent? {
        while !Task.isCancelled {
            let tip = node.tip.height
            let step = state.withLock { state -> Step in
                if state.closed { return .end }
                state.recent.removeAll { $0.height < state.next }
                if let first = state.recent.first, first.height == state.next {
                    state.recent.removeFirst()
                    state.next += 1
                    return .event(first)
                }
                return state.next <= tip ? .readStore(state.next) : .wait
            }
            switch step {
            case .end:
                return nil
            case .event(let event):
                return event
            case .readStore(let height):
                // Fell behind the ring (or subscribed from a past height): read the block back.
                // Catching up is synchronous store work on the shared thread pool, so streams take
                // turns through one gate and yield after each block: however many readers catch
                // up, commits and other requests keep getting threads.
                await node.catchUpGate.acquire()
                let block = try? node.store.block(at: height)
                node.catchUpGate.release()
                await Task.yield()
                guard let block else { return nil }
                state.withLock { $0.next = Swift.max($0.next, height + 1) }
                return LedgerNode.event(for: block)
            case .wait:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            // A block may have been delivered between the step and here.
                            if state.closed || Task.isCancelled || !state.recent.isEmpty || state.next <= node.tip.height { return true }
                            state.waiting = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                        defer { state.waiting = nil }
                        return state.waiting
                    }
                    waiter?.resume()
                }
            }
        }
        return nil
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let subscription: BlockSubscription
        public mutating func next() async -> CommittedBlockEvent? { await subscription.nextEvent() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(subscription: self) }
}

/// At most `permits` holders at once; the others wait in arrival order. Used so that event streams
/// catching up on old blocks read the store one at a time.
final class TurnGate: Sendable {
    struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let state: Mutex<State>

    init(permits: Int) {
        state = Mutex(State(available: permits))
    }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                guard state.available > 0 else {
                    state.waiters.append(continuation)
                    return false
                }
                state.available -= 1
                return true
            }
            if granted { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()  // the permit passes straight to the next waiter
        }
        next?.resume()
    }
}
