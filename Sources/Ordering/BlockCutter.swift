/// When to cut a block: the pure state machine behind every orderer.
///
/// A block is cut when `batchSize` items are pending, or when the timer armed by the first pending
/// item fires. Timers are identified by a generation so that a stale timer (its batch already cut
/// by size) does nothing. No clock and no I/O: the shell arms real timers and feeds events back.
public struct BlockCutter<Item: Sendable>: Sendable {
    public enum Directive: Sendable {
        /// Deliver these items, in this order, as the next block.
        case cut([Item])
        /// Call ``timerFired(generation:)`` with this generation after the batch timeout.
        case armTimer(generation: UInt64)
    }

    public private(set) var pending: [Item] = []
    public var batchSize: Int
    private var generation: UInt64 = 0

    public init(batchSize: Int) {
        precondition(batchSize > 0)
        self.batchSize = batchSize
    }

    public mutating func enqueue(_ item: Item) -> [Directive] {
        pending.append(item)
        if pending.count >= batchSize {
            return [cut()]
        }
        if pending.count == 1 {
            generation &+= 1
            return [.armTimer(generation: generation)]
        }
        return []
    }

    public mutating func timerFired(generation fired: UInt64) -> [Directive] {
        guard fired == generation, !pending.isEmpty else { return [] }
        return [cut()]
    }

    /// Cuts whatever is pending (at shutdown, or when a waiting client should not wait for the timer).
    public mutating func flush() -> [Directive] {
        pending.isEmpty ? [] : [cut()]
    }

    private mutating func cut() -> Directive {
        let batch = Array(pending.prefix(batchSize))
        pending.removeFirst(batch.count)
        generation &+= 1  // invalidates the timer armed for this batch
        return .cut(batch)
    }
}
