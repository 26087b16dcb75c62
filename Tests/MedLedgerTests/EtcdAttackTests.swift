import Testing
import Foundation
import Synchronization
import LedgerCore
import LedgerStore
import Node
import Ordering
import Etcd
import LedgerTesting

/// What a member that can write to etcd can do with keys it plants, on a real cluster: findings of
/// a red-team pass on replicated ordering, each a test first (docs/threat_model.md).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct EtcdAttackTests {
    static func withNetwork(nodes: [String] = ReplicatedHarness.defaultNodes,
                            _ body: (EtcdNetwork, ReplicatedHarness, [UInt8]) async throws -> Void) async throws {
        try await EtcdNetwork.run { etcd in
            let harness = try ReplicatedHarness(nodes: nodes) { name, network in etcd.log(for: name, network: network) }
            try await body(etcd, harness, Array("/medledger/\(harness.definition.networkID.hex)/".utf8))
            await harness.stopAll()
        }
    }

    static func put(_ etcd: EtcdNetwork, _ key: [UInt8], _ value: [UInt8]) async throws {
        try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in _ = try await client.put(key, value) }
    }

    /// Transactions through every running node commit everywhere and the nodes agree.
    static func expectOrderingGoesOn(_ harness: ReplicatedHarness, offset: Int, through names: [String]? = nil) async throws {
        try await CheckpointExchangeTests.registerSome(harness, count: 4, offset: offset, through: names)
        let running = names ?? harness.names
        try await harness.waitForHeight(running.map { harness.node($0).tip.height }.max() ?? 0)
        try harness.expectConverged()
        for name in running { #expect(harness.node(name).divergence == nil, "\(name): \(String(describing: harness.node(name).divergence))") }
    }

    /// A key at the last height (its successor would overflow: it trapped every follower), 17 keys
    /// that are not heights after every block (a range read paged by height re-read them forever),
    /// and an alias of a coming height (`+` parses as a digit for `UInt64`; it sorts before every
    /// canonical key, so range reads and the append's compare miss it, but watchers took it).
    @Test func plantedBlockKeysStopNobody() async throws {
        try await Self.withNetwork { etcd, harness, prefix in
            try await CheckpointExchangeTests.registerSome(harness, count: 2)
            let tip = harness.highestHeight
            try await Self.put(etcd, prefix + Array("blocks/18446744073709551615".utf8), [0])
            for index in 0..<17 { try await Self.put(etcd, prefix + Array("blocks/9999999999999999999\(Character(UnicodeScalar(97 + index)!))".utf8), [1]) }
            try await Self.put(etcd, prefix + Array("blocks/99999999999999999999".utf8), [2])
            let alias = "+" + String(repeating: "0", count: 19 - String(tip + 2).count) + String(tip + 2)
            try await Self.put(etcd, prefix + Array("blocks/\(alias)".utf8), [3])
            // One node re-reads the log by range, as after a restart.
            await harness.stop(harness.names[2])
            try harness.start(harness.names[2])
            try await Self.expectOrderingGoesOn(harness, offset: 10)
        }
    }

    /// A block key written twice is not what the append wrote: a node reading it halts (saying
    /// why) instead of committing whatever the key holds now (a fork with the nodes that watched
    /// the first write).
    @Test func anOverwrittenBlockHaltsTheNodeThatReadsItInsteadOfForking() async throws {
        try await Self.withNetwork { etcd, harness, prefix in
            try await CheckpointExchangeTests.registerSome(harness, count: 2)
            let late = harness.names[2]
            try await harness.waitForHeight(harness.highestHeight)
            await harness.stop(late)
            try await CheckpointExchangeTests.registerSome(harness, count: 1, offset: 5, through: Array(harness.names.prefix(2)))
            // The block the late node has not seen (the submitting node has it; the other may not yet).
            let height = harness.names.prefix(2).map { harness.node($0).tip.height }.max() ?? 0
            try await harness.waitForHeight(height)
            let key = prefix + Array("blocks/\(String(repeating: "0", count: 20 - String(height).count))\(height)".utf8)
            let value = try await withEtcdClient(endpoints: etcd.cluster.endpoints) { try await $0.range(key).kvs.first?.value }
            try await Self.put(etcd, key, try #require(value))
            try harness.start(late)
            try await CheckpointExchangeTests.eventually("the late node halted on the rewritten block") { harness.node(late).divergence != nil }
            #expect(harness.node(late).divergence?.reason.contains("written more than once") == true, "\(String(describing: harness.node(late).divergence))")
            #expect(harness.node(late).tip.height == height - 1)
            await harness.stop(late)
            try await Self.expectOrderingGoesOn(harness, offset: 20, through: Array(harness.names.prefix(2)))
        }
    }

    /// A queue entry too large for any block failed every leader's append in turn (ordering
    /// stopped for good, with every later acknowledged transaction); it is now consumed without
    /// its envelopes.
    @Test func aHugeQueueEntryDoesNotStopOrdering() async throws {
        try await Self.withNetwork(nodes: Array(ReplicatedHarness.defaultNodes.prefix(2))) { etcd, harness, prefix in
            try await CheckpointExchangeTests.registerSome(harness, count: 1)
            var entry = Array("MLQE".utf8) + [0, 0, 0, 2]
            // Just under etcd's 1.5 MiB request limit as a put; the block holding it would not be.
            for _ in 0..<2 { entry += [0x00, 0x0b, 0xff, 0x60] + [UInt8](repeating: 7, count: 786_272) }
            try await Self.put(etcd, prefix + Array("queue/\(Hash256.of([5]).hex)/00000000000000000001".utf8), entry)
            try await Self.expectOrderingGoesOn(harness, offset: 30)
            let left = try await withEtcdClient(endpoints: etcd.cluster.endpoints) { try await $0.range(prefix: prefix + Array("queue/".utf8)).kvs.count }
            #expect(left == 0)
        }
    }

    /// A leader key without a lease never expires: no campaign could win once its holder died. A
    /// `tip` that names a block that does not exist made every new leader wait for it forever.
    @Test func aLeaseLessLeaderKeyAndALyingTipDoNotStopFailover() async throws {
        try await Self.withNetwork { etcd, harness, prefix in
            try await CheckpointExchangeTests.registerSome(harness, count: 1)
            let leader = try #require(await ReplicationTests.leader(harness))
            let holder = try await withEtcdClient(endpoints: etcd.cluster.endpoints) { try await $0.range(prefix + Array("leader".utf8)).kvs.first }
            // Rewriting the key detaches it from its lease (the create revision stays).
            try await Self.put(etcd, prefix + Array("leader".utf8), try #require(holder).value)
            try await Self.put(etcd, prefix + Array("tip".utf8), Array("999999999".utf8))
            etcd.disconnect(leader)
            await harness.stop(leader)
            let others = harness.names.filter { $0 != leader }
            try await Self.expectOrderingGoesOn(harness, offset: 40, through: others)
        }
    }
}
