import Testing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerStore
import LedgerTesting

/// One node's wall clock is off by minutes (`scripts/clock-offset.c`, preloaded: only the wall
/// clock moves, as on a machine whose clock is set wrong; libfaketime breaks Swift's timers, see
/// that file), and that node leads for longer than the network's skew window. The window is
/// governed configuration; it is 10 s here (`--clock-skew-ms`) so that "longer than the window"
/// fits in a CI test (the default is 5 minutes: the same faults, just slower).
///
/// What must hold: every acknowledged transaction commits (none is refused as "skewed" because of
/// the leader's clock), and every block's time stays within half the window of the times of the
/// transactions it holds. The skewed node itself refuses its clients' transactions with
/// `timestamp_skew` (its own clock says they are minutes off): a clear error, nothing acknowledged.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct ClockSkewTests {
    static let windowMilliseconds: Int64 = 10_000

    /// `scripts/clock-offset.c`, compiled with the toolchain's clang to a fresh path (removed by the caller).
    static func compileClockOffset() async throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/clock-offset.c").path
        let output = Fixtures.temporaryPath("clock-offset") + ".so"
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        let clang = path.split(separator: ":").map { "\($0)/clang" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/clang"
        let built = try await ManagedProcess.run(clang, ["-shared", "-fPIC", "-O2", "-o", output, source, "-ldl"], timeout: .seconds(60))
        guard built.status == 0 else { throw LedgerError(.io, "cannot compile \(source): \(built.stderr)") }
        return output
    }

    /// Two minutes ahead, and two minutes behind.
    @Test(arguments: [120_000, -120_000] as [Int64])
    func aLeaderWithASkewedClockRefusesNoAcknowledgedTransaction(offset: Int64) async throws {
        let skewed = ProcessNetwork.organizations[0]
        let library = try await Self.compileClockOffset()
        defer { try? FileManager.default.removeItem(atPath: library) }
        let clock = ["LD_PRELOAD": library, "MEDLEDGER_CLOCK_OFFSET_MS": String(offset)]
        try await ProcessNetwork.with("clock\(offset > 0 ? "+" : "")\(offset / 1000)s", environment: [skewed: clock],
                                      initArguments: ["--clock-skew-ms", String(Self.windowMilliseconds)]) { network in
            try await network.makeLeader(skewed)
            let ledAt = ContinuousClock.now
            let load = ProcessLoad(network)
            load.start()
            try await load.waitFor(100)
            // Lead for longer than the window: a leader whose clock is behind would otherwise
            // keep block time still (it never goes backwards) until every transaction is too new.
            try await Task.sleep(until: ledAt + .milliseconds(Self.windowMilliseconds + 3_000))
            #expect(try await network.leaderKeyHolder() == skewed, "the skewed node stopped leading")
            try await load.waitForMore(50)
            let skewedAcks = load.acknowledged(by: skewed, from: ledAt, to: .now)
            #expect(skewedAcks == 0, "the skewed node acknowledged \(skewedAcks) transactions it should refuse as skewed")
            let refusal = load.errors.withLock { $0[skewed]?.last } ?? ""
            #expect(refusal.contains("timestamp_skew"), "the skewed node's clients were told: \(refusal.prefix(300))")

            // The operator fixes the clock: the node restarts without the skew.
            await network.kill(skewed)
            let fixedAt = ContinuousClock.now
            try await network.startNode(skewed)
            try await network.progress(since: fixedAt, what: "clock fixed, node restarted")
            try await load.waitForMore(100)
            await load.stop()
            let height = try await network.checkConverged(acknowledged: load.ids)

            let store = try LedgerStore(path: network.database(network.names[1]))
            var worst: Int64 = 0
            for at in 1...height {
                let block = try #require(try store.block(at: at))
                let times = block.transactions.map(\.timestamp).sorted()
                guard !times.isEmpty else { continue }
                let off = block.header.timestamp - times[times.count / 2]
                if off.magnitude > worst.magnitude { worst = off }
            }
            network.timeline.note("block time vs the median time of its transactions: at worst \(worst) ms (window \(Self.windowMilliseconds) ms)")
            #expect(worst.magnitude <= Self.windowMilliseconds / 2 + 1_000,
                    "a block's time is \(worst) ms from its transactions' median time (window \(Self.windowMilliseconds) ms)")
        }
    }
}
