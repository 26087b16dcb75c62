/// Runs `body`, throwing ``LedgerError/Code/unavailable`` if it takes longer than `timeout` (and
/// cancelling it): for calls to parties that may never answer (a SIGSTOPped node keeps its socket
/// open; etcd may be what is failing).
public func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw LedgerError(.unavailable, "no answer within \(timeout)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
