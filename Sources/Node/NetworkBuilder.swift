import Foundation
public import LedgerCore
public import Contracts

/// What `medledger init` creates: organisations (each with its founding members) and the configuration.
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
        case .hospital: [("admin", .admin), ("node", .node), ("collector", .collector), ("clinician", .clinician)]
        case .research: [("admin", .admin), ("node", .node), ("researcher", .researcher)]
        case .regulator: [("admin", .admin), ("node", .node), ("auditor", .auditor)]
        case .manufacturer: [("admin", .admin), ("node", .node)]
        }
    }
}

/// The single-machine quick start (`medledger init`, `medledger demo`), built from the pieces a
/// group of organisations would use: each organisation gets its own directory `orgs/<id>/`
/// (``OrganizationDirectory``), the founding ceremony (``GenesisCeremony``) runs in-process —
/// the draft from the public bundles only, each organisation's approval from its own directory,
/// the seal by the first organisation's node — and `network.json` is derived from the sealed
/// genesis block. A node started on the directory reads only its own organisation's directory.
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
        try SecureFile.makeDirectory(directory + "/" + NetworkDefinition.organizationsDirectory)
        let paths = spec.organizations.map { NetworkDefinition.organizationPath($0.id, in: directory) }
        for (organization, path) in zip(spec.organizations, paths) {
            _ = try OrganizationDirectory.create(id: organization.id, name: organization.name, kind: organization.kind, at: path, now: now)
        }
        // What each party reads: the drafter the public bundles, each organisation its own directory.
        let bundles = try paths.map { path throws(LedgerError) in try OrganizationBundle.load(path + "/" + OrganizationBundle.path) }
        let draft = try GenesisCeremony.draft(name: spec.name, config: spec.config, organizations: bundles).encoded
        let approvals = try paths.map { path throws(LedgerError) in
            try GenesisCeremony.approve(draft: draft, organization: try OrganizationDirectory.load(path))
        }
        let block = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: try OrganizationDirectory.load(paths[0]),
                                             time: Int64(now.timeIntervalSince1970 * 1000))
        try SecureFile.create(directory + "/" + NetworkDefinition.genesisFileName, contents: block.encoded, mode: 0o644)
        let definition = try NetworkDefinition(genesis: block)
        try definition.write(to: directory)
        return definition
    }
}
