/// A member organisation.
public struct Organization: BinaryCodable, Hashable, Codable {
    /// Short stable id, e.g. `st-mary`: lower-case letters, digits and `-`.
    public var id: String
    public var name: String
    public var kind: OrganizationKind
    /// DER of the organisation's root CA certificate.
    public var rootCertificate: [UInt8]
    public var active: Bool

    public init(id: String, name: String, kind: OrganizationKind, rootCertificate: [UInt8], active: Bool = true) {
        self.id = id
        self.name = name
        self.kind = kind
        self.rootCertificate = rootCertificate
        self.active = active
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(name)
        writer.write(kind.rawValue)
        writer.writeBytes(rootCertificate)
        writer.write(active)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        id = try reader.readString("organization id", maxLength: 64)
        name = try reader.readString("organization name", maxLength: 256)
        kind = try reader.readEnum("organization kind")
        rootCertificate = try reader.readBytes("organization root", maxLength: 16_384)
        active = try reader.readBool("organization active")
    }

    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-")
        }
    }
}

/// A registered member identity (a certificate the ledger knows).
public struct Member: BinaryCodable, Hashable {
    public var certificate: MemberCertificate
    /// Block time at which the certificate was revoked, if it was.
    public var revokedAt: Int64?
    /// For role `device`: the UDI of the one device this key may update.
    public var deviceUDI: String?

    public init(certificate: MemberCertificate, revokedAt: Int64? = nil, deviceUDI: String? = nil) {
        self.certificate = certificate
        self.revokedAt = revokedAt
        self.deviceUDI = deviceUDI
    }

    public var fingerprint: Hash256 { certificate.fingerprint }
    public var organization: String { certificate.organization }
    public var role: Role { certificate.role }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeBytes(certificate.der)
        writer.write(certificate.organization)
        writer.write(certificate.role.rawValue)
        writer.write(certificate.name)
        writer.writeRaw(certificate.publicKey)
        writer.write(certificate.notBefore)
        writer.write(certificate.notAfter)
        writer.writeOptional(revokedAt)
        writer.writeOptional(deviceUDI)
    }

    /// Decodes a stored member. The certificate is not re-parsed: the stored fields were derived
    /// from it when it was registered, and the fingerprint binds them.
    public init(from reader: inout BinaryReader) throws(LedgerError) {
        let der = try reader.readBytes("member certificate", maxLength: 16_384)
        let organization = try reader.readString("member organization", maxLength: 64)
        let role: Role = try reader.readEnum("member role")
        let name = try reader.readString("member name", maxLength: 256)
        let key = try reader.readRaw(count: 64, "member key")
        let notBefore = try reader.readInt64("member notBefore")
        let notAfter = try reader.readInt64("member notAfter")
        certificate = MemberCertificate(
            der: der, fingerprint: Hash256.of(der), organization: organization, role: role, name: name,
            publicKey: key, notBefore: notBefore, notAfter: notAfter
        )
        revokedAt = try reader.readOptionalInt64("member revokedAt")
        deviceUDI = try reader.readOptionalString("member deviceUDI", maxLength: 128)
    }
}

extension MemberCertificate {
    /// Memberwise, for decoding stored members.
    package init(der: [UInt8], fingerprint: Hash256, organization: String, role: Role, name: String, publicKey: [UInt8], notBefore: Int64, notAfter: Int64) {
        self.der = der
        self.fingerprint = fingerprint
        self.organization = organization
        self.role = role
        self.name = name
        self.publicKey = publicKey
        self.notBefore = notBefore
        self.notAfter = notAfter
    }
}

/// Who must approve a governance proposal: organisations vote through their admins, one vote each.
public enum ApprovalPolicy: BinaryCodable, Hashable, Codable {
    /// More than half of the active organisations.
    case majority
    /// Every active organisation.
    case all
    /// At least `n` active organisations.
    case atLeast(UInt32)

    public func required(organizations: Int) -> Int {
        switch self {
        case .majority: organizations / 2 + 1
        case .all: organizations
        case .atLeast(let n): min(Int(n), organizations)
        }
    }

    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .majority: writer.write(UInt8(1))
        case .all: writer.write(UInt8(2))
        case .atLeast(let n):
            writer.write(UInt8(3))
            writer.write(n)
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        switch try reader.readUInt8("policy kind") {
        case 1: self = .majority
        case 2: self = .all
        case 3:
            let n = try reader.readUInt32("policy n")
            guard n > 0 else { throw LedgerError(.malformedEncoding, "policy: atLeast needs n ≥ 1") }
            self = .atLeast(n)
        case let other: throw LedgerError(.malformedEncoding, "policy: unknown kind \(other)")
        }
    }
}

/// Network-wide configuration, changed only through governance.
public struct NetworkConfig: BinaryCodable, Hashable, Codable {
    /// Most transactions in one block.
    public var batchSize: UInt32
    /// Longest wait, in ms, between the first pending transaction and cutting its block.
    public var batchTimeoutMilliseconds: UInt32
    /// Largest accepted envelope.
    public var maxTransactionBytes: UInt32
    /// Largest accepted difference between a transaction's timestamp and the clock (admission)
    /// or the block time (execution).
    public var clockSkewMilliseconds: UInt64
    public var approvalPolicy: ApprovalPolicy
    /// Research queries: who may ask, budgets, clamping bounds and closed domains.
    public var research: ResearchPolicy

    public init(batchSize: UInt32 = 2000, batchTimeoutMilliseconds: UInt32 = 20, maxTransactionBytes: UInt32 = 64 * 1024,
                clockSkewMilliseconds: UInt64 = 5 * 60 * 1000, approvalPolicy: ApprovalPolicy = .majority,
                research: ResearchPolicy = ResearchPolicy()) {
        self.batchSize = batchSize
        self.batchTimeoutMilliseconds = batchTimeoutMilliseconds
        self.maxTransactionBytes = maxTransactionBytes
        self.clockSkewMilliseconds = clockSkewMilliseconds
        self.approvalPolicy = approvalPolicy
        self.research = research
    }

    public func validate() throws(LedgerError) {
        guard (1...10_000).contains(batchSize) else { throw LedgerError(.invalidConfiguration, "batchSize must be 1...10000") }
        guard (1...60_000).contains(batchTimeoutMilliseconds) else { throw LedgerError(.invalidConfiguration, "batchTimeoutMilliseconds must be 1...60000") }
        guard (1024...(1 << 20)).contains(maxTransactionBytes) else { throw LedgerError(.invalidConfiguration, "maxTransactionBytes must be 1 KiB...1 MiB") }
        guard (1000...86_400_000).contains(clockSkewMilliseconds) else { throw LedgerError(.invalidConfiguration, "clockSkewMilliseconds must be 1 s...1 day") }
        try research.validate()
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(batchSize)
        writer.write(batchTimeoutMilliseconds)
        writer.write(maxTransactionBytes)
        writer.write(clockSkewMilliseconds)
        approvalPolicy.encode(to: &writer)
        research.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        batchSize = try reader.readUInt32("config batchSize")
        batchTimeoutMilliseconds = try reader.readUInt32("config batchTimeout")
        maxTransactionBytes = try reader.readUInt32("config maxTransactionBytes")
        clockSkewMilliseconds = try reader.readUInt64("config clockSkew")
        approvalPolicy = try ApprovalPolicy(from: &reader)
        research = try ResearchPolicy(from: &reader)
    }
}

/// A certificate to register, with the device it is bound to for role `device`.
public struct MemberRegistration: BinaryCodable, Hashable {
    public var certificate: [UInt8]
    public var deviceUDI: String?

    public init(certificate: [UInt8], deviceUDI: String? = nil) {
        self.certificate = certificate
        self.deviceUDI = deviceUDI
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeBytes(certificate)
        writer.writeOptional(deviceUDI)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        certificate = try reader.readBytes("registration certificate", maxLength: 16_384)
        deviceUDI = try reader.readOptionalString("registration deviceUDI", maxLength: 128)
    }
}

/// What a governance proposal does once approved.
public enum ProposalAction: BinaryCodable, Hashable {
    /// A new organisation and its first members (at least one admin).
    case addOrganization(Organization, members: [MemberRegistration])
    case addMember(MemberRegistration)
    case revokeCertificate(Hash256)
    case updateConfig(NetworkConfig)
    /// Sets one researcher's budget per period (`nil`: back to the policy's default).
    case setResearchBudget(Hash256, PrivacyBudget?)
    /// A new epoch of the network noise secret, wrapped to every current node.
    case rotateNoiseKey(NoiseKeyEpoch)

    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .addOrganization(let org, let members):
            writer.write(UInt8(1))
            org.encode(to: &writer)
            writer.write(array: members)
        case .addMember(let registration):
            writer.write(UInt8(2))
            registration.encode(to: &writer)
        case .revokeCertificate(let fingerprint):
            writer.write(UInt8(3))
            writer.write(fingerprint)
        case .updateConfig(let config):
            writer.write(UInt8(4))
            config.encode(to: &writer)
        case .setResearchBudget(let member, let budget):
            writer.write(UInt8(5))
            writer.write(member)
            writer.write(budget != nil)
            budget?.encode(to: &writer)
        case .rotateNoiseKey(let record):
            writer.write(UInt8(6))
            record.encode(to: &writer)
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        switch try reader.readUInt8("proposal action") {
        case 1: self = .addOrganization(try Organization(from: &reader), members: try reader.readArray("proposal members", maxCount: 1000))
        case 2: self = .addMember(try MemberRegistration(from: &reader))
        case 3: self = .revokeCertificate(try reader.readHash("proposal fingerprint"))
        case 4: self = .updateConfig(try NetworkConfig(from: &reader))
        case 5:
            let member = try reader.readHash("proposal member")
            self = .setResearchBudget(member, try reader.readBool("proposal budget present") ? try PrivacyBudget(from: &reader) : nil)
        case 6: self = .rotateNoiseKey(try NoiseKeyEpoch(from: &reader))
        case let other: throw LedgerError(.malformedEncoding, "proposal: unknown action \(other)")
        }
    }
}

/// A governance proposal and its approvals.
public struct Proposal: BinaryCodable, Hashable {
    public enum Status: String, Sendable, Hashable, Codable {
        case open
        case executed
    }

    /// The id of the transaction that proposed it.
    public var id: Hash256
    public var proposer: Hash256
    public var action: ProposalAction
    /// Organisations that approved, sorted.
    public var approvals: [String]
    public var status: Status
    public var createdAt: Int64

    public init(id: Hash256, proposer: Hash256, action: ProposalAction, approvals: [String], status: Status, createdAt: Int64) {
        self.id = id
        self.proposer = proposer
        self.action = action
        self.approvals = approvals
        self.status = status
        self.createdAt = createdAt
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.write(proposer)
        action.encode(to: &writer)
        writer.write(strings: approvals)
        writer.write(status.rawValue)
        writer.write(createdAt)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        id = try reader.readHash("proposal id")
        proposer = try reader.readHash("proposal proposer")
        action = try ProposalAction(from: &reader)
        approvals = try reader.readStrings("proposal approvals")
        status = try reader.readEnum("proposal status")
        createdAt = try reader.readInt64("proposal createdAt")
    }
}

/// A genesis draft: the founding organisations, members, configuration and first noise key
/// epoch, assembled from the organisations' public material. Its exact encoding is what the
/// founding admins approve (``GenesisApproval``) and what the genesis transaction carries
/// inside a ``GenesisCharter``.
public struct GenesisConfig: BinaryCodable, Hashable {
    public var networkName: String
    public var config: NetworkConfig
    public var organizations: [Organization]
    public var members: [MemberRegistration]
    /// The first epoch of the network noise secret, wrapped to the founding nodes (optional:
    /// encoded after the members only when present, so older genesis blocks decode unchanged).
    public var noiseKey: NoiseKeyEpoch?

    public init(networkName: String, config: NetworkConfig, organizations: [Organization], members: [MemberRegistration],
                noiseKey: NoiseKeyEpoch? = nil) {
        self.networkName = networkName
        self.config = config
        self.organizations = organizations
        self.members = members
        self.noiseKey = noiseKey
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(networkName)
        config.encode(to: &writer)
        writer.write(array: organizations)
        writer.write(array: members)
        noiseKey?.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        networkName = try reader.readString("genesis name", maxLength: 256)
        config = try NetworkConfig(from: &reader)
        organizations = try reader.readArray("genesis organizations", maxCount: 1000)
        members = try reader.readArray("genesis members", maxCount: 100_000)
        noiseKey = reader.isAtEnd ? nil : try NoiseKeyEpoch(from: &reader)
    }
}
