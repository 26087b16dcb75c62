import Testing
import Synchronization
import LedgerCore

struct TimeoutTests {
    /// No timing assertion (the parallel suite can starve the cooperative pool for many seconds):
    /// the slow body must have been cancelled by the time `withTimeout` throws.
    @Test func aSlowBodyIsCancelledAndAFastOneAnswers() async throws {
        let cancelled = Mutex(false)
        do {
            _ = try await withTimeout(.milliseconds(50)) { () async throws -> Int in
                do { try await Task.sleep(for: .seconds(600)) } catch {
                    cancelled.withLock { $0 = true }
                    throw error
                }
                return 1
            }
            Issue.record("a 600 s body finished before its 50 ms timeout")
        } catch let error as LedgerError {
            #expect(error.code == .unavailable)
        }
        #expect(cancelled.withLock { $0 }, "the slow body was not cancelled")
        #expect(try await withTimeout(.seconds(30)) { 7 } == 7)
    }
}
