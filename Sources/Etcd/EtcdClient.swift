import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import ServiceLifecycle
import Synchronization

/// A small etcd v3 client over gRPC: KV, transactions, leases, watches and the maintenance calls
/// the ledger needs.
///
/// It keeps one HTTP/2 connection per endpoint and sends every request to the *current* endpoint.
/// When that endpoint is unavailable or misses the per-request deadline, the client moves to the
/// next one, and:
///
/// * **idempotent** requests (range, lease grant/keep-alive/time-to-live, compact, member
///   list) are retried there, every endpoint at least once and for up to twice the request
///   timeout, then throw ``EtcdError/unavailable(operation:message:)``;
/// * requests that **change state** (put, delete, txn, lease revoke) are *not* retried: they throw
///   ``EtcdError/outcomeUnknown(operation:endpoint:message:)``, because the first attempt may
///   have been applied. Read back and decide (a txn guarded by a compare on `modRevision` can
///   simply be re-sent after reading).
///
/// Watches and lease keep-alives resume on the next endpoint by themselves (a watch from the
/// revision after the last one it delivered).
///
/// ```swift
/// try await withEtcdClient(endpoints: ["127.0.0.1:2379", "127.0.0.1:22379"]) { etcd in
///     let put = try await etcd.put(Array("height".utf8), Array("1".utf8))
///     let read = try await etcd.range(Array("height".utf8))
///     assert(read.kvs.first?.modRevision == put.revision)
/// }
/// ```
///
/// Run it with ``run()`` (it is a swift-service-lifecycle `Service`) or ``withEtcdClient(endpoints:tls:requestTimeout:logger:_:)``.
/// Requests made before `run()` starts wait for it.
public final class EtcdClient: Sendable {
    /// The endpoints, `host:port`, in the order they are tried.
    public let endpoints: [String]
    /// The deadline of each request (and of each attempt of a retried one).
    public let requestTimeout: Duration
    let connections: [Connection]
    let logger: Logger
    let options: CallOptions
    private let state = Mutex(State())

    private struct State {
        var current = 0
        var isShutDown = false
        var nextTask = 0
        var tasks: [Int: Task<Void, Never>] = [:]
    }

    /// The largest message the client accepts from etcd. gRPC's default, 4 MiB, is smaller than
    /// a range or watch response over a few large blocks.
    public static let defaultMaxMessageBytes = 64 * 1024 * 1024

    /// - Parameters:
    ///   - endpoints: `host:port` of each member's client URL (IPv6 as `[::1]:2379`).
    ///   - tls: trust roots and, for mutual TLS, the client's certificate chain and key; `nil` for
    ///     plaintext.
    ///   - requestTimeout: the deadline of each request attempt.
    ///   - maxMessageBytes: the largest response accepted.
    public init(
        endpoints: [String],
        tls: TLS? = nil,
        requestTimeout: Duration = .seconds(5),
        maxMessageBytes: Int = EtcdClient.defaultMaxMessageBytes,
        logger: Logger = Logger(label: "medledger.etcd")
    ) throws {
        guard !endpoints.isEmpty else { throw EtcdError.invalidConfiguration("no endpoints") }
        self.endpoints = endpoints
        self.requestTimeout = requestTimeout
        self.logger = logger
        let security = try tls?.transportSecurity ?? .plaintext
        connections = try endpoints.map { try Connection(endpoint: $0, security: security) }
        var options = CallOptions.defaults
        options.timeout = requestTimeout
        // grpc-swift-nio-transport 2.9.2 applies `maxRequestMessageBytes` to the messages a
        // client *receives* (the response deframer is built from it); `maxResponseMessageBytes`
        // is not read by the transport. Set both.
        options.maxRequestMessageBytes = maxMessageBytes
        options.maxResponseMessageBytes = maxMessageBytes
        self.options = options
    }

    /// Runs the connections until ``shutdown()``, a graceful shutdown of the service group, or
    /// cancellation.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for connection in connections {
                    group.addTask { try await connection.grpc.runConnections() }
                }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Stops watches and keep-alives, lets other in-flight requests finish, then closes the
    /// connections; ``run()`` returns once they are closed.
    public func shutdown() {
        let tasks = state.withLock { state in
            state.isShutDown = true
            defer { state.tasks = [:] }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
        for connection in connections { connection.grpc.beginGracefulShutdown() }
    }

    /// The endpoint requests go to now.
    public var currentEndpoint: String { endpoints[state.withLock { $0.current }] }

    /// A background task (watch, keep-alive) that ``shutdown()`` cancels.
    func startTask(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        state.withLock { state in
            state.nextTask += 1
            let id = state.nextTask
            // Created under the lock, so it is registered before it can try to remove itself.
            let task = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
            if state.isShutDown {
                task.cancel()
            } else {
                state.tasks[id] = task
            }
            return task
        }
    }

    /// The connection to use and its index; throws once shut down.
    func currentConnection() throws -> (Int, Connection) {
        let (index, isShutDown) = state.withLock { ($0.current, $0.isShutDown) }
        guard !isShutDown else { throw EtcdError.shutDown }
        return (index, connections[index])
    }

    /// Moves to the endpoint after `index`, unless another request already moved on.
    func failedOver(from index: Int, _ error: RPCError) {
        let moved = state.withLock { state -> Bool in
            guard state.current == index else { return false }
            state.current = (index + 1) % connections.count
            return true
        }
        if moved, connections.count > 1 {
            logger.info("etcd endpoint failed, moving on", metadata: [
                "endpoint": "\(connections[index].endpoint)", "next": "\(currentEndpoint)", "code": "\(error.code)",
            ])
        }
    }

    /// Runs `body` against the current endpoint, failing over as described on ``EtcdClient``.
    ///
    /// An idempotent request is tried on every endpoint at least once and retried until twice
    /// the request timeout has passed, pausing briefly after each round: long enough to outlast
    /// an election, which makes the remaining members answer "no leader" for a moment.
    func call<Result: Sendable>(
        _ operation: String,
        idempotent: Bool,
        _ body: (Connection, CallOptions) async throws -> Result
    ) async throws -> Result {
        let clock = ContinuousClock()
        let giveUp = clock.now.advanced(by: requestTimeout * 2)
        var last = ""
        var attempts = 0
        while true {
            let (index, connection) = try currentConnection()
            do {
                return try await body(connection, options)
            } catch let error as RPCError where Self.isEndpointFailure(error) {
                failedOver(from: index, error)
                guard idempotent else {
                    throw EtcdError.outcomeUnknown(operation: operation, endpoint: connection.endpoint, message: error.message)
                }
                last = "\(connection.endpoint): \(Self.describe(error))"
                attempts += 1
                if attempts >= connections.count, clock.now >= giveUp { break }
                if attempts % connections.count == 0 {
                    let round = attempts / connections.count
                    try await clock.sleep(for: .milliseconds(min(100 << round, 1000)))
                }
            } catch let error as RPCError {
                throw Self.map(error, operation)
            }
        }
        throw EtcdError.unavailable(operation: operation, message: last)
    }

    /// Runs `body` against one named endpoint, without failing over.
    func call<Result: Sendable>(
        _ operation: String,
        endpoint: String,
        _ body: (Connection, CallOptions) async throws -> Result
    ) async throws -> Result {
        guard let connection = connections.first(where: { $0.endpoint == endpoint }) else {
            throw EtcdError.invalidConfiguration("\(endpoint) is not one of the client's endpoints")
        }
        guard !state.withLock({ $0.isShutDown }) else { throw EtcdError.shutDown }
        // This member was asked for: wait for its connection (a restart, a reconnect backoff)
        // until the deadline rather than fail at once.
        var options = options
        options.waitForReady = true
        do {
            return try await body(connection, options)
        } catch let error as RPCError where Self.isEndpointFailure(error) {
            throw EtcdError.unavailable(operation: operation, message: "\(endpoint): \(Self.describe(error))")
        } catch let error as RPCError {
            throw Self.map(error, operation)
        }
    }

    /// Errors after which another endpoint may succeed. etcd itself answers `unavailable` for
    /// "no leader", "leader changed" and "request timed out".
    static func isEndpointFailure(_ error: RPCError) -> Bool {
        error.code == .unavailable || error.code == .deadlineExceeded
    }

    /// The code, message and underlying cause (a TLS handshake failure shows only there).
    static func describe(_ error: RPCError) -> String {
        var text = "\(error.code): \(error.message)"
        var cause = error.cause
        while let next = cause {
            if let rpc = next as? RPCError {
                text += " (\(rpc.message))"
                cause = rpc.cause
            } else {
                text += " (\(next))"
                cause = nil
            }
        }
        return text
    }

    static func map(_ error: RPCError, _ operation: String) -> any Error {
        switch error.code {
        case .cancelled:
            return CancellationError()
        case .invalidArgument where error.message.contains("request is too large"), .resourceExhausted:
            return EtcdError.requestTooLarge(operation: operation)
        case .outOfRange where error.message.contains("compacted"):
            return EtcdError.compacted(requested: 0, compactRevision: nil)
        default:
            return EtcdError.server(operation: operation, code: "\(error.code)", message: error.message)
        }
    }
}

extension EtcdClient: Service {}

/// Creates a client, runs it for the duration of `body`, then shuts it down.
public func withEtcdClient<Result: Sendable>(
    endpoints: [String],
    tls: EtcdClient.TLS? = nil,
    requestTimeout: Duration = .seconds(5),
    logger: Logger = Logger(label: "medledger.etcd"),
    _ body: (EtcdClient) async throws -> Result
) async throws -> Result {
    let client = try EtcdClient(endpoints: endpoints, tls: tls, requestTimeout: requestTimeout, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        do {
            let result = try await body(client)
            client.shutdown()
            try await group.waitForAll()
            return result
        } catch {
            client.shutdown()
            group.cancelAll()
            throw error
        }
    }
}
