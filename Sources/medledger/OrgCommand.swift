import ArgumentParser
import Foundation
import Crypto
import LedgerCore
import Node

struct Org: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "org",
        abstract: "An organisation's own directory: its root CA and its members' keys, which never leave it.",
        subcommands: [OrgInit.self, OrgTLS.self, OrgCABundle.self]
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

struct OrgTLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls",
        abstract: "Issue a TLS certificate and key from this organisation's CA: for an etcd member (server) or a node's etcd client.",
        discussion: """
            A server certificate carries serverAuth and clientAuth (an etcd member uses it towards clients and \
            its peers, and etcd's own gateway dials with it) and the names it answers for as SANs; a client \
            certificate carries clientAuth. Writes PREFIX.pem (0644) and PREFIX.key (0600, new file).

            Example:
              medledger org tls --org ./st-mary --server --name etcd-1 --ip 10.0.0.1 --dns etcd-1.st-mary.example --out ./st-mary/etcd-1
              medledger org tls --org ./st-mary --client --name node --out ./st-mary/etcd-client
            """
    )

    @Option(name: .long, help: "The organisation's directory (holds ca.pem and ca.key).")
    var org: String

    @Flag(name: .long, help: "A server certificate (etcd member: server and peer).")
    var server = false

    @Flag(name: .long, help: "A client certificate (a node's connection to etcd).")
    var client = false

    @Option(name: .long, help: "Common name.")
    var name: String

    @Option(name: .long, help: "With --server: an IPv4 address it answers on (repeatable).")
    var ip: [String] = []

    @Option(name: .long, help: "With --server: a DNS name it answers on (repeatable).")
    var dns: [String] = []

    @Option(name: .long, help: "Validity in days (1...825); rotate before expiry (`/metrics` and `network status` warn 30 days ahead).")
    var days = 365

    @Option(name: .long, help: "Output path prefix: writes PREFIX.pem and PREFIX.key.")
    var out: String

    func run() throws {
        guard server != client else { throw UserError("give exactly one of --server and --client") }
        guard (1...825).contains(days) else { throw UserError("--days must be 1...825") }
        guard server || (ip.isEmpty && dns.isEmpty) else { throw UserError("--ip and --dns are for --server certificates") }
        guard !server || !(ip.isEmpty && dns.isEmpty) else { throw UserError("a server certificate needs at least one --ip or --dns") }
        do {
            let bundle = try OrganizationDirectory.load(org).bundle
            let authority = try OrganizationDirectory.authority(in: org, organization: bundle.id)
            let key = P256.Signing.PrivateKey()
            let certificate = server
                ? try authority.issueTLSServer(commonName: name, ipAddresses: ip, dnsNames: dns, publicKey: key.publicKey, days: days)
                : try authority.issueTLSClient(commonName: name, publicKey: key.publicKey, days: days)
            try SecureFile.create(out + ".key", text: key.pemRepresentation)
            try SecureFile.create(out + ".pem", text: certificate.pemText, mode: 0o644)
            print("Wrote \(out).pem and \(out).key (0600): \(server ? "server" : "client") certificate \(name) of \(bundle.id), valid \(days) days")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        } catch let error as UserError {
            throw error
        } catch {
            throw UserError("cannot issue the certificate: \(error)")
        }
    }
}

struct OrgCABundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca-bundle",
        abstract: "Print every organisation's root CA certificate of a network (PEM): the one trust bundle for etcd members and clients."
    )

    @Option(name: .long, help: "A network or node directory (holds network.json).")
    var data: String

    func run() throws {
        do {
            for organization in try NetworkDefinition.load(directory: data).organizations {
                print(organization.rootCertificate.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        } catch {
            throw UserError(error.userMessage)
        }
    }
}
