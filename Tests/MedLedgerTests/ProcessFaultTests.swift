import Testing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerTesting

/// The rest of issue 8's fault matrix on real processes (``ProcessNetwork``), each fault injected
/// while clients of every node submit: afterwards the checker requires every acknowledged
/// transaction committed on every node, one chain (hashes and state roots at every height), epochs
/// that never go back, and every database verifying. Progress times are measured and printed.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ProcessFaultTests {
    /// SIGKILL the etcd member that leads the Raft group: etcd elects another within its election
    /// timeout (1 s here), the nodes' requests that were in flight fail or time out and are retried
    /// (an append whose outcome is unknown is read back first), and ordering resumes. The member
    /// restarts on its data directory and rejoins.
    @Test func killedEtcdLeaderLosesNoAcknowledgedTransaction() async throws {
        try await ProcessNetwork.with("kill-etcd-leader") { network in
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(150)
            let member = try await network.etcdLeader()
            let killedAt = ContinuousClock.now
            await network.killEtcd(member)
            let progress = try await network.progress(since: killedAt, what: "etcd leader m\(member) killed")
            // The Raft election takes up to twice the election timeout (1 s here), and etcd restarts
            // every lease's TTL when a new leader takes over; a node leader that could not confirm its
            // lease within the TTL meanwhile steps down, so the worst case is election + TTL, then 5 s.
            #expect(progress < .seconds(2 + network.leaseTTL + 5), "progress took \(progress) after the etcd leader was killed")
            let newMember = try await network.etcdLeader()
            #expect(newMember != member)
            try await load.waitForMore(150)

            let restartedAt = ContinuousClock.now
            try await network.restartEtcd([member])
            let back = try await network.progress(since: restartedAt, what: "etcd member m\(member) restarted")
            #expect(back < .seconds(5), "progress took \(back) after the etcd member came back")
            try await load.waitForMore(60)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }

    /// SIGKILL a follower node under load: the leader goes on (progress is not interrupted), only
    /// the killed node's own clients see errors, and after a restart on its database it catches up
    /// from its height.
    @Test func killedFollowerCatchesUpAfterRestart() async throws {
        try await ProcessNetwork.with("kill-follower") { network in
            let leader = try await network.leader()
            let follower = try #require(network.names.first { $0 != leader })
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(150)
            let killedAt = ContinuousClock.now
            await network.kill(follower)
            let progress = try await network.progress(since: killedAt, what: "follower \(follower) killed")
            #expect(progress < .seconds(5), "progress took \(progress) after a follower was killed")
            try await load.waitForMore(200)
            #expect(try await network.leader() == leader, "the leader changed when a follower died")

            let restartedAt = ContinuousClock.now
            try await network.startNode(follower)
            let caughtUp = try await network.catchUp(follower, since: restartedAt)
            #expect(caughtUp < .seconds(30), "catching up took \(caughtUp)")
            try await load.waitForMore(60)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }

    /// SIGKILL every node and every etcd member under load, then start them all again on the same
    /// data directories: everything acknowledged before the crash is there, and ordering resumes
    /// once the dead leader's lease (restored by etcd with its data) runs out.
    @Test func restartingEverythingKeepsEveryAcknowledgedTransaction() async throws {
        try await ProcessNetwork.with("restart-everything") { network in
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(200)
            for name in network.names { await network.kill(name) }
            for member in 0..<3 { await network.killEtcd(member) }
            let crashed = load.count
            try await Task.sleep(for: .milliseconds(500))

            try await network.restartEtcd([0, 1, 2])
            for name in network.names { try await network.startNode(name) }
            let healedAt = ContinuousClock.now
            network.timeline.note("every process restarted (\(crashed) acknowledged before the crash)")
            let progress = try await network.progress(since: healedAt, what: "everything restarted")
            #expect(progress < .seconds(network.leaseTTL + 5), "progress took \(progress) after restarting everything")
            try await load.waitForMore(150)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }

    /// The leader node cut off from etcd (and so from everything: nodes talk only through etcd) by
    /// a proxy that stops every byte, the process still running. Its lease runs out, another node
    /// leads and commits; the cut-off node acknowledges nothing meanwhile; when the cut heals its
    /// requests held in the network arrive late and any append among them is refused (fenced by
    /// the leader key's revision): no fork, epochs never go back, and it follows the new leader.
    @Test func leaderCutOffFromEtcdIsFencedAndFollowsAfterTheCutHeals() async throws {
        try await ProcessNetwork.with("cut-off-leader", proxied: true) { network in
            let target = try await network.leader()
            let others = network.names.filter { $0 != target }
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(150)

            let cutAt = ContinuousClock.now
            network.cut(target)
            let failover = try await network.progress(since: cutAt, through: others, committedOn: others, what: "leader cut off")
            #expect(failover < .seconds(network.leaseTTL + 5), "progress took \(failover) after the leader was cut off")
            let newLeader = try await network.leader(among: others)
            try await load.waitForMore(150)
            let heightWhileCut = try #require(await network.height(newLeader))

            let healedAt = ContinuousClock.now
            network.heal(target)
            // Acknowledged means in etcd's queue: a node that cannot reach etcd acknowledges nothing
            // (what was answered in the first moment was in etcd before the cut).
            let cutAcks = load.acknowledged(by: target, from: cutAt + .milliseconds(500), to: healedAt)
            #expect(cutAcks == 0, "\(target) acknowledged \(cutAcks) transactions while cut off from etcd")
            let progress = try await network.progress(since: healedAt, what: "cut healed")
            #expect(progress < .seconds(5), "progress took \(progress) after the cut healed")
            #expect(try #require(await network.height(target)) > heightWhileCut)
            #expect(network.logged(target, "leadership ended"), "the cut-off leader never noticed that it lost the lead")
            try await load.waitForMore(60)
            await load.stop()
            try await network.checkConverged(acknowledged: load.ids)
        }
    }
}
