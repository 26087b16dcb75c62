import Crypto
import Foundation
import X509
public import LedgerCore
public import Contracts

/// The founding ceremony of a network of organisations that each keep their own keys.
///
/// 1. ``draft(name:config:organizations:)`` assembles a ``GenesisConfig`` from the organisations'
///    public bundles only, with a fresh network noise secret wrapped to every founding node.
/// 2. Each organisation checks the draft against its own directory and an admin signs its exact
///    bytes: ``approve(draft:organization:admin:)`` → ``GenesisApprovalFile``.
/// 3. A founding organisation's node seals block 0 once the approvals satisfy the draft's
///    ``ApprovalPolicy``: ``seal(draft:approvals:organization:node:time:)``. The genesis contract
///    checks the approvals again on every node and in `medledger verify`.
/// 4. Each organisation checks the sealed block and writes its node directory:
///    ``join(genesis:organization:into:)``.
///
/// Each step reads only what the party running it may read: the draft reads no private key, an
/// approval reads one organisation's directory, the seal reads the sealing organisation's.
public enum GenesisCeremony {
    /// Assembles a draft from public bundles. The network noise secret K is generated here,
    /// recorded only wrapped to each founding node's key, and forgotten when this returns.
    public static func draft(name: String, config: NetworkConfig, organizations bundles: [OrganizationBundle]) throws(LedgerError) -> GenesisConfig {
        guard !name.isEmpty, name.utf8.count <= 256 else { throw LedgerError(.invalidConfiguration, "the network name must be 1...256 bytes") }
        try config.validate()
        guard !bundles.isEmpty else { throw LedgerError(.invalidConfiguration, "a network needs at least one organisation") }
        var organizations: [Organization] = []
        var registrations: [MemberRegistration] = []
        var nodes: [(fingerprint: Hash256, publicKey: P256.Signing.PublicKey)] = []
        for bundle in bundles {
            let (organization, members, certificates) = try bundle.validated()
            guard !organizations.contains(where: { $0.id == organization.id }) else {
                throw LedgerError(.invalidConfiguration, "organisation \(organization.id) is listed twice")
            }
            organizations.append(organization)
            registrations += members
            for certificate in certificates where certificate.role == .node {
                guard let key = try? P256.Signing.PublicKey(rawRepresentation: certificate.publicKey) else {
                    throw LedgerError(.invalidCertificate, "node \(certificate.name) has no usable P-256 key")
                }
                nodes.append((certificate.fingerprint, key))
            }
        }
        let noiseKey = nodes.isEmpty ? nil : try NoiseSecret().wrapped(epoch: 1, to: nodes)
        let draft = GenesisConfig(networkName: name, config: config, organizations: organizations, members: registrations, noiseKey: noiseKey)
        _ = try draft.foundingMembers()
        return draft
    }

    /// Checks `draft` from `organization`'s side and signs its exact bytes with an admin's key
    /// (the first admin unless `admin` names one). Refused unless the draft passes every check the
    /// genesis contract makes before approvals, represents this organisation exactly as its own
    /// directory does (``checkRepresents(_:founders:organization:)``), and wraps the noise secret
    /// so that this organisation's nodes unwrap the committed value.
    public static func approve(draft bytes: [UInt8], organization: OrganizationDirectory, admin: String? = nil) throws(LedgerError) -> GenesisApprovalFile {
        let draft = try decodeDraft(bytes)
        let founders = try draft.foundingMembers()
        try checkRepresents(draft, founders: founders, organization: organization)
        try checkNoiseKey(draft, organization: organization)
        guard let name = admin ?? organization.member(role: .admin)?.name else {
            throw LedgerError(.notFound, "\(organization.path) has no admin")
        }
        let signer = try organization.identity(name)
        guard let me = founders.first(where: { $0.fingerprint == signer.fingerprint }), me.role == .admin else {
            throw LedgerError(.forbidden, "\(organization.id)/\(name) is not an admin this draft registers; only admins approve a genesis")
        }
        return GenesisApprovalFile(organization: organization.id, approval: GenesisApproval(draft: Hash256.of(bytes), signer: signer),
                                   draft: Hash256.of(bytes), certificate: signer.certificate)
    }

    /// Seals block 0 with `organization`'s node (the first node unless `node` names one), once
    /// the approvals satisfy the draft's approval policy; every refusal names the approval at fault.
    public static func seal(draft bytes: [UInt8], approvals files: [GenesisApprovalFile], organization: OrganizationDirectory,
                            node: String? = nil, time: Int64) throws(LedgerError) -> Block {
        let hash = Hash256.of(bytes)
        let draft = try decodeDraft(bytes)
        let founders = try draft.foundingMembers()
        var approvals: [GenesisApproval] = []
        for file in files {
            let certificate = try file.checkedCertificate()
            guard file.draft == hash else {
                throw LedgerError(.draftMismatch, "the approval by \(certificate.name) is for draft \(file.draft.hex.prefix(16))…, not this draft \(hash.hex.prefix(16))…")
            }
            if !founders.contains(where: { $0.fingerprint == certificate.fingerprint }),
               !draft.organizations.contains(where: { $0.id == certificate.organization }) {
                throw LedgerError(.unknownOrganization, "the approval by \(certificate.name) is from organisation \(certificate.organization), which is not in this draft")
            }
            approvals.append(try file.approval())
        }
        let charter = GenesisCharter(draft: bytes, approvals: approvals.sorted { $0.approver < $1.approver })
        _ = try charter.approvingOrganizations(founders: founders, organizationCount: draft.organizations.count,
                                               policy: draft.config.approvalPolicy, at: time)
        guard let name = node ?? organization.member(role: .node)?.name else {
            throw LedgerError(.notFound, "\(organization.path) has no node")
        }
        let sealer = try organization.identity(name)
        guard founders.contains(where: { $0.fingerprint == sealer.fingerprint && $0.role == .node }) else {
            throw LedgerError(.forbidden, "\(organization.id)/\(name) is not a node this draft registers; a founding node seals the genesis")
        }
        return try sealBlock(charter, node: sealer, time: time)
    }

    /// Block 0 holding `charter`: the genesis transaction signed by `node`, executed, and its header
    /// signed by the same node. Throws the genesis contract's refusal when it does not apply.
    public static func sealBlock(_ charter: GenesisCharter, node: SigningIdentity, time: Int64) throws(LedgerError) -> Block {
        let (_, envelope) = node.transaction(network: .zero, contract: GovernanceContract.name, action: "genesis",
                                             arguments: charter.encoded, timestamp: time)
        let bytes = envelope.encoded
        let assembled = try BlockAssembler.assemble(
            [PreparedTransaction(bytes: bytes)], network: .zero, previous: nil, blockTime: time, proposer: node.fingerprint,
            frontier: MerkleFrontier(), base: MemoryLedger(), executor: BlockExecutor()
        )
        if let refusal = assembled.execution.refusals.first, let refusal {
            throw LedgerError(refusal.code, "genesis does not apply: \(refusal.message)")
        }
        return Block(header: assembled.header, signature: node.sign(assembled.header.encoded), envelopes: [bytes])
    }

    /// Checks a sealed genesis from `organization`'s side — it executes with its approvals, it
    /// represents this organisation exactly, this organisation's nodes unwrap the noise secret, it
    /// is not sealed in the future, and this organisation approved it (unless `unapproved`: under a
    /// policy short of `all`, others can found a network that lists an organisation which never
    /// approved it) — and writes the node directory `directory`: `network.json` (derived from the
    /// block), `genesis.block`, and `orgs/<id>/`, a copy of the organisation directory without its
    /// CA key (which stays where it is: a node never needs it).
    @discardableResult
    public static func join(genesis: Block, organization: OrganizationDirectory, into directory: String, unapproved: Bool = false,
                            admitted: Bool = false, now: Int64 = Clock.nowMilliseconds()) throws(LedgerError) -> NetworkDefinition {
        let definition = try NetworkDefinition(genesis: genesis)
        let charter = try GenesisCharter.of(genesis)
        let draft = try charter.config()
        guard !admitted else {
            // Not a founder: the governance proposal that admits it is what makes its members count.
            guard !draft.organizations.contains(where: { $0.id == organization.id }) else {
                throw LedgerError(.invalidArgument, "\(organization.id) founded this network; join it without --admitted")
            }
            return try write(genesis, definition, organization, into: directory)
        }
        try checkRepresents(draft, founders: try draft.foundingMembers(), organization: organization)
        try checkNoiseKey(draft, organization: organization)
        guard genesis.header.timestamp <= now + Int64(draft.config.clockSkewMilliseconds) else {
            throw LedgerError(.timestampSkew, "the genesis is sealed at \(genesis.header.timestamp), in the future: its transactions would be refused until then")
        }
        guard unapproved || definition.approvedBy.contains(organization.id) else {
            throw LedgerError(.forbidden, "\(organization.id) did not approve this genesis (approved by \(definition.approvedBy.joined(separator: ", "))); join it anyway only if you accept the draft as it is")
        }
        return try write(genesis, definition, organization, into: directory)
    }

    static func write(_ genesis: Block, _ definition: NetworkDefinition, _ organization: OrganizationDirectory,
                      into directory: String) throws(LedgerError) -> NetworkDefinition {
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: directory), !entries.isEmpty {
            throw LedgerError(.invalidConfiguration, "\(directory) is not empty; a node directory is created in a new or empty directory")
        }
        try SecureFile.makeDirectory(directory + "/orgs")
        try SecureFile.create(directory + "/" + NetworkDefinition.genesisFileName, contents: genesis.encoded, mode: 0o644)
        try definition.write(to: directory)
        try SecureFile.copyDirectory(organization.path, to: directory + "/orgs/" + organization.id, excluding: ["ca.key"])
        return definition
    }

    // MARK: Checks

    static func decodeDraft(_ bytes: [UInt8]) throws(LedgerError) -> GenesisConfig {
        do {
            return try GenesisConfig(decoding: bytes)
        } catch {
            throw LedgerError(.malformedEncoding, "not a genesis draft: \(error.message)")
        }
    }

    /// The draft lists `organization` exactly as its own directory does: same name, kind and root
    /// certificate, and exactly the member certificates in its bundle (a drafter can neither swap
    /// an organisation's CA for one it controls nor drop or add its members).
    public static func checkRepresents(_ draft: GenesisConfig, founders: [MemberCertificate], organization: OrganizationDirectory) throws(LedgerError) {
        let (own, _, certificates) = try organization.bundle.validated()
        guard let listed = draft.organizations.first(where: { $0.id == own.id }) else {
            throw LedgerError(.unknownOrganization, "the draft does not include organisation \(own.id)")
        }
        for (field, matches) in [("name", listed.name == own.name), ("kind", listed.kind == own.kind),
                                 ("root certificate", listed.rootCertificate == own.rootCertificate)] where !matches {
            throw LedgerError(.verificationFailed, "the draft's \(own.id) differs from \(organization.path): its \(field) is not this organisation's")
        }
        let drafted = Set(founders.filter { $0.organization == own.id }.map(\.fingerprint))
        let issued = Set(certificates.map(\.fingerprint))
        guard drafted == issued else {
            throw LedgerError(.verificationFailed, "the draft registers \(drafted.count) members of \(own.id), not exactly the \(issued.count) in \(organization.path)")
        }
    }

    /// Each of `organization`'s nodes whose key is in its directory opens its box of the draft's
    /// noise secret, and the secret matches the commitment every node checks.
    static func checkNoiseKey(_ draft: GenesisConfig, organization: OrganizationDirectory) throws(LedgerError) {
        guard let noiseKey = draft.noiseKey else { return }
        for member in organization.bundle.members where member.role == .node {
            guard FileManager.default.fileExists(atPath: organization.path + "/\(member.name).key") else { continue }
            let node = try organization.identity(member.name)
            do {
                _ = try NoiseSecret.unwrap(noiseKey, fingerprint: node.fingerprint, privateKey: node.privateKey)
            } catch {
                throw LedgerError(.verificationFailed, "the draft's noise secret does not open for \(organization.id)/\(member.name): \(error.message)")
            }
        }
    }
}

extension GenesisCharter {
    /// The charter carried by a genesis block's one transaction.
    public static func of(_ genesis: Block) throws(LedgerError) -> GenesisCharter {
        guard genesis.envelopes.count == 1 else { throw LedgerError(.malformedEncoding, "a genesis block holds exactly one transaction") }
        let payload = try Envelope(decoding: genesis.envelopes[0]).payload()
        guard payload.contract == GovernanceContract.name, payload.action == "genesis" else {
            throw LedgerError(.malformedEncoding, "block 0 does not hold the genesis transaction")
        }
        return try GenesisCharter(decoding: payload.arguments)
    }
}

/// One organisation's approval of a draft, as a file (`medledger-genesis-approval/1`): the draft
/// hash it approves, the approving admin's certificate (so the sealer can name it) and the
/// signature. Only the fingerprint and signature go on the ledger.
public struct GenesisApprovalFile: Codable, Sendable, Hashable {
    public static let formatName = "medledger-genesis-approval/1"

    public var format: String
    /// SHA-256 of the exact draft bytes.
    public var draft: Hash256
    public var organization: String
    /// Fingerprint of the approving admin's certificate.
    public var approver: Hash256
    /// The approving admin's PEM certificate.
    public var certificate: String
    /// Base64 of the raw 64-byte signature over `"MLA1" ‖ draft`.
    public var signature: String

    public init(organization: String, approval: GenesisApproval, draft: Hash256, certificate: Certificate) {
        format = Self.formatName
        self.draft = draft
        self.organization = organization
        approver = approval.approver
        self.certificate = certificate.pemText
        signature = Data(approval.signature).base64EncodedString()
    }

    /// The approval as the ledger carries it.
    public func approval() throws(LedgerError) -> GenesisApproval {
        guard let bytes = Data(base64Encoded: signature), bytes.count == 64 else {
            throw LedgerError(.malformedEncoding, "approval by \(organization): the signature must be base64 of 64 bytes")
        }
        return GenesisApproval(approver: approver, signature: [UInt8](bytes))
    }

    /// The approver's certificate, which must be the one the approval names.
    func checkedCertificate() throws(LedgerError) -> MemberCertificate {
        guard format == Self.formatName else {
            throw LedgerError(.invalidConfiguration, "approval format is \"\(format)\", expected \"\(Self.formatName)\"")
        }
        let der = try Certificate.parse(pem: certificate, "the approver certificate of \(organization)'s approval").derBytes
        let parsed = try MemberCertificate(der: der, root: nil, organization: nil)
        guard parsed.fingerprint == approver else {
            throw LedgerError(.invalidCertificate, "the approval of \(organization) names approver \(approver.hex.prefix(16))… but carries another certificate")
        }
        return parsed
    }

    public static func load(_ path: String) throws(LedgerError) -> GenesisApprovalFile {
        try JSONFiles.load(path, "a genesis approval (\(formatName))")
    }

    public var json: [UInt8] { JSONFiles.encode(self) }
}
