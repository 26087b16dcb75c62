import Testing
import Foundation
import Synchronization
import Crypto
import Logging
import LedgerCore
import Contracts
import LedgerStore
import LedgerTesting
@testable import Node

/// A replicated leader seals block N+1 on top of block N while N is still on its way through the
/// log (``LedgerNode/seal(_:epoch:clockFloor:on:)``), and skips verifying again the signatures it
/// verified at admission. Both must give exactly the blocks a follower computes on committed state.
struct PipelinedSealingTests {
    /// Two nodes of one network, not running (their blocks are sealed and received by hand).
    final class Pair: Sendable {
        let directory: String
        let definition: NetworkDefinition
        let leader: LedgerNode
        let follower: LedgerNode

        init() throws {
            directory = Fixtures.temporaryPath("pipelined")
            definition = try NetworkBuilder.build(NetworkSpec.demo, directory: directory)
            leader = try LedgerNode(directory: directory, identity: "st-mary/node", databasePath: directory + "/leader.sqlite", logger: .quiet)
            follower = try LedgerNode(directory: directory, identity: "north-general/node", databasePath: directory + "/follower.sqlite",
                                      logger: .quiet)
        }

        func envelope(_ signer: String, _ action: DeviceAction) throws -> [UInt8] {
            try definition.identity(named: signer, directory: directory)
                .transaction(network: leader.network, contract: "devices", action: action.name, arguments: action.arguments).envelope.encoded
        }

        /// The follower's check of a block the leader sealed: it must compute the same header.
        func receive(_ executed: LedgerNode.ExecutedBlock) throws {
            let block = Block(header: executed.header, signature: executed.signature, envelopes: executed.transactions.map(\.bytes))
            try follower.commit(try follower.receive(Block(decoding: block.encoded)))
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func aBlockSealedOnItsUncommittedParentIsTheBlockAFollowerComputes() throws {
        let pair = try Pair()
        let first = try [
            pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes())),
            pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(2), attributes: Fixtures.attributes())),
        ]
        let parent = try pair.leader.seal(pair.leader.prepared(first), epoch: 0)
        // Sealed before the parent is committed: it must see the parent's writes and transactions.
        var update = DeviceAttributes()
        update.firmwareVersion = "9.9.9"
        let second = try [
            pair.envelope("st-mary/collector", .update(udi: Fixtures.udi(1), event: "firmware_update", changes: update)),
            first[1],
            pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(3), attributes: Fixtures.attributes())),
        ]
        #expect(pair.leader.tip.height == 0)
        let child = try pair.leader.seal(pair.leader.prepared(second), epoch: 0, on: parent)
        #expect(child.header.height == 2)
        #expect(child.header.previousHash == parent.header.hash)
        #expect(child.assembled.execution.refusals.map { $0?.code } == [nil, .duplicateTransaction, nil],
                "the update sees the device its parent registered, and the parent's transaction is a replay")
        try pair.leader.commit(parent)
        try pair.leader.commit(child)
        try pair.receive(parent)
        try pair.receive(child)
        #expect(pair.follower.tip == pair.leader.tip)
        #expect(pair.follower.divergence == nil)
        for node in [pair.leader, pair.follower] {
            let report = ChainVerifier.verify(store: node.store)
            #expect(report.ok, "\(report.failure ?? "")")
        }
    }

    @Test func researchBatchesAndMembershipChangesWaitForTheCommittedParent() throws {
        let pair = try Pair()
        let devices = try pair.leader.prepared([pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes()))])
        let parent = try pair.leader.seal(devices, epoch: 0)
        #expect(LedgerNode.canSeal(devices, onUncommitted: parent))
        let researcher = try pair.definition.identity(named: "medtech-research/researcher", directory: pair.directory)
        let research = pair.leader.prepared([
            researcher.transaction(network: pair.leader.network, contract: ResearchContract.name, action: "ask", arguments: []).envelope.encoded,
        ])
        #expect(!LedgerNode.canSeal(research, onUncommitted: parent), "research answers are checked against committed devices")
        for key in [StateKey.member(Hash256.of([1])), StateKey.organization("x"), StateKey.config, StateKey.noiseKey] {
            var changing = parent
            changing.assembled.execution.writes.set(key, [1])
            #expect(!LedgerNode.canSeal(devices, onUncommitted: changing), "a parent writing \(key)")
        }
    }

    /// Red team: the leader checked a batch's signatures against the members before its parent,
    /// which registered the batch's signer; followers (who had committed the parent) counted that
    /// signer's older signed times, bounded block time below the leader's and halted.
    @Test func aBatchAfterAParentThatRegistersItsSignerIsCheckedAgainstTheNewMembers() async throws {
        let pair = try Pair()
        let ca = try CertificateAuthority(
            organization: "st-mary",
            privateKey: P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: pair.directory + "/orgs/st-mary/ca.key", encoding: .utf8)),
            certificate: try #require(try pair.definition.rootCertificates()["st-mary"]))
        let newcomer = try TestNetwork.issue(ca, name: "st-mary/newcomer", role: .collector, now: Date())
        func governance(_ signer: String, _ action: String, _ arguments: [UInt8]) throws -> Envelope {
            try pair.definition.identity(named: signer, directory: pair.directory)
                .transaction(network: pair.leader.network, contract: "governance", action: action, arguments: arguments).envelope
        }
        let propose = try governance("st-mary/admin", "propose",
                                     ProposalAction.addMember(MemberRegistration(certificate: newcomer.certificate.derBytes, deviceUDI: nil)).encoded)
        var approvals = [propose.encoded]
        for admin in ["north-general/admin", "city-childrens/admin"] {
            approvals.append(try governance(admin, "approve", ProofTests.hashArgument(propose.id)).encoded)
        }
        let parent = try pair.leader.seal(pair.leader.prepared(approvals), epoch: 0)
        #expect(parent.assembled.execution.refusals.allSatisfy { $0 == nil })
        #expect(!PipelinedSealingTests.canSealAnything(on: parent), "the parent registers a member")
        // One transaction signed now, two by the newcomer nearly a skew window ago.
        let skew = pair.leader.chain.withLock { $0.config.clockSkewMilliseconds }
        let old = Clock.nowMilliseconds() - Int64(skew) * 9 / 10
        let envelopes = try [pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes()))]
            + (2...3).map { index in
                newcomer.transaction(network: pair.leader.network, contract: "devices", action: "register",
                                     arguments: DeviceAction.register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()).arguments,
                                     timestamp: old).envelope.encoded
            }
        let committed = HeightSignal(height: 0)
        let batch = Task { await pair.leader.batch(envelopes, after: parent, committed: committed) }
        try await Task.sleep(for: .milliseconds(100))
        try pair.leader.commit(parent)
        committed.advance(to: parent.header.height)
        let (transactions, onto) = try #require(await batch.value)
        #expect(onto == nil, "sealed on committed state")
        #expect(transactions.map(\.signatureVerified) == [true, true, true])
        let child = try pair.leader.seal(transactions, epoch: 0, on: onto)
        try pair.leader.commit(child)
        try pair.receive(parent)
        try pair.receive(child)
        #expect(pair.follower.tip == pair.leader.tip)
    }

    static func canSealAnything(on parent: LedgerNode.ExecutedBlock) -> Bool { LedgerNode.canSeal([], onUncommitted: parent) }

    /// Admission's verification is reused only for the very signature bytes it verified.
    @Test func aSignatureVerifiedAtAdmissionIsTrustedOnlyForTheSameBytes() throws {
        let pair = try Pair()
        let original = try pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(1), attributes: Fixtures.attributes()))
        let envelope = try Envelope(decoding: original)
        var signature = envelope.signature
        signature[signature.count - 1] ^= 1
        let tampered = Envelope(payloadBytes: envelope.payloadBytes, signature: signature).encoded
        // A key that verifies neither: only the record of admission can mark one verified.
        let otherKey = P256.Signing.PrivateKey().publicKey
        let admitted = (id: envelope.id, signature: envelope.signature)
        let prepared = ChainVerifier.verifySignatures([original, tampered], verified: { $0 == admitted.id && $1 == admitted.signature }) { _ in
            otherKey
        }
        #expect(prepared.map(\.signatureVerified) == [true, false])
        #expect(prepared[0].id == prepared[1].id, "the same payload, so the same id")
        // A node's own pending transaction, through `prepared`: submitted, so admitted here.
        let id = try pair.leader.submit(original)
        #expect(id == envelope.id)
        #expect(pair.leader.prepared([original, tampered]).map(\.signatureVerified) == [true, false])
    }
}
