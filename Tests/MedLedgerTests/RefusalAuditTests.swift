import Testing
import Foundation
import LedgerCore
import LedgerStore
import Node
import LedgerTesting

/// The refusal audit stays bounded on disk and in memory, and a flood is still on it as a count.
struct RefusalAuditTests {
    @Test func theOldestRefusalsArePrunedAndIdsStayContiguous() throws {
        let path = Fixtures.temporaryPath("refusals") + ".sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try LedgerStore(path: path)
        for batch in 0..<5 {
            let refusals = (0..<5).map { index in
                Refusal(time: 1_000 + Int64(batch * 5 + index), transactionID: nil, creator: nil, code: .badSignature, message: "r\(batch * 5 + index)")
            }
            try store.record(refusals: refusals, keep: 10)
        }
        let kept = try store.recentRefusals(limit: 100)
        #expect(kept.count == 10)
        #expect(Set(kept.map(\.message)) == Set((15..<25).map { "r\($0)" }))
    }

    /// Red-team finding: past 10,000 refusals between two flushes the rest vanished silently.
    @Test func aFloodBeyondTheBufferLeavesASummaryRow() async throws {
        let harness = try NodeHarness()
        let node = harness.node
        let flood = 10_250
        for _ in 0..<flood { node.recordRefusal(LedgerError(.malformedEncoding, "junk"), bytes: [1, 2, 3]) }
        // The idle flush runs 0.5 s after the first refusal; shutting down flushes the rest.
        try await harness.stop()
        let refusals = try node.store.recentRefusals(limit: 20_000)
        let summaries = refusals.filter { $0.code == .overloaded }
        let individual = refusals.filter { $0.code == .malformedEncoding }.count
        let counted = summaries.compactMap { Int($0.message.prefix { $0.isNumber }) }.reduce(0, +)
        #expect(!summaries.isEmpty)
        #expect(individual + counted == flood, "\(individual) rows + \(counted) counted")
    }
}
