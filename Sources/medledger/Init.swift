import ArgumentParser
import Foundation
import LedgerCore
import Node

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a network: a root CA per organisation, member certificates, a signed genesis block.",
        discussion: """
            Each organisation gets an ECDSA P-256 root CA and founding members by kind \
            (hospital: admin, node, collector; research: admin, node, researcher; regulator: admin, node, auditor; \
            manufacturer: admin, node). Private keys are written 0600 and never printed.

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

    @Option(name: .long, help: "Most transactions per block.")
    var batchSize: UInt32 = 2000

    @Option(name: .long, help: "Longest wait before cutting a non-full block, in milliseconds.")
    var batchTimeoutMs: UInt32 = 20

    @Option(name: .long, help: "Approval policy for governance proposals: majority, all, or a number of organisations.")
    var policy = "majority"

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
        let approval: ApprovalPolicy
        switch policy {
        case "majority": approval = .majority
        case "all": approval = .all
        default:
            guard let n = UInt32(policy), n > 0 else { throw ValidationError("--policy must be majority, all or a positive number") }
            approval = .atLeast(n)
        }
        spec.config = NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs, approvalPolicy: approval)
        do {
            let definition = try NetworkBuilder.build(spec, directory: out)
            print("Created network \(definition.name) in \(out)")
            print("  network id: \(definition.networkID.hex)")
            for organization in definition.organizations {
                print("  \(organization.id) (\(organization.kind.rawValue)): \(organization.members.map { "\($0.name) [\($0.role.rawValue)]" }.joined(separator: ", "))")
            }
            print("Private keys are in \(out)/orgs/*/*.key (mode 0600). Start a node with: medledger node --data \(out)")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}
