import Crypto
import Dispatch
import Foundation
import Synchronization
public import LedgerCore
import Contracts
public import LedgerStore

/// The result of re-verifying a ledger.
public struct VerificationReport: Sendable, Codable {
    public var ok: Bool
    public var blocks: UInt64
    public var transactions: UInt64
    public var seconds: Double
    public var transactionsPerSecond: Double
    /// The first problem found, naming the block / transaction / key.
    public var failure: String?
    /// Research answers whose released values were not re-checked (checking them needs the
    /// network noise secret; their structure was checked and their recorded verdict replayed).
    public var uncheckedResearchAnswers: UInt64 = 0
    /// Research answers whose values were recomputed with the noise secret (verify with a node's key).
    public var checkedResearchAnswers: UInt64 = 0

    enum CodingKeys: String, CodingKey {
        case ok, blocks, transactions, seconds, failure
        case uncheckedResearchAnswers = "unchecked_research_answers"
        case checkedResearchAnswers = "checked_research_answers"
        case transactionsPerSecond = "transactions_per_second"
    }
}

/// Re-verifies a whole ledger from its database without trusting it: hash chain, block signatures,
/// every transaction's encoding, signature and certificate (valid at block time, not revoked), a
/// replay of every block from genesis with the same contracts (statuses, write sets, per-block and
/// global Merkle roots, state root), the stored Merkle nodes that proofs are served from, and finally
/// the stored state, key by key, against the replayed state.
public enum ChainVerifier {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// - Parameter noiseKeyHolder: a node's identity: research answers' values are then re-checked
    ///   with the noise secret it unwraps (otherwise their recorded verdicts are replayed, counted
    ///   in ``VerificationReport/uncheckedResearchAnswers``).
    public static func verify(store: LedgerStore, expectedGenesis: Hash256? = nil, noiseKeyHolder: SigningIdentity? = nil,
                              progress: ((UInt64, UInt64) -> Void)? = nil) -> VerificationReport {
        let start = Date()
        var blocks: UInt64 = 0
        var transactions: UInt64 = 0
        // Research answers' values need the noise secret (ResearchReplayChecker).
        let genesisHash = (try? store.block(at: 0))??.header.hash ?? .zero
        let research = ResearchReplayChecker(network: genesisHash, identity: noiseKeyHolder)
        func report(_ failure: String?) -> VerificationReport {
            let seconds = Date().timeIntervalSince(start)
            var report = VerificationReport(ok: failure == nil, blocks: blocks, transactions: transactions, seconds: seconds,
                                            transactionsPerSecond: seconds > 0 ? Double(transactions) / seconds : 0, failure: failure)
            report.checkedResearchAnswers = research.checked
            report.uncheckedResearchAnswers = research.unchecked
            return report
        }
        do {
            guard let tip = try store.tip() else { return report("the ledger has no blocks") }
            var replay = MemoryLedger()
            var previous: BlockHeader?
            var frontier = MerkleFrontier()
            var network = Hash256.zero
            let executor = BlockExecutor(contracts: [GovernanceContract(), DeviceContract(), ResearchContract(oracle: research)])
            try research.notePastQuestions(store)
            for height in 0...tip.height {
                guard let block = try store.block(at: height) else {
                    throw Failure(description: "block \(height) is missing (chain ends at \(tip.height))")
                }
                research.prepare(block, height: height, replay: replay)
                let writes = try verifyBlock(block, height: height, previous: previous, network: network, frontier: &frontier,
                                             replay: &replay, executor: executor, store: store)
                research.apply(writes, height: height, time: block.header.timestamp, replay: replay)
                if height == 0 {
                    network = Hash256.of(block.headerBytes)
                    if let expectedGenesis, network != expectedGenesis {
                        throw Failure(description: "block 0: genesis hash \(network.hex.prefix(16))… is not this network's (\(expectedGenesis.hex.prefix(16))…)")
                    }
                }
                previous = block.header
                blocks += 1
                transactions += UInt64(block.transactions.count)
                progress?(height, tip.height)
            }
            if let extra = try store.block(at: tip.height + 1) {
                throw Failure(description: "block \(extra.header.height) exists beyond the tip")
            }
            try compareState(store: store, replay: replay)
            return report(nil)
        } catch let failure as Failure {
            return report(failure.description)
        } catch {
            return report("cannot read the ledger: \(error)")
        }
    }

    static func verifyBlock(_ block: StoredBlock, height: UInt64, previous: BlockHeader?, network: Hash256,
                            frontier: inout MerkleFrontier, replay: inout MemoryLedger, executor: BlockExecutor,
                            store: LedgerStore) throws -> WriteSet {
        let header = block.header
        let at = "block \(height)"
        guard header.height == height else { throw Failure(description: "\(at): header says height \(header.height)") }
        guard header.previousHash == (previous.map { Hash256.of($0.encoded) } ?? .zero) else {
            throw Failure(description: "\(at): previous-hash link is broken")
        }
        guard Int(header.transactionCount) == block.transactions.count else {
            throw Failure(description: "\(at): header counts \(header.transactionCount) transactions, \(block.transactions.count) are stored")
        }
        for (index, transaction) in block.transactions.enumerated() where transaction.index != UInt32(index) {
            throw Failure(description: "\(at): transaction \(transaction.id.hex.prefix(16))… stored at position \(transaction.index), expected \(index)")
        }
        if let previous, header.timestamp < previous.timestamp {
            throw Failure(description: "\(at): block time goes backwards")
        }

        // Signatures, in parallel, for creators already known before this block.
        let prepared = verifySignatures(block.transactions.map(\.envelope), known: replay)

        let assembled = try BlockAssembler.assemble(prepared, network: network, previous: previous, blockTime: header.timestamp,
                                                proposer: header.proposer, frontier: frontier, base: replay, executor: executor)
        for (index, (stored, leaf)) in zip(block.transactions, assembled.leaves).enumerated() {
            let name = "\(at), transaction \(index) (\(leaf.transactionID.hex.prefix(16))…)"
            guard stored.id == leaf.transactionID else {
                throw Failure(description: "\(name): stored id \(stored.id.hex.prefix(16))… does not match its envelope")
            }
            guard stored.sequence == frontier.size + UInt64(index) else {
                throw Failure(description: "\(name): stored at log position \(stored.sequence), expected \(frontier.size + UInt64(index))")
            }
            guard stored.result == leaf.result else {
                let replayed = assembled.execution.refusals[index].map { "\($0.code): \($0.message)" } ?? "committed"
                let recorded = stored.result.isCommitted ? "committed" : LedgerError.Code(ledgerStatus: stored.result.status).rawValue
                throw Failure(description: "\(name): recorded as \(recorded), replay gives \(replayed)")
            }
        }
        let expected = assembled.header
        for (field, matches) in [
            ("transactionRoot", expected.transactionRoot == header.transactionRoot), ("logSize", expected.logSize == header.logSize),
            ("logRoot", expected.logRoot == header.logRoot), ("stateRoot", expected.stateRoot == header.stateRoot),
        ] where !matches {
            throw Failure(description: "\(at): header \(field) does not match the replayed block")
        }
        guard expected == header else { throw Failure(description: "\(at): header does not match the replayed block") }

        // The proposer: a registered node, unrevoked at block time, whose key signed the header.
        // Block 0 registers its own proposer; later proposers must be registered before their block.
        let proposerKey = StateKey.member(header.proposer)
        let proposerBytes = height == 0 ? assembled.execution.writes.lookup(proposerKey) ?? nil : try replay.value(forKey: proposerKey)
        guard let bytes = proposerBytes,
              let proposer = try? Member(decoding: bytes), proposer.role == .node
        else { throw Failure(description: "\(at): proposer \(header.proposer.hex.prefix(16))… is not a registered node") }
        if let revokedAt = proposer.revokedAt, revokedAt <= header.timestamp {
            throw Failure(description: "\(at): proposer's certificate was revoked before this block")
        }
        guard let key = try? P256.Signing.PublicKey(rawRepresentation: proposer.certificate.publicKey),
              SignatureCheck.isValid(signature: block.signature, message: block.headerBytes, publicKey: key)
        else { throw Failure(description: "\(at): proposer signature over the header does not verify") }

        // The stored Merkle nodes that inclusion and consistency proofs are served from.
        for node in assembled.merkleNodes {
            guard try store.merkleNode(level: node.level, index: node.index) == node.hash else {
                throw Failure(description: "\(at): stored Merkle node (level \(node.level), index \(node.index)) is wrong or missing")
            }
        }
        frontier = assembled.frontier
        replay.apply(assembled.execution.writes, transactionIDs: assembled.leaves.map(\.transactionID))
        return assembled.execution.writes
    }

    /// Decodes envelopes and checks signatures on all cores. A transaction whose creator is not yet
    /// known, or whose signature fails, is left unverified for the executor to judge.
    static func verifySignatures(_ envelopes: [[UInt8]], known: MemoryLedger) -> [PreparedTransaction] {
        let results = Mutex([PreparedTransaction?](repeating: nil, count: envelopes.count))
        DispatchQueue.concurrentPerform(iterations: envelopes.count) { index in
            var transaction = PreparedTransaction(bytes: envelopes[index])
            if let envelope = transaction.envelope, let payload = transaction.payload,
               let bytes = try? known.value(forKey: StateKey.member(payload.creator)),
               let member = try? Member(decoding: bytes),
               let key = try? P256.Signing.PublicKey(rawRepresentation: member.certificate.publicKey),
               SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key) {
                transaction.signatureVerified = true
            }
            let verified = transaction
            results.withLock { $0[index] = verified }
        }
        return results.withLock { $0.map { $0! } }
    }

    static func compareState(store: LedgerStore, replay: MemoryLedger) throws {
        let expected = replay.sortedEntries
        var index = 0
        try store.forEachStateEntry { key, value in
            guard index < expected.count else {
                throw Failure(description: "state key \(key) is stored but no transaction wrote it")
            }
            let entry = expected[index]
            if entry.key != key {
                if entry.key.utf8.lexicographicallyPrecedes(key.utf8) {
                    throw Failure(description: "state key \(entry.key) is missing from the stored state")
                }
                throw Failure(description: "state key \(key) is stored but no transaction wrote it")
            }
            guard entry.value == value else {
                throw Failure(description: "state key \(key): stored value differs from the replayed value")
            }
            index += 1
        }
        if index < expected.count {
            throw Failure(description: "state key \(expected[index].key) is missing from the stored state")
        }
    }
}
