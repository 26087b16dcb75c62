public import ServiceLifecycle

/// Runs a ``LedgerNode``'s commit loop as a `Service`: on graceful shutdown it stops ordering,
/// commits what was already admitted, and returns.
public struct LedgerNodeService: Service {
    public let node: LedgerNode

    public init(node: LedgerNode) {
        self.node = node
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await node.run()
        } onGracefulShutdown: {
            node.shutdown()
        }
    }
}
