import Crypto
import Foundation
import X509
public import LedgerCore
public import Contracts
public import Node

/// An in-memory network for tests of pure logic: organisations with CAs, member identities, and the
/// genesis already applied to a ``MemoryLedger``. Blocks are executed with the real executor.
public struct TestNetwork: Sendable {
    public var authorities: [String: CertificateAuthority] = [:]
    public var identities: [String: SigningIdentity] = [:]
    public var ledger = MemoryLedger()
    public var network = Hash256.zero
    public var height: UInt64 = 0
    public var time: Int64
    public var previous: BlockHeader?
    public var frontier = MerkleFrontier()
    public let executor = BlockExecutor()

    /// Hospitals `st-mary` and `north-general`, research `research`, regulator `regulator`,
    /// each with the default members (`<org>/admin`, `<org>/node`, …) and `extraMembers`
    /// (`"<org>/<name>": role`).
    public init(config: NetworkConfig = NetworkConfig(), time: Int64 = 1_760_000_000_000, extraMembers: [String: Role] = [:]) throws {
        self.time = time
        let now = Date(timeIntervalSince1970: Double(time) / 1000)
        let organizations: [(String, OrganizationKind)] = [
            ("st-mary", .hospital), ("north-general", .hospital), ("research", .research), ("regulator", .regulator),
        ]
        var orgs: [Organization] = []
        var registrations: [MemberRegistration] = []
        for (id, kind) in organizations {
            let authority = try CertificateAuthority.create(organization: id, now: now)
            authorities[id] = authority
            orgs.append(Organization(id: id, name: id.capitalized, kind: kind, rootCertificate: authority.certificate.derBytes))
            let extra = extraMembers.filter { $0.key.hasPrefix(id + "/") }.map { (name: String($0.key.dropFirst(id.count + 1)), role: $0.value) }
            for (name, role) in NetworkSpec.defaultMembers(kind) + extra.sorted(by: { $0.name < $1.name }) {
                let identity = try Self.issue(authority, name: "\(id)/\(name)", role: role, now: now)
                identities["\(id)/\(name)"] = identity
                registrations.append(MemberRegistration(certificate: identity.certificate.derBytes))
            }
        }
        let draft = GenesisConfig(networkName: "test", config: config, organizations: orgs, members: registrations).encoded
        // Every founding admin approves (enough for any policy).
        let approvals = organizations.map { GenesisApproval(draft: Hash256.of(draft), signer: identities["\($0.0)/admin"]!) }
        let charter = GenesisCharter(draft: draft, approvals: approvals.sorted { $0.approver < $1.approver })
        let block = try GenesisCeremony.sealBlock(charter, node: identities["st-mary/node"]!, time: time)
        let results = apply(block.envelopes, blockTime: time, network: .zero)
        precondition(results.allSatisfy { $0 == nil }, "genesis failed: \(results)")
        network = block.header.hash
        precondition(previous == block.header, "genesis header differs from the builder's")
    }

    public static func issue(_ authority: CertificateAuthority, name: String, role: Role, now: Date, years: Int = 2) throws -> SigningIdentity {
        let key = P256.Signing.PrivateKey()
        let certificate = try authority.issue(name: name, role: role, publicKey: key.publicKey, now: now, years: years)
        return SigningIdentity(privateKey: key, certificate: certificate)
    }

    public func identity(_ name: String) -> SigningIdentity { identities[name]! }

    /// A signed transaction from `signer`, timestamped at the network's current time.
    public func transaction(_ signer: String, contract: String, action: String, arguments: [UInt8], timestamp: Int64? = nil) -> Envelope {
        identity(signer).transaction(network: network, contract: contract, action: action, arguments: arguments,
                                     timestamp: timestamp ?? time).envelope
    }

    public func device(_ signer: String, _ action: DeviceAction, timestamp: Int64? = nil) -> Envelope {
        transaction(signer, contract: "devices", action: action.name, arguments: action.arguments, timestamp: timestamp)
    }

    public func governance(_ signer: String, _ action: String, _ arguments: [UInt8]) -> Envelope {
        transaction(signer, contract: "governance", action: action, arguments: arguments)
    }

    /// Executes one block of `envelopes` and applies it. Returns each transaction's refusal (nil = committed).
    @discardableResult
    public mutating func apply(_ envelopes: [[UInt8]], blockTime: Int64? = nil, network: Hash256? = nil) -> [LedgerError?] {
        let blockTime = blockTime ?? time
        let prepared = envelopes.map { PreparedTransaction(bytes: $0) }
        let assembled = try! BlockAssembler.assemble(prepared, network: network ?? self.network, previous: previous, blockTime: blockTime,
                                                proposer: identities["st-mary/node"]!.fingerprint, frontier: frontier,
                                                base: ledger, executor: executor)
        ledger.apply(assembled.execution.writes, transactionIDs: assembled.leaves.map(\.transactionID))
        previous = assembled.header
        frontier = assembled.frontier
        height = assembled.header.height
        return assembled.execution.refusals
    }

    /// Executes one block holding `envelopes`.
    @discardableResult
    public mutating func apply(_ envelopes: Envelope...) -> [LedgerError?] {
        apply(envelopes.map(\.encoded))
    }

    public func device(_ udi: String) -> DeviceRecord? {
        (try? ledger.value(forKey: StateKey.device((try? UDI.canonicalKey(udi)) ?? udi))).flatMap { $0 }.flatMap { try? DeviceRecord(decoding: $0) }
    }

    public func member(_ name: String) -> Member? {
        (try? ledger.value(forKey: StateKey.member(identity(name).fingerprint))).flatMap { $0 }.flatMap { try? Member(decoding: $0) }
    }
}

/// Valid device fields for registrations in tests.
public enum Fixtures {
    public static func attributes(model: String = "HX-100") -> DeviceAttributes {
        var attributes = DeviceAttributes()
        attributes.manufacturer = "Helix Medical"
        attributes.model = model
        attributes.firmwareVersion = "1.0.0"
        attributes.deviceType = "infusion_pump"
        attributes.category = "therapeutic"
        attributes.speciality = "intensive_care"
        attributes.productionDate = CivilDate.parse("2022-03-14")
        attributes.batteryLevel = 80
        return attributes
    }

    /// A valid GS1 UDI with serial `serial`.
    public static func udi(_ serial: Int) -> String { "(01)00844588003288(21)S\(serial)" }

    /// A fresh temporary directory path (not created).
    public static func temporaryPath(_ name: String = "test") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("medledger-\(name)-\(UUID().uuidString)").path
    }
}
