public import LedgerCore

/// The shared, totally ordered store that several nodes order blocks through (etcd in a real
/// deployment, ``EtcdReplicatedLog``). It holds three things:
///
/// * **blocks**: block N is written exactly once, by the leader of an epoch, with a
///   compare-and-swap on the height *and* on the epoch (the leader key's creation revision): a lease
///   is not a lock, and a deposed leader's late append must fail;
/// * **leadership**: one candidate at a time holds it, with an epoch that increases at every election;
/// * **a submission queue**: each node appends batches of admitted envelopes; an entry is
///   acknowledged once the store has it (replicated), and the block that includes it deletes it in
///   the same atomic write, so an acknowledged transaction is either queued or in a block, never lost.
public protocol ReplicatedLog: Sendable {
    /// Waits until `candidate` holds leadership and returns it. The implementation keeps it alive
    /// (lease keep-alive) until ``Leadership/resign()`` or until it is lost. Throws
    /// `CancellationError` when the calling task is cancelled.
    func campaign(candidate: Hash256) async throws -> any Leadership

    /// Appends `block` as the next block if `leadership` still holds and no block exists at its
    /// height, and deletes the queue entries it consumed, atomically.
    func append(_ block: Block, encoded: [UInt8], leadership: any Leadership, consumed: [QueuePosition]) async throws -> AppendOutcome

    /// Every block from `height` on, in order, then new ones as they are appended. Restarts
    /// transparently when the store has discarded the history a watch needs (re-reading by range).
    func blocks(from height: UInt64) -> AsyncThrowingStream<LoggedBlock, any Error>

    /// The highest height the store holds (nil when it holds none).
    func latestHeight() async throws -> UInt64?

    /// Durably appends a submission queue entry; returns once the store acknowledged it.
    func enqueue(_ entry: QueueEntry) async throws

    /// The queue's live entries in store order, then entries as they are added; a deleted entry is
    /// reported as `.removed`.
    func queue() -> AsyncThrowingStream<QueueEvent, any Error>

    /// The next free sequence number for `node`'s queue entries (above any entry still queued).
    func nextQueueSequence(node: Hash256) async throws -> UInt64

    /// Most queue entries one append may consume (etcd limits the operations of one transaction).
    var maxEntriesPerAppend: Int { get }

    /// What orders through this log, for status answers (`GET /v1/node`): "etcd", or "replicated".
    var orderingName: String { get }
}

extension ReplicatedLog {
    public var maxEntriesPerAppend: Int { 100 }
    public var orderingName: String { "replicated" }
}

/// Leadership of the ordering, held by one node at a time.
public protocol Leadership: Sendable {
    /// Strictly increasing across elections; written into every header this leader seals.
    var epoch: UInt64 { get }
    /// False once the lease is known to be lost (the leader must stop sealing).
    var isHeld: Bool { get }
    /// Returns when leadership is lost, or when the calling task is cancelled.
    func lost() async
    /// Gives leadership up (revokes the lease).
    func resign() async
}

public enum AppendOutcome: Sendable, Equatable {
    case appended
    /// Another block holds the height, or this leadership is no longer current.
    case superseded
}

public struct LoggedBlock: Sendable {
    public var height: UInt64
    public var encoded: [UInt8]
    public init(height: UInt64, encoded: [UInt8]) {
        self.height = height
        self.encoded = encoded
    }
}

/// Where a queue entry lives: the submitting node and its per-node sequence number.
public struct QueuePosition: Sendable, Hashable, Comparable {
    public var node: Hash256
    public var sequence: UInt64
    public init(node: Hash256, sequence: UInt64) {
        self.node = node
        self.sequence = sequence
    }

    public static func < (a: QueuePosition, b: QueuePosition) -> Bool {
        (a.node.hex, a.sequence) < (b.node.hex, b.sequence)
    }
}

/// A batch of admitted envelopes one node queued for ordering.
///
/// Encoding: `"MLQE" ‖ u32 count ‖ (bytes envelope)*` (the position is the entry's key).
public struct QueueEntry: Sendable, Hashable {
    public var position: QueuePosition
    public var envelopes: [[UInt8]]

    public init(position: QueuePosition, envelopes: [[UInt8]]) {
        self.position = position
        self.envelopes = envelopes
    }

    public var encodedValue: [UInt8] {
        var writer = BinaryWriter()
        writer.writeRaw(Array("MLQE".utf8))
        writer.write(UInt32(envelopes.count))
        for envelope in envelopes { writer.writeBytes(envelope) }
        return writer.bytes
    }

    public init(position: QueuePosition, decoding bytes: [UInt8]) throws(LedgerError) {
        var reader = BinaryReader(bytes)
        guard try reader.readRaw(count: 4, "queue entry magic") == Array("MLQE".utf8) else {
            throw LedgerError(.malformedEncoding, "queue entry: expected magic MLQE")
        }
        let count = Int(try reader.readUInt32("queue entry count"))
        guard count <= reader.remaining else { throw LedgerError(.malformedEncoding, "queue entry: count exceeds its bytes") }
        var envelopes: [[UInt8]] = []
        envelopes.reserveCapacity(count)
        for _ in 0..<count { envelopes.append(try reader.readBytes("queue entry envelope", maxLength: 1 << 20)) }
        try reader.expectEnd("queue entry")
        self.init(position: position, envelopes: envelopes)
    }

    /// Bytes this entry occupies in the store (for block size limits).
    public var size: Int { envelopes.reduce(8) { $0 + $1.count + 4 } }
}

public enum QueueEvent: Sendable {
    case added(QueueEntry)
    case removed(QueuePosition)
}
