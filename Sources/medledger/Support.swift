import ArgumentParser
import Foundation
import Logging
import LedgerCore
import Node
import Collector
#if canImport(Glibc)
import Glibc
#endif

enum Terminal {
    static var isInteractive: Bool { isatty(STDERR_FILENO) == 1 }
}

/// Progress with an ETA on a terminal (stderr); silent when piped.
final class ProgressLine: @unchecked Sendable {
    let label: String
    let start = Date()
    var last = Date.distantPast
    let enabled: Bool

    init(_ label: String) {
        self.label = label
        enabled = Terminal.isInteractive
    }

    func update(_ done: UInt64, of total: UInt64) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(last) > 0.2 || done == total else { return }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let eta = fraction > 0 ? elapsed / fraction - elapsed : 0
        let line = String(format: "\r%@ %5.1f%% (%llu/%llu) ETA %.0fs   ", label, fraction * 100, done, total, eta)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

enum Output {
    static func json(_ value: some Encodable, pretty: Bool = true) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// Writes a line to standard output at once (unbuffered), for scripts that wait for it.
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    }
}

enum Logs {
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A clear error for the user: what was wrong and what to do, exit code 1.
struct UserError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension LedgerError {
    var userMessage: String { "\(message) [\(code)]" }
}

/// The options of commands that sign one transaction and submit it to a node.
struct SubmitOptions: ParsableArguments {
    @Option(name: .long, help: "Network directory.")
    var network: String

    @Option(name: .long, help: "Signing identity as org/name.")
    var identity: String

    @Option(name: .long, help: "Node API base URL.")
    var node = "http://127.0.0.1:8080"

    /// Signs, submits, waits for the outcome and prints it; exit 1 when refused or rejected.
    func submit(contract: String, action: String, arguments: [UInt8]) async throws -> NodeClient.Status {
        let definition = try NetworkDefinition.load(directory: network)
        let signer = try definition.identity(named: identity, directory: network)
        let (_, envelope) = signer.transaction(network: definition.networkID, contract: contract, action: action, arguments: arguments)
        let status: NodeClient.Status
        do {
            status = try await client().submit(envelope.encoded, wait: 30)
        } catch let error as LedgerError {
            throw UserError("refused: \(error.userMessage)")
        }
        print("\(status.status): transaction \(status.id.hex)\(status.height.map { " in block \($0)" } ?? "")\(status.code.map { " (\($0): \(status.message ?? ""))" } ?? "")")
        if status.status == "rejected" { throw ExitCode(1) }
        return status
    }

    /// A client whose reads are signed with `--identity` for the network in `--network`.
    func client() throws -> NodeClient {
        guard let url = URL(string: node) else { throw ValidationError("--node must be a URL") }
        let definition = try NetworkDefinition.load(directory: network)
        let signer = try definition.identity(named: identity, directory: network)
        return NodeClient(baseURL: url, signer: .init(identity: signer, network: definition.networkID))
    }
}
