import Foundation
import Synchronization
import Logging
public import LedgerCore
import LedgerStore
public import Ordering

/// What this node makes of another node's latest published checkpoint.
public struct PeerCheckpoint: Sendable, Equatable, Codable {
    public enum Verdict: String, Sendable, Codable {
        /// Its height, block hash, state root and log match this node's chain.
        case agrees
        /// It signed something else at a height this node has: one of the two is wrong.
        case conflicts
        /// It is ahead of this node (no verdict until this node gets there).
        case ahead
    }

    public var node: Hash256
    public var height: UInt64
    public var blockHash: Hash256
    public var stateRoot: Hash256
    public var verdict: Verdict

    enum CodingKeys: String, CodingKey {
        case node, height, verdict
        case blockHash = "block_hash"
        case stateRoot = "state_root"
    }
}

/// The other nodes' latest checkpoints, checked against this node's chain.
final class CheckpointBook: Sendable {
    private struct State {
        var latest: [Hash256: PublishedCheckpoint.Statement] = [:]
        /// The signed form of each `latest` statement (proofs carry the agreeing ones).
        var signed: [Hash256: PublishedCheckpoint] = [:]
        var verdicts: [Hash256: PeerCheckpoint.Verdict] = [:]
        /// The statement each verdict was given on (a settled verdict on the same statement stands).
        var judged: [Hash256: PublishedCheckpoint.Statement] = [:]
        var reported: Set<Hash256> = []
    }

    private let state = Mutex(State())
    /// Held for a whole judgement (``LedgerNode/judgePeers(_:)``).
    let judging = Mutex(())
    /// This node's newest checkpoint (of a committed block, or of the block it refused to accept).
    let own = Mutex<PublishedCheckpoint?>(nil)

    func record(_ statement: PublishedCheckpoint.Statement, signed: PublishedCheckpoint, from node: Hash256) {
        state.withLock {
            $0.latest[node] = statement
            $0.signed[node] = signed
        }
    }

    /// The other nodes' latest signed checkpoints that agree with this node's chain.
    var agreeing: [PublishedCheckpoint] {
        state.withLock { state in
            state.signed.filter { state.verdicts[$0.key] == .agrees && state.judged[$0.key] == state.latest[$0.key] }
                .sorted { $0.key.hex < $1.key.hex }.map(\.value)
        }
    }

    /// Forgets the statements of nodes that are no longer current (revoked, organisation removed).
    func keep(only nodes: Set<Hash256>) {
        state.withLock { state in
            state.latest = state.latest.filter { nodes.contains($0.key) }
            state.signed = state.signed.filter { nodes.contains($0.key) }
            state.verdicts = state.verdicts.filter { nodes.contains($0.key) }
        }
    }

    var peers: [PeerCheckpoint] {
        state.withLock { state in
            state.latest.sorted { $0.key.hex < $1.key.hex }.map { node, statement in
                PeerCheckpoint(node: node, height: statement.height, blockHash: statement.blockHash, stateRoot: statement.stateRoot,
                               verdict: state.verdicts[node] ?? .ahead)
            }
        }
    }

    struct Judgement {
        var agreeing = 0
        /// Peers ahead of this node: no verdict yet, and presumed to agree (an honest node that
        /// lags must not be outvoted by one dissenter while its honest peers are ahead of it).
        var ahead = 0
        /// Peers whose statement conflicts with this node's chain, by fingerprint order.
        var conflicting: [(node: Hash256, statement: PublishedCheckpoint.Statement)] = []
        /// The conflicting peers that did not conflict at the previous judgement.
        var new: [(node: Hash256, statement: PublishedCheckpoint.Statement)] = []
    }

    /// Judges every peer's latest statement with `judge` (true: it agrees; nil: ahead of this node).
    func evaluate(_ judge: (PublishedCheckpoint.Statement) throws -> Bool?) rethrows -> Judgement {
        let (latest, settled) = state.withLock { state in
            (state.latest, state.verdicts.filter { $0.value != .ahead && state.judged[$0.key] == state.latest[$0.key] })
        }
        var verdicts = settled
        for (node, statement) in latest where settled[node] == nil {
            verdicts[node] = try judge(statement).map { $0 ? .agrees : .conflicts } ?? .ahead
        }
        return state.withLock { state in
            state.verdicts = verdicts
            state.judged = latest
            var judgement = Judgement()
            judgement.agreeing = verdicts.values.filter { $0 == .agrees }.count
            judgement.ahead = verdicts.values.filter { $0 == .ahead }.count
            judgement.conflicting = verdicts.filter { $0.value == .conflicts }.map(\.key).sorted { $0.hex < $1.hex }.map { ($0, latest[$0]!) }
            judgement.new = judgement.conflicting.filter { state.reported.insert($0.node).inserted }
            state.reported.formIntersection(judgement.conflicting.map(\.node))
            return judgement
        }
    }
}

extension LedgerNode {
    /// The other nodes' latest checkpoints and whether each agrees with this node's chain
    /// (empty for a solo node).
    public var peerCheckpoints: [PeerCheckpoint] { replication?.checkpoints.peers ?? [] }

    /// This node's newest signed checkpoint and the other nodes' latest ones that agree with this
    /// node's chain: what an inclusion proof from this node carries as cosignatures
    /// (``Proofs/cosign(_:store:checkpoints:)``).
    public var agreeingCheckpoints: [PublishedCheckpoint] {
        guard let replication else { return [] }
        return (replication.checkpoints.own.withLock { $0 }.map { [$0] } ?? []) + replication.checkpoints.agreeing
    }

    /// The signed checkpoint of a header this node computed.
    /// (An `MLR1` statement: this node computed `header` for a block it refused, and never committed it.)
    func publishedCheckpoint(of header: BlockHeader) -> PublishedCheckpoint {
        let body = PublishedCheckpoint.Statement(height: header.height, blockHash: header.hash, stateRoot: header.stateRoot,
                                                 logSize: header.logSize, logRoot: header.logRoot, refused: true).body
        return PublishedCheckpoint(signer: identity.fingerprint, body: body, signature: identity.sign(body))
    }

    /// Publishes this node's newest checkpoint whenever it commits, at most ten times a second
    /// (each publication replaces the previous one; peers compare whatever height they see).
    func publishCheckpoints(_ replication: Replication) async throws {
        var published: UInt64 = 0
        var failures = 0
        while !Task.isCancelled {
            guard await replication.committed.wait(until: published + 1) else { return }
            guard let checkpoint = replication.checkpoints.own.withLock({ $0 }),
                  let height = try? checkpoint.statement().height, height > published
            else {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            do {
                try await replication.log.publish(checkpoint)
                published = height
                failures = 0
                try await Task.sleep(for: .milliseconds(100))
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                logger.warning("cannot publish this node's checkpoint; retrying", metadata: ["height": "\(height)", "error": "\(error)"])
                try await Task.sleep(for: .milliseconds(min(200 * failures, 2000)))
            }
        }
    }

    /// Reads every node's published checkpoints, keeps those a registered node signed, and compares
    /// them with this node's chain. A conflict means one of the two signers is wrong: this node
    /// raises the alarm for each, and stops (``divergence``) when more peers disagree with it than
    /// agree, so one dishonest member cannot stop an honest majority, and a node in the minority
    /// stops serving a state the others do not share.
    func crossCheck(_ replication: Replication) async throws {
        let own = identity.fingerprint
        for try await published in replication.log.checkpoints() where published.signer != own {
            guard let statement = accepted(published) else { continue }
            replication.checkpoints.record(statement, signed: published, from: published.signer)
            try judgePeers(replication)
        }
    }

    /// A published checkpoint's statement if a current node member signed it.
    func accepted(_ published: PublishedCheckpoint) -> PublishedCheckpoint.Statement? {
        guard let member = chain.withLock({ $0.members[published.signer] }), member.member.role == .node,
              member.member.revokedAt == nil, member.organizationActive,
              SignatureCheck.isValid(signature: published.signature, message: published.body, publicKey: member.key),
              let statement = try? published.statement()
        else { return nil }
        return statement
    }

    /// Re-judges the peers' checkpoints against the chain (after a peer published, or this node committed).
    func judgePeers(_ replication: Replication) throws {
        // One judgement at a time, each with the tip it read: a judgement made on an older tip
        // (a peer's statement arriving as this node commits) must not overwrite a newer one.
        let judgement = try replication.checkpoints.judging.withLock { _ in
            let tip = self.tip
            replication.checkpoints.keep(only: chain.withLock { state in
                Set(state.members.filter { $0.value.member.role == .node && $0.value.member.revokedAt == nil && $0.value.organizationActive }.keys)
            })
            return try replication.checkpoints.evaluate { statement -> Bool? in
                guard statement.height <= tip.height else { return nil }
                let header = statement.height == tip.height ? tip : try store.header(at: statement.height)
                guard let header else { return nil }
                return header.hash == statement.blockHash && header.stateRoot == statement.stateRoot
                    && header.logSize == statement.logSize && header.logRoot == statement.logRoot
            }
        }
        metrics.checkpointPeers(agreeing: judgement.agreeing, conflicting: judgement.conflicting.count)
        for (node, statement) in judgement.new {
            logger.error("another node signed a different checkpoint", metadata: [
                "node": "\(node.hex.prefix(16))", "height": "\(statement.height)", "its_block": "\(statement.blockHash.hex.prefix(16))",
            ])
        }
        if judgement.conflicting.count > judgement.agreeing + judgement.ahead, let (node, statement) = judgement.conflicting.first {
            throw divergence("\(judgement.conflicting.count) of the \(judgement.conflicting.count + judgement.agreeing) other nodes whose checkpoints this node can judge signed a different chain (node \(node.hex.prefix(16))… signed block \(statement.blockHash.hex.prefix(16))… at height \(statement.height))",
                             height: statement.height)
        }
    }
}
