import Testing
import Foundation
import LedgerCore
import Contracts
import LedgerTesting

/// The device and governance contracts, executed by the real executor over in-memory state.
struct DeviceContractTests {
    @Test func registerUpdateTransferDecommission() throws {
        var net = try TestNetwork()
        let udi = Fixtures.udi(1)
        #expect(net.apply(net.device("st-mary/collector", .register(udi: udi, attributes: Fixtures.attributes()))) == [nil])
        var record = try #require(net.device(udi))
        #expect(record.owner == "st-mary")
        #expect(record.version == 1)
        #expect(record.attributes.active == true)

        var changes = DeviceAttributes()
        changes.firmwareVersion = "2.0.0"
        #expect(net.apply(net.device("st-mary/collector", .update(udi: udi, event: "firmware_update", changes: changes))) == [nil])
        record = try #require(net.device(udi))
        #expect(record.attributes.firmwareVersion == "2.0.0")
        #expect(record.attributes.manufacturer == "Helix Medical")
        #expect(record.version == 2)
        #expect(record.lastEvent == "firmware_update")

        // Transfer needs both sides: the owner offers, the receiver accepts.
        #expect(net.apply(net.device("st-mary/admin", .transfer(udi: udi, to: "north-general"))) == [nil])
        #expect(net.device(udi)?.owner == "st-mary")
        #expect(net.device(udi)?.pendingTransferTo == "north-general")
        let wrongAcceptor = net.apply(net.device("st-mary/collector", .acceptTransfer(udi: udi)))
        #expect(wrongAcceptor.first??.code == .forbidden)
        // Red-team finding: a collector key could transfer, accept and decommission. Only admins may.
        #expect(net.apply(net.device("north-general/collector", .acceptTransfer(udi: udi))).first??.code == .forbidden)
        #expect(net.apply(net.device("st-mary/collector", .transfer(udi: udi, to: "city-childrens"))).first??.code == .forbidden)
        #expect(net.apply(net.device("st-mary/collector", .decommission(udi: udi, reason: "stolen key"))).first??.code == .forbidden)
        #expect(net.device(udi)?.status == .active)
        #expect(net.apply(net.device("north-general/admin", .acceptTransfer(udi: udi))) == [nil])
        #expect(net.device(udi)?.owner == "north-general")
        #expect(net.device(udi)?.pendingTransferTo == nil)

        // The old owner can no longer write it.
        #expect(net.apply(net.device("st-mary/collector", .update(udi: udi, event: "power", changes: changes))).first??.code == .forbidden)

        #expect(net.apply(net.device("north-general/admin", .decommission(udi: udi, reason: "end of life"))) == [nil])
        #expect(net.device(udi)?.status == .decommissioned)
        #expect(net.apply(net.device("north-general/collector", .update(udi: udi, event: "power", changes: changes))).first??.code == .deviceDecommissioned)
    }

    @Test func refusalsCarrySpecificCodesAndWriteNothing() throws {
        var net = try TestNetwork()
        let udi = Fixtures.udi(2)
        var missing = Fixtures.attributes()
        missing.manufacturer = nil
        var badBattery = Fixtures.attributes()
        badBattery.batteryLevel = 101
        let before = net.ledger.state
        let cases: [(Envelope, LedgerError.Code)] = [
            (net.device("st-mary/collector", .register(udi: "(01)00844588003289(21)X", attributes: Fixtures.attributes())), .invalidUDI),
            (net.device("st-mary/collector", .register(udi: udi, attributes: missing)), .missingField),
            (net.device("st-mary/collector", .register(udi: udi, attributes: badBattery)), .invalidArgument),
            (net.device("st-mary/collector", .update(udi: udi, event: "power", changes: Fixtures.attributes())), .unknownDevice),
            (net.device("research/researcher", .register(udi: udi, attributes: Fixtures.attributes())), .forbidden),
            (net.device("research/admin", .register(udi: udi, attributes: Fixtures.attributes())), .forbidden),
            (net.device("st-mary/node", .register(udi: udi, attributes: Fixtures.attributes())), .forbidden),
            (net.transaction("st-mary/collector", contract: "devices", action: "explode", arguments: []), .unknownAction),
            (net.transaction("st-mary/collector", contract: "nothing", action: "x", arguments: []), .unknownAction),
            (net.transaction("st-mary/collector", contract: "devices", action: "register", arguments: [0, 0]), .malformedEncoding),
            (net.device("st-mary/collector", .register(udi: udi, attributes: Fixtures.attributes()), timestamp: net.time - 3_600_000), .timestampSkew),
        ]
        for (envelope, code) in cases {
            let result = net.apply(envelope)
            #expect(result.first??.code == code, "expected \(code), got \(String(describing: result.first ?? nil))")
        }
        // Only the bookkeeping of ordered ids changed, never state.
        #expect(net.ledger.state == before)
    }

    @Test func replayedAndDuplicatedTransactionsAreRefused() throws {
        var net = try TestNetwork()
        let register = net.device("st-mary/collector", .register(udi: Fixtures.udi(3), attributes: Fixtures.attributes()))
        // Twice in one block: the second is refused.
        let results = net.apply([register.encoded, register.encoded])
        #expect(results[0] == nil)
        #expect(results[1]?.code == .duplicateTransaction)
        // Replayed in a later block.
        #expect(net.apply(register).first??.code == .duplicateTransaction)
        // Registering the same device again (a new transaction) is a different refusal.
        let again = net.device("st-mary/collector", .register(udi: Fixtures.udi(3), attributes: Fixtures.attributes()))
        #expect(net.apply(again).first??.code == .deviceExists)
    }

    @Test func signaturesNetworkAndMembershipAreChecked() throws {
        var net = try TestNetwork()
        var forged = net.device("st-mary/collector", .register(udi: Fixtures.udi(4), attributes: Fixtures.attributes()))
        forged.signature[10] ^= 0xFF
        #expect(net.apply(forged).first??.code == .badSignature)

        // A certificate issued by a hospital's CA but never registered on the ledger.
        let stranger = try TestNetwork.issue(net.authorities["st-mary"]!, name: "st-mary/stranger", role: .collector, now: Date(timeIntervalSince1970: Double(net.time) / 1000))
        let action = DeviceAction.register(udi: Fixtures.udi(4), attributes: Fixtures.attributes())
        let unknown = stranger.transaction(network: net.network, contract: "devices", action: action.name, arguments: action.arguments, timestamp: net.time).envelope
        #expect(net.apply(unknown).first??.code == .unknownMember)

        let otherNetwork = net.identity("st-mary/collector").transaction(network: Hash256.of([1]), contract: "devices", action: action.name,
                                                                         arguments: action.arguments, timestamp: net.time).envelope
        #expect(net.apply(otherNetwork).first??.code == .wrongNetwork)
        #expect(net.apply([[1, 2, 3]]).first??.code == .malformedEncoding)
    }

    @Test func certificatesAreValidatedAtBlockTime() throws {
        var net = try TestNetwork()
        let action = DeviceAction.register(udi: Fixtures.udi(5), attributes: Fixtures.attributes())
        // Two years later (certificates are issued for two years), with a matching transaction time.
        let later = net.time + 3 * 365 * 86_400_000
        let envelope = net.identity("st-mary/collector").transaction(network: net.network, contract: "devices", action: action.name,
                                                                     arguments: action.arguments, timestamp: later).envelope
        #expect(net.apply([envelope.encoded], blockTime: later).first??.code == .certificateExpired)
    }

    @Test func deviceKeysWriteOnlyTheirOwnDevice() throws {
        var net = try TestNetwork()
        let mine = Fixtures.udi(6), other = Fixtures.udi(7)
        net.apply(net.device("st-mary/collector", .register(udi: mine, attributes: Fixtures.attributes())),
                  net.device("st-mary/collector", .register(udi: other, attributes: Fixtures.attributes())))
        let now = Date(timeIntervalSince1970: Double(net.time) / 1000)
        let device = try TestNetwork.issue(net.authorities["st-mary"]!, name: "st-mary/pump-6", role: .device, now: now)
        let proposal = ProposalAction.addMember(MemberRegistration(certificate: device.certificate.derBytes, deviceUDI: mine))
        // Majority of 4 organisations = 3 approvals.
        let propose = net.governance("st-mary/admin", "propose", proposal.encoded)
        net.apply(propose)
        net.apply(net.governance("north-general/admin", "approve", propose.id.bytes))
        #expect(net.apply(net.governance("research/admin", "approve", propose.id.bytes)) == [nil])
        net.identities["st-mary/pump-6"] = device
        var battery = DeviceAttributes()
        battery.batteryLevel = 42
        #expect(net.apply(net.device("st-mary/pump-6", .update(udi: mine, event: "battery", changes: battery))) == [nil])
        #expect(net.device(mine)?.attributes.batteryLevel == 42)
        // The binding is to the device, not to a spelling of its UDI.
        battery.batteryLevel = 41
        #expect(net.apply(net.device("st-mary/pump-6", .update(udi: "(21)S6(10)L1(01)0844588003288", event: "battery", changes: battery))) == [nil])
        #expect(net.device(mine)?.attributes.batteryLevel == 41)
        #expect(net.apply(net.device("st-mary/pump-6", .update(udi: other, event: "battery", changes: battery))).first??.code == .forbidden)
        #expect(net.apply(net.device("st-mary/pump-6", .decommission(udi: mine, reason: "x"))).first??.code == .forbidden)
    }
}

struct GovernanceContractTests {
    @Test func addingAnOrganisationNeedsAMajority() throws {
        var net = try TestNetwork()
        let now = Date(timeIntervalSince1970: Double(net.time) / 1000)
        let authority = try CertificateAuthority.create(organization: "west-clinic", now: now)
        let admin = try TestNetwork.issue(authority, name: "west-clinic/admin", role: .admin, now: now)
        let collector = try TestNetwork.issue(authority, name: "west-clinic/collector", role: .collector, now: now)
        let organization = Organization(id: "west-clinic", name: "West Clinic", kind: .hospital, rootCertificate: authority.certificate.derBytes)
        let action = ProposalAction.addOrganization(organization, members: [
            MemberRegistration(certificate: admin.certificate.derBytes), MemberRegistration(certificate: collector.certificate.derBytes),
        ])
        let propose = net.governance("st-mary/admin", "propose", action.encoded)
        #expect(net.apply(propose) == [nil])
        net.identities["west-clinic/collector"] = collector
        let register = net.device("west-clinic/collector", .register(udi: Fixtures.udi(10), attributes: Fixtures.attributes()))
        #expect(net.apply(register).first??.code == .unknownMember)  // not yet in effect

        #expect(net.apply(net.governance("st-mary/admin", "approve", propose.id.bytes)).first??.code == .alreadyApproved)
        #expect(net.apply(net.governance("north-general/collector", "approve", propose.id.bytes)).first??.code == .forbidden)
        #expect(net.apply(net.governance("north-general/admin", "approve", propose.id.bytes)) == [nil])
        let retry = net.device("west-clinic/collector", .register(udi: Fixtures.udi(10), attributes: Fixtures.attributes()))
        #expect(net.apply(retry).first??.code == .unknownMember)  // 2 of 4: still not a majority
        #expect(net.apply(net.governance("regulator/admin", "approve", propose.id.bytes)) == [nil])
        let again = net.device("west-clinic/collector", .register(udi: Fixtures.udi(10), attributes: Fixtures.attributes()))
        #expect(net.apply(again) == [nil])
        #expect(net.device(Fixtures.udi(10))?.owner == "west-clinic")
        #expect(net.apply(net.governance("research/admin", "approve", propose.id.bytes)).first??.code == .proposalClosed)
    }

    @Test func anAdminRevokesTheirOwnOrganisationsCertificateAtOnce() throws {
        var net = try TestNetwork()
        let fingerprint = net.identity("st-mary/collector").fingerprint
        #expect(net.apply(net.governance("north-general/admin", "revoke", fingerprint.bytes)).first??.code == .forbidden)
        #expect(net.apply(net.governance("st-mary/admin", "revoke", fingerprint.bytes)) == [nil])
        #expect(net.member("st-mary/collector")?.revokedAt == net.time)
        let attempt = net.device("st-mary/collector", .register(udi: Fixtures.udi(11), attributes: Fixtures.attributes()))
        #expect(net.apply(attempt).first??.code == .certificateRevoked)
    }

    @Test func revokingAnotherOrganisationsCertificateAndChangingConfigurationNeedVotes() throws {
        var net = try TestNetwork()
        let target = net.identity("north-general/collector").fingerprint
        let revoke = net.governance("st-mary/admin", "propose", ProposalAction.revokeCertificate(target).encoded)
        net.apply(revoke)
        net.apply(net.governance("research/admin", "approve", revoke.id.bytes))
        #expect(net.member("north-general/collector")?.revokedAt == nil)
        net.apply(net.governance("regulator/admin", "approve", revoke.id.bytes))
        #expect(net.member("north-general/collector")?.revokedAt != nil)

        var config = NetworkConfig()
        config.batchSize = 42
        let change = net.governance("north-general/admin", "propose", ProposalAction.updateConfig(config).encoded)
        net.apply(change)
        net.apply(net.governance("st-mary/admin", "approve", change.id.bytes))
        net.apply(net.governance("regulator/admin", "approve", change.id.bytes))
        let stored = try #require(try net.ledger.value(forKey: StateKey.config))
        #expect(try NetworkConfig(decoding: stored).batchSize == 42)

        var invalid = NetworkConfig()
        invalid.batchSize = 0
        #expect(net.apply(net.governance("st-mary/admin", "propose", ProposalAction.updateConfig(invalid).encoded)).first??.code == .invalidConfiguration)
        #expect(net.apply(net.governance("st-mary/admin", "genesis", [])).first??.code == .malformedEncoding)
    }

    @Test func executionIsDeterministicAcrossReplays() throws {
        var first = try TestNetwork()
        var transactions: [[UInt8]] = []
        for serial in 0..<40 {
            transactions.append(first.device(serial % 2 == 0 ? "st-mary/collector" : "north-general/collector",
                                             .register(udi: Fixtures.udi(100 + serial), attributes: Fixtures.attributes(model: "M\(serial % 3)"))).encoded)
        }
        var changes = DeviceAttributes()
        changes.usageHours = 7
        transactions.append(first.device("st-mary/collector", .update(udi: Fixtures.udi(100), event: "usage", changes: changes)).encoded)
        transactions.append(first.device("st-mary/collector", .update(udi: Fixtures.udi(101), event: "usage", changes: changes)).encoded)  // not owner
        var second = first
        first.apply(Array(transactions[0..<20]))
        first.apply(Array(transactions[20...]))
        second.apply(Array(transactions[0..<20]))
        second.apply(Array(transactions[20...]))
        #expect(first.previous == second.previous)
        #expect(first.ledger.sortedEntries.map(\.key) == second.ledger.sortedEntries.map(\.key))
        #expect(first.previous?.stateRoot == second.previous?.stateRoot)
    }
}
