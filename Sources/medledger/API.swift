import ArgumentParser
import Foundation
import LedgerCore
import Node
import Collector

/// `medledger api`: one signed read of the node's HTTP API, its JSON printed.
struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Send a signed read to a node's HTTP API and print the JSON answer.",
        discussion: """
            Signs the request with the member key of --identity (Authorization: MedLedger-Signature, \
            docs/formats.md). The node answers what the identity's role may see (README, "Who may read what").

            Examples:
              medledger api --network ./net --identity st-mary/admin GET '/v1/devices?owner=st-mary&limit=3'
              medledger api --network ./net --identity device-regulator/auditor GET /v1/blocks/1
            """
    )

    @OptionGroup var options: SubmitOptions

    @Argument(help: "HTTP method (GET).")
    var method: String

    @Argument(help: "Request target: path and query, e.g. '/v1/devices?limit=3'.")
    var target: String

    func run() async throws {
        guard method.uppercased() == "GET" else { throw ValidationError("only GET is signed this way; submit transactions with their own commands") }
        guard target.hasPrefix("/") else { throw ValidationError("the target must start with /, e.g. /v1/chain") }
        let (status, body) = try await options.client().raw(target)
        if let object = try? JSONSerialization.jsonObject(with: body),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
            FileHandle.standardOutput.write(pretty + Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(body)
        }
        guard (200..<300).contains(status) else {
            Output.error("HTTP \(status)")
            throw ExitCode(1)
        }
    }
}

/// `medledger auth-header`: the signed `Authorization` line for one request, for curl.
struct AuthHeader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth-header",
        abstract: "Print a signed 'Authorization: MedLedger-Signature …' header line for one request.",
        discussion: """
            The header is valid for one request (a fresh nonce) within the network's clock window \
            (at most 5 minutes). The target must be exactly what the client sends: path and query, \
            percent-encoded the same way.

            Example:
              curl -H "$(medledger auth-header --network ./net --identity st-mary/admin GET '/v1/devices?limit=3')" \\
                  'http://127.0.0.1:8080/v1/devices?limit=3'
            """
    )

    @Option(name: .long, help: "Network directory.")
    var network: String

    @Option(name: .long, help: "Signing identity as org/name.")
    var identity: String

    @Option(name: .long, help: "File holding the request body (default: none).")
    var body: String?

    @Argument(help: "HTTP method (GET).")
    var method: String

    @Argument(help: "Request target: path and query, e.g. '/v1/devices?limit=3'.")
    var target: String

    func run() throws {
        guard target.hasPrefix("/") else { throw ValidationError("the target must start with /, e.g. /v1/chain") }
        let definition = try NetworkDefinition.load(directory: network)
        let signer = try definition.identity(named: identity, directory: network)
        let bytes = try body.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) } ?? []
        let value = RequestSignature.authorization(identity: signer, network: definition.networkID, method: method.uppercased(),
                                                   target: target, body: bytes)
        Output.line("Authorization: \(value)")
    }
}
