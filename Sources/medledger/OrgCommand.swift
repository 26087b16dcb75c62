import ArgumentParser
import Foundation
import LedgerCore
import Node

struct Org: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org",
        abstract: "An organisation's own directory: its root CA and its members' keys, which never leave it.",
        subcommands: [OrgInit.self]
    )
}

struct OrgInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create one organisation's root CA and founding members in its own directory.",
        discussion: """
            Writes DIR/ca.pem and ca.key, a key and certificate per founding member by kind (hospital: admin, \
            node, collector; research: admin, node, researcher; regulator: admin, node, auditor; manufacturer: \
            admin, node), and DIR/public/organization.json: the certificates only, all that leaves the \
            organisation. Keys are 0600, directories 0700. DIR must be new or empty.

            Example:
              medledger org init --id st-mary --kind hospital --name "St Mary's Hospital" --out ./st-mary
              # send ./st-mary/public/organization.json to the founding organisations
            """
    )

    @Option(name: .long, help: "Organisation id: 1...64 of a-z, 0-9 and -.")
    var id: String

    @Option(name: .long, help: "Kind: \(OrganizationKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kind: OrganizationKind

    @Option(name: .long, help: "Display name (default: the id).")
    var name: String?

    @Option(name: .long, help: "The organisation's directory (new or empty).")
    var out: String

    func run() throws {
        do {
            let organization = try OrganizationDirectory.create(id: id, name: name ?? id, kind: kind, at: out)
            let bundle = organization.bundle
            print("Created organisation \(bundle.id) (\(bundle.kind.rawValue)) in \(out)")
            print("  root CA fingerprint: \(bundle.rootFingerprint.hex)")
            for member in bundle.members {
                print("  \(member.name) [\(member.role.rawValue)] \(member.fingerprint.hex)")
            }
            print("Private keys stay in \(out) (mode 0600). Send \(out)/\(OrganizationBundle.path) to the founding organisations,")
            print("and confirm the root CA fingerprint with them by another channel.")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}

extension OrganizationKind: ExpressibleByArgument {}
