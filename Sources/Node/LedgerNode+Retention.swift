import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
import LedgerCore
import Ordering
import Collector

extension LedgerNode {
    /// The media type of a block in the block-file encoding (`MLK1`, docs/formats.md §9), which
    /// `GET /v1/blocks/{height}` answers with when asked for it in `Accept`.
    public static let blockMediaType = "application/vnd.medledger.block"

    /// Records where this node serves its API, for nodes that catch up on blocks the log no longer
    /// holds. Retries until the log took it (or the node shuts down).
    public func advertise(endpoint: String) async {
        guard let replication else { return }
        var failures = 0
        while !replication.stopping.withLock({ $0 }) {
            do {
                try await replication.log.advertise(node: identity.fingerprint, endpoint: endpoint)
                return
            } catch {
                failures += 1
                logger.warning("cannot advertise this node's API address; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(200 * failures, 5000)))
            }
        }
    }

    // MARK: Leader: trimming the log

    /// While leading: every `retention.interval`, trims the log below what every node has (by its
    /// latest checkpoint), within the policy's window.
    func trimLog(_ leadership: any Leadership, _ replication: Replication) async throws {
        guard let policy = replication.log.retention else { return }
        while leadership.isHeld {
            try await Task.sleep(for: policy.interval)
            guard leadership.isHeld else { return }
            let floor = policy.floor(tip: tip.height, checkpoints: nodeCheckpointHeights(replication))
            do {
                try await replication.log.trim(below: floor)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("cannot trim the log; next time", metadata: ["below": "\(floor)", "error": "\(error)"])
            }
        }
    }

    /// The latest checkpoint height of every current node of the network (this one's is its tip;
    /// 0 for a node that has not published one).
    func nodeCheckpointHeights(_ replication: Replication) -> [UInt64] {
        let published = Dictionary(replication.checkpoints.peers.map { ($0.node, $0.height) }, uniquingKeysWith: max)
        let nodes = chain.withLock { state in
            state.members.filter { $0.value.member.role == .node && $0.value.member.revokedAt == nil && $0.value.organizationActive }.map(\.key)
        }
        return nodes.map { $0 == identity.fingerprint ? tip.height : published[$0] ?? 0 }
    }

    // MARK: Follower: blocks the log no longer holds

    /// Fetches blocks `tip + 1 ..< first` from other nodes' APIs, where `first` is the oldest block
    /// the log still holds. Pass 1 walks back from `first`'s `previousHash` to this node's tip, so
    /// each height's block hash is fixed by the log (a peer cannot substitute a block, even one a
    /// deposed leader signed); pass 2 fetches them forward and checks, executes and commits each
    /// exactly as a block from the log. Retries (other peers, then later) until it succeeds.
    func catchUp(before first: Block, _ replication: Replication) async throws {
        var failures = 0
        while tip.height + 1 < first.header.height {
            do {
                let peers = try await peerClients(replication)
                guard !peers.isEmpty else { throw LedgerError(.unavailable, "no other node advertised an API address") }
                logger.info("catching up from other nodes: the log no longer holds these blocks",
                            metadata: ["from": "\(tip.height + 1)", "to": "\(first.header.height - 1)", "peers": "\(peers.count)"])
                // Pass 1: the hashes, back from the log's oldest block to this node's tip. The
                // lowest blocks fetched are kept for pass 2, within a memory budget.
                var expected: [UInt64: Hash256] = [:]
                var kept: [UInt64: (block: Block, size: Int)] = [:]
                var keptBytes = 0
                var hash = first.header.previousHash
                var height = first.header.height - 1
                while height > tip.height {
                    let (block, size) = try await fetch(height, expecting: hash, from: peers)
                    expected[height] = hash
                    kept[height] = (block, size)
                    keptBytes += size
                    while keptBytes > Self.catchUpMemory, let highest = kept.keys.max(), highest != height {
                        keptBytes -= kept.removeValue(forKey: highest)?.size ?? 0
                    }
                    hash = block.header.previousHash
                    height -= 1
                }
                guard hash == tip.hash else {
                    throw divergence("the log's chain does not lead back to this node's block \(tip.height)", height: tip.height)
                }
                // Pass 2: forward, each checked and executed like a block from the log.
                while tip.height + 1 < first.header.height {
                    let height = tip.height + 1
                    guard let hash = expected[height] else { break }
                    let block: Block
                    if let fetched = kept.removeValue(forKey: height) { block = fetched.block } else {
                        block = try await fetch(height, expecting: hash, from: peers).block
                    }
                    do {
                        try commit(try receive(block))
                    } catch let error as LedgerError where divergence == nil && (error.code == .verificationFailed || error.code == .malformedEncoding) {
                        // Its hash is fixed by the log's chain: a block there that cannot be accepted halts, as from the log.
                        throw divergence("block \(height), named by the log's chain, cannot be accepted: \(error.message)", height: height)
                    }
                    replication.committed.advance(to: height)
                    try judgePeers(replication)
                }
            } catch let error as LedgerError where divergence != nil {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures += 1
                logger.warning("cannot catch up from other nodes yet; retrying", metadata: ["at": "\(tip.height + 1)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(min(500 * failures, 10_000)))
            }
        }
    }

    /// The advertised APIs of the other current nodes (registered, unrevoked, organisation active),
    /// http or https only, in random order (a peer that fails is not always asked first). Anyone
    /// with etcd access can write `nodes/`: invented fingerprints and other schemes are ignored.
    func peerClients(_ replication: Replication) async throws -> [NodeClient] {
        let signer = NodeClient.Signer(identity: identity, network: network)
        let current = chain.withLock { state in
            Set(state.members.filter { $0.value.member.role == .node && $0.value.member.revokedAt == nil && $0.value.organizationActive }.keys)
        }
        return try await replication.log.endpoints()
            .filter { $0.key != identity.fingerprint && current.contains($0.key) }
            .compactMap { entry in
                guard let url = URL(string: entry.value), url.scheme == "http" || url.scheme == "https", url.host != nil else { return nil }
                return NodeClient(baseURL: url, signer: signer)
            }
            .shuffled()
    }

    /// Longest one peer may take to serve one block (a peer trickling bytes keeps each read alive).
    static let peerFetchTimeout: Duration = .seconds(30)

    /// Most bytes of blocks a catch-up holds in memory between its two passes (beyond it, pass 2
    /// fetches a block again).
    static let catchUpMemory = 64 << 20

    /// Most bytes a peer's answer for one block may have: the envelope limit of a block, with room
    /// for the header, signature and length prefixes of the most envelopes it can hold.
    static let maxBlockResponseBytes = 2 * maxBlockBytes

    /// Block `height` with header hash `hash`, from the first peer that serves exactly it, and the
    /// size of its encoding. A peer's answer is bounded and its redirects are not followed.
    func fetch(_ height: UInt64, expecting hash: Hash256, from peers: [NodeClient]) async throws -> (block: Block, size: Int) {
        var problems: [String] = []
        for peer in peers {
            do {
                let (status, body) = try await withTimeout(Self.peerFetchTimeout) {
                    try await peer.raw("/v1/blocks/\(height)", accept: Self.blockMediaType, limit: Self.maxBlockResponseBytes)
                }
                guard status == 200 else {
                    problems.append("\(peer.baseURL.absoluteString): HTTP \(status)")
                    continue
                }
                let block = try Block(decoding: [UInt8](body))
                guard block.header.hash == hash, block.header.height == height else {
                    problems.append("\(peer.baseURL.absoluteString): served another block than the log's chain names")
                    continue
                }
                return (block, body.count)
            } catch {
                problems.append("\(peer.baseURL.absoluteString): \(error)")
            }
        }
        throw LedgerError(.unavailable, "no peer served block \(height): \(problems.joined(separator: "; "))")
    }
}
