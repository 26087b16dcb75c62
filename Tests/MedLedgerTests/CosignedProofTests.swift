import Testing
import Foundation
import Crypto
import LedgerCore
import LedgerStore
import LedgerTesting
import Node

/// An inclusion proof from a node of a replicated network carries the other nodes' signed
/// checkpoints of the same log: one key alone (even a registered node's, revoked or stolen) can no
/// longer make a proof that asks for several organisations' signatures.
struct CosignedProofTests {
    @Test func aProofCarriesTheOtherNodesCheckpointsAndEachIsChecked() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await CheckpointExchangeTests.registerSome(harness, count: 6)
        let height = harness.highestHeight
        try await harness.waitForHeight(height)
        let node = harness.node(harness.names[0])
        try await CheckpointExchangeTests.eventually("its own and the other two nodes' checkpoints at \(height) agree") {
            node.agreeingCheckpoints.compactMap { try? $0.statement().height }.filter { $0 == height }.count == 3
        }
        let id = try #require(try node.store.transaction(sequence: node.tip.logSize - 1)?.id)
        var proof = try Proofs.inclusion(store: node.store, transaction: id)
        try Proofs.cosign(&proof, store: node.store, checkpoints: node.agreeingCheckpoints)
        let roots = try harness.definition.rootCertificates()
        let network = harness.definition.networkID
        #expect(proof.cosignatures?.count == 2)
        let attestation = try Proofs.verify(proof, roots: roots, networkID: network, minimumOrganizations: 3)
        #expect(attestation.organizations == ["city-childrens", "north-general", "st-mary"])
        // It survives the JSON a client gets.
        let decoded = try JSONDecoder().decode(InclusionProof.self, from: JSONEncoder().encode(proof))
        #expect(try Proofs.verify(decoded, roots: roots, networkID: network, minimumOrganizations: 3) == attestation)

        // Without cosignatures, one signature — the tree head's, by whichever node sealed that block
        // (not always St Mary's: under load leadership moves; CI once saw it) — enough for 1
        // organisation, not for 2.
        var alone = proof
        alone.cosignatures = nil
        let proposer = try #require(try node.store.block(at: proof.treeHead.height)).header.proposer
        let sealer = try #require(try harness.names.first { try harness.definition.identity(named: $0, directory: harness.directory).fingerprint == proposer })
        #expect(try Proofs.verify(alone, roots: roots, networkID: network).organizations == [String(sealer.split(separator: "/")[0])])
        #expect(throws: LedgerError.self) { try Proofs.verify(alone, roots: roots, networkID: network, minimumOrganizations: 2) }

        func refused(_ change: (inout Cosignature) throws -> Void, _ what: String) throws {
            var bad = proof
            try change(&bad.cosignatures![0])
            #expect(throws: LedgerError.self, "\(what)") { try Proofs.verify(bad, roots: roots, networkID: network) }
        }
        try refused({ cosignature in
            var signature = [UInt8](Data(base64Encoded: cosignature.signature)!)
            signature[0] ^= 1
            cosignature.signature = Data(signature).base64EncodedString()
        }, "a changed signature")
        try refused({ $0.consistencyPath = $0.consistencyPath.isEmpty ? [Hash256.of([1])] : Array($0.consistencyPath.dropLast()) },
                    "a wrong consistency path")
        try refused({ cosignature in
            // The checkpoint of another log, signed by a registered node: not an extension of the tree head's.
            let signer = try harness.definition.identity(named: harness.names[1], directory: harness.directory)
            let statement = try PublishedCheckpoint(signer: signer.fingerprint, body: [UInt8](Data(base64Encoded: cosignature.checkpoint)!),
                                                    signature: []).statement()
            let forged = PublishedCheckpoint.Statement(height: statement.height, blockHash: statement.blockHash, stateRoot: statement.stateRoot,
                                                       logSize: statement.logSize, logRoot: Hash256.of([7])).body
            cosignature.checkpoint = Data(forged).base64EncodedString()
            cosignature.signature = Data(signer.sign(forged)).base64EncodedString()
        }, "another log, signed by a node")
        try refused({ cosignature in
            // Red team: a statement of a block the signer refused (what it computed, never
            // committed) is not a checkpoint, even of the same fields.
            let certificate = [UInt8](Data(base64Encoded: cosignature.signerCertificate)!)
            let name = try #require(harness.names.first { (try? harness.definition.identity(named: $0, directory: harness.directory))?.certificate.derBytes == certificate })
            let signer = try harness.definition.identity(named: name, directory: harness.directory)
            var statement = try PublishedCheckpoint(signer: signer.fingerprint, body: [UInt8](Data(base64Encoded: cosignature.checkpoint)!),
                                                    signature: []).statement()
            statement.refused = true
            cosignature.checkpoint = Data(statement.body).base64EncodedString()
            cosignature.signature = Data(signer.sign(statement.body)).base64EncodedString()
        }, "a refusal statement (MLR1)")
        try refused({ cosignature in
            // A registered member that is not a node signs the same checkpoint.
            let collector = try harness.definition.identity(named: "north-general/collector", directory: harness.directory)
            let body = [UInt8](Data(base64Encoded: cosignature.checkpoint)!)
            cosignature.signature = Data(collector.sign(body)).base64EncodedString()
            cosignature.signerCertificate = Data(collector.certificate.derBytes).base64EncodedString()
        }, "a collector's signature")
        var twice = proof
        twice.cosignatures!.append(twice.cosignatures![0])
        #expect(throws: LedgerError.self, "the same node twice") { try Proofs.verify(twice, roots: roots, networkID: network) }
        await harness.stopAll()
    }
}
