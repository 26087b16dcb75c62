import ArgumentParser
import Foundation
import Logging
import LedgerCore
import Node
import Collector
import Launcher

struct NetworkUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a local network on loopback: an etcd cluster, a node per organisation, a collector per hospital.",
        discussion: """
            On a directory holding a network that `network down` stopped, starts the same processes again (same \
            ledgers, etcd data and ports; nodes on new ports) and ignores the options that shape a new network. \
            Otherwise creates a fresh network in --data exactly as `medledger init` does (each organisation's keys in \
            DIR/orgs/ID/, mode 0600), starts --etcd members of the system `etcd` (Debian package etcd-server), one \
            `medledger node --ordering etcd` per organisation and, unless --no-collectors, one simulated collector \
            per hospital. Every process runs detached (its own session) with its output in DIR/logs/NAME.log and is \
            recorded in DIR/run/processes.json. Returns once every node listens and one leads; prints the \
            endpoints. Stop everything with `medledger network down --data DIR`.

            Example:
              medledger network up --orgs 4 --etcd 3 --data ./local
              medledger network status --data ./local
              medledger network down --data ./local
            """
    )

    @Option(name: .long, help: "Organisations, each running a node (1...64).")
    var orgs = 4

    @Option(name: .customLong("etcd"), help: "etcd members (1...9).")
    var etcdMembers = 3

    @Option(name: .long, help: "Directory for the new network, or of a network `network down` stopped.")
    var data: String

    @Flag(name: .long, inversion: .prefixedNo, help: "Start a simulated collector per hospital.")
    var collectors = true

    @Option(name: .long, help: "Devices each collector registers.")
    var devices = 25

    @Option(name: .long, help: "Milliseconds between a collector's device events.")
    var intervalMs = 250

    @Option(name: .long, help: "Seconds a leader's lease lives without a keep-alive.")
    var leaseTTL = 3

    @Option(name: .long, help: "Log level of the node and collector processes.")
    var logLevel: Logger.Level = .warning

    @OptionGroup var settings: NetworkConfigOptions

    func run() async throws {
        Logs.bootstrap(level: .error)
        var options = LocalNetwork.Options(directory: data, executable: LocalNetwork.currentExecutable)
        options.organizations = orgs
        options.etcdMembers = etcdMembers
        options.config = try settings.config()
        options.collectors = collectors
        options.devices = devices
        options.intervalMilliseconds = intervalMs
        options.leaseTTL = leaseTTL
        options.logLevel = logLevel.rawValue
        let table: ProcessTable
        do {
            table = try await LocalNetwork.up(options, logger: Logger(label: "medledger.network")) { Output.line($0) }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        } catch {
            throw UserError("\(error)")
        }
        let directory = URL(fileURLWithPath: data).standardizedFileURL.path
        let definition = try NetworkDefinition.load(directory: directory)
        let reader = try LocalNetwork.statusIdentity(definition, directory: directory)
        let reference = definition.organizations.flatMap { organization in
            organization.members.filter { $0.fingerprint == reader.fingerprint }.map { "\(organization.id)/\($0.name)" }
        }.first ?? "st-mary/admin"
        let first = table.nodes.first?.endpoint ?? "http://127.0.0.1:8080"
        var lines = ["", "MedLedger local network \(definition.name) (\(definition.networkID.hex.prefix(16))…) is up in \(directory)"]
        for record in table.processes {
            lines.append("  \(record.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \((record.endpoint ?? "-").padding(toLength: 24, withPad: " ", startingAt: 0)) pid \(record.pid)  log \(record.log)")
        }
        let hospital = definition.organizations.first { $0.kind == .hospital }?.id ?? definition.organizations[0].id
        lines += [
            "",
            "Try:",
            "  medledger network status --data \(directory)",
            "  medledger api --network \(directory) --identity \(reference) --node \(first) GET /v1/node",
            "  medledger device register --network \(directory) --identity \(hospital)/collector --node \(table.nodes.last?.endpoint ?? first) \\",
            "      --udi '(01)00844588003288(21)TRY1' --set manufacturer=Helix --set model=HX-1 --set device_type=ventilator \\",
            "      --set category=life_support --set speciality=intensive_care --set production_date=2023-05-01",
            "  medledger api --network \(directory) --identity \(reference) --node \(first) GET /v1/blocks/1",
            "Processes: \(directory)/\(ProcessTable.path); stop them with: medledger network down --data \(directory)",
        ]
        Output.line(lines.joined(separator: "\n"))
    }
}

struct NetworkStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Every node of a local network: height, block hash, state root, leader, lag, certificate expiry, divergence.",
        discussion: """
            Reads DIR/run/processes.json and asks each node `GET /v1/node` (signed with --identity: by default the \
            network's first auditor, else its first node), then compares every answering node's block at the lowest \
            height they all reached. Exit status 1 if a node is down or diverged, or the blocks differ; a certificate \
            expiring within 30 days is a warning.

            Example:
              medledger network status --data ./local --json
            """
    )

    @Option(name: .long, help: "Network directory of `network up`.")
    var data: String

    @Option(name: .long, help: "Identity to sign the reads with, as org/name (a node, an auditor or an admin).")
    var identity: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        Logs.bootstrap(level: .error)
        let report: NetworkReport
        do {
            guard let table = try ProcessTable.load(directory: data) else {
                throw UserError("no local network runs from \(data) (no \(ProcessTable.path)); start one with: medledger network up --data \(data)")
            }
            let definition = try NetworkDefinition.load(directory: data)
            let reader = try identity.map { name throws(LedgerError) in try definition.identity(named: name, directory: data) }
                ?? LocalNetwork.statusIdentity(definition, directory: data)
            report = await NetworkReport.gather(table, reader: .init(identity: reader, network: definition.networkID))
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
        if json {
            Output.json(report)
        } else {
            FileHandle.standardOutput.write(Data(report.rendered().utf8))
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct NetworkDown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop exactly the processes `network up` recorded in DIR/run/processes.json.",
        discussion: """
            Collectors, then nodes, then etcd members: SIGTERM, up to --grace seconds to exit, then SIGKILL. A pid is \
            signalled only while its start time (/proc/PID/stat) is still the recorded one, so a process that \
            reused the number is never touched. Moves processes.json to run/stopped.json; the network directory \
            (ledgers, logs) stays, and `network up --data DIR` starts the same processes again. Safe to run again.

            Example:
              medledger network down --data ./local
            """
    )

    @Option(name: .long, help: "Network directory of `network up`.")
    var data: String

    @Option(name: .long, help: "Seconds each group of processes has to exit after SIGTERM before SIGKILL.")
    var grace = 15

    func run() async throws {
        let lock: ProcessTable.Lock?
        do { lock = FileManager.default.fileExists(atPath: data) ? try ProcessTable.Lock(directory: data) : nil } catch {
            throw UserError(error.userMessage)
        }
        defer { withExtendedLifetime(lock) {} }
        let loaded = Result { () throws(LedgerError) in try ProcessTable.load(directory: data) }
        guard case .success(let table) = loaded else {
            if case .failure(let error) = loaded { throw UserError(error.userMessage) }
            return
        }
        guard let table else {
            Output.line("nothing to stop: no \(ProcessTable.path) in \(data) (already down)")
            return
        }
        // Collectors first (they submit to nodes), then nodes (they commit what they admitted), then etcd.
        for kind in [ProcessTable.Record.Kind.collector, .node, .etcd] {
            let records = table.processes.filter { $0.kind == kind }
            guard !records.isEmpty else { continue }
            let outcomes = await DetachedProcess.stop(records, grace: .seconds(max(grace, 0)))
            for record in records {
                switch outcomes[record] ?? .alreadyGone {
                case .stopped: Output.line("stopped \(record.name) (pid \(record.pid))")
                case .killed: Output.line("killed \(record.name) (pid \(record.pid)): it did not exit within \(grace) s of SIGTERM")
                case .alreadyGone: Output.line("\(record.name) (pid \(record.pid)) was already gone")
                case .pidReused: Output.line("\(record.name): pid \(record.pid) now belongs to another process (its start time differs); left alone")
                }
            }
        }
        ProcessTable.markStopped(directory: data)
        Output.line("network in \(data) is down; its data stays: `medledger network up --data \(data)` starts it again (remove the directory to start afresh)")
    }
}
