import Foundation
import X509
import SwiftASN1
import Crypto
public import LedgerCore
public import Contracts

/// What `medledger init` creates: organisations and their founding members.
public struct NetworkSpec: Sendable {
    public struct OrganizationSpec: Sendable {
        public var id: String
        public var name: String
        public var kind: OrganizationKind
        public init(id: String, name: String, kind: OrganizationKind) {
            self.id = id
            self.name = name
            self.kind = kind
        }
    }

    public var name: String
    public var organizations: [OrganizationSpec]
    public var config: NetworkConfig

    public init(name: String, organizations: [OrganizationSpec], config: NetworkConfig = NetworkConfig()) {
        self.name = name
        self.organizations = organizations
        self.config = config
    }

    /// Three hospitals, a research coordinator and a regulator.
    public static let demo = NetworkSpec(name: "medledger-demo", organizations: [
        .init(id: "st-mary", name: "St Mary's Hospital", kind: .hospital),
        .init(id: "north-general", name: "North General Hospital", kind: .hospital),
        .init(id: "city-childrens", name: "City Children's Hospital", kind: .hospital),
        .init(id: "medtech-research", name: "MedTech Research Consortium", kind: .research),
        .init(id: "device-regulator", name: "National Medical Device Regulator", kind: .regulator),
    ])

    /// The founding members each kind of organisation gets.
    public static func defaultMembers(_ kind: OrganizationKind) -> [(name: String, role: Role)] {
        switch kind {
        case .hospital: [("admin", .admin), ("node", .node), ("collector", .collector)]
        case .research: [("admin", .admin), ("node", .node), ("researcher", .researcher)]
        case .regulator: [("admin", .admin), ("node", .node), ("auditor", .auditor)]
        case .manufacturer: [("admin", .admin), ("node", .node)]
        }
    }
}

/// Builds a network directory: one root CA per organisation, member certificates and keys
/// (keys 0600, never printed), and a genesis block signed by the first organisation's admin
/// and sealed by its node.
public enum NetworkBuilder {
    public static func build(_ spec: NetworkSpec, directory: String, now: Date = Date()) throws -> NetworkDefinition {
        try spec.config.validate()
        guard !spec.organizations.isEmpty else { throw LedgerError(.invalidConfiguration, "a network needs at least one organisation") }
        if FileManager.default.fileExists(atPath: directory + "/" + NetworkDefinition.fileName) {
            throw LedgerError(.invalidConfiguration, "\(directory) already holds a network; choose an empty directory")
        }
        var seen = Set<String>()
        for organization in spec.organizations {
            guard Organization.isValidID(organization.id) else {
                throw LedgerError(.invalidConfiguration, "organisation id \"\(organization.id)\" must be 1...64 of a-z, 0-9 and -")
            }
            guard seen.insert(organization.id).inserted else {
                throw LedgerError(.invalidConfiguration, "organisation id \(organization.id) is used twice")
            }
        }
        try SecureFile.makeDirectory(directory)

        var organizations: [Organization] = []
        var registrations: [MemberRegistration] = []
        var entries: [NetworkDefinition.OrganizationEntry] = []
        var identities: [String: SigningIdentity] = [:]
        var nodeKeys: [(fingerprint: Hash256, publicKey: P256.Signing.PublicKey)] = []
        for organization in spec.organizations {
            let folder = "orgs/\(organization.id)"
            try SecureFile.makeDirectory(directory + "/" + folder)
            let authority = try CertificateAuthority.create(organization: organization.id, now: now)
            try SecureFile.create(directory + "/\(folder)/ca.pem", text: try authority.certificate.serializeAsPEM().pemString, mode: 0o644)
            try SecureFile.create(directory + "/\(folder)/ca.key", text: authority.privateKey.pemRepresentation)
            organizations.append(Organization(id: organization.id, name: organization.name, kind: organization.kind,
                                              rootCertificate: authority.certificate.derBytes))
            var members: [NetworkDefinition.MemberEntry] = []
            for (name, role) in NetworkSpec.defaultMembers(organization.kind) {
                let key = P256.Signing.PrivateKey()
                let certificate = try authority.issue(name: "\(organization.id)/\(name)", role: role, publicKey: key.publicKey, now: now)
                let path = "\(folder)/\(name).pem"
                try SecureFile.create(directory + "/" + path, text: try certificate.serializeAsPEM().pemString, mode: 0o644)
                try SecureFile.create(directory + "/\(folder)/\(name).key", text: key.pemRepresentation)
                registrations.append(MemberRegistration(certificate: certificate.derBytes))
                members.append(.init(name: name, role: role, certificate: path, fingerprint: certificate.fingerprint))
                identities["\(organization.id)/\(name)"] = SigningIdentity(privateKey: key, certificate: certificate)
                if role == .node { nodeKeys.append((certificate.fingerprint, key.publicKey)) }
            }
            entries.append(.init(id: organization.id, name: organization.name, kind: organization.kind,
                                 rootCertificate: "\(folder)/ca.pem", members: members))
        }

        let founder = spec.organizations[0].id
        guard let admin = identities["\(founder)/admin"], let node = identities["\(founder)/node"] else {
            throw LedgerError(.internal, "founding organisation has no admin or node")
        }
        // The network noise secret: generated here, recorded only wrapped to the founding nodes, then forgotten.
        let noiseKey = try NoiseSecret().wrapped(epoch: 1, to: nodeKeys)
        let genesis = GenesisConfig(networkName: spec.name, config: spec.config, organizations: organizations, members: registrations,
                                    noiseKey: noiseKey)
        let block = try genesisBlock(genesis, admin: admin, node: node, time: Int64(now.timeIntervalSince1970 * 1000))
        try SecureFile.create(directory + "/" + NetworkDefinition.genesisFileName, contents: block.encoded, mode: 0o644)

        let definition = NetworkDefinition(name: spec.name, networkID: block.header.hash, organizations: entries, config: spec.config)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try SecureFile.create(directory + "/" + NetworkDefinition.fileName, contents: [UInt8](try encoder.encode(definition)), mode: 0o644)
        return definition
    }

    /// Executes and seals block 0.
    public static func genesisBlock(_ genesis: GenesisConfig, admin: SigningIdentity, node: SigningIdentity, time: Int64) throws -> Block {
        let (_, envelope) = admin.transaction(network: .zero, contract: GovernanceContract.name, action: "genesis",
                                              arguments: genesis.encoded, timestamp: time)
        let bytes = envelope.encoded
        let assembled = try BlockAssembler.assemble(
            [PreparedTransaction(bytes: bytes)], network: .zero, previous: nil, blockTime: time, proposer: node.fingerprint,
            frontier: MerkleFrontier(), base: MemoryLedger(), executor: BlockExecutor()
        )
        if let refusal = assembled.execution.refusals.first, let refusal {
            throw LedgerError(.invalidConfiguration, "genesis does not apply: \(refusal)")
        }
        return Block(header: assembled.header, signature: node.sign(assembled.header.encoded), envelopes: [bytes])
    }
}
