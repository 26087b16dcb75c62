import ArgumentParser
import Crypto
import Foundation
import X509
import SwiftASN1
import LedgerCore
import Node
import Collector

struct Governance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Propose, approve and revoke: membership, organisations and configuration.",
        discussion: """
            A proposal takes effect in the transaction that reaches the network's approval policy \
            (default: a majority of organisations, one vote each, cast by their admins). An admin revokes \
            a certificate of their own organisation at once with `revoke`.

            Examples:
              medledger issue --network ./net --org st-mary --name pump-7 --role device
              medledger governance propose-member --network ./net --identity st-mary/admin \\
                  --certificate ./net/orgs/st-mary/pump-7.pem --device-udi '(01)00844588003288(21)P7'
              medledger governance propose-organization --network ./net --identity st-mary/admin \\
                  --bundle ./east-clinic/public/organization.json
              medledger governance approve --network ./net --identity north-general/admin --proposal <id>
              medledger governance revoke --network ./net --identity st-mary/admin --fingerprint <hex>
            """
    )

    @Argument(help: "propose-member, propose-organization, propose-revoke, propose-config, approve or revoke.")
    var action: String

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "PEM certificate of the member to add (propose-member).")
    var certificate: String?

    @Option(name: .long, help: "UDI the device key is bound to (propose-member of a device).")
    var deviceUDI: String?

    @Option(name: .long, help: "A new organisation's public bundle, ORGDIR/public/organization.json (propose-organization).")
    var bundle: String?

    @Option(name: .long, help: "Certificate fingerprint, 64 hex digits (propose-revoke, revoke).")
    var fingerprint: String?

    @Option(name: .long, help: "Proposal id, 64 hex digits (approve).")
    var proposal: String?

    @Option(name: .long, help: "New block size (propose-config).")
    var batchSize: UInt32?

    @Option(name: .long, help: "New block timeout in ms (propose-config).")
    var batchTimeoutMs: UInt32?

    func run() async throws {
        let name: String
        let arguments: [UInt8]
        switch action {
        case "propose-member":
            guard let certificate, let pem = FileManager.default.contents(atPath: certificate),
                  let parsed = try? Certificate(pemEncoded: String(decoding: pem, as: UTF8.self))
            else { throw ValidationError("--certificate must name a PEM certificate file") }
            name = "propose"
            arguments = ProposalAction.addMember(MemberRegistration(certificate: parsed.derBytes, deviceUDI: deviceUDI)).encoded
        case "propose-organization":
            guard let bundlePath = bundle else { throw ValidationError("propose-organization needs --bundle ORGDIR/public/organization.json") }
            do {
                let (organization, members, _) = try OrganizationBundle.load(bundlePath).validated()
                name = "propose"
                arguments = ProposalAction.addOrganization(organization, members: members).encoded
            } catch {
                throw UserError(error.userMessage)
            }
        case "propose-revoke":
            guard let fingerprint = fingerprint.flatMap(Hash256.init(hex:)) else { throw ValidationError("--fingerprint must be 64 hex digits") }
            name = "propose"
            arguments = ProposalAction.revokeCertificate(fingerprint).encoded
        case "propose-config":
            // Start from the configuration in force, not the genesis one in network.json.
            var config = try await options.client().chain().config
            if let batchSize { config.batchSize = batchSize }
            if let batchTimeoutMs { config.batchTimeoutMilliseconds = batchTimeoutMs }
            name = "propose"
            arguments = ProposalAction.updateConfig(config).encoded
        case "approve":
            guard let id = proposal.flatMap(Hash256.init(hex:)) else { throw ValidationError("--proposal must be 64 hex digits") }
            name = "approve"
            arguments = id.bytes
        case "revoke":
            guard let fingerprint = fingerprint.flatMap(Hash256.init(hex:)) else { throw ValidationError("--fingerprint must be 64 hex digits") }
            name = "revoke"
            arguments = fingerprint.bytes
        default:
            throw ValidationError("action must be propose-member, propose-organization, propose-revoke, propose-config, approve or revoke")
        }
        let status = try await options.submit(contract: "governance", action: name, arguments: arguments)
        if name == "propose" {
            print("proposal \(status.id.hex): other organisations' admins approve it with --proposal \(status.id.hex)")
        }
    }
}

struct Issue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue a member certificate and key from an organisation's CA.",
        discussion: """
            Writes NAME.pem and NAME.key (0600) into the organisation's directory: --org-dir DIR (the directory \
            from `medledger org init`, which holds ca.key), or NETWORK/orgs/ORG when the network directory holds \
            that organisation's CA key (`medledger init`). The certificate is usable on the ledger once a \
            governance proposal registers it (`medledger governance propose-member`).

            Example:
              medledger issue --network ./net --org st-mary --name collector-2 --role collector
              medledger issue --org-dir ./st-mary --name pump-7 --role device
            """
    )

    @Option(name: .long, help: "Network directory (holding orgs/ORG/ca.key).")
    var network: String?

    @Option(name: .long, help: "Organisation id (with --network).")
    var org: String?

    @Option(name: .long, help: "The organisation's own directory (instead of --network and --org).")
    var orgDir: String?

    @Option(name: .long, help: "Member name (file name and certificate CN suffix).")
    var name: String

    @Option(name: .long, help: "Role: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).")
    var role: String

    func run() throws {
        guard let role = Role(rawValue: role) else { throw ValidationError("unknown role \(self.role)") }
        guard Organization.isValidID(name) else { throw ValidationError("--name must be a-z, 0-9 and -") }
        let org: String, folder: String
        switch (orgDir, network, self.org) {
        case (let orgDir?, nil, nil):
            do { org = try OrganizationDirectory.load(orgDir).id } catch { throw UserError(error.userMessage) }
            folder = orgDir
        case (nil, let network?, let id?):
            (org, folder) = (id, NetworkDefinition.organizationPath(id, in: network))
        default:
            throw ValidationError("give --org-dir, or --network and --org")
        }
        do {
            let authority = try OrganizationDirectory.authority(in: folder, organization: org)
            let key = P256.Signing.PrivateKey()
            let certificate = try authority.issue(name: "\(org)/\(name)", role: role, publicKey: key.publicKey)
            try SecureFile.create(folder + "/\(name).key", text: key.pemRepresentation)
            try SecureFile.create(folder + "/\(name).pem", text: certificate.pemText, mode: 0o644)
            print("issued \(org)/\(name) [\(role.rawValue)] fingerprint \(certificate.fingerprint.hex)")
            print("certificate: \(folder)/\(name).pem (register it with: medledger governance propose-member --certificate \(folder)/\(name).pem …)")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}
