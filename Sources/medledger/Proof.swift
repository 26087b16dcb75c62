import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore
import Node

struct Proof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an inclusion proof for a transaction, or a consistency proof between two blocks, as JSON.",
        discussion: """
            Proofs carry the signed tree head (the block header and its node signature and certificate) and \
            the evidence that its signer was a registered node (the genesis block and every governance \
            transaction up to the tree head, with audit paths), so `medledger verify-proof` can check them \
            offline from the network id alone.

            Examples:
              medledger proof --data ./medledger-demo --tx 3f2a…(64 hex digits) > inclusion.json
              medledger proof --data ./medledger-demo --from 10 --to 20 > consistency.json
              medledger verify-proof inclusion.json --network ./medledger-demo
            """
    )

    @Option(name: .long, help: "Network directory holding ledger.sqlite.")
    var data: String

    @Option(name: .long, help: "Transaction id (64 hex digits) for an inclusion proof.")
    var tx: String?

    @Option(name: .long, help: "Consistency proof: the earlier block height.")
    var from: UInt64?

    @Option(name: .long, help: "Block height of the tree head (default: the tip).")
    var to: UInt64?

    func validate() throws {
        guard (tx == nil) != (from == nil) else { throw ValidationError("give either --tx ID or --from HEIGHT") }
    }

    func run() async throws {
        do {
            let store = try LedgerStore(readOnlyPath: data + "/" + NetworkDefinition.databaseFileName)
            if let tx {
                guard let id = Hash256(hex: tx) else { throw UserError("--tx must be 64 hex digits") }
                Output.json(try Proofs.inclusion(store: store, transaction: id, height: to))
            } else if let from {
                Output.json(try Proofs.consistency(store: store, from: from, to: to))
            }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}

struct VerifyProof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-proof",
        abstract: "Check an inclusion or consistency proof offline against the network's id and root certificates.",
        discussion: """
            Needs only the proof file and the network directory (network.json for the network id, orgs/*/ca.pem); \
            no database. The tree head's signer must be a node the network registered (from genesis or by \
            governance) and had not revoked at that height, replayed from the evidence in the proof. An inclusion \
            proof from a node of a replicated network also carries the other nodes' signed checkpoints of the same \
            log (cosignatures), each checked the same way; --min-organisations N requires N organisations' nodes to \
            have signed (one key alone, even a registered node's, cannot then forge a proof). Exits 0 when the proof \
            holds, 1 otherwise.

            Example:
              medledger verify-proof inclusion.json --network ./medledger-demo
            """
    )

    @Argument(help: "Proof JSON file (from `medledger proof` or the API).")
    var file: String

    @Option(name: .long, help: "Network directory with network.json (which holds the organisations' root certificates).")
    var network: String

    @Option(name: .long, help: "Require an inclusion proof signed by the nodes of at least this many organisations (its tree head's proposer and its cosigners).")
    var minOrganisations = 1

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        struct Probe: Decodable { var format: String }
        do {
            let definition = try NetworkDefinition.load(directory: network)
            let roots = try definition.rootCertificates()
            let format = try JSONDecoder().decode(Probe.self, from: data).format
            switch format {
            case InclusionProof.format:
                let proof = try JSONDecoder().decode(InclusionProof.self, from: data)
                let attestation = try Proofs.verify(proof, roots: roots, networkID: definition.networkID, minimumOrganizations: minOrganisations)
                let leaf = try LogLeaf(decoding: [UInt8](Data(base64Encoded: proof.leaf) ?? Data()))
                let outcome = leaf.result.isCommitted ? "committed" : "ordered but REJECTED by execution (\(LedgerError.Code(ledgerStatus: leaf.result.status)))"
                print("valid: transaction \(proof.transactionID.hex) is leaf \(proof.leafIndex) of the log of size \(proof.treeSize) signed at block \(proof.treeHead.height); it was \(outcome) in block \(leaf.height)")
                print("signed by the nodes of \(attestation.organizations.count) organisation(s): \(attestation.organizations.joined(separator: ", "))")
            case ConsistencyProof.format:
                guard minOrganisations <= 1 else {
                    throw UserError("--min-organisations applies to inclusion proofs (a consistency proof carries no cosignatures)")
                }
                let proof = try JSONDecoder().decode(ConsistencyProof.self, from: data)
                try Proofs.verify(proof, roots: roots, networkID: definition.networkID)
                print("valid: the log at block \(proof.second.height) (size \(proof.second.logSize)) extends the log at block \(proof.first.height) (size \(proof.first.logSize))")
            default:
                throw UserError("unknown proof format \(format)")
            }
        } catch let error as LedgerError {
            Output.error("proof REFUSED: \(error.userMessage)")
            throw ExitCode(1)
        } catch let error as DecodingError {
            Output.error("proof REFUSED: not a MedLedger proof (\(error))")
            throw ExitCode(1)
        }
    }
}
