import ArgumentParser
import Foundation
import LedgerCore
import Node

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a whole network on one machine: each organisation in its own directory, the founding ceremony in-process.",
        discussion: """
            Each organisation gets its own directory DIR/orgs/ID with an ECDSA P-256 root CA and founding members \
            by kind (hospital: admin, node, collector; research: admin, node, researcher; regulator: admin, node, \
            auditor; manufacturer: admin, node), exactly as `medledger org init` makes it. The genesis draft is \
            assembled from their public bundles, every organisation's admin approves it from its own directory, \
            and the first organisation's node seals block 0 (`medledger network` runs the same steps across \
            machines). Private keys are written 0600 and never printed.

            Example:
              medledger init --out ./net --org st-mary:hospital:"St Mary's Hospital" \\
                  --org north:hospital:"North General" --org research:research:"Research Consortium"
            """
    )

    @Option(name: .long, help: "Directory to create the network in.")
    var out = "./medledger-network"

    @Option(name: .long, help: "Network name.")
    var name = "medledger"

    @Option(name: .long, help: "Organisation as id:kind:Display Name (kind: hospital, research, regulator, manufacturer). Repeat. Default: the demo's five organisations.")
    var org: [String] = []

    @OptionGroup var settings: NetworkConfigOptions

    func run() throws {
        var spec = NetworkSpec.demo
        spec.name = name
        if !org.isEmpty {
            spec.organizations = try org.map { text in
                let parts = text.split(separator: ":", maxSplits: 2).map(String.init)
                guard parts.count >= 2, let kind = OrganizationKind(rawValue: parts[1]) else {
                    throw ValidationError("--org \(text): expected id:kind[:Name] with kind one of \(OrganizationKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return .init(id: parts[0], name: parts.count > 2 ? parts[2] : parts[0], kind: kind)
            }
        }
        spec.config = try settings.config()
        do {
            let definition = try NetworkBuilder.build(spec, directory: out)
            print("Created network \(definition.name) in \(out)")
            print("  network id: \(definition.networkID.hex)")
            for organization in definition.organizations {
                print("  \(organization.id) (\(organization.kind.rawValue)): \(organization.members.map { "\($0.name) [\($0.role.rawValue)]" }.joined(separator: ", "))")
            }
            print("  genesis approved by: \(definition.approvedBy.joined(separator: ", "))")
            print("Each organisation's keys are in its own directory \(out)/orgs/<id>/ (mode 0600). Start a node with: medledger node --data \(out)")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}
