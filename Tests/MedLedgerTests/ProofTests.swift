import Testing
import Foundation
import X509
import LedgerCore
import LedgerStore
import Node
import LedgerTesting

struct ProofTests {
    static func ledger() async throws -> (NodeHarness, [Hash256], [String: Certificate]) {
        let harness = try await TamperDetectionTests.ledger()
        let store = try LedgerStore(readOnlyPath: harness.databasePath)
        var ids: [Hash256] = []
        for sequence in 0..<(try store.tip()!.logSize) { ids.append(try store.transaction(sequence: sequence)!.id) }
        return (harness, ids, try harness.definition.rootCertificates(directory: harness.directory))
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
}
