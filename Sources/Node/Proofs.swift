import Crypto
import Foundation
import X509
import SwiftASN1
public import LedgerCore
public import LedgerStore

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

/// An RFC 9162 inclusion proof for one transaction, with everything needed to check it offline.
public struct InclusionProof: Codable, Sendable, Hashable {
    public var format = "medledger-inclusion-proof/1"
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

    enum CodingKeys: String, CodingKey {
        case format, leaf, envelope
        case networkID = "network_id"
        case transactionID = "transaction_id"
        case leafIndex = "leaf_index"
        case treeSize = "tree_size"
        case auditPath = "audit_path"
        case creatorCertificate = "creator_certificate"
        case treeHead = "tree_head"
    }
}

/// An RFC 9162 consistency proof between two signed tree heads.
public struct ConsistencyProof: Codable, Sendable, Hashable {
    public var format = "medledger-consistency-proof/1"
    public var networkID: Hash256
    public var first: SignedTreeHead
    public var second: SignedTreeHead
    public var path: [Hash256]

    enum CodingKeys: String, CodingKey {
        case format, first, second, path
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
                              creatorCertificate: Data(creator.certificate.der).base64EncodedString(), treeHead: head)
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
                                path: try store.consistencyProof(first: first.logSize, second: second.logSize))
    }

    // MARK: Verification (offline, against root certificates)

    /// Checks a tree head: header decodes and matches the stated size and root, the signer's
    /// certificate was issued by one of `roots`, has role `node`, is the header's proposer, and
    /// signed these exact header bytes.
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

    static func memberCertificate(_ der: [UInt8], roots: [String: Certificate]) throws(LedgerError) -> MemberCertificate {
        let unverified = try MemberCertificate(der: der, root: nil, organization: nil)
        guard let root = roots[unverified.organization] else {
            throw LedgerError(.unknownOrganization, "certificate names organisation \(unverified.organization), which has no root here")
        }
        return try MemberCertificate(der: der, root: root, organization: unverified.organization)
    }

    public static func verify(_ proof: InclusionProof, roots: [String: Certificate], networkID: Hash256?) throws(LedgerError) {
        guard proof.format == "medledger-inclusion-proof/1" else { throw LedgerError(.malformedEncoding, "unknown proof format \(proof.format)") }
        if let networkID, networkID != proof.networkID {
            throw LedgerError(.wrongNetwork, "proof is for network \(proof.networkID.hex.prefix(16))…, expected \(networkID.hex.prefix(16))…")
        }
        let header = try verify(proof.treeHead, roots: roots)
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
    }

    public static func verify(_ proof: ConsistencyProof, roots: [String: Certificate], networkID: Hash256?) throws(LedgerError) {
        guard proof.format == "medledger-consistency-proof/1" else { throw LedgerError(.malformedEncoding, "unknown proof format \(proof.format)") }
        if let networkID, networkID != proof.networkID {
            throw LedgerError(.wrongNetwork, "proof is for network \(proof.networkID.hex.prefix(16))…, expected \(networkID.hex.prefix(16))…")
        }
        let first = try verify(proof.first, roots: roots)
        let second = try verify(proof.second, roots: roots)
        guard MerkleTree.verifyConsistency(first: first.logSize, second: second.logSize, firstRoot: first.logRoot,
                                           secondRoot: second.logRoot, proof: proof.path)
        else { throw LedgerError(.verificationFailed, "the log of block \(second.height) does not extend the log of block \(first.height)") }
    }
}
