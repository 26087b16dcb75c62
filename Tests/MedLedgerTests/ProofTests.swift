import Testing
import Foundation
import Crypto
import X509
import LedgerCore
import LedgerStore
import Contracts
import Node
import LedgerTesting

struct ProofTests {
    static func ledger() async throws -> (NodeHarness, [Hash256], [String: Certificate]) {
        let harness = try await TamperDetectionTests.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        var ids: [Hash256] = []
        for sequence in 0..<(try store.tip()!.logSize) { ids.append(try store.transaction(sequence: sequence)!.id) }
        return (harness, ids, try harness.definition.rootCertificates())
    }

    @Test func inclusionProofsVerifyOfflineForEveryTransaction() async throws {
        let (harness, ids, roots) = try await Self.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        for id in ids {
            let proof = try Proofs.inclusion(store: store, transaction: id)
            try Proofs.verify(proof, roots: roots, networkID: harness.definition.networkID)
            // Against an earlier tree head too.
            let early = try Proofs.inclusion(store: store, transaction: id, height: try store.transaction(id: id)!.height)
            try Proofs.verify(early, roots: roots, networkID: harness.definition.networkID)
        }
    }

    @Test func adversarialInclusionProofsAreRefused() async throws {
        let (harness, ids, roots) = try await Self.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        let proof = try Proofs.inclusion(store: store, transaction: ids[5])
        let network = harness.definition.networkID
        func refused(_ tamper: (inout InclusionProof) throws -> Void) throws -> LedgerError.Code? {
            var copy = proof
            try tamper(&copy)
            do {
                try Proofs.verify(copy, roots: roots, networkID: network)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(try refused { $0.treeSize += 1 } == .verificationFailed)  // wrong size
        #expect(try refused { $0.auditPath.removeLast() } == .verificationFailed)  // truncated path
        #expect(try refused { $0.auditPath.swapAt(0, 1) } == .verificationFailed)  // swapped siblings
        #expect(try refused { $0.leafIndex += 1 } == .verificationFailed)
        #expect(try refused { $0.transactionID = ids[6] } == .verificationFailed)
        #expect(try refused { $0.networkID = Hash256.of([1]) } == .wrongNetwork)
        // A leaf claiming another status.
        #expect(try refused { proof in
            var leaf = try LogLeaf(decoding: [UInt8](Data(base64Encoded: proof.leaf)!))
            leaf.result.status = 14
            proof.leaf = Data(leaf.encoded).base64EncodedString()
        } == .verificationFailed)
        // A forged tree head: a different root, re-signed by a collector (not a node).
        let collector = try harness.identity("st-mary/collector")
        #expect(try refused { proof in
            var header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header)!))
            header.logRoot = Hash256.of([9])
            header.proposer = collector.fingerprint
            proof.treeHead.header = Data(header.encoded).base64EncodedString()
            proof.treeHead.logRoot = header.logRoot
            proof.treeHead.signature = Data(collector.sign(header.encoded)).base64EncodedString()
            proof.treeHead.signerCertificate = Data(collector.certificate.derBytes).base64EncodedString()
        } == .verificationFailed)
        // A forged tree head signed by a real node that did not propose the block.
        let otherNode = try harness.identity("north-general/node")
        #expect(try refused { proof in
            let header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header)!))
            proof.treeHead.signature = Data(otherNode.sign(header.encoded)).base64EncodedString()
            proof.treeHead.signerCertificate = Data(otherNode.certificate.derBytes).base64EncodedString()
        } == .verificationFailed)
        // The right signer but a changed root: the signature no longer verifies.
        #expect(try refused { proof in
            var header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header)!))
            header.logRoot = Hash256.of([9])
            proof.treeHead.header = Data(header.encoded).base64EncodedString()
            proof.treeHead.logRoot = header.logRoot
        } == .badSignature)
        // A node certificate from a CA that is not one of the network's roots.
        let outsider = try TestNetwork.issue(try CertificateAuthority.create(organization: "st-mary"), name: "st-mary/node", role: .node, now: Date())
        #expect(try refused { $0.treeHead.signerCertificate = Data(outsider.certificate.derBytes).base64EncodedString() } == .invalidCertificate)
    }

    @Test func consistencyProofsBetweenAllBlockPairs() async throws {
        let (harness, _, roots) = try await Self.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        let tip = try store.tip()!.height
        for from in 0...tip {
            for to in from...tip {
                try Proofs.verify(try Proofs.consistency(store: store, from: from, to: to), roots: roots, networkID: harness.definition.networkID)
            }
        }
        var proof = try Proofs.consistency(store: store, from: 1, to: tip)
        proof.path.swapAt(0, proof.path.count - 1)
        #expect(throws: LedgerError.self) { try Proofs.verify(proof, roots: roots, networkID: nil) }
        proof = try Proofs.consistency(store: store, from: 1, to: tip)
        proof.path.removeLast()
        #expect(throws: LedgerError.self) { try Proofs.verify(proof, roots: roots, networkID: nil) }
        proof = try Proofs.consistency(store: store, from: 1, to: tip)
        proof.first = try Proofs.consistency(store: store, from: 2, to: tip).first
        #expect(throws: LedgerError.self) { try Proofs.verify(proof, roots: roots, networkID: nil) }
    }

    // MARK: Who may sign a tree head

    /// A node certificate issued with the organisation's own CA (`medledger issue --role node`),
    /// never registered on the ledger.
    static func issuedNode(_ harness: NodeHarness, organization: String = "st-mary", name: String = "rogue") throws -> SigningIdentity {
        let folder = harness.directory + "/orgs/" + organization
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(decoding: try Data(contentsOf: URL(fileURLWithPath: folder + "/ca.key")), as: UTF8.self))
        let certificate = try #require(try harness.definition.rootCertificates()[organization])
        return try TestNetwork.issue(CertificateAuthority(organization: organization, privateKey: key, certificate: certificate),
                                     name: "\(organization)/\(name)", role: .node, now: Date())
    }

    /// Re-signs the proof's tree head (same height and time) with `signer` as the proposer.
    static func resign(_ proof: inout InclusionProof, by signer: SigningIdentity) throws {
        var header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header)!))
        header.proposer = signer.fingerprint
        proof.treeHead.header = Data(header.encoded).base64EncodedString()
        proof.treeHead.signature = Data(signer.sign(header.encoded)).base64EncodedString()
        proof.treeHead.signerCertificate = Data(signer.certificate.derBytes).base64EncodedString()
    }

    static func commit(_ harness: NodeHarness, _ envelope: Envelope) async throws {
        let status = try await harness.commit(envelope)
        guard case .committed = status else { throw LedgerError(.internal, "expected a commit, got \(status)") }
    }

    static func governance(_ harness: NodeHarness, _ signer: String, _ action: String, _ arguments: [UInt8]) throws -> Envelope {
        try harness.identity(signer).transaction(network: harness.node.network, contract: "governance", action: action,
                                                 arguments: arguments, timestamp: Clock.nowMilliseconds()).envelope
    }

    static func hashArgument(_ hash: Hash256) -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(hash)
        return writer.bytes
    }

    /// Issue 7, finding 2: an unregistered node's one-leaf tree head "proved" that a transaction
    /// refused as `forbidden` was committed.
    @Test func treeHeadOfAnUnregisteredNodeIsRefused() async throws {
        let (harness, ids, roots) = try await Self.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        var proof = try Proofs.inclusion(store: store, transaction: ids[5])
        // A registration the contract forbids (a researcher may not register devices), never ordered.
        let refused = try harness.sign("medtech-research/researcher", .register(udi: Fixtures.udi(500), attributes: Fixtures.attributes()))
        let rogue = try Self.issuedNode(harness)
        let leaf = LogLeaf(height: 1, index: 0, transactionID: refused.id, envelopeHash: Hash256.of(refused.encoded),
                           result: TransactionResult(status: 0, writeSetHash: WriteSet().hash))
        var header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header)!))
        header.logSize = 1
        header.logRoot = MerkleTree.leafHash(leaf.encoded)
        header.proposer = rogue.fingerprint
        proof.transactionID = refused.id
        proof.envelope = Data(refused.encoded).base64EncodedString()
        proof.creatorCertificate = Data(try harness.identity("medtech-research/researcher").certificate.derBytes).base64EncodedString()
        proof.leaf = Data(leaf.encoded).base64EncodedString()
        proof.leafIndex = 0
        proof.treeSize = 1
        proof.auditPath = []
        proof.treeHead.logSize = 1
        proof.treeHead.logRoot = header.logRoot
        proof.treeHead.header = Data(header.encoded).base64EncodedString()
        proof.treeHead.signature = Data(rogue.sign(header.encoded)).base64EncodedString()
        proof.treeHead.signerCertificate = Data(rogue.certificate.derBytes).base64EncodedString()
        #expect(throws: LedgerError.self) { try Proofs.verify(proof, roots: roots, networkID: harness.definition.networkID) }
        // The same signer on an otherwise genuine proof, and on a consistency proof.
        var genuine = try Proofs.inclusion(store: store, transaction: ids[5])
        try Self.resign(&genuine, by: rogue)
        #expect(throws: LedgerError.self) { try Proofs.verify(genuine, roots: roots, networkID: harness.definition.networkID) }
        var consistency = try Proofs.consistency(store: store, from: 1)
        consistency.second = genuine.treeHead
        #expect(throws: LedgerError.self) { try Proofs.verify(consistency, roots: roots, networkID: harness.definition.networkID) }
    }

    /// A node revoked by its organisation may not sign tree heads after the revocation; before it,
    /// it was a registered node and its signature counts.
    @Test func treeHeadOfARevokedNodeIsRefused() async throws {
        let harness = try NodeHarness(batchSize: 1)
        let node = try harness.identity("north-general/node")
        try await Self.commit(harness, try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes())))
        let before = harness.node.tip.height
        try await Self.commit(harness, try Self.governance(harness, "north-general/admin", "revoke", Self.hashArgument(node.fingerprint)))
        let device = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(2), attributes: Fixtures.attributes()))
        try await Self.commit(harness, device)
        try await harness.stop()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        let roots = try harness.definition.rootCertificates()
        var proof = try Proofs.inclusion(store: store, transaction: device.id)
        try Proofs.verify(proof, roots: roots, networkID: harness.definition.networkID)
        try Self.resign(&proof, by: node)
        #expect(throws: LedgerError.self) { try Proofs.verify(proof, roots: roots, networkID: harness.definition.networkID) }
        // At a height before the revocation the node was registered.
        let firstID = try #require(try store.transaction(sequence: 1)).id
        var early = try Proofs.inclusion(store: store, transaction: firstID, height: before)
        try Self.resign(&early, by: node)
        try Proofs.verify(early, roots: roots, networkID: harness.definition.networkID)
    }
}
