import Testing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerStore
import LedgerTesting

/// How long the soak runs (`MEDLEDGER_SOAK_SECONDS`, 60 by default) and its time limit: the soak
/// plus ten minutes for start-up and the check. Outside the suite type: its trait refers to it.
let soakSeconds = ProcessInfo.processInfo.environment["MEDLEDGER_SOAK_SECONDS"].flatMap(Int.init) ?? 60
let soakLimitMinutes = soakSeconds / 60 + 10

/// The faults a nemesis chose, in order.
final class FaultList: Sendable {
    let entries = Mutex<[String]>([])
}

/// A seeded generator (SplitMix64): the same seed picks the same faults in the same order.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A randomized soak, Jepsen-style: load from clients of every node for `MEDLEDGER_SOAK_SECONDS`
/// (60 by default, for CI; `scripts/soak` runs it longer) while two nemeses pick faults from a
/// printed seed (`MEDLEDGER_SOAK_SEED` replays one): one on the nodes (SIGKILL and restart, SIGKILL
/// the leader, SIGSTOP past the lease, cut off from etcd), one on etcd (SIGKILL and restart a
/// member or the Raft leader, SIGSTOP a member), never more than one etcd member (a minority) at
/// once. Each fault is healed before the next; then everything is healed and the checker compares
/// every acknowledged id with every node's final chain.
@Suite(.serialized, .timeLimit(.minutes(soakLimitMinutes)))
struct ProcessSoakTests {
    enum NodeFault: CaseIterable { case kill, killLeader, pause, cut }
    enum EtcdFault: CaseIterable { case kill, killLeader, pause }

    static var seconds: Int { soakSeconds }

    @Test func randomFaultsUnderLoadLoseNothingAndConverge() async throws {
        let seed = ProcessInfo.processInfo.environment["MEDLEDGER_SOAK_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("soak: seed \(seed), \(Self.seconds) s (replay with MEDLEDGER_SOAK_SEED=\(seed) MEDLEDGER_SOAK_SECONDS=\(Self.seconds))")
        try await ProcessNetwork.with("soak-\(seed)", proxied: true) { network in
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(50)
            let end = ContinuousClock.now + .seconds(Self.seconds)
            let faults = FaultList()
            async let nodes: Void = Self.nodeNemesis(network, seed: seed, until: end, faults: faults)
            async let members: Void = Self.etcdNemesis(network, seed: seed &+ 1, until: end, faults: faults)
            _ = try await (nodes, members)
            let healedAt = ContinuousClock.now
            network.timeline.note("soak over: every fault healed; faults: \(faults.entries.withLock { $0 }.joined(separator: ", "))")
            let progress = try await network.progress(since: healedAt, what: "after the soak")
            #expect(progress < .seconds(network.leaseTTL + 5), "progress took \(progress) after every fault healed")
            try await load.waitForMore(50)
            await load.stop()
            let height = try await network.checkConverged(acknowledged: load.ids, timeout: .seconds(120))
            // The longest time without a block while the load ran (block times are all this machine's clock).
            let store = try LedgerStore(path: network.database(network.names[0]))
            var (longest, after): (Int64, Int64) = (0, 0)
            var previous = try #require(try store.block(at: 1)).header.timestamp
            for at in 2...max(2, height) {
                guard let block = try store.block(at: at) else { break }
                if block.header.timestamp - previous > longest { (longest, after) = (block.header.timestamp - previous, previous) }
                previous = block.header.timestamp
            }
            let since = Double(after - network.timeline.startMilliseconds) / 1000
            network.timeline.note("longest gap between blocks under load and faults: \(longest) ms, from [\(String(format: "%.3f", since))s]")
            print("soak: seed \(seed): \(load.count) acknowledged, \(faults.entries.withLock { $0.count }) faults, all committed on every node")
        }
    }

    static func nodeNemesis(_ network: ProcessNetwork, seed: UInt64, until end: ContinuousClock.Instant, faults: FaultList) async throws {
        var random = SeededGenerator(seed: seed)
        while ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...2_000, using: &random)))
            let fault = NodeFault.allCases.randomElement(using: &random)!
            let hold = Duration.milliseconds(Int.random(in: 1_000...4_000, using: &random))
            var victim = network.names.randomElement(using: &random)!
            if fault == .killLeader, let leader = try? await network.leader(timeout: .seconds(10)) { victim = leader }
            faults.entries.withLock { $0.append("node \(fault) \(victim) for \(hold.inSeconds)") }
            switch fault {
            case .kill, .killLeader:
                await network.kill(victim)
                try await Task.sleep(for: hold)
                try await network.startNode(victim)
            case .pause:
                try await network.pause(victim)
                try await Task.sleep(for: hold)
                try await network.resume(victim)
            case .cut:
                network.cut(victim)
                try await Task.sleep(for: hold)
                network.heal(victim)
            }
        }
    }

    static func etcdNemesis(_ network: ProcessNetwork, seed: UInt64, until end: ContinuousClock.Instant, faults: FaultList) async throws {
        var random = SeededGenerator(seed: seed)
        while ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(Int.random(in: 1_000...4_000, using: &random)))
            let fault = EtcdFault.allCases.randomElement(using: &random)!
            let hold = Duration.milliseconds(Int.random(in: 1_000...4_000, using: &random))
            var member = Int.random(in: 0..<3, using: &random)
            if fault == .killLeader, let leader = try? await network.etcdLeader() { member = leader }
            faults.entries.withLock { $0.append("etcd \(fault) m\(member) for \(hold.inSeconds)") }
            switch fault {
            case .kill, .killLeader:
                await network.killEtcd(member)
                try await Task.sleep(for: hold)
                try await network.restartEtcd([member])
            case .pause:
                try await network.etcd.pause(member)
                network.timeline.note("SIGSTOP etcd member m\(member)")
                try await Task.sleep(for: hold)
                try await network.etcd.resume(member)
                network.timeline.note("SIGCONT etcd member m\(member)")
            }
        }
    }
}
