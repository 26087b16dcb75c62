import Testing
import LedgerCore

struct TimeoutTests {
    @Test func aSlowBodyIsCancelledAndAFastOneAnswers() async throws {
        let started = ContinuousClock.now
        do {
            _ = try await withTimeout(.milliseconds(50)) { try await Task.sleep(for: .seconds(30)); return 1 }
            Issue.record("a 30 s body finished within 50 ms")
        } catch let error as LedgerError {
            #expect(error.code == .unavailable)
        }
        #expect(ContinuousClock.now - started < .seconds(10), "the slow body was not cancelled")
        #expect(try await withTimeout(.seconds(30)) { 7 } == 7)
    }
}
