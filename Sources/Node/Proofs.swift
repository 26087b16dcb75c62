import Crypto
import Foundation
import X509
import SwiftASN1
public import LedgerCore
public import LedgerStore
import Contracts

/// A signed tree head: the exact header bytes of a block (which carry the log size and root), the
/// proposing node's signature over them, and that node's certificate.
public struct SignedTreeHead: Codable, Sendable, Hashable {
    public var height: UInt64
    public var logSize: UInt64
    public var logRoot: Hash256
    /// Base64 of the exact encoded header.
    public var header: String
    /// Base64 of the 64-byte raw P-256 signature over the header bytes.
    public var signature: String
    /// Base64 DER of the signing node's certificate.
    public var signerCertificate: String

    enum CodingKeys: String, CodingKey {
        case height, header, signature
        case logSize = "log_size"
        case logRoot = "log_root"
        case signerCertificate = "signer_certificate"
    }
}

/// What lets a verifier decide offline, from nothing but the network id, whether a tree head's
/// signer was a registered, unrevoked node at the tree head's height: the genesis block (whose
/// header hash *is* the network id) and every governance transaction after it in the tree head's
/// log, each with its inclusion proof into that log. The verifier replays membership from them.
public struct MembershipEvidence: Codable, Sendable, Hashable {
    /// Base64 of the genesis block file (`MLK1`, docs/formats.md §9).
    public var genesis: String
    /// Every `governance` transaction of the log after genesis, in log order.
    public var governance: [GovernanceEntry]

    public init(genesis: String, governance: [GovernanceEntry]) {
        self.genesis = genesis
        self.governance = governance
    }
}

/// One governance transaction of the log, with its audit path into the accompanying tree head.
public struct GovernanceEntry: Codable, Sendable, Hashable {
    /// Base64 of the `LogLeaf`.
    public var leaf: String
    public var leafIndex: UInt64
    /// Base64 of the exact envelope.
    public var envelope: String
    /// The time of the block that holds it (ms): replay executes it at this time.
    public var blockTime: Int64
    public var auditPath: [Hash256]

    public init(leaf: String, leafIndex: UInt64, envelope: String, blockTime: Int64, auditPath: [Hash256]) {
        self.leaf = leaf
        self.leafIndex = leafIndex
        self.envelope = envelope
        self.blockTime = blockTime
        self.auditPath = auditPath
    }

    enum CodingKeys: String, CodingKey {
        case leaf, envelope
        case leafIndex = "leaf_index"
        case blockTime = "block_time"
        case auditPath = "audit_path"
    }
}

/// An RFC 9162 inclusion proof for one transaction, with everything needed to check it offline.
public struct InclusionProof: Codable, Sendable, Hashable {
    public static let format = "medledger-inclusion-proof/2"
    public var format = Self.format
    public var networkID: Hash256
    public var transactionID: Hash256
    /// Base64 of the leaf data (see docs/formats.md); the leaf hash is SHA-256(0x00 ‖ leaf).
    public var leaf: String
    public var leafIndex: UInt64
    public var treeSize: UInt64
    public var auditPath: [Hash256]
    /// Base64 of the transaction envelope, so its signature can be checked too.
    public var envelope: String
    /// Base64 DER of the creator's certificate.
    public var creatorCertificate: String
    public var treeHead: SignedTreeHead
    /// Membership of the tree head's signer; audit paths are into `treeHead`'s log.
    public var membership: MembershipEvidence
    /// Other nodes' signed checkpoints of the same log at or after the tree head, each with the
    /// consistency path from the tree head's log to it: every cosigner attests the transaction too.
    public var cosignatures: [Cosignature]?

    enum CodingKeys: String, CodingKey {
        case format, leaf, envelope, membership, cosignatures
        case networkID = "network_id"
        case transactionID = "transaction_id"
        case leafIndex = "leaf_index"
        case treeSize = "tree_size"
        case auditPath = "audit_path"
        case creatorCertificate = "creator_certificate"
        case treeHead = "tree_head"
    }
}

/// Another node's signed checkpoint (`MLC1`, docs/formats.md §10) of a log that extends a proof's
/// tree head, and the RFC 9162 consistency path from the tree head's log to it.
public struct Cosignature: Codable, Sendable, Hashable {
    /// Base64 of the 116-byte checkpoint body.
    public var checkpoint: String
    /// Base64 of the 64-byte raw P-256 signature over the body.
    public var signature: String
    /// Base64 DER of the signing node's certificate.
    public var signerCertificate: String
    public var consistencyPath: [Hash256]

    enum CodingKeys: String, CodingKey {
        case checkpoint, signature
        case signerCertificate = "signer_certificate"
        case consistencyPath = "consistency_path"
    }
}

/// What a verified proof rests on: the organisations whose nodes signed it (the tree head's
/// proposer and every valid cosigner), by id.
public struct ProofAttestation: Sendable, Hashable {
    public var organizations: [String]
}

/// An RFC 9162 consistency proof between two signed tree heads.
public struct ConsistencyProof: Codable, Sendable, Hashable {
    public static let format = "medledger-consistency-proof/2"
    public var format = Self.format
    public var networkID: Hash256
    public var first: SignedTreeHead
    public var second: SignedTreeHead
    public var path: [Hash256]
    /// Membership of both signers; audit paths are into `second`'s log.
    public var membership: MembershipEvidence

    enum CodingKeys: String, CodingKey {
        case format, first, second, path, membership
        case networkID = "network_id"
    }
}

public enum Proofs {
    // MARK: Building

    static func treeHead(_ store: LedgerStore, height: UInt64) throws -> SignedTreeHead {
        guard let block = try store.block(at: height) else { throw LedgerError(.notFound, "no block \(height)") }
        guard let bytes = try store.value(forKey: "mem/" + block.header.proposer.hex) else {
            throw LedgerError(.storage, "proposer of block \(height) is not in state")
        }
        let proposer = try Member(decoding: bytes)
        return SignedTreeHead(height: height, logSize: block.header.logSize, logRoot: block.header.logRoot,
                              header: Data(block.headerBytes).base64EncodedString(), signature: Data(block.signature).base64EncodedString(),
                              signerCertificate: Data(proposer.certificate.der).base64EncodedString())
    }

    /// The genesis block and every governance transaction in the log of `head`, with audit paths.
    static func membership(_ store: LedgerStore, head: SignedTreeHead) throws -> MembershipEvidence {
        guard let genesis = try store.block(at: 0) else { throw LedgerError(.notFound, "empty ledger") }
        let file = Block(header: genesis.header, signature: genesis.signature, envelopes: genesis.transactions.map(\.envelope))
        let entries = try store.governanceTransactions(from: genesis.header.logSize, before: head.logSize).map { transaction, blockTime in
            GovernanceEntry(leaf: Data(transaction.leaf.encoded).base64EncodedString(), leafIndex: transaction.sequence,
                            envelope: Data(transaction.envelope).base64EncodedString(), blockTime: blockTime,
                            auditPath: try store.inclusionProof(sequence: transaction.sequence, size: head.logSize))
        }
        return MembershipEvidence(genesis: Data(file.encoded).base64EncodedString(), governance: entries)
    }

    /// The inclusion proof of `id` against the tree head of block `height` (default: the tip).
    public static func inclusion(store: LedgerStore, transaction id: Hash256, height: UInt64? = nil) throws -> InclusionProof {
        guard let transaction = try store.transaction(id: id) else {
            throw LedgerError(.notFound, "no transaction \(id.hex) on this ledger")
        }
        guard let tip = try store.tip(), let genesis = try store.block(at: 0) else { throw LedgerError(.notFound, "empty ledger") }
        let head = try treeHead(store, height: height ?? tip.height)
        guard transaction.sequence < head.logSize else {
            throw LedgerError(.invalidArgument, "transaction \(id.hex.prefix(16))… is not yet in the tree of block \(head.height)")
        }
        let path = try store.inclusionProof(sequence: transaction.sequence, size: head.logSize)
        guard let creatorBytes = try store.value(forKey: "mem/" + transaction.creator.hex) else {
            throw LedgerError(.storage, "creator of \(id.hex.prefix(16))… is not in state")
        }
        let creator = try Member(decoding: creatorBytes)
        return InclusionProof(networkID: Hash256.of(genesis.headerBytes), transactionID: id,
                              leaf: Data(transaction.leaf.encoded).base64EncodedString(), leafIndex: transaction.sequence,
                              treeSize: head.logSize, auditPath: path, envelope: Data(transaction.envelope).base64EncodedString(),
                              creatorCertificate: Data(creator.certificate.der).base64EncodedString(), treeHead: head,
                              membership: try membership(store, head: head))
    }

    /// Adds to `proof` a cosignature for each of `checkpoints` (other nodes' signed checkpoints,
    /// ``LedgerNode/agreeingCheckpoints``) that this ledger can tie to the proof's tree head: its
    /// block is on this chain with the same hash and log, at or after the tree head, and its signer
    /// is a node in state. Others are left out.
    public static func cosign(_ proof: inout InclusionProof, store: LedgerStore, checkpoints: [PublishedCheckpoint]) throws {
        var cosignatures: [Cosignature] = []
        let header = try BlockHeader(decoding: [UInt8](Data(base64Encoded: proof.treeHead.header) ?? Data()))
        // Each one is checked as a verifier will (against the membership the proof's evidence
        // replays): one that would fail would make the whole proof fail.
        let (ledger, _) = try verifyMembership(of: header, signerCertificate: proof.treeHead.signerCertificate, evidence: proof.membership,
                                               log: header, networkID: proof.networkID)
        for checkpoint in checkpoints where checkpoint.signer != header.proposer {
            guard let statement = try? checkpoint.statement(), !statement.refused, statement.logSize >= proof.treeSize,
                  let block = try store.block(at: statement.height), block.header.hash == statement.blockHash,
                  block.header.logSize == statement.logSize, block.header.logRoot == statement.logRoot,
                  let bytes = try store.value(forKey: StateKey.member(checkpoint.signer)), let member = try? Member(decoding: bytes)
            else { continue }
            let cosignature = Cosignature(checkpoint: Data(checkpoint.body).base64EncodedString(),
                                          signature: Data(checkpoint.signature).base64EncodedString(),
                                          signerCertificate: Data(member.certificate.der).base64EncodedString(),
                                          consistencyPath: try store.consistencyProof(first: proof.treeSize, second: statement.logSize))
            guard (try? verify(cosignature, of: header, ledger: ledger, roots: nil, at: "")) != nil,
                  !cosignatures.contains(where: { $0.signerCertificate == cosignature.signerCertificate })
            else { continue }
            cosignatures.append(cosignature)
        }
        proof.cosignatures = cosignatures.isEmpty ? nil : cosignatures
    }

    /// The consistency proof between the trees of blocks `from` and `to` (default: the tip).
    public static func consistency(store: LedgerStore, from: UInt64, to: UInt64? = nil) throws -> ConsistencyProof {
        guard let tip = try store.tip(), let genesis = try store.block(at: 0) else { throw LedgerError(.notFound, "empty ledger") }
        let to = to ?? tip.height
        guard from <= to, to <= tip.height else {
            throw LedgerError(.invalidArgument, "need from ≤ to ≤ \(tip.height), got \(from) and \(to)")
        }
        let first = try treeHead(store, height: from)
        let second = try treeHead(store, height: to)
        return ConsistencyProof(networkID: Hash256.of(genesis.headerBytes), first: first, second: second,
                                path: try store.consistencyProof(first: first.logSize, second: second.logSize),
                                membership: try membership(store, head: second))
    }

    // MARK: Verification (offline, against the network id and root certificates)

    /// Checks a tree head on its own: header decodes and matches the stated size and root, the
    /// signer's certificate was issued by one of `roots`, has role `node`, is the header's
    /// proposer, and signed these exact header bytes. That the signer was a *registered* node is
    /// ``verifyMembership(of:signerCertificate:evidence:log:networkID:)``'s job.
    public static func verify(_ head: SignedTreeHead, roots: [String: Certificate]) throws(LedgerError) -> BlockHeader {
        guard let headerBytes = Data(base64Encoded: head.header).map({ [UInt8]($0) }),
              let signature = Data(base64Encoded: head.signature).map({ [UInt8]($0) }),
              let certificateBytes = Data(base64Encoded: head.signerCertificate).map({ [UInt8]($0) })
        else { throw LedgerError(.malformedEncoding, "tree head fields must be base64") }
        let header = try BlockHeader(decoding: headerBytes)
        guard header.height == head.height, header.logSize == head.logSize, header.logRoot == head.logRoot else {
            throw LedgerError(.verificationFailed, "tree head: stated height/size/root differ from the signed header")
        }
        let signer = try memberCertificate(certificateBytes, roots: roots)
        guard signer.role == .node else { throw LedgerError(.verificationFailed, "tree head is signed by a \(signer.role.rawValue), not a node") }
        guard signer.fingerprint == header.proposer else {
            throw LedgerError(.verificationFailed, "tree head signer is not the block's proposer")
        }
        guard let key = try? P256.Signing.PublicKey(rawRepresentation: signer.publicKey),
              SignatureCheck.isValid(signature: signature, message: headerBytes, publicKey: key)
        else { throw LedgerError(.badSignature, "tree head signature does not verify") }
        return header
    }

    /// Replays membership from the evidence and requires the signer of `header` to be a node that
    /// was registered, and not revoked, in the state before block `header.height`, with exactly
    /// the signer certificate of the tree head. `log` is the tree head the evidence's audit paths
    /// lead to (the same one, or a later one of a consistency proof).
    @discardableResult
    public static func verifyMembership(of header: BlockHeader, signerCertificate: String, evidence: MembershipEvidence,
                                        log: BlockHeader, networkID: Hash256) throws(LedgerError) -> (ledger: MemoryLedger, signer: Member) {
        guard let genesisBytes = Data(base64Encoded: evidence.genesis).map({ [UInt8]($0) }),
              let certificate = Data(base64Encoded: signerCertificate).map({ [UInt8]($0) })
        else { throw LedgerError(.malformedEncoding, "membership evidence fields must be base64") }
        let genesis = try Block(decoding: genesisBytes)
        guard genesis.header.hash == networkID else {
            throw LedgerError(.wrongNetwork, "membership evidence starts from the genesis of network \(genesis.header.hash.hex.prefix(16))…, not \(networkID.hex.prefix(16))…")
        }
        if header.height == 0, header != genesis.header {
            throw LedgerError(.verificationFailed, "tree head of block 0 is not this network's genesis header")
        }
        let (_, assembled) = try LedgerNode.verifiedGenesis(genesis)
        var ledger = MemoryLedger()
        ledger.apply(assembled.execution.writes, transactionIDs: assembled.leaves.map(\.transactionID))
        let executor = BlockExecutor(contracts: [GovernanceContract()])
        var next = genesis.header.logSize
        var last = (height: UInt64(0), time: genesis.header.timestamp)
        for entry in evidence.governance {
            let at = "governance transaction at log position \(entry.leafIndex)"
            guard let leafBytes = Data(base64Encoded: entry.leaf).map({ [UInt8]($0) }),
                  let envelopeBytes = Data(base64Encoded: entry.envelope).map({ [UInt8]($0) })
            else { throw LedgerError(.malformedEncoding, "membership evidence fields must be base64") }
            let leaf = try LogLeaf(decoding: leafBytes)
            guard entry.leafIndex >= next, entry.leafIndex < log.logSize else {
                throw LedgerError(.verificationFailed, "\(at): out of log order or beyond the tree head")
            }
            guard leaf.envelopeHash == Hash256.of(envelopeBytes),
                  MerkleTree.verifyInclusion(index: entry.leafIndex, size: log.logSize, leafHash: MerkleTree.leafHash(leafBytes),
                                             path: entry.auditPath, root: log.logRoot)
            else { throw LedgerError(.verificationFailed, "\(at): not in the signed log") }
            guard leaf.height > last.height || (leaf.height == last.height && entry.blockTime == last.time),
                  entry.blockTime >= last.time, leaf.height <= log.height, entry.blockTime <= log.timestamp
            else { throw LedgerError(.verificationFailed, "\(at): block height or time out of order") }
            next = entry.leafIndex + 1
            last = (leaf.height, entry.blockTime)
            // Only the state before the tree head's block matters for its signer.
            if leaf.height >= header.height { break }
            let prepared = PreparedTransaction(bytes: envelopeBytes)
            guard prepared.payload?.contract == GovernanceContract.name else {
                throw LedgerError(.verificationFailed, "\(at): not a governance transaction")
            }
            // Governance reads only what genesis and governance write, so replaying it alone gives
            // the same outcome as the full block did; the leaf commits to that outcome.
            let execution = try executor.execute([prepared], network: networkID, height: leaf.height, blockTime: entry.blockTime, base: ledger)
            guard execution.results.first == leaf.result else {
                throw LedgerError(.verificationFailed, "\(at): replaying it does not give the result its leaf records")
            }
            ledger.apply(execution.writes, transactionIDs: [prepared.id])
        }
        let at = "tree head signer \(header.proposer.hex.prefix(16))…"
        guard let bytes = try ledger.value(forKey: StateKey.member(header.proposer)), let member = try? Member(decoding: bytes),
              member.role == .node, member.certificate.der == certificate
        else { throw LedgerError(.unknownMember, "\(at) is not a node registered on this network before block \(header.height)") }
        if let revokedAt = member.revokedAt, revokedAt <= header.timestamp {
            throw LedgerError(.certificateRevoked, "\(at) was revoked before block \(header.height)")
        }
        return (ledger, member)
    }

    static func memberCertificate(_ der: [UInt8], roots: [String: Certificate]) throws(LedgerError) -> MemberCertificate {
        let unverified = try MemberCertificate(der: der, root: nil, organization: nil)
        guard let root = roots[unverified.organization] else {
            throw LedgerError(.unknownOrganization, "certificate names organisation \(unverified.organization), which has no root here")
        }
        return try MemberCertificate(der: der, root: root, organization: unverified.organization)
    }

    /// Checks an inclusion proof. `networkID` pins the network (`verify-proof` takes it from
    /// network.json); with `nil` the proof's own network id is trusted. Every cosignature must hold
    /// (a node registered in the state before the tree head's block, not revoked by then, signed a
    /// checkpoint of a log that extends the tree head's); the organisations of the proposer and the
    /// cosigners must number at least `minimumOrganizations`.
    @discardableResult
    public static func verify(_ proof: InclusionProof, roots: [String: Certificate], networkID: Hash256?,
                              minimumOrganizations: Int = 1) throws(LedgerError) -> ProofAttestation {
        guard proof.format == InclusionProof.format else { throw LedgerError(.malformedEncoding, "unknown proof format \(proof.format)") }
        if let networkID, networkID != proof.networkID {
            throw LedgerError(.wrongNetwork, "proof is for network \(proof.networkID.hex.prefix(16))…, expected \(networkID.hex.prefix(16))…")
        }
        let header = try verify(proof.treeHead, roots: roots)
        let (ledger, proposer) = try verifyMembership(of: header, signerCertificate: proof.treeHead.signerCertificate,
                                                      evidence: proof.membership, log: header, networkID: proof.networkID)
        guard proof.treeSize == header.logSize else {
            throw LedgerError(.verificationFailed, "proof tree size \(proof.treeSize) differs from the signed tree head's \(header.logSize)")
        }
        guard let leafBytes = Data(base64Encoded: proof.leaf).map({ [UInt8]($0) }),
              let envelopeBytes = Data(base64Encoded: proof.envelope).map({ [UInt8]($0) }),
              let creatorBytes = Data(base64Encoded: proof.creatorCertificate).map({ [UInt8]($0) })
        else { throw LedgerError(.malformedEncoding, "proof fields must be base64") }
        let leaf = try LogLeaf(decoding: leafBytes)
        let envelope = try Envelope(decoding: envelopeBytes)
        let payload = try envelope.payload()
        guard leaf.transactionID == proof.transactionID, envelope.id == proof.transactionID else {
            throw LedgerError(.verificationFailed, "leaf, envelope and transaction id disagree")
        }
        guard leaf.envelopeHash == Hash256.of(envelopeBytes) else {
            throw LedgerError(.verificationFailed, "leaf does not commit to this envelope")
        }
        guard leaf.height <= header.height else {
            throw LedgerError(.verificationFailed, "the leaf says block \(leaf.height), after the tree head's block \(header.height)")
        }
        if leaf.height > 0, payload.network != proof.networkID {
            throw LedgerError(.wrongNetwork, "transaction is for another network")
        }
        let creator = try memberCertificate(creatorBytes, roots: roots)
        guard creator.fingerprint == payload.creator,
              let key = try? P256.Signing.PublicKey(rawRepresentation: creator.publicKey),
              SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key)
        else { throw LedgerError(.badSignature, "transaction signature does not verify against the creator certificate") }
        guard MerkleTree.verifyInclusion(index: proof.leafIndex, size: proof.treeSize, leafHash: MerkleTree.leafHash(leafBytes),
                                         path: proof.auditPath, root: header.logRoot)
        else { throw LedgerError(.verificationFailed, "audit path does not lead to the signed log root") }
        var organizations: Set<String> = [proposer.organization]
        var signers: Set<Hash256> = [header.proposer]
        for (index, cosignature) in (proof.cosignatures ?? []).enumerated() {
            let member = try verify(cosignature, of: header, ledger: ledger, roots: roots, at: "cosignature \(index)")
            guard signers.insert(member.fingerprint).inserted else {
                throw LedgerError(.verificationFailed, "cosignature \(index): a second signature by the same node")
            }
            organizations.insert(member.organization)
        }
        guard organizations.count >= minimumOrganizations else {
            throw LedgerError(.verificationFailed, "the proof is signed by nodes of \(organizations.count) organisation(s) (\(organizations.sorted().joined(separator: ", "))); at least \(minimumOrganizations) required")
        }
        return ProofAttestation(organizations: organizations.sorted())
    }

    /// One cosignature of a proof whose tree head is `header`: the certificate chains to `roots`,
    /// is a node of `ledger` (membership before the tree head's block) with exactly that
    /// certificate, not revoked by the tree head's time; it signed the checkpoint; the checkpoint's
    /// log extends the tree head's (consistency path). Returns the member.
    /// With `roots` nil (a node checking its own state's members) the certificate must only be
    /// byte-equal to the registered one.
    static func verify(_ cosignature: Cosignature, of header: BlockHeader, ledger: MemoryLedger, roots: [String: Certificate]?,
                       at: String) throws(LedgerError) -> Member {
        guard let body = Data(base64Encoded: cosignature.checkpoint).map({ [UInt8]($0) }),
              let signature = Data(base64Encoded: cosignature.signature).map({ [UInt8]($0) }),
              let certificate = Data(base64Encoded: cosignature.signerCertificate).map({ [UInt8]($0) })
        else { throw LedgerError(.malformedEncoding, "\(at): fields must be base64") }
        let signer = if let roots { try memberCertificate(certificate, roots: roots) } else {
            try MemberCertificate(der: certificate, root: nil, organization: nil)
        }
        guard let bytes = try ledger.value(forKey: StateKey.member(signer.fingerprint)), let member = try? Member(decoding: bytes),
              member.role == .node, member.certificate.der == certificate
        else { throw LedgerError(.unknownMember, "\(at): its signer is not a node registered on this network before block \(header.height)") }
        if let revokedAt = member.revokedAt, revokedAt <= header.timestamp {
            throw LedgerError(.certificateRevoked, "\(at): its signer was revoked before block \(header.height)")
        }
        guard let key = try? P256.Signing.PublicKey(rawRepresentation: signer.publicKey),
              SignatureCheck.isValid(signature: signature, message: body, publicKey: key)
        else { throw LedgerError(.badSignature, "\(at): the checkpoint signature does not verify") }
        let statement = try PublishedCheckpoint(signer: signer.fingerprint, body: body, signature: signature).statement()
        guard !statement.refused else {
            throw LedgerError(.verificationFailed, "\(at): a statement of a block its signer refused (MLR1), not of one it committed")
        }
        guard statement.height > header.height || statement.blockHash == header.hash else {
            throw LedgerError(.verificationFailed, "\(at): its checkpoint at the tree head's height names another block")
        }
        guard statement.height >= header.height, statement.logSize >= header.logSize,
              MerkleTree.verifyConsistency(first: header.logSize, second: statement.logSize, firstRoot: header.logRoot,
                                           secondRoot: statement.logRoot, proof: cosignature.consistencyPath)
        else { throw LedgerError(.verificationFailed, "\(at): its checkpoint's log does not extend the tree head's") }
        return member
    }

    public static func verify(_ proof: ConsistencyProof, roots: [String: Certificate], networkID: Hash256?) throws(LedgerError) {
        guard proof.format == ConsistencyProof.format else { throw LedgerError(.malformedEncoding, "unknown proof format \(proof.format)") }
        if let networkID, networkID != proof.networkID {
            throw LedgerError(.wrongNetwork, "proof is for network \(proof.networkID.hex.prefix(16))…, expected \(networkID.hex.prefix(16))…")
        }
        let first = try verify(proof.first, roots: roots)
        let second = try verify(proof.second, roots: roots)
        guard first.height <= second.height else {
            throw LedgerError(.verificationFailed, "the first tree head (block \(first.height)) is later than the second (block \(second.height))")
        }
        try verifyMembership(of: second, signerCertificate: proof.second.signerCertificate, evidence: proof.membership,
                             log: second, networkID: proof.networkID)
        try verifyMembership(of: first, signerCertificate: proof.first.signerCertificate, evidence: proof.membership,
                             log: second, networkID: proof.networkID)
        guard MerkleTree.verifyConsistency(first: first.logSize, second: second.logSize, firstRoot: first.logRoot,
                                           secondRoot: second.logRoot, proof: proof.path)
        else { throw LedgerError(.verificationFailed, "the log of block \(second.height) does not extend the log of block \(first.height)") }
    }
}
