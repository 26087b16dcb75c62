import Foundation
import X509
import SwiftASN1
public import LedgerCore
import Contracts

/// The public description of a network, `network.json` in a node directory (format
/// `medledger-network/2`). It is derived from the genesis block alone (``init(genesis:)``) and holds
/// only public material: organisations, root and member certificates (PEM), the configuration,
/// and which draft was approved by whom. Keys are never referenced from it: a member's key is
/// `orgs/<org>/<name>.key` in the directory, present only for the organisations whose directory
/// is there (on a real node, its own).
public struct NetworkDefinition: Codable, Sendable, Hashable {
    /// A founding member: name, role, fingerprint and PEM certificate, as in its organisation's bundle.
    public typealias MemberEntry = OrganizationBundle.Member

    public struct OrganizationEntry: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        public var kind: OrganizationKind
        /// PEM root CA certificate.
        public var rootCertificate: String
        public var rootFingerprint: Hash256
        public var members: [MemberEntry]

        enum CodingKeys: String, CodingKey {
            case id, name, kind, members
            case rootCertificate = "root_certificate"
            case rootFingerprint = "root_fingerprint"
        }
    }

    public static let formatName = "medledger-network/2"

    public var format: String
    public var name: String
    /// The network id: hash of the genesis block header.
    public var networkID: Hash256
    /// SHA-256 of the approved draft (the bytes every approval signed).
    public var draft: Hash256
    /// The organisations whose admins approved the draft, sorted.
    public var approvedBy: [String]
    /// The node that sealed block 0.
    public var sealedBy: Hash256
    public var organizations: [OrganizationEntry]
    public var config: NetworkConfig

    enum CodingKeys: String, CodingKey {
        case format, name, draft, organizations, config
        case networkID = "network_id"
        case approvedBy = "approved_by"
        case sealedBy = "sealed_by"
    }

    public static let fileName = "network.json"
    public static let genesisFileName = "genesis.block"
    public static let databaseFileName = "ledger.sqlite"
    /// Where the organisation directories present on this machine are, inside a node directory.
    public static let organizationsDirectory = "orgs"

    /// The description of the network `genesis` founds, after checking it the way every node does
    /// (it executes with its approvals and is sealed by a node it registers).
    public init(genesis: Block) throws(LedgerError) {
        _ = try LedgerNode.verifiedGenesis(genesis)
        let charter = try GenesisCharter.of(genesis)
        let draft = try charter.config()
        let founders = try draft.foundingMembers()
        format = Self.formatName
        name = draft.networkName
        networkID = genesis.header.hash
        self.draft = charter.draftHash
        approvedBy = try charter.approvingOrganizations(founders: founders, organizationCount: draft.organizations.count,
                                                        policy: draft.config.approvalPolicy, at: genesis.header.timestamp)
        sealedBy = genesis.header.proposer
        config = draft.config
        organizations = try draft.organizations.map { organization throws(LedgerError) in
            let root = try organization.parsedRootCertificate()
            let members = try founders.filter { $0.organization == organization.id }.map { member throws(LedgerError) in
                let certificate = try Certificate.parse(der: member.der)
                let prefix = organization.id + "/"
                let name = member.name.hasPrefix(prefix) ? String(member.name.dropFirst(prefix.count)) : member.name
                return MemberEntry(name: name, role: member.role, fingerprint: member.fingerprint, certificate: certificate.pemText)
            }
            return OrganizationEntry(id: organization.id, name: organization.name, kind: organization.kind, rootCertificate: root.pemText,
                                     rootFingerprint: root.fingerprint, members: members)
        }
    }

    public static func load(directory: String) throws(LedgerError) -> NetworkDefinition {
        let path = directory + "/" + fileName
        let data = Data(try SecureFile.read(path))
        struct Format: Decodable { var format: String? }
        guard (try? JSONDecoder().decode(Format.self, from: data))?.format == formatName else {
            throw LedgerError(.invalidConfiguration, "\(path) is not a \(formatName) network definition (a network created by an older medledger must be created again)")
        }
        return try JSONFiles.load(path, "a valid network definition")
    }

    public static func loadGenesis(directory: String) throws(LedgerError) -> Block {
        try Block(decoding: try SecureFile.read(directory + "/" + genesisFileName))
    }

    /// Writes `network.json` into `directory` (0644; fails if it exists).
    public func write(to directory: String) throws(LedgerError) {
        try SecureFile.create(directory + "/" + Self.fileName, contents: JSONFiles.encode(self), mode: 0o644)
    }

    /// Root certificates by organisation id.
    public func rootCertificates() throws(LedgerError) -> [String: Certificate] {
        var roots: [String: Certificate] = [:]
        for organization in organizations {
            roots[organization.id] = try Certificate.parse(pem: organization.rootCertificate, "the root certificate of \(organization.id) in \(Self.fileName)")
        }
        return roots
    }

    /// The directory of organisation `id` inside the node directory `directory`.
    public static func organizationPath(_ id: String, in directory: String) -> String {
        directory + "/" + organizationsDirectory + "/" + id
    }

    /// The organisations whose directory is present in `directory`.
    public func localOrganizations(directory: String) -> [OrganizationEntry] {
        organizations.filter { FileManager.default.fileExists(atPath: Self.organizationPath($0.id, in: directory)) }
    }

    /// Loads a member's signing identity, named `org/name` or just `name`, from its organisation's
    /// directory in `directory` (members issued after genesis by `medledger issue` included).
    public func identity(named reference: String, directory: String) throws(LedgerError) -> SigningIdentity {
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy(Organization.isValidID) else {
            throw LedgerError(.invalidArgument, "an identity is org/name or name (a-z, 0-9 and -), not \(reference)")
        }
        let name = parts[parts.count - 1]
        let candidates = parts.count == 2 ? organizations.filter { $0.id == parts[0] } : localOrganizations(directory: directory)
        for organization in candidates {
            let folder = Self.organizationPath(organization.id, in: directory)
            guard FileManager.default.fileExists(atPath: folder + "/\(name).key") else { continue }
            return try OrganizationDirectory.identity(in: folder, name: name)
        }
        // An organisation admitted by governance after genesis is not in network.json; its
        // directory is (`network join --admitted`). The ledger decides whether its members count.
        if parts.count == 2, !organizations.contains(where: { $0.id == parts[0] }) {
            let folder = Self.organizationPath(parts[0], in: directory)
            if FileManager.default.fileExists(atPath: folder + "/\(name).key") { return try OrganizationDirectory.identity(in: folder, name: name) }
        }
        let local = localOrganizations(directory: directory).map(\.id)
        if parts.count == 2, organizations.contains(where: { $0.id == parts[0] }), !local.contains(parts[0]) {
            throw LedgerError(.notFound, "\(directory) holds no keys of \(parts[0]) (it holds \(local.isEmpty ? "none" : local.joined(separator: ", "))): each organisation keeps its own keys")
        }
        throw LedgerError(.notFound, "no key for \(reference) in \(directory); members: \(allMemberNames.joined(separator: ", "))")
    }

    /// Loads `member` of `organization` from its organisation's directory in `directory`.
    public func identity(_ member: MemberEntry, of organization: OrganizationEntry, directory: String) throws(LedgerError) -> SigningIdentity {
        try identity(named: "\(organization.id)/\(member.name)", directory: directory)
    }

    /// The identity a node in `directory` runs as by default: the node that sealed genesis if its
    /// key is here, else the first founding node whose key is here.
    public func defaultNode(directory: String) throws(LedgerError) -> SigningIdentity {
        let nodes = localOrganizations(directory: directory).flatMap { organization in
            organization.members.filter { $0.role == .node }.map { (organization.id, $0) }
        }
        let present = nodes.filter { FileManager.default.fileExists(atPath: Self.organizationPath($0.0, in: directory) + "/\($0.1.name).key") }
        guard let chosen = present.first(where: { $0.1.fingerprint == sealedBy }) ?? present.first else {
            throw LedgerError(.invalidConfiguration, "\(directory) holds no founding node's key (orgs/<org>/node.key); pass the node identity")
        }
        return try identity(named: "\(chosen.0)/\(chosen.1.name)", directory: directory)
    }

    /// The first founding member with `role` (optionally of one organisation).
    public func firstMember(role: Role, organization: String? = nil) -> (organization: OrganizationEntry, member: MemberEntry)? {
        for entry in organizations where organization == nil || entry.id == organization {
            if let member = entry.members.first(where: { $0.role == role }) { return (entry, member) }
        }
        return nil
    }

    public var allMemberNames: [String] {
        organizations.flatMap { org in org.members.map { "\(org.id)/\($0.name)" } }
    }
}

extension Certificate {
    static func parse(der: [UInt8]) throws(LedgerError) -> Certificate {
        guard let certificate = try? Certificate(derEncoded: der) else {
            throw LedgerError(.invalidCertificate, "certificate is not valid DER X.509")
        }
        return certificate
    }
}
