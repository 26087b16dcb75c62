import Foundation
import Logging
import Synchronization
public import LedgerCore
public import Ordering

/// The ``ReplicatedLog`` on a real etcd cluster.
///
/// Keys, under `/medledger/<network id hex>/`:
///
/// | key | value |
/// |---|---|
/// | `leader` | the leader's node fingerprint, attached to its lease; its `create_revision` is the epoch |
/// | `blocks/<height, 20 digits>` | the sealed block (`MLK1`, docs/formats.md §9) |
/// | `tip` | the highest appended height, decimal |
/// | `queue/<node fingerprint hex>/<sequence, 20 digits>` | a queue entry (`MLQE`) |
/// | `checkpoints/<node fingerprint hex>` | that node's latest signed checkpoint (`MLPC`) |
/// | `nodes/<node fingerprint hex>` | that node's advertised API address (UTF-8 URL) |
///
/// An append is one transaction: `create_revision(leader) == epoch` and `create_revision(block N)
/// == 0`, then put block N, put `tip`, delete every consumed queue entry. A leader whose lease
/// expired (stopped past its TTL, cut off) fails the first compare even if it does not know it
/// lost leadership yet: the lease is not the lock, the revision compare is.
public final class EtcdReplicatedLog: ReplicatedLog {
    public let client: EtcdClient
    let prefix: [UInt8]
    let leaseTTL: Int64
    let logger: Logger
    public let retention: RetentionPolicy?
    /// The revision of the previous trim: the next one compacts history up to it (watchers get one
    /// interval to catch up before their history goes), and which member to defragment next.
    let trimState = Mutex<(revision: Int64, nextDefragment: Int)>((0, 0))

    /// Most queue entries one append may delete (etcd's `--max-txn-ops` is 128 by default;
    /// the append also writes the block and the tip).
    public static let maxEntriesPerBlock = 100

    public init(client: EtcdClient, network: Hash256, leaseTTL: Int64 = 3, retention: RetentionPolicy? = RetentionPolicy(), logger: Logger) {
        self.client = client
        self.prefix = Array("/medledger/\(network.hex)/".utf8)
        self.leaseTTL = leaseTTL
        self.retention = retention
        self.logger = logger
    }

    var leaderKey: [UInt8] { prefix + Array("leader".utf8) }
    var tipKey: [UInt8] { prefix + Array("tip".utf8) }
    var blocksPrefix: [UInt8] { prefix + Array("blocks/".utf8) }
    var queuePrefix: [UInt8] { prefix + Array("queue/".utf8) }
    var checkpointsPrefix: [UInt8] { prefix + Array("checkpoints/".utf8) }
    var nodesPrefix: [UInt8] { prefix + Array("nodes/".utf8) }

    func blockKey(_ height: UInt64) -> [UInt8] { blocksPrefix + Array(Self.padded(height).utf8) }
    func queueKey(_ position: QueuePosition) -> [UInt8] {
        queuePrefix + Array("\(position.node.hex)/\(Self.padded(position.sequence))".utf8)
    }

    static func padded(_ value: UInt64) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// Keys are parsed strictly: only the canonical spelling of a height or position counts
    /// (`UInt64("+5")` and upper-case hex would otherwise make aliases that sort elsewhere), and
    /// heights stop below `UInt64.max` (the next height must exist).
    func height(ofBlockKey key: [UInt8]) -> UInt64? {
        guard key.count == blocksPrefix.count + 20, key.starts(with: blocksPrefix),
              key[blocksPrefix.count...].allSatisfy({ (0x30...0x39).contains($0) }),
              let height = UInt64(String(decoding: key[blocksPrefix.count...], as: UTF8.self)), height < UInt64.max
        else { return nil }
        return height
    }

    func position(ofQueueKey key: [UInt8]) -> QueuePosition? {
        guard key.starts(with: queuePrefix) else { return nil }
        let rest = String(decoding: key[queuePrefix.count...], as: UTF8.self).split(separator: "/")
        guard rest.count == 2, let node = Hash256(hex: String(rest[0])), rest[1].utf8.count == 20,
              rest[1].utf8.allSatisfy({ (0x30...0x39).contains($0) }), let sequence = UInt64(rest[1]), sequence < Self.maxSequence
        else { return nil }
        let position = QueuePosition(node: node, sequence: sequence)
        return queueKey(position) == key ? position : nil
    }

    /// Queue sequences stop well below `UInt64.max` (a planted key near it must not overflow a node's counter).
    static let maxSequence: UInt64 = 1 << 62

    // MARK: Leadership

    final class EtcdLeadership: Leadership {
        let epoch: UInt64
        let lease: EtcdClient.Lease
        let client: EtcdClient
        final class Flag: Sendable {
            let value = Mutex(true)
        }

        let held = Flag()
        let keepAlive: Task<Void, Never>

        init(epoch: UInt64, lease: EtcdClient.Lease, client: EtcdClient, logger: Logger) {
            self.epoch = epoch
            self.lease = lease
            self.client = client
            let held = self.held
            keepAlive = Task {
                do {
                    for try await _ in client.keepAlive(lease) {}
                } catch {
                    logger.warning("leader lease lost", metadata: ["lease": "\(lease.id)", "error": "\(error)"])
                }
                held.value.withLock { $0 = false }
            }
        }

        var isHeld: Bool { held.value.withLock { $0 } }

        /// Returns when the lease is lost; a caller that stops waiting (cancellation) is done with
        /// this leadership, so the keep-alive stops too.
        func lost() async {
            await withTaskCancellationHandler {
                _ = await keepAlive.value
            } onCancel: { [keepAlive] in
                keepAlive.cancel()
            }
        }

        func resign() async {
            keepAlive.cancel()
            held.value.withLock { $0 = false }
            try? await client.revokeLease(lease.id)
        }
    }

    public func campaign(candidate: Hash256) async throws -> any Leadership {
        while true {
            try Task.checkCancellation()
            let lease = try await client.grantLease(ttl: leaseTTL)
            let result: EtcdClient.TxnResult
            do {
                result = try await client.txn(
                    [.init(leaderKey, .equal, .createRevision(0))],
                    success: [.put(leaderKey, candidate.bytes, lease: lease.id)],
                    failure: [.range(leaderKey)]
                )
            } catch {
                try? await client.revokeLease(lease.id)
                throw error
            }
            if result.succeeded {
                return EtcdLeadership(epoch: UInt64(result.revision), lease: lease, client: client, logger: logger)
            }
            try? await client.revokeLease(lease.id)
            // Someone leads: wait for the leader key to go (lease expiry or resignation).
            let leader: EtcdClient.KeyValue? = result.results.first.flatMap { if case .range(let range) = $0 { range.kvs.first } else { nil } }
            if let leader, leader.lease == 0 {
                // A leader key without a lease would never expire: no campaign could ever win. Only
                // a hand-written key looks like that; remove exactly that version of it.
                logger.error("the leader key has no lease (not written by a campaign); removing it")
                _ = try await client.txn([.init(leaderKey, .equal, .modRevision(leader.modRevision))], success: [.delete(leaderKey)])
                continue
            }
            if let leader {
                if leader.value == candidate.bytes {
                    // This node's own key from before a restart: its lease still runs; wait it out.
                    logger.info("an earlier leader key of this node is still live; waiting for its lease to end")
                }
                // Until the key goes, or is rewritten without a lease (then it would never go).
                for try await event in client.watch(key: leaderKey, from: result.revision + 1) where event.kind == .delete || event.kv.lease == 0 {
                    break
                }
            }
        }
    }

    public func append(_ block: Block, encoded: [UInt8], leadership: any Leadership, consumed: [QueuePosition]) async throws -> AppendOutcome {
        let height = block.header.height
        let key = blockKey(height)
        let compares: [EtcdClient.Compare] = [
            .init(leaderKey, .equal, .createRevision(Int64(leadership.epoch))),
            .init(key, .equal, .createRevision(0)),
        ]
        let operations: [EtcdClient.Operation] = [.put(key, encoded), .put(tipKey, Array(String(height).utf8))]
            + consumed.map { .delete(queueKey($0)) }
        var attempt = 0
        while true {
            attempt += 1
            do {
                let result = try await client.txn(compares, success: operations)
                return result.succeeded ? .appended : .superseded
            } catch EtcdError.outcomeUnknown(let operation, let endpoint, let message) {
                // The append may have been applied: the block at the height tells.
                logger.warning("block append outcome unknown; reading it back",
                               metadata: ["height": "\(height)", "endpoint": "\(endpoint)", "error": "\(operation): \(message)"])
                if let stored = try await readBack(key) {
                    return stored == encoded ? .appended : .superseded
                }
                guard attempt < 5 else { throw EtcdError.outcomeUnknown(operation: operation, endpoint: endpoint, message: message) }
                // Not applied: the compares make sending it again safe.
            }
        }
    }

    private func readBack(_ key: [UInt8]) async throws -> [UInt8]? {
        var delay = Duration.milliseconds(100)
        while true {
            do { return try await client.range(key).kvs.first?.value } catch EtcdError.unavailable {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    // MARK: Blocks

    /// The `tip` key's height, if the block it names exists (`tip` is only a hint: anything that
    /// can write to etcd can write it, and a leader must not wait for a block that is not there).
    public func latestHeight() async throws -> UInt64? {
        guard let value = try await client.range(tipKey).kvs.first?.value,
              let height = UInt64(String(decoding: value, as: UTF8.self)), height < UInt64.max,
              try await client.exists(blockKey(height))
        else { return nil }
        return height
    }

    public func blocks(from first: UInt64) -> AsyncThrowingStream<LoggedBlock, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: LoggedBlock.self)
        let task = Task { [self] in
            var next = first
            var failures = 0
            while !Task.isCancelled {
                do {
                    // A range read from the next height, in pages, then a watch from after it.
                    let revision = try await readAll(prefix: blocksPrefix, from: blockKey(next), limit: 16) { page in
                        for kv in page {
                            guard let at = height(ofBlockKey: kv.key), at >= next else { continue }
                            continuation.yield(logged(at, kv))
                            next = at + 1
                        }
                    }
                    failures = 0
                    for try await event in client.watch(prefix: blocksPrefix, from: revision + 1) where event.kind == .put {
                        guard let at = height(ofBlockKey: event.kv.key), at >= next else { continue }
                        continuation.yield(logged(at, event.kv))
                        next = at + 1
                    }
                } catch is CancellationError {
                    break
                } catch EtcdError.compacted {
                    // The watch's history is gone: read the range again.
                    continue
                } catch {
                    failures += 1
                    logger.warning("block watch failed; retrying", metadata: ["next": "\(next)", "error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(min(100 * failures, 2000)))
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Reads every key under `prefix` at one revision, in pages of `limit` keys (paged by key, so
    /// keys of any shape cannot loop the read; small pages, because one value may be up to etcd's
    /// request limit of 1.5 MiB and a response is capped at 64 MiB). `from`: the first key to read
    /// (default: the prefix itself). Returns the revision read at.
    @discardableResult
    func readAll(prefix: [UInt8], from start: [UInt8]? = nil, limit: Int64, _ body: ([EtcdClient.KeyValue]) throws -> Void) async throws -> Int64 {
        var from = start
        var revision: Int64 = 0
        while true {
            let page = try await client.range(prefix: prefix, from: from, limit: limit, revision: revision)
            if revision == 0 { revision = page.revision }
            try body(page.kvs)
            guard page.more, let last = page.kvs.last else { return revision }
            from = last.key + [0]
        }
    }

    func logged(_ height: UInt64, _ kv: EtcdClient.KeyValue) -> LoggedBlock {
        LoggedBlock(height: height, encoded: kv.value, revision: UInt64(max(kv.createRevision, 0)), overwritten: kv.version > 1)
    }

    // MARK: Queue

    public func enqueue(_ entry: QueueEntry) async throws {
        // Not retried here: the node's submission queue retries a failed write under the same key,
        // which is harmless (if a leader consumed the first write in between, the copy's
        // transactions execute as replays and are refused).
        _ = try await client.put(queueKey(entry.position), entry.encodedValue)
    }

    public func queue() -> AsyncThrowingStream<QueueEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: QueueEvent.self)
        let task = Task { [self] in
            // Positions reported as live: after a compaction the queue is read again, and entries
            // that went meanwhile are reported removed.
            var known: Set<QueuePosition> = []
            do {
                while true {
                    var live: [EtcdClient.KeyValue] = []
                    let revision = try await readAll(prefix: queuePrefix, limit: 32) { live += $0 }
                    let positions = live.map { (kv: $0, position: position(ofQueueKey: $0.key)) }
                    let now = Set(positions.compactMap(\.position))
                    for gone in known.subtracting(now).sorted() { continuation.yield(.removed(gone)) }
                    known = now
                    for (kv, position) in positions.sorted(by: { $0.kv.modRevision < $1.kv.modRevision }) {
                        guard let position else { continue }
                        continuation.yield(.added(entry(at: position, decoding: kv.value)))
                    }
                    do {
                        for try await event in client.watch(prefix: queuePrefix, from: revision + 1) {
                            guard let position = position(ofQueueKey: event.kv.key) else { continue }
                            switch event.kind {
                            case .put:
                                known.insert(position)
                                continuation.yield(.added(entry(at: position, decoding: event.kv.value)))
                            case .delete:
                                known.remove(position)
                                continuation.yield(.removed(position))
                            }
                        }
                    } catch EtcdError.compacted {
                        continue
                    }
                    break
                }
                continuation.finish()
            } catch {
                // A failure ends the stream: the leader steps down and the next one reads the queue afresh.
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// A queue entry as stored; one that does not decode (written by something other than a node)
    /// counts as an entry with no envelopes, so the next block consumes and deletes it. Refusing it
    /// instead would make every leader in turn step down on it: ordering would stop for good.
    func entry(at position: QueuePosition, decoding value: [UInt8]) -> QueueEntry {
        do {
            return try QueueEntry(position: position, decoding: value)
        } catch {
            logger.warning("malformed queue entry; it is dropped with the next block", metadata: ["key": "\(position.node.hex.prefix(16))/\(position.sequence)", "error": "\(error)"])
            return QueueEntry(position: position, envelopes: [])
        }
    }

    public func nextQueueSequence(node: Hash256) async throws -> UInt64 {
        let nodePrefix = queuePrefix + Array("\(node.hex)/".utf8)
        var highest: UInt64 = 0
        try await readAll(prefix: nodePrefix, limit: 32) { page in
            for kv in page { if let position = position(ofQueueKey: kv.key) { highest = max(highest, position.sequence) } }
        }
        // Microseconds since the epoch as a floor: sequences stay increasing across restarts.
        let floor = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        return max(highest + 1, floor)
    }

    // MARK: Checkpoints

    public func publish(_ checkpoint: PublishedCheckpoint) async throws {
        _ = try await client.put(checkpointsPrefix + Array(checkpoint.signer.hex.utf8), checkpoint.encoded)
    }

    public func checkpoints() -> AsyncThrowingStream<PublishedCheckpoint, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: PublishedCheckpoint.self)
        let task = Task { [self] in
            var failures = 0
            func deliver(_ kv: EtcdClient.KeyValue) {
                // Anything that does not decode is not a node's checkpoint: the reader ignores it,
                // as it ignores a signature that does not verify.
                if let checkpoint = try? PublishedCheckpoint(decoding: kv.value),
                   kv.key == checkpointsPrefix + Array(checkpoint.signer.hex.utf8) {
                    continuation.yield(checkpoint)
                }
            }
            while !Task.isCancelled {
                do {
                    let revision = try await readAll(prefix: checkpointsPrefix, limit: 16) { $0.forEach(deliver) }
                    failures = 0
                    for try await event in client.watch(prefix: checkpointsPrefix, from: revision + 1) where event.kind == .put {
                        deliver(event.kv)
                    }
                } catch is CancellationError {
                    break
                } catch EtcdError.compacted {
                    continue
                } catch {
                    failures += 1
                    logger.warning("checkpoint watch failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(min(100 * failures, 2000)))
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: Peers and retention

    public func advertise(node: Hash256, endpoint: String) async throws {
        _ = try await client.put(nodesPrefix + Array(node.hex.utf8), Array(endpoint.utf8))
    }

    public func endpoints() async throws -> [Hash256: String] {
        var endpoints: [Hash256: String] = [:]
        try await readAll(prefix: nodesPrefix, limit: 64) { page in
            for kv in page {
                guard let node = Hash256(hex: String(decoding: kv.key.dropFirst(nodesPrefix.count), as: UTF8.self)),
                      kv.key == nodesPrefix + Array(node.hex.utf8),
                      let endpoint = String(validating: kv.value, as: UTF8.self), endpoint.utf8.count <= 2048 else { continue }
                endpoints[node] = endpoint
            }
        }
        return endpoints
    }

    /// Deletes `blocks/` below `height` (never `tip`), compacts the history up to the previous
    /// trim's revision, and defragments at most one member whose file is mostly free space.
    public func trim(below height: UInt64) async throws {
        guard height > 1 else { return }
        let deleted = try await client.delete(from: blockKey(0), to: blockKey(height))
        let (previous, member) = trimState.withLock { state in
            defer { state.revision = deleted.revision }
            return (state.revision, state.nextDefragment)
        }
        if deleted.deleted > 0 { logger.info("trimmed blocks from etcd", metadata: ["below": "\(height)", "deleted": "\(deleted.deleted)"]) }
        if previous > 0 {
            do { try await client.compact(previous) } catch EtcdError.compacted {}
        }
        let endpoints = client.endpoints
        guard !endpoints.isEmpty else { return }
        let endpoint = endpoints[member % endpoints.count]
        trimState.withLock { $0.nextDefragment = member + 1 }
        let status = try await client.status(endpoint: endpoint)
        if status.dbSize > 64 << 20, status.dbSize > 2 * status.dbSizeInUse {
            logger.info("defragmenting an etcd member", metadata: ["endpoint": "\(endpoint)", "db_size": "\(status.dbSize)", "in_use": "\(status.dbSizeInUse)"])
            try await client.defragment(endpoint: endpoint)
        }
    }
}
