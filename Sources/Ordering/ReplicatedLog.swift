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

    /// Publishes `checkpoint` as its signer's latest (replacing the one published before).
    func publish(_ checkpoint: PublishedCheckpoint) async throws

    /// Every node's latest published checkpoint, then each one published later. Restarts
    /// transparently (re-reading) when the store discarded the history a watch needs.
    func checkpoints() -> AsyncThrowingStream<PublishedCheckpoint, any Error>

    /// Records the API address where `node` serves its blocks (for nodes catching up on blocks the
    /// log no longer holds).
    func advertise(node: Hash256, endpoint: String) async throws

    /// Every node's advertised API address.
    func endpoints() async throws -> [Hash256: String]

    /// How many blocks the log keeps (nil: all of them).
    var retention: RetentionPolicy? { get }

    /// Discards the blocks below `height` and the store's history they occupied.
    func trim(below height: UInt64) async throws
}

/// How many blocks a log keeps. The leader trims below every node's latest checkpoint, but always
/// keeps the newest `keep` blocks (short outages catch up from the log), and never more than `most`
/// (a node that fell further behind, or a new one, fetches older blocks from a peer node's API).
public struct RetentionPolicy: Sendable, Hashable {
    public var keep: UInt64
    public var most: UInt64
    /// How often the leader trims.
    public var interval: Duration

    public init(keep: UInt64 = 1000, most: UInt64? = nil, interval: Duration = .seconds(30)) {
        self.keep = max(keep, 1)
        self.most = max(most ?? keep * 8, self.keep)
        self.interval = interval
    }

    /// The lowest height to keep, given the log's tip and every node's latest checkpoint height
    /// (0 for a node that never published one).
    public func floor(tip: UInt64, checkpoints: [UInt64]) -> UInt64 {
        let everyone = checkpoints.min() ?? 0
        let recent = tip >= keep ? tip - keep + 1 : 1
        let oldest = tip >= most ? tip - most + 1 : 1
        return max(1, max(min(everyone + 1, recent), oldest))
    }
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
    /// The store revision that created the block's key (0 if the store has none). An honest
    /// leader's key is created before its blocks, so a header's epoch is below it.
    public var revision: UInt64
    /// Whether the key was written more than once (an append writes it exactly once).
    public var overwritten: Bool

    public init(height: UInt64, encoded: [UInt8], revision: UInt64 = 0, overwritten: Bool = false) {
        self.height = height
        self.encoded = encoded
        self.revision = revision
        self.overwritten = overwritten
    }
}

public enum QueueEvent: Sendable {
    case added(QueueEntry)
    case removed(QueuePosition)
}

