import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import LedgerCore
import Node
import Server

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a ledger node from a network directory (solo ordering) and serve its HTTP API.",
        discussion: """
            The ledger database is DIR/ledger.sqlite; it is created with the genesis block on first start. \
            SIGINT/SIGTERM stop the node cleanly after committing what it already admitted.

            Example:
              medledger node --data ./net --port 8080
              curl http://127.0.0.1:8080/v1/chain
            """
    )

    @Option(name: .long, help: "Network directory written by `medledger init`.")
    var data: String

    @Option(name: .long, help: "Node identity as org/name (default: the first node in the network).")
    var identity: String?

    @Option(name: .long, help: "Address to bind (loopback by default).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free port).")
    var port = 8080

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "Most HTTP connections served at once (more wait in the listen backlog).")
    var maxConnections = ServerLimits().maxConnections

    @Option(name: .long, help: "Seconds a connection may stay without a complete request part before it is closed.")
    var idleTimeout = Int(ServerLimits().idleTimeout.components.seconds)

    func run() async throws {
        Logs.bootstrap(level: logLevel)
        let logger = Logger(label: "medledger.node")
        let node: LedgerNode
        do {
            node = try LedgerNode(directory: data, identity: identity, logger: logger)
        } catch let error as LedgerError {
            throw UserError("cannot start the node: \(error.userMessage)")
        }
        guard maxConnections >= 1, (1...3600).contains(idleTimeout) else {
            throw UserError("--max-connections must be at least 1 and --idle-timeout 1...3600 seconds")
        }
        var limits = ServerLimits()
        limits.maxConnections = maxConnections
        limits.idleTimeout = .seconds(idleTimeout)
        limits.requestReadTimeout = .seconds(max(idleTimeout, 1) * 2)
        let app = APIServer.application(node: node, host: host, port: port, limits: limits, logger: logger) { port in
            // One machine-readable line, for scripts and tests that start nodes on port 0.
            Output.line("medledger node listening on http://\(host):\(port) height=\(node.tip.height) network=\(node.network.hex)")
        }
        var configuration = ServiceGroupConfiguration(
            services: [LedgerNodeService(node: node), app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        // Committed blocks are durable at every moment; a shutdown that cannot drain in time
        // (a client holding a connection open) is cancelled rather than left hanging.
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }
}
