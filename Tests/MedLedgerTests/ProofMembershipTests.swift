import Testing
import Foundation
import X509
import LedgerCore
import LedgerStore
import Contracts
import Node
import LedgerTesting

/// Attacks on the membership evidence that proofs carry (docs/formats.md §7.4).
struct ProofMembershipTests {
    static func verify(_ proof: InclusionProof, _ harness: NodeHarness) throws(LedgerError) {
        let roots: [String: Certificate]
        do { roots = try harness.definition.rootCertificates() } catch { throw error }
        try Proofs.verify(proof, roots: roots, networkID: harness.definition.networkID)
    }

    static func code(_ body: () throws(LedgerError) -> Void) -> LedgerError.Code? {
        do throws(LedgerError) {
            try body()
            return nil
        } catch {
            return error.code
        }
    }

    @Test func forgedMembershipEvidenceIsRefused() async throws {
        let harness = try NodeHarness(batchSize: 1)
        let revoked = try harness.identity("north-general/node")
        let early = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(4), attributes: Fixtures.attributes()))
        try await ProofTests.commit(harness, early)
        try await ProofTests.commit(harness, try ProofTests.governance(harness, "north-general/admin", "revoke", ProofTests.hashArgument(revoked.fingerprint)))
        let device = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(3), attributes: Fixtures.attributes()))
        try await ProofTests.commit(harness, device)
        try await harness.stop()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        let proof = try Proofs.inclusion(store: store, transaction: device.id)
        try Self.verify(proof, harness)
        #expect(proof.membership.governance.count == 1)
        func refused(_ tamper: (inout InclusionProof) throws -> Void) throws -> LedgerError.Code? {
            var copy = proof
            try tamper(&copy)
            return Self.code { () throws(LedgerError) in try Self.verify(copy, harness) }
        }
        // Another network's genesis (mixed-network evidence), with a signer that is a genesis node there.
        let other = Fixtures.temporaryPath("other")
        defer { try? FileManager.default.removeItem(atPath: other) }
        let otherDefinition = try NetworkBuilder.build(.demo, directory: other)
        let otherGenesis = try NetworkDefinition.loadGenesis(directory: other)
        #expect(try refused { $0.membership.genesis = Data(otherGenesis.encoded).base64EncodedString() } == .wrongNetwork)
        let foreignNode = try otherDefinition.identity(named: "st-mary/node", directory: other)
        #expect(try refused { proof in
            proof.membership.genesis = Data(otherGenesis.encoded).base64EncodedString()
            try ProofTests.resign(&proof, by: foreignNode)
        } != nil)
        // A genesis block with a changed byte no longer matches its hash or its own execution.
        #expect(try refused { proof in
            var bytes = [UInt8](Data(base64Encoded: proof.membership.genesis)!)
            bytes[bytes.count - 10] ^= 1
            proof.membership.genesis = Data(bytes).base64EncodedString()
        } != nil)
        // A governance entry whose leaf claims another result, whose path is wrong, or out of order.
        #expect(try refused { proof in
            var leaf = try LogLeaf(decoding: [UInt8](Data(base64Encoded: proof.membership.governance[0].leaf)!))
            leaf.result.status = 14
            proof.membership.governance[0].leaf = Data(leaf.encoded).base64EncodedString()
        } == .verificationFailed)
        #expect(try refused { $0.membership.governance[0].auditPath.removeLast() } == .verificationFailed)
        #expect(try refused { $0.membership.governance.append($0.membership.governance[0]) } == .verificationFailed)
        #expect(try refused { $0.membership.governance[0].blockTime += 1 } == .verificationFailed)
        // A device transaction passed off as governance.
        let deviceEntry = try #require(try store.transaction(id: early.id))
        #expect(try refused { proof in
            proof.membership.governance.insert(GovernanceEntry(
                leaf: Data(deviceEntry.leaf.encoded).base64EncodedString(), leafIndex: deviceEntry.sequence,
                envelope: Data(deviceEntry.envelope).base64EncodedString(), blockTime: try #require(try store.block(at: deviceEntry.height)).header.timestamp,
                auditPath: try store.inclusionProof(sequence: deviceEntry.sequence, size: proof.treeSize)), at: 0)
        } == .verificationFailed)
        // Leaving out the only governance transaction (the revocation) is not detectable offline
        // (docs/threat_model.md); with it, the revoked node is refused.
        // Revoked signer with honest evidence; self-issued and foreign-CA certificates.
        #expect(try refused { try ProofTests.resign(&$0, by: revoked) } == .certificateRevoked)
        let selfIssued = try TestNetwork.issue(try CertificateAuthority.create(organization: "st-mary"), name: "st-mary/node", role: .node, now: Date())
        #expect(try refused { try ProofTests.resign(&$0, by: selfIssued) } == .invalidCertificate)
        let rogue = try ProofTests.issuedNode(harness)
        #expect(try refused { try ProofTests.resign(&$0, by: rogue) } == .unknownMember)
        // Old-format proofs are refused.
        #expect(try refused { $0.format = "medledger-inclusion-proof/1" } == .malformedEncoding)
    }

    /// A node key registered by governance (proposal plus approvals) may sign tree heads; one only
    /// proposed, never approved, may not.
    @Test func nodeRegisteredByGovernanceIsAcceptedOnlyOnceApproved() async throws {
        let harness = try NodeHarness(batchSize: 1)
        let rogue = try ProofTests.issuedNode(harness, name: "node2")
        let propose = try ProofTests.governance(harness, "st-mary/admin", "propose",
                                                ProposalAction.addMember(MemberRegistration(certificate: rogue.certificate.derBytes, deviceUDI: nil)).encoded)
        try await ProofTests.commit(harness, propose)
        let first = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes()))
        try await ProofTests.commit(harness, first)
        let pendingHeight = harness.node.tip.height
        for admin in ["north-general/admin", "city-childrens/admin"] {
            try await ProofTests.commit(harness, try ProofTests.governance(harness, admin, "approve", ProofTests.hashArgument(propose.id)))
        }
        let second = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(2), attributes: Fixtures.attributes()))
        try await ProofTests.commit(harness, second)
        try await harness.stop()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        var pending = try Proofs.inclusion(store: store, transaction: first.id, height: pendingHeight)
        try ProofTests.resign(&pending, by: rogue)
        #expect(Self.code { () throws(LedgerError) in try Self.verify(pending, harness) } == .unknownMember)
        var approved = try Proofs.inclusion(store: store, transaction: second.id)
        #expect(approved.membership.governance.count == 3)
        try ProofTests.resign(&approved, by: rogue)
        try Self.verify(approved, harness)
        // The consistency proof from the pending head to the approved one: the first signer fails.
        var consistency = try Proofs.consistency(store: store, from: pendingHeight)
        let roots = try harness.definition.rootCertificates()
        try Proofs.verify(consistency, roots: roots, networkID: harness.definition.networkID)
        consistency.first = pending.treeHead
        consistency.second = approved.treeHead
        #expect(throws: LedgerError.self) { try Proofs.verify(consistency, roots: roots, networkID: harness.definition.networkID) }
    }
}
