import Testing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerTesting

/// Real processes: a 3-member etcd cluster and three `medledger node --ordering etcd` processes
/// on loopback (``ProcessNetwork``), load from clients of every node, a fault on the leader node,
/// then the checker. Each test stops exactly the pids it started.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct EtcdProcessTests {
    /// SIGKILL the leader node under load: every transaction any node acknowledged (202: in etcd's
    /// queue) commits, a new leader takes over within the lease, submissions to the other nodes
    /// never fail meanwhile, the killed node catches up after a restart, and every database holds
    /// the same blocks and verifies.
    @Test func killedLeaderNodeLosesNoAcknowledgedTransaction() async throws {
        try await ProcessNetwork.with("kill-leader-node") { network in
            let leader = try await network.leader()
            let survivors = network.names.filter { $0 != leader }
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(150)
            let killedAt = ContinuousClock.now
            await network.kill(leader)
            let failover = try await network.progress(since: killedAt, what: "leader node killed")
            let newLeader = try await network.leader()
            #expect(newLeader != leader)
            #expect(failover < .seconds(network.leaseTTL + 5), "progress took \(failover) after the leader was killed (lease \(network.leaseTTL) s)")
            try await load.waitForMore(150)
            // While there is no leader, submissions to the survivors are still acknowledged (queued in etcd).
            let survivorErrors = load.errors.withLock { errors in survivors.reduce(0) { $0 + (errors[$1]?.count ?? 0) } }
            #expect(survivorErrors == 0, "submissions to surviving nodes failed: \(load.errorSummary)")

            let restartedAt = ContinuousClock.now
            try await network.startNode(leader)
            try await network.catchUp(leader, since: restartedAt)
            try await load.waitForMore(60)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }

    /// SIGSTOP the leader past its lease under load, let another lead and commit, then SIGCONT: the
    /// old leader must not append (its epoch is fenced out: the chain's epochs never go back and
    /// there is no fork), it follows the new blocks, and all nodes agree.
    @Test func stoppedLeaderResumesAsAFollowerWithoutForking() async throws {
        try await ProcessNetwork.with("stop-leader-node") { network in
            let leader = try await network.leader()
            let survivors = network.names.filter { $0 != leader }
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(100)
            let stoppedAt = ContinuousClock.now
            try await network.pause(leader)
            let failover = try await network.progress(since: stoppedAt, through: survivors, committedOn: survivors, what: "leader node stopped")
            let newLeader = try await network.leader(among: survivors)
            #expect(newLeader != leader)
            #expect(failover < .seconds(network.leaseTTL + 5), "progress took \(failover) after the leader was stopped (lease \(network.leaseTTL) s)")
            try await load.waitForMore(100)
            let heightWhileStopped = try #require(await network.height(newLeader))

            // It wakes up believing it leads; its appends are refused and it follows instead.
            let resumedAt = ContinuousClock.now
            try await network.resume(leader)
            let progress = try await network.progress(since: resumedAt, what: "stopped leader resumed")
            #expect(progress < .seconds(5), "progress took \(progress) after SIGCONT")
            #expect(try #require(await network.height(leader)) > heightWhileStopped)
            try await load.waitForMore(60)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }
}
