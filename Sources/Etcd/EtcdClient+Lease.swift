import GRPCCore
import Logging
import SwiftProtobuf

extension EtcdClient {
    /// A granted lease.
    public struct Lease: Sendable, Hashable {
        public var id: Int64
        /// Seconds the lease lives without a keep-alive.
        public var ttl: Int64

        /// A lease granted earlier (by this or another client), to keep alive.
        public init(id: Int64, ttl: Int64) {
            self.id = id
            self.ttl = ttl
        }
    }

    /// One successful keep-alive: the lease lives `ttl` seconds from now.
    public struct KeepAlive: Sendable, Hashable {
        public var lease: Int64
        public var ttl: Int64
    }

    /// Grants a lease that lives `ttl` seconds unless kept alive. Retried on another endpoint
    /// when one fails (a lease granted by a lost attempt expires on its own).
    public func grantLease(ttl: Int64) async throws -> Lease {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        let response = try await call("lease grant", idempotent: true) { connection, options in
            try await connection.lease.leaseGrant(request, options: options)
        }
        guard response.error.isEmpty else {
            throw EtcdError.server(operation: "lease grant", code: "error", message: response.error)
        }
        return Lease(id: response.id, ttl: response.ttl)
    }

    /// Revokes a lease and deletes every key attached to it. **Not retried** (a revoke that
    /// reached etcd once answers "not found" the second time): on a failed endpoint it throws
    /// ``EtcdError/outcomeUnknown(operation:endpoint:message:)``.
    ///
    /// - Throws: ``EtcdError/leaseLost(_:)`` if the lease does not exist.
    public func revokeLease(_ id: Int64) async throws {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = id
        try await Self.mappingLeaseNotFound(id) {
            _ = try await call("lease revoke", idempotent: false) { connection, options in
                try await connection.lease.leaseRevoke(request, options: options)
            }
        }
    }

    /// The seconds a lease has left and the TTL it was granted with; nil if it does not exist.
    public func timeToLive(_ id: Int64) async throws -> (remaining: Int64, granted: Int64)? {
        var request = Etcdserverpb_LeaseTimeToLiveRequest()
        request.id = id
        let response = try await call("lease time to live", idempotent: true) { connection, options in
            try await connection.lease.leaseTimeToLive(request, options: options)
        }
        return response.ttl < 0 ? nil : (response.ttl, response.grantedTtl)
    }

    /// Refreshes a lease once: its TTL in seconds from now, 0 if it no longer exists. Retried on
    /// another endpoint when one fails, each attempt with a deadline of at most `timeout`.
    ///
    /// Each refresh is its own short `LeaseKeepAlive` stream (one request, one response, then the
    /// client half-closes), so it has a deadline like any other request and fails over the same way.
    func keepAliveOnce(_ id: Int64, timeout: Duration) async throws -> Int64 {
        let request = Etcdserverpb_LeaseKeepAliveRequest.with { $0.id = id }
        return try await call("lease keep-alive", idempotent: true) { connection, options in
            var options = options
            options.timeout = min(options.timeout ?? timeout, timeout)
            return try await connection.lease.leaseKeepAlive(options: options) { writer in
                try await writer.write(request)
            } onResponse: { response in
                for try await message in response.messages { return message.ttl }
                throw RPCError(code: .unavailable, message: "keep-alive stream ended without an answer")
            }
        }
    }

    /// Keeps a lease alive until the stream is dropped or cancelled: a refresh every third of its
    /// TTL, failing over to the next endpoint when one does not answer.
    ///
    /// Each successful refresh is yielded. The stream throws ``EtcdError/leaseLost(_:)`` once the
    /// lease is known to be gone: etcd answers that it does not exist (it expired or was revoked),
    /// or no endpoint confirmed a refresh before the TTL of the last confirmed one ran out (the
    /// lease may still exist on a cluster this client cannot reach, but whoever relies on it
    /// must assume it has expired). Whoever holds something under the lease (a leader key) must
    /// stop acting on it when the stream throws.
    ///
    /// ```swift
    /// let lease = try await etcd.grantLease(ttl: 5)
    /// for try await _ in etcd.keepAlive(lease) {}   // returns only by throwing .leaseLost
    /// ```
    public func keepAlive(_ lease: Lease) -> AsyncThrowingStream<KeepAlive, any Error> {
        let (stream, continuation) = AsyncThrowingStream<KeepAlive, any Error>.makeStream()
        let interval = Duration.milliseconds(max(lease.ttl, 1) * 1000 / 3)
        let task = startTask { [self] in
            let clock = ContinuousClock()
            // Counted from now, after the grant was answered: later than etcd's own view by at
            // most one round trip, which the refresh interval (a third of the TTL) covers.
            var expires = clock.now.advanced(by: .seconds(lease.ttl))
            while !Task.isCancelled {
                let sent = clock.now
                do {
                    guard let ttl = try await refresh(lease.id, before: expires, timeout: interval) else {
                        logger.info("lease keep-alive: no endpoint answered within the TTL", metadata: ["lease": "\(lease.id)"])
                        continuation.finish(throwing: EtcdError.leaseLost(lease.id))
                        return
                    }
                    guard ttl > 0 else {
                        continuation.finish(throwing: EtcdError.leaseLost(lease.id))
                        return
                    }
                    expires = sent.advanced(by: .seconds(ttl))
                    continuation.yield(KeepAlive(lease: lease.id, ttl: ttl))
                    try await clock.sleep(until: sent.advanced(by: interval))
                } catch is CancellationError {
                    break
                } catch EtcdError.unavailable {
                    // Every endpoint failed for now; keep trying until the lease would expire.
                    try? await clock.sleep(for: .milliseconds(200))
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// One refresh, or nil if `deadline` passes first.
    private func refresh(_ id: Int64, before deadline: ContinuousClock.Instant, timeout: Duration) async throws -> Int64? {
        try await withThrowingTaskGroup(of: Int64?.self) { group in
            group.addTask { try await self.keepAliveOnce(id, timeout: timeout) }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    static func mappingLeaseNotFound<Result>(_ id: Int64, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch EtcdError.server(_, _, let message) where message.contains("lease not found") {
            throw EtcdError.leaseLost(id)
        }
    }
}
