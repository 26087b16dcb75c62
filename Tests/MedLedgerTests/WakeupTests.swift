import Testing
import Foundation
import LedgerCore
import Node
import LedgerTesting

struct WakeupTests {
    /// A client waiting for its transaction is woken when the block commits, not by its timeout.
    /// (The bound is far below the timeout but far above a commit: CPU-heavy suites running in
    /// parallel on two cores can delay a single commit by seconds.)
    @Test func waitersAreWokenByTheCommit() async throws {
        let harness = try NodeHarness(batchSize: 50)
        var slowest = Duration.zero
        for serial in 0..<300 {
            let envelope = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes()))
            let started = ContinuousClock.now
            let id = try harness.node.submit(envelope.encoded)
            let status = try await harness.node.waitForCommit(id, timeout: .seconds(120))
            slowest = max(slowest, ContinuousClock.now - started)
            guard case .committed = status else {
                Issue.record("transaction \(serial) ended \(status)")
                break
            }
        }
        #expect(slowest < .seconds(60), "slowest wait \(slowest)")
        try await harness.stop()
    }
}
