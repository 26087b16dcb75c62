import Testing
import Foundation
import Synchronization
import Logging
import LedgerCore
import Contracts
import LedgerStore
import Node
import Ordering
import Etcd
import LedgerTesting

/// Nodes in this process ordering through a real 3-member etcd cluster, each node with its own
/// etcd client (as separate machines would have).
final class EtcdNetwork: Sendable {
    let cluster: EtcdCluster
    let clients = Mutex<[String: (EtcdClient, Task<Void, any Error>)]>([:])

    init(cluster: EtcdCluster) { self.cluster = cluster }

    static func start() async throws -> EtcdNetwork { EtcdNetwork(cluster: try await EtcdCluster.start(members: 3)) }

    func client(for node: String) -> EtcdClient {
        // A node restarted in a test gets a new client, like a restarted process.
        let client = try! EtcdClient(endpoints: cluster.endpoints, requestTimeout: .seconds(2), logger: ReplicatedHarness.logger("\(node)/etcd"))
        let runner = Task { try await client.run() }
        clients.withLock { $0[node] = (client, runner) }
        return client
    }

    func log(for node: String, network: Hash256, leaseTTL: Int64 = 2) -> EtcdReplicatedLog {
        EtcdReplicatedLog(client: client(for: node), network: network, leaseTTL: leaseTTL, logger: ReplicatedHarness.logger("\(node)/log"))
    }

    /// Cuts one node off etcd at once (its client stops; its lease then expires).
    func disconnect(_ node: String) {
        guard let (client, _) = clients.withLock({ $0.removeValue(forKey: node) }) else { return }
        client.shutdown()
    }

    func stop() async {
        for (client, runner) in clients.withLock({ clients in defer { clients = [:] }; return Array(clients.values) }) {
            client.shutdown()
            _ = try? await runner.value
        }
        await cluster.stop()
    }
}

@Suite(.serialized, .timeLimit(.minutes(5)))
struct EtcdReplicationTests {
    @Test func threeNodesOnRealEtcdCommitEverySubmissionInOneOrder() async throws {
        let etcd = try await EtcdNetwork.start()
        do {
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network) }
            var ids: [Hash256] = []
            for index in 0..<90 {
                let name = harness.names[index % harness.names.count]
                let collector = name.replacingOccurrences(of: "/node", with: "/collector")
                let envelope = try harness.sign(collector, .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
                let id = try harness.node(name).submit(envelope.encoded)
                try await harness.node(name).acknowledgement(of: id)
                ids.append(id)
            }
            for name in harness.names {
                for id in ids {
                    guard case .committed = try await harness.node(name).waitForCommit(id, timeout: .seconds(60)) else {
                        Issue.record("\(id.hex.prefix(8)) is not committed on \(name)")
                        return
                    }
                }
            }
            try await harness.waitForHeight(harness.node(harness.names[0]).tip.height)
            try harness.expectConverged()
            // Every consumed queue entry left etcd in the append that holds it.
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let queued = try await client.range(prefix: Array("/medledger/\(harness.definition.networkID.hex)/queue/".utf8))
                #expect(queued.kvs.isEmpty, "\(queued.kvs.count) queue entries left in etcd")
            }
            // Each node published its signed checkpoint through etcd and judges the others' as agreeing.
            let height = harness.node(harness.names[0]).tip.height
            let deadline = ContinuousClock.now + .seconds(20)
            while harness.names.contains(where: { name in
                let peers = harness.node(name).peerCheckpoints
                return peers.count != 2 || peers.contains { $0.verdict != .agrees || $0.height != height }
            }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            for name in harness.names {
                #expect(harness.node(name).peerCheckpoints.map(\.verdict) == [.agrees, .agrees], "\(name): \(harness.node(name).peerCheckpoints)")
            }
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let published = try await client.range(prefix: Array("/medledger/\(harness.definition.networkID.hex)/checkpoints/".utf8))
                #expect(published.kvs.count == 3)
                for kv in published.kvs {
                    let checkpoint = try PublishedCheckpoint(decoding: kv.value)
                    #expect(String(decoding: kv.key, as: UTF8.self).hasSuffix("/checkpoints/" + checkpoint.signer.hex))
                    #expect(try checkpoint.statement().height == height)
                }
            }
            await harness.stopAll()
            for name in harness.names {
                let database = harness.directory + "/" + name.replacingOccurrences(of: "/", with: "-") + ".sqlite"
                let report = ChainVerifier.verify(store: try LedgerStore(path: database))
                #expect(report.ok, "\(name): \(report.failure ?? "")")
            }
        } catch {
            await etcd.stop()
            throw error
        }
        await etcd.stop()
    }

    /// The leader is cut off from etcd (as a killed or stopped process would be): another node
    /// takes over after the lease runs out, acknowledged transactions commit, the old node catches
    /// up when it returns.
    @Test func leaderCutOffIsReplacedWithinTheLeaseAndNothingAcknowledgedIsLost() async throws {
        let etcd = try await EtcdNetwork.start()
        do {
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network) }
            let first = try #require(await ReplicationTests.leader(harness))
            let firstEpoch = try #require(harness.node(first).leaderEpoch)
            let follower = try #require(harness.names.first { $0 != first })
            let collector = follower.replacingOccurrences(of: "/node", with: "/collector")
            var ids: [Hash256] = []
            for index in 0..<10 {
                let id = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(300 + index), attributes: Fixtures.attributes())).encoded)
                try await harness.node(follower).acknowledgement(of: id)
                ids.append(id)
            }
            let cut = ContinuousClock.now
            etcd.disconnect(first)
            await harness.stop(first)
            // Submissions keep coming at the follower while there is no leader.
            for index in 10..<20 {
                let id = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(300 + index), attributes: Fixtures.attributes())).encoded)
                try await harness.node(follower).acknowledgement(of: id)
                ids.append(id)
            }
            for id in ids {
                guard case .committed = try await harness.node(follower).waitForCommit(id, timeout: .seconds(60)) else {
                    Issue.record("acknowledged \(id.hex.prefix(8)) was not committed after the leader was cut off")
                    return
                }
            }
            let failover = ContinuousClock.now - cut
            let node = harness.node(follower)
            #expect(node.tip.epoch > firstEpoch, "the last block is sealed in a later epoch")
            // Lease TTL 2 s; a new leader commits within 5 s of the lease expiring.
            #expect(failover < .seconds(7), "failover took \(failover)")
            try harness.start(first)
            try await harness.waitForHeight(node.tip.height)
            try harness.expectConverged()
            await harness.stopAll()
        } catch {
            await etcd.stop()
            throw error
        }
        await etcd.stop()
    }

    /// Anyone who can write to etcd could put garbage in the queue: it must not stop ordering (a
    /// leader that refused it would step down, and so would the next, forever).
    @Test func aMalformedQueueEntryIsDroppedAndOrderingGoesOn() async throws {
        let etcd = try await EtcdNetwork.start()
        do {
            let harness = try ReplicatedHarness(nodes: ["st-mary/node", "north-general/node"]) { name, network in etcd.log(for: name, network: network) }
            _ = try #require(await ReplicationTests.leader(harness))
            let prefix = "/medledger/\(harness.definition.networkID.hex)/queue/"
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                _ = try await client.put(Array((prefix + "\(Hash256.of([9]).hex)/00000000000000000001").utf8), Array("not an entry".utf8))
                _ = try await client.put(Array((prefix + "\(Hash256.of([9]).hex)/00000000000000000002").utf8), Array("MLQE\u{0}\u{0}\u{0}\u{9}".utf8))
            }
            let name = "north-general/node"
            let envelope = try harness.sign("north-general/collector", .register(udi: Fixtures.udi(500), attributes: Fixtures.attributes()))
            let id = try harness.node(name).submit(envelope.encoded)
            try await harness.node(name).acknowledgement(of: id)
            guard case .committed = try await harness.node(name).waitForCommit(id, timeout: .seconds(60)) else {
                Issue.record("a transaction queued after malformed entries did not commit")
                return
            }
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let left = try await client.range(prefix: Array(prefix.utf8))
                #expect(left.kvs.isEmpty, "\(left.kvs.count) queue entries left")
            }
            try await harness.waitForHeight(harness.node(name).tip.height)
            try harness.expectConverged()
            await harness.stopAll()
        } catch {
            await etcd.stop()
            throw error
        }
        await etcd.stop()
    }

    /// Fencing on real etcd: an append under an epoch that is no longer the leader key's creation
    /// revision fails, whoever sends it.
    @Test func anAppendUnderAnOldEpochIsRefusedByEtcd() async throws {
        let etcd = try await EtcdNetwork.start()
        do {
            let network = Hash256.of([7])
            let a = etcd.log(for: "a", network: network)
            let b = etcd.log(for: "b", network: network)
            let old = try await a.campaign(candidate: Hash256.of([1]))
            await old.resign()
            let new = try await b.campaign(candidate: Hash256.of([2]))
            #expect(new.epoch > old.epoch)
            let header = BlockHeader(height: 1, previousHash: .zero, timestamp: 0, transactionCount: 0, transactionRoot: .zero,
                                     logSize: 0, logRoot: .zero, stateRoot: .zero, proposer: Hash256.of([1]), epoch: old.epoch)
            let stale = Block(header: header, signature: [UInt8](repeating: 0, count: 64), envelopes: [])
            #expect(try await a.append(stale, encoded: stale.encoded, leadership: old, consumed: []) == .superseded)
            var current = header
            current.epoch = new.epoch
            let block = Block(header: current, signature: stale.signature, envelopes: [])
            #expect(try await b.append(block, encoded: block.encoded, leadership: new, consumed: []) == .appended)
            #expect(try await b.append(block, encoded: block.encoded, leadership: new, consumed: []) == .superseded)
            #expect(try await a.latestHeight() == 1)
            await new.resign()
        } catch {
            await etcd.stop()
            throw error
        }
        await etcd.stop()
    }
}
