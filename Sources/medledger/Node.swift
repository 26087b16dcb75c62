import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import LedgerCore
import Node
import Server
import Etcd
import Ordering

enum OrderingChoice: String, ExpressibleByArgument, CaseIterable {
    case solo, etcd
}

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a ledger node from a network directory (solo or etcd ordering) and serve its HTTP API.",
        discussion: """
            The ledger database is DIR/ledger.sqlite; it is created with the genesis block on first start. \
            SIGINT/SIGTERM stop the node cleanly after committing what it already admitted.

            With --ordering etcd, every node of the network orders through one etcd cluster: one node at \
            a time leads (elected through a lease), submissions to any node are acknowledged once etcd \
            holds them, and every node verifies and executes every block.

            Example:
              medledger node --data ./net --port 8080
              medledger node --data ./net --identity north-general/node --database ./net/north-general.sqlite \
                --ordering etcd --etcd 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 --port 8081
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

    @Option(name: .long, help: "Ordering: solo (this node alone) or etcd (every node of the network through one etcd cluster).")
    var ordering: OrderingChoice = .solo

    @Option(name: .long, help: "With --ordering etcd: the etcd members' client endpoints, host:port,host:port,...")
    var etcd: String?

    @Option(name: .long, help: "With --ordering etcd: PEM CA bundle that signs the etcd members' certificates (enables TLS).")
    var etcdCA: String?

    @Option(name: .long, help: "With --ordering etcd and TLS: this node's client certificate chain (PEM) for mutual TLS.")
    var etcdCert: String?

    @Option(name: .long, help: "With --ordering etcd and TLS: the private key (PEM, mode 0600) of --etcd-cert.")
    var etcdKey: String?

    @Option(name: .long, help: "With --ordering etcd: seconds the leader's lease lives without a keep-alive (failover takes about this long).")
    var leaseTTL: Int64 = 3

    @Option(name: .long, help: "With --ordering etcd: blocks etcd always keeps (the leader trims below what every node has, keeping at most 8 times this many; older blocks come from other nodes' APIs).")
    var retainBlocks: UInt64 = 1000

    @Option(name: .long, help: "With --ordering etcd: the URL other nodes reach this node's API at, to fetch blocks etcd no longer holds (default http://HOST:PORT).")
    var advertise: String?

    @Option(name: .long, help: "Ledger database (default DIR/ledger.sqlite).")
    var database: String?

    @Option(name: .long, help: "Largest sealed patient record this node stores, in MiB (uploads stream to disk).")
    var maxRecordMib = RecordStore.defaultMaxRecordBytes >> 20

    func run() async throws {
        Logs.bootstrap(level: logLevel)
        let logger = Logger(label: "medledger.node")
        let node: LedgerNode
        var services: [any Service] = []
        guard (1...(RecordPut.maxSize >> 20)).contains(UInt64(max(0, maxRecordMib))) else {
            throw UserError("--max-record-mib must be 1...\(RecordPut.maxSize >> 20)")
        }
        let maxRecordBytes = maxRecordMib << 20
        do {
            switch ordering {
            case .solo:
                guard etcd == nil else { throw UserError("--etcd needs --ordering etcd") }
                node = try LedgerNode(directory: data, identity: identity, databasePath: database, maxRecordBytes: maxRecordBytes, logger: logger)
            case .etcd:
                let client = try etcdClient(logger: logger)
                services.append(client)
                let network = try NetworkDefinition.load(directory: data).networkID
                guard (1...1_000_000).contains(retainBlocks) else { throw UserError("--retain-blocks must be 1...1000000") }
                if let advertise, URL(string: advertise)?.scheme == nil { throw UserError("--advertise must be a URL such as https://node.st-mary.example:8080") }
                let log = EtcdReplicatedLog(client: client, network: network, leaseTTL: leaseTTL,
                                            retention: RetentionPolicy(keep: retainBlocks), logger: logger)
                node = try LedgerNode(directory: data, identity: identity, databasePath: database, ordering: .replicated(log),
                                      maxRecordBytes: maxRecordBytes, logger: logger)
            }
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
            let wildcard = host == "0.0.0.0" || host == "::"
            let endpoint = advertise ?? "http://\(wildcard ? "127.0.0.1" : host):\(port)"
            Task { await node.advertise(endpoint: endpoint) }
        }
        var configuration = ServiceGroupConfiguration(
            services: services + [LedgerNodeService(node: node), app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        // Committed blocks are durable at every moment; a shutdown that cannot drain in time
        // (a client holding a connection open) is cancelled rather than left hanging.
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }

    func etcdClient(logger: Logger) throws -> EtcdClient {
        guard let etcd else { throw UserError("--ordering etcd needs --etcd host:port,host:port,...") }
        let endpoints = etcd.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !endpoints.isEmpty, leaseTTL >= 2, leaseTTL <= 60 else {
            throw UserError("--etcd needs at least one host:port and --lease-ttl 2...60 seconds")
        }
        var tls: EtcdClient.TLS?
        if let etcdCA {
            func read(_ path: String) throws -> String {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw UserError("cannot read \(path)") }
                return text
            }
            guard (etcdCert == nil) == (etcdKey == nil) else { throw UserError("--etcd-cert and --etcd-key go together") }
            tls = EtcdClient.TLS(trustRootsPEM: try read(etcdCA), certificateChainPEM: try etcdCert.map(read), privateKeyPEM: try etcdKey.map(read))
        } else if etcdCert != nil || etcdKey != nil {
            throw UserError("--etcd-cert and --etcd-key need --etcd-ca")
        }
        var etcdLogger = logger
        etcdLogger[metadataKey: "component"] = "etcd"
        do {
            return try EtcdClient(endpoints: endpoints, tls: tls, logger: etcdLogger)
        } catch {
            throw UserError("cannot configure the etcd client: \(error)")
        }
    }
}
