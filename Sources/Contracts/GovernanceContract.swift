import SwiftASN1
import X509
public import LedgerCore

/// Organisations, members, certificate revocation and configuration, changed through proposals
/// approved by organisation admins under the configured ``ApprovalPolicy``.
///
/// Actions:
/// - `genesis(GenesisCharter)`: only in block 0: a draft and the founding admins' approvals of it.
/// - `propose(ProposalAction)`: an admin proposes; the proposer's organisation approves at once.
/// - `approve(proposal id)`: an admin of another organisation approves; the action takes effect
///   in the transaction that reaches the policy's threshold.
/// - `revoke(fingerprint)`: an admin revokes a certificate of their *own* organisation at once
///   (incident response must not wait for a vote).
public struct GovernanceContract: Contract {
    public static let name = "governance"
    public var name: String { Self.name }

    public init() {}

    public func execute(_ context: inout TransactionContext) throws(LedgerError) {
        var reader = BinaryReader(context.payload.arguments)
        switch context.payload.action {
        case "genesis":
            let charter = try GenesisCharter(from: &reader)
            try reader.expectEnd("genesis arguments")
            try applyGenesis(charter, &context)
        case "propose":
            let action = try ProposalAction(from: &reader)
            try reader.expectEnd("propose arguments")
            try propose(action, &context)
        case "approve":
            let id = try reader.readHash("proposal id")
            try reader.expectEnd("approve arguments")
            try approve(id, &context)
        case "revoke":
            let fingerprint = try reader.readHash("fingerprint")
            try reader.expectEnd("revoke arguments")
            let admin = try context.require(role: [.admin], action: "revoke certificates")
            guard var member = try context.get(Member.self, StateKey.member(fingerprint)) else {
                throw LedgerError(.unknownMember, "no member has certificate \(fingerprint.hex.prefix(16))…")
            }
            guard member.organization == admin.organization else {
                throw LedgerError(.forbidden, "an admin revokes only their own organisation's certificates directly; propose revocation of others")
            }
            guard member.revokedAt == nil else { throw LedgerError(.certificateRevoked, "certificate is already revoked") }
            member.revokedAt = context.blockTime
            context.put(StateKey.member(fingerprint), member)
        default:
            throw LedgerError(.unknownAction, "governance contract has no action \(context.payload.action)")
        }
    }

    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {
        guard creator.role == .admin else {
            throw LedgerError(.forbidden, "role \(creator.role.rawValue) may not use governance; only admins")
        }
        var reader = BinaryReader(payload.arguments)
        switch payload.action {
        case "propose": _ = try ProposalAction(from: &reader)
        case "approve", "revoke": _ = try reader.readHash("argument")
        case "genesis": throw LedgerError(.forbidden, "genesis may only be applied in block 0")
        default: throw LedgerError(.unknownAction, "governance contract has no action \(payload.action)")
        }
        try reader.expectEnd("governance.\(payload.action) arguments")
    }

    // MARK: Genesis

    /// Block 0: the draft is checked like any draft (``GenesisConfig/foundingMembers()``), the
    /// transaction must be signed by a node it registers (the sealing node), and its approvals
    /// must satisfy the draft's own approval policy; then the founding state is written.
    func applyGenesis(_ charter: GenesisCharter, _ context: inout TransactionContext) throws(LedgerError) {
        guard context.height == 0, try context.get(StateKey.config) == nil else {
            throw LedgerError(.forbidden, "genesis may only be applied in block 0")
        }
        let genesis = try charter.config()
        let founders = try genesis.foundingMembers()
        guard let sealer = founders.first(where: { $0.fingerprint == context.payload.creator }), sealer.role == .node else {
            throw LedgerError(.forbidden, "the genesis transaction must be signed by one of the nodes it registers (the sealing node)")
        }
        _ = try charter.approvingOrganizations(founders: founders, organizationCount: genesis.organizations.count,
                                               policy: genesis.config.approvalPolicy, at: context.blockTime)
        for organization in genesis.organizations {
            context.put(StateKey.organization(organization.id), organization)
        }
        context.put(StateKey.organizationIndex, StringList(genesis.organizations.map(\.id).sorted()))
        context.put(StateKey.config, genesis.config)
        context.put(StateKey.networkName, StringList([genesis.networkName]))
        for (registration, certificate) in zip(genesis.members, founders) {
            context.put(StateKey.member(certificate.fingerprint), Member(certificate: certificate, deviceUDI: registration.deviceUDI))
        }
        if let noiseKey = genesis.noiseKey {
            context.put(StateKey.noiseKey, noiseKey)
        }
    }

    // MARK: Proposals

    func propose(_ action: ProposalAction, _ context: inout TransactionContext) throws(LedgerError) {
        let admin = try context.require(role: [.admin], action: "propose governance changes")
        try validate(action, &context)
        let proposal = Proposal(id: context.id, proposer: admin.fingerprint, action: action, approvals: [admin.organization],
                                status: .open, createdAt: context.blockTime)
        try settle(proposal, &context)
    }

    func approve(_ id: Hash256, _ context: inout TransactionContext) throws(LedgerError) {
        let admin = try context.require(role: [.admin], action: "approve governance proposals")
        guard var proposal = try context.get(Proposal.self, StateKey.proposal(id)) else {
            throw LedgerError(.unknownProposal, "no proposal \(id.hex.prefix(16))…")
        }
        guard proposal.status == .open else { throw LedgerError(.proposalClosed, "proposal was already executed") }
        guard !proposal.approvals.contains(admin.organization) else {
            throw LedgerError(.alreadyApproved, "\(admin.organization) has already approved this proposal")
        }
        proposal.approvals = (proposal.approvals + [admin.organization]).sorted()
        // Re-validate against current state: it may have changed since the proposal.
        try validate(proposal.action, &context)
        try settle(proposal, &context)
    }

    /// Stores the proposal and executes it if it has enough approvals from active organisations.
    func settle(_ proposal: Proposal, _ context: inout TransactionContext) throws(LedgerError) {
        var proposal = proposal
        let active = try activeOrganizations(context)
        let votes = proposal.approvals.filter { active.contains($0) }.count
        let required = try context.config().approvalPolicy.required(organizations: active.count)
        if votes >= required {
            try apply(proposal.action, &context)
            proposal.status = .executed
        }
        context.put(StateKey.proposal(proposal.id), proposal)
    }

    func validate(_ action: ProposalAction, _ context: inout TransactionContext) throws(LedgerError) {
        switch action {
        case .addOrganization(let organization, let members):
            let existing = try context.get(StringList.self, StateKey.organizationIndex)?.values ?? []
            try Self.validateNew(organization, existing: existing)
            let root = try rootCertificate(organization)
            guard !members.isEmpty else { throw LedgerError(.missingField, "a new organisation needs at least one admin member") }
            var hasAdmin = false
            for registration in members {
                let certificate = try MemberCertificate(der: registration.certificate, root: root, organization: organization.id)
                if certificate.role == .admin { hasAdmin = true }
            }
            guard hasAdmin else { throw LedgerError(.missingField, "a new organisation needs at least one admin member") }
        case .addMember(let registration):
            _ = try memberCertificate(registration, &context)
        case .revokeCertificate(let fingerprint):
            guard let member = try context.get(Member.self, StateKey.member(fingerprint)) else {
                throw LedgerError(.unknownMember, "no member has certificate \(fingerprint.hex.prefix(16))…")
            }
            guard member.revokedAt == nil else { throw LedgerError(.certificateRevoked, "certificate is already revoked") }
        case .updateConfig(let config):
            try config.validate()
        case .setResearchBudget(let fingerprint, _):
            guard let member = try context.get(Member.self, StateKey.member(fingerprint)) else {
                throw LedgerError(.unknownMember, "no member has certificate \(fingerprint.hex.prefix(16))…")
            }
            guard try context.config().research.allowedRoles.contains(member.role) else {
                throw LedgerError(.invalidArgument, "\(member.certificate.name) has role \(member.role.rawValue), which may not ask research queries")
            }
        case .rotateNoiseKey(let record):
            try Self.checkNoiseKey(record, context)
        }
    }

    /// A noise key epoch may be recorded when it is the next epoch (1 at genesis) and every box is
    /// for a registered, unrevoked node. (Whether the boxes hold the committed secret only the
    /// recipients can tell: each node checks the commitment when it unwraps.)
    static func checkNoiseKey(_ record: NoiseKeyEpoch, _ context: TransactionContext) throws(LedgerError) {
        try record.validate()
        let current = try context.get(NoiseKeyEpoch.self, StateKey.noiseKey)?.epoch ?? 0
        guard record.epoch == current + 1 else {
            throw LedgerError(.invalidArgument, "the next noise key epoch is \(current + 1), not \(record.epoch)")
        }
        for box in record.wrapped {
            guard let member = try context.get(Member.self, StateKey.member(box.recipient)), member.role == .node, member.revokedAt == nil else {
                throw LedgerError(.invalidArgument, "noise key box for \(box.recipient.hex.prefix(16))…, which is not a registered, unrevoked node")
            }
        }
    }

    func apply(_ action: ProposalAction, _ context: inout TransactionContext) throws(LedgerError) {
        switch action {
        case .addOrganization(let organization, let members):
            var index = try context.get(StringList.self, StateKey.organizationIndex)?.values ?? []
            index = (index + [organization.id]).sorted()
            context.put(StateKey.organizationIndex, StringList(index))
            context.put(StateKey.organization(organization.id), organization)
            let root = try rootCertificate(organization)
            for registration in members {
                _ = try register(registration, roots: [organization.id: root], &context)
            }
        case .addMember(let registration):
            let certificate = try memberCertificate(registration, &context)
            context.put(StateKey.member(certificate.fingerprint), Member(certificate: certificate, deviceUDI: registration.deviceUDI))
        case .revokeCertificate(let fingerprint):
            guard var member = try context.get(Member.self, StateKey.member(fingerprint)) else {
                throw LedgerError(.unknownMember, "no member has certificate \(fingerprint.hex.prefix(16))…")
            }
            member.revokedAt = context.blockTime
            context.put(StateKey.member(fingerprint), member)
        case .updateConfig(let config):
            context.put(StateKey.config, config)
        case .setResearchBudget(let fingerprint, let budget):
            if let budget {
                context.put(StateKey.researchBudget(fingerprint), budget)
            } else {
                context.delete(StateKey.researchBudget(fingerprint))
            }
        case .rotateNoiseKey(let record):
            try Self.checkNoiseKey(record, context)
            context.put(StateKey.noiseKey, record)
        }
    }

    // MARK: Helpers

    func activeOrganizations(_ context: TransactionContext) throws(LedgerError) -> Set<String> {
        var active: Set<String> = []
        for id in try context.get(StringList.self, StateKey.organizationIndex)?.values ?? [] {
            if let organization = try context.organization(id), organization.active { active.insert(id) }
        }
        return active
    }

    static func validateNew(_ organization: Organization, existing: [String]) throws(LedgerError) {
        guard Organization.isValidID(organization.id) else {
            throw LedgerError(.invalidArgument, "organisation id \"\(organization.id)\" must be 1...64 of a-z, 0-9 and -")
        }
        guard !existing.contains(organization.id) else {
            throw LedgerError(.invalidArgument, "organisation \(organization.id) already exists")
        }
        guard !organization.name.isEmpty else { throw LedgerError(.missingField, "organisation name is empty") }
    }

    func rootCertificate(_ organization: Organization) throws(LedgerError) -> Certificate {
        try organization.parsedRootCertificate()
    }

    func memberCertificate(_ registration: MemberRegistration, _ context: inout TransactionContext) throws(LedgerError) -> MemberCertificate {
        let parsed = try MemberCertificate(der: registration.certificate, root: nil, organization: nil)
        guard let organization = try context.organization(parsed.organization), organization.active else {
            throw LedgerError(.unknownOrganization, "certificate names organisation \(parsed.organization), which is not a member")
        }
        let certificate = try MemberCertificate(der: registration.certificate, root: try rootCertificate(organization), organization: organization.id)
        guard try context.get(StateKey.member(certificate.fingerprint)) == nil else {
            throw LedgerError(.invalidArgument, "certificate \(certificate.fingerprint.hex.prefix(16))… is already registered")
        }
        try Self.validateBinding(certificate, registration)
        return certificate
    }

    static func validateBinding(_ certificate: MemberCertificate, _ registration: MemberRegistration) throws(LedgerError) {
        if certificate.role == .device {
            guard let udi = registration.deviceUDI else { throw LedgerError(.missingField, "a device member must name its device UDI") }
            try UDI.validate(udi)
        } else if registration.deviceUDI != nil {
            throw LedgerError(.invalidArgument, "only device members are bound to a UDI")
        }
    }

    @discardableResult
    func register(_ registration: MemberRegistration, roots: [String: Certificate], _ context: inout TransactionContext) throws(LedgerError) -> Member {
        let parsed = try MemberCertificate(der: registration.certificate, root: nil, organization: nil)
        guard let root = roots[parsed.organization] else {
            throw LedgerError(.unknownOrganization, "member certificate names unknown organisation \(parsed.organization)")
        }
        let certificate = try MemberCertificate(der: registration.certificate, root: root, organization: parsed.organization)
        guard try context.get(StateKey.member(certificate.fingerprint)) == nil else {
            throw LedgerError(.invalidArgument, "certificate \(certificate.fingerprint.hex.prefix(16))… is registered twice")
        }
        try Self.validateBinding(certificate, registration)
        let member = Member(certificate: certificate, deviceUDI: registration.deviceUDI)
        context.put(StateKey.member(certificate.fingerprint), member)
        return member
    }
}

/// A sorted list of strings stored as one state value.
public struct StringList: BinaryCodable, Hashable {
    public var values: [String]
    public init(_ values: [String]) { self.values = values }
    public func encode(to writer: inout BinaryWriter) { writer.write(strings: values) }
    public init(from reader: inout BinaryReader) throws(LedgerError) { values = try reader.readStrings("list") }
}
