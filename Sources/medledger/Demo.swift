import ArgumentParser
import Foundation
import Synchronization
import Logging
import ServiceLifecycle
import UnixSignals
import LedgerCore
import Node
import Server
import Collector

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the embedded demo: a 5-organisation network, one node, simulated hospital collectors, the API.",
        discussion: """
            Creates (or reuses) a demo network in --data with fresh keys, as `medledger init` does: each \
            organisation in its own directory --data/orgs/ID, the founding ceremony run in-process. Starts \
            st-mary's node with solo ordering, runs one collector per hospital (each reading only its own \
            organisation's directory) that registers devices and then sends event-driven updates, stores \
            encrypted records of three simulated patients with their consents, and serves the node API. \
            Ctrl-C stops it cleanly.

            Example:
              swift run -c release medledger demo --duration 60
            """
    )

    @Option(name: .long, help: "Demo directory (created on first run, reused after).")
    var data = "./medledger-demo"

    @Option(name: .long, help: "HTTP port on 127.0.0.1 (0 picks a free port).")
    var port = 8080

    @Option(name: .long, help: "Run this many seconds, then stop and exit 0 (default: until Ctrl-C).")
    var duration: Double?

    // 3 hospitals × 500 devices put ~300 under each of the 5 simulated manufacturers: above the
    // open-domain release threshold at the default ε 0.1 (τ = 202), so a grouped count by
    // manufacturer releases every group (with 25 each it released none).
    @Option(name: .long, help: "Devices each hospital collector registers (500: enough that open-domain grouped counts release their groups at the default ε).")
    var devices = 500

    @Option(name: .long, help: "Milliseconds between device events per collector.")
    var intervalMs = 250

    @Option(name: .long, help: "Log level.")
    var logLevel: Logger.Level = .warning

    func run() async throws {
        Logs.bootstrap(level: logLevel)
        let logger = Logger(label: "medledger.demo")
        let created = !FileManager.default.fileExists(atPath: data + "/" + NetworkDefinition.fileName)
        if created {
            do { _ = try NetworkBuilder.build(.demo, directory: data) } catch let error as LedgerError {
                throw UserError("cannot create the demo network in \(data): \(error.userMessage)")
            }
        }
        let definition: NetworkDefinition
        let node: LedgerNode
        do {
            definition = try NetworkDefinition.load(directory: data)
            // The founding node: it reads only st-mary's directory (orgs/st-mary).
            node = try LedgerNode(directory: data, logger: logger)
        } catch let error as LedgerError {
            throw UserError("cannot start the node: \(error.userMessage). Remove \(data) to start afresh.")
        }
        let port = PortBox()
        let app = APIServer.application(node: node, port: self.port, logger: logger) { actual in
            port.value.withLock { $0 = actual }
            printBanner(definition: definition, node: node, port: actual, created: created)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: LedgerNodeService(node: node)),
            .init(service: app),
        ]
        try SecureFile.makeDirectory(data + "/collectors")
        for (offset, organization) in definition.organizations.enumerated() where organization.kind == .hospital {
            guard let member = organization.members.first(where: { $0.role == .collector }) else { continue }
            // Each hospital's collector reads only its own organisation's directory.
            let identity = try definition.identity(member, of: organization, directory: data)
            let outbox = try Outbox(path: data + "/collectors/\(organization.id).outbox.sqlite")
            let service = CollectorService(
                hospital: organization.id, identity: identity, network: definition.networkID, outbox: outbox,
                seed: UInt64(offset + 1) &* 0x9E37_79B9 &+ UInt64(node.tip.height), devices: created ? devices : 0,
                interval: .milliseconds(intervalMs), port: port, logger: logger
            )
            services.append(.init(service: service, successTerminationBehavior: .ignore))
        }
        services.append(.init(service: StatusService(node: node), successTerminationBehavior: .ignore))
        services.append(.init(service: PatientDemoService(data: data, definition: definition, port: port, seed: created, logger: logger),
                              successTerminationBehavior: .ignore))
        if let duration {
            services.append(.init(service: TimerService(duration: .milliseconds(Int(duration * 1000))),
                                  successTerminationBehavior: .gracefullyShutdownGroup))
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
        print("Demo stopped at height \(node.tip.height). Data kept in \(data); verify it with: medledger verify --data \(data)")
    }

    func printBanner(definition: NetworkDefinition, node: LedgerNode, port: Int, created: Bool) {
        let base = "http://127.0.0.1:\(port)"
        let hospitals = definition.organizations.filter { $0.kind == .hospital }.map(\.id)
        Output.line("""
            MedLedger demo — network \(definition.name) (\(definition.networkID.hex.prefix(16))…)
              data:          \(data) (\(created ? "new keys generated" : "reused"))
              organisations: \(definition.organizations.map { "\($0.id) [\($0.kind.rawValue)]" }.joined(separator: ", "))
              node:          solo ordering, batch \(node.config.batchSize) tx / \(node.config.batchTimeoutMilliseconds) ms, height \(node.tip.height)
              API:           \(base)
              collectors:    \(hospitals.joined(separator: ", ")) (\(created ? "\(devices) devices each, then" : "") an event every \(intervalMs) ms)

            Try:
              curl \(base)/health
              curl -H "$(medledger auth-header --network \(data) --identity st-mary/admin GET '/v1/devices?limit=3')" '\(base)/v1/devices?limit=3'
              medledger api --network \(data) --identity device-regulator/auditor --node \(base) GET /v1/chain
              medledger api --network \(data) --identity device-regulator/auditor --node \(base) GET /v1/blocks/1
              medledger api --network \(data) --identity st-mary/admin --node \(base) GET '/v1/devices?owner=st-mary&limit=3'
              curl -N -H "$(medledger auth-header --network \(data) --identity device-regulator/auditor GET '/v1/events?from=0')" '\(base)/v1/events?from=0'
              curl -H "$(medledger auth-header --network \(data) --identity st-mary/admin GET /metrics)" \(base)/metrics
              medledger query count --network \(data) --identity medtech-research/researcher --node \(base) \\
                  --epsilon 0.5 --where device_type=infusion_pump --where battery_level=..50
              medledger query grouped --by manufacturer --network \(data) --identity medtech-research/researcher --node \(base)
              medledger query budget --network \(data) --identity medtech-research/researcher --node \(base)
              medledger verify --data \(data)
              medledger export --data \(data) --out chain.json
              medledger proof --data \(data) --tx <transaction id from /v1/blocks/1>
            Press Ctrl-C to stop.

            """)
    }
}

/// Runs one hospital collector against the node's HTTP API.
struct CollectorService: Service {
    let hospital: String
    let identity: SigningIdentity
    let network: Hash256
    let outbox: Outbox
    let seed: UInt64
    let devices: Int
    let interval: Duration
    let port: PortBox
    let logger: Logger

    func run() async throws {
        // Wait for the server to be listening.
        while port.value.withLock({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let client = NodeClient(baseURL: URL(string: "http://127.0.0.1:\(port.value.withLock { $0 })")!,
                                signer: .init(identity: identity, network: network))
        let collector = HospitalCollector(hospital: hospital, identity: identity, network: network, client: client, outbox: outbox,
                                          seed: seed, logger: logger)
        do {
            try await withGracefulShutdownHandler {
                try await collector.run(deviceCount: devices, interval: interval)
            } onGracefulShutdown: {
                collector.stop()
            }
        } catch is CancellationError {
        } catch let error as LedgerError where error.code == .io {
            // The server went away during shutdown.
        }
    }
}

/// Prints a status line every few seconds.
struct StatusService: Service {
    let node: LedgerNode

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(5))
                let tip = node.tip
                Output.line("height \(tip.height) · \(tip.logSize) transactions · \(String(format: "%.1f", node.metrics.throughput)) tx/s · \(node.pendingCount) pending")
            }
        }
    }
}

/// Returns after `duration`, which gracefully shuts the group down.
struct TimerService: Service {
    let duration: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }
}

/// The port the server bound, once it is listening (0 before).
final class PortBox: Sendable {
    let value = Mutex(0)
}
