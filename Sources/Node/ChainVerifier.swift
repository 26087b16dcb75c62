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

/// Re-verifies a whole ledger from its database without trusting it, reading one consistent
/// snapshot (so it also holds on a running node): hash chain, block signatures, every
/// transaction's encoding, signature and certificate (valid at block time, not revoked), a replay
/// of every block from genesis with the same contracts (statuses, write sets, per-block and global
/// Merkle roots, state root), and then every table an API route or query reads, row by row and
/// including rows that should not exist: the derived columns of `blocks` and `transactions`, the
/// Merkle nodes proofs are served from, the signed checkpoints, `state` (values and `seq`),
/// `history` (every version of every key), the `devices` projection, and the syntax of the local
/// `refusals` audit (see docs/threat_model.md for what can and cannot be proven about it).
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
            try store.snapshot { snapshot in
                try verify(snapshot, expectedGenesis: expectedGenesis, research: research, progress: progress,
                           blocks: &blocks, transactions: &transactions)
            }
            return report(nil)
        } catch let failure as Failure {
            return report(failure.description)
        } catch {
            return report("cannot read the ledger: \(error)")
        }
    }

    static func verify(_ snapshot: LedgerSnapshot, expectedGenesis: Hash256?, research: ResearchReplayChecker,
                       progress: ((UInt64, UInt64) -> Void)?, blocks: inout UInt64, transactions: inout UInt64) throws {
        if let problem = try snapshot.structuralProblem() { throw Failure(description: problem) }
        if let column = try snapshot.firstValueOfTheWrongType() {
            throw Failure(description: "\(column): a stored value has the wrong SQLite type")
        }
        guard let range = try snapshot.heightRange() else { throw Failure(description: "the ledger has no blocks") }
        guard range.min >= 0 else { throw Failure(description: "blocks: a row at height \(range.min) is not part of any chain") }
        let tipHeight = UInt64(range.max)
        var replay = MemoryLedger()
        var previous: BlockHeader?
        var frontier = MerkleFrontier()
        var network = Hash256.zero
        let executor = BlockExecutor(research: ResearchContract(oracle: research))
        var derived = Derived()
        try research.notePastQuestions { limit, before in try snapshot.researchTransactions(limit: limit, beforeSequence: before) }
        for height in 0...tipHeight {
            guard let row = try snapshot.block(at: height) else {
                throw Failure(description: "block \(height) is missing (chain ends at \(tipHeight))")
            }
            let block = row.block
            research.prepare(block, height: height, replay: replay)
            let writes = try verifyBlock(block, height: height, previous: previous, network: network, frontier: &frontier,
                                         replay: &replay, executor: executor, snapshot: snapshot, derived: &derived)
            research.apply(writes, height: height, time: block.header.timestamp, replay: replay)
            let blockHash = Hash256.of(block.headerBytes)
            for (column, matches) in [
                ("hash", row.hash == blockHash.bytes), ("timestamp", row.timestamp == block.header.timestamp),
                ("tx_count", row.transactionCount == Int64(block.header.transactionCount)),
            ] where !matches {
                throw Failure(description: "block \(height): blocks.\(column) differs from the signed header")
            }
            if height == 0 {
                network = blockHash
                if let expectedGenesis, network != expectedGenesis {
                    throw Failure(description: "block 0: genesis hash \(network.hex.prefix(16))… is not this network's (\(expectedGenesis.hex.prefix(16))…)")
                }
            }
            previous = block.header
            blocks += 1
            transactions += UInt64(block.transactions.count)
            progress?(height, tipHeight)
        }
        // Rows that no block accounts for (the loop looked up only the expected ones).
        for (table, expected) in [
            ("blocks", Int64(tipHeight) + 1), ("transactions", Int64(frontier.size)), ("merkle", derived.merkleNodes),
            ("checkpoints", derived.checkpoints),
        ] {
            let stored = try snapshot.count(table)
            guard stored == expected else {
                throw Failure(description: "\(table): \(stored) rows are stored, the chain accounts for \(expected)")
            }
        }
        let entries = replay.sortedEntries
        try compareState(snapshot: snapshot, expected: entries, sequences: derived.stateSequence)
        try compareHistory(snapshot: snapshot, writeSetHashes: derived.writeSetHashes)
        try compareDevices(snapshot: snapshot, expected: entries)
        try checkRefusals(snapshot: snapshot)
    }

    /// What replay derives besides state, for comparison with the derived tables.
    struct Derived {
        /// Each log position's write-set hash (the `history` rows of that transaction hash to it).
        var writeSetHashes: [Hash256] = []
        /// `state.seq` of each live key: the last log position of the block that last wrote it.
        var stateSequence: [String: Int64] = [:]
        var merkleNodes: Int64 = 0
        var checkpoints: Int64 = 0
    }

    static func verifyBlock(_ block: StoredBlock, height: UInt64, previous: BlockHeader?, network: Hash256,
                            frontier: inout MerkleFrontier, replay: inout MemoryLedger, executor: BlockExecutor,
                            snapshot: LedgerSnapshot, derived: inout Derived) throws -> WriteSet {
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
        if let previous, header.epoch < previous.epoch {
            throw Failure(description: "\(at): leader epoch goes backwards (\(header.epoch) after \(previous.epoch))")
        }

        // Signatures, in parallel, for creators already known before this block.
        let prepared = verifySignatures(block.transactions.map(\.envelope), known: replay)
        // Block time: at most half the skew window past the median verified signed time, as
        // followers check (``LedgerNode/latestBlockTime(previous:batch:skew:)``).
        if let previous, let bytes = try? replay.value(forKey: StateKey.config), let config = try? NetworkConfig(decoding: bytes) {
            let latest = LedgerNode.latestBlockTime(previous: previous.timestamp, batch: prepared, skew: config.clockSkewMilliseconds)
            guard header.timestamp <= latest else {
                throw Failure(description: "\(at): block time \(header.timestamp) is after \(latest), half the skew window past its transactions' median signed time")
            }
        }

        let assembled = try BlockAssembler.assemble(prepared, network: network, previous: previous, blockTime: header.timestamp,
                                                proposer: header.proposer, epoch: header.epoch, frontier: frontier, base: replay, executor: executor)
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
            // The columns the API and queries read instead of decoding the envelope.
            let payload = prepared[index].payload
            for (column, matches) in [
                ("creator", stored.creator == payload?.creator ?? .zero), ("contract", stored.contract == payload?.contract ?? ""),
                ("action", stored.action == payload?.action ?? ""), ("timestamp", stored.timestamp == payload?.timestamp ?? 0),
            ] where !matches {
                throw Failure(description: "\(name): transactions.\(column) differs from the signed envelope")
            }
            derived.writeSetHashes.append(leaf.result.writeSetHash)
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
            guard try snapshot.merkleNode(level: node.level, index: node.index) == node.hash else {
                throw Failure(description: "\(at): stored Merkle node (level \(node.level), index \(node.index)) is wrong or missing")
            }
        }
        derived.merkleNodes += Int64(assembled.merkleNodes.count)

        // The committing node's signed checkpoint of this block (block 0 has none): the proposer's
        // own on the node that sealed it, the follower's on a node that received it.
        let checkpoints = try snapshot.checkpoints(at: height)
        derived.checkpoints += Int64(checkpoints.count)
        if height == 0 {
            guard checkpoints.isEmpty else { throw Failure(description: "\(at): checkpoints holds a row for genesis, which has none") }
        } else {
            guard checkpoints.count == 1, let checkpoint = checkpoints.first else {
                throw Failure(description: "\(at): checkpoints holds \(checkpoints.count) rows, expected the committing node's one")
            }
            let body = Checkpoint.body(height: height, blockHash: Hash256.of(block.headerBytes), stateRoot: header.stateRoot,
                                       logSize: header.logSize, logRoot: header.logRoot)
            let signerKey: P256.Signing.PublicKey? = checkpoint.signer == header.proposer.bytes ? key : {
                guard let signer = Hash256(bytes: checkpoint.signer),
                      let bytes = try? replay.value(forKey: StateKey.member(signer)), let member = try? Member(decoding: bytes),
                      member.role == .node else { return nil }
                return try? P256.Signing.PublicKey(rawRepresentation: member.certificate.publicKey)
            }()
            guard checkpoint.body == body, let signerKey,
                  SignatureCheck.isValid(signature: checkpoint.signature, message: checkpoint.body, publicKey: signerKey)
            else { throw Failure(description: "\(at): the checkpoint is not a registered node's signature over this header's height, hash, state root and log") }
        }

        if let last = block.transactions.last {
            for (key, value) in assembled.execution.writes.entries {
                if value == nil { derived.stateSequence.removeValue(forKey: key) } else { derived.stateSequence[key] = Int64(last.sequence) }
            }
        }
        frontier = assembled.frontier
        replay.apply(assembled.execution.writes, transactionIDs: assembled.leaves.map(\.transactionID))
        return assembled.execution.writes
    }

    /// Decodes envelopes and checks signatures on all cores. A transaction whose creator is not yet
    /// known, or whose signature fails, is left unverified for the executor to judge.
    static func verifySignatures(_ envelopes: [[UInt8]], known: MemoryLedger) -> [PreparedTransaction] {
        verifySignatures(envelopes) { creator in
            guard let bytes = try? known.value(forKey: StateKey.member(creator)), let member = try? Member(decoding: bytes) else { return nil }
            return try? P256.Signing.PublicKey(rawRepresentation: member.certificate.publicKey)
        }
    }

    /// The same, with creators' keys from `key` (a node's membership cache). `verified(id, signature)`
    /// says an envelope's signature was already verified by this process against its creator's key
    /// (the same id is the same payload, so the same creator).
    static func verifySignatures(_ envelopes: [[UInt8]], verified: @Sendable (Hash256, [UInt8]) -> Bool = { _, _ in false },
                                 key: @Sendable (Hash256) -> P256.Signing.PublicKey?) -> [PreparedTransaction] {
        let results = Mutex([PreparedTransaction?](repeating: nil, count: envelopes.count))
        DispatchQueue.concurrentPerform(iterations: envelopes.count) { index in
            var transaction = PreparedTransaction(bytes: envelopes[index])
            if let envelope = transaction.envelope, let payload = transaction.payload, let key = key(payload.creator),
               verified(transaction.id, envelope.signature)
                || SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key) {
                transaction.signatureVerified = true
            }
            let verified = transaction
            results.withLock { $0[index] = verified }
        }
        return results.withLock { $0.map { $0! } }
    }

    static func compareState(snapshot: LedgerSnapshot, expected: [(key: String, value: [UInt8])], sequences: [String: Int64]) throws {
        var index = 0
        try snapshot.forEachStateEntry { key, value, sequence in
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
            guard sequences[key] == sequence else {
                throw Failure(description: "state key \(key): stored seq \(sequence) is not the log position of its last write (\(sequences[key] ?? -1))")
            }
            index += 1
        }
        if index < expected.count {
            throw Failure(description: "state key \(expected[index].key) is missing from the stored state")
        }
    }

    /// Every `history` row, grouped by log position, must be exactly that transaction's write set:
    /// the group's hash equals the verified leaf's write-set hash, and positions without rows wrote nothing.
    static func compareHistory(snapshot: LedgerSnapshot, writeSetHashes: [Hash256]) throws {
        let empty = WriteSet().hash
        var current: (sequence: Int, writes: WriteSet, firstKey: String)?
        var next = 0
        func closeGroup() throws {
            guard let group = current else { return }
            guard group.writes.hash == writeSetHashes[group.sequence] else {
                throw Failure(description: "history: the versions stored for log position \(group.sequence) (key \(group.firstKey)) differ from what that transaction wrote")
            }
        }
        func requireNoWrites(before end: Int) throws {
            while next < end {
                guard writeSetHashes[next] == empty else {
                    throw Failure(description: "history: the versions written by log position \(next) are missing")
                }
                next += 1
            }
        }
        try snapshot.forEachHistoryRow { sequence, key, value in
            guard sequence >= 0, sequence < Int64(writeSetHashes.count) else {
                throw Failure(description: "history: key \(key) has a version at log position \(sequence), which no transaction holds")
            }
            let position = Int(sequence)
            if current?.sequence != position {
                try closeGroup()
                try requireNoWrites(before: position)
                current = (position, WriteSet(), key)
                next = position + 1
            }
            current?.writes.set(key, value)
        }
        try closeGroup()
        try requireNoWrites(before: writeSetHashes.count)
    }

    /// The `devices` projection must hold exactly the replayed device records, column by column.
    static func compareDevices(snapshot: LedgerSnapshot, expected entries: [(key: String, value: [UInt8])]) throws {
        var expected: [(udi: String, row: [String])] = []
        for entry in entries where entry.key.hasPrefix("dev/") {
            guard let record = try? DeviceRecord(decoding: entry.value) else {
                throw Failure(description: "state key \(entry.key): replayed value is not a device record")
            }
            expected.append((record.udi, DeviceProjection.row(of: record)))
        }
        expected.sort { $0.udi.utf8.lexicographicallyPrecedes($1.udi.utf8) }
        let columns = LedgerSnapshot.deviceColumns
        var index = 0
        try snapshot.forEachDeviceRow { udi, row in
            guard index < expected.count else { throw Failure(description: "devices: UDI \(udi) is listed but no device record has it") }
            let wanted = expected[index]
            guard wanted.udi == udi else {
                if wanted.udi.utf8.lexicographicallyPrecedes(udi.utf8) {
                    throw Failure(description: "devices: UDI \(wanted.udi) is missing from the device projection")
                }
                throw Failure(description: "devices: UDI \(udi) is listed but no device record has it")
            }
            for (column, (stored, value)) in zip(columns, zip(row, wanted.row)) where stored != value {
                throw Failure(description: "devices: UDI \(udi): column \(column) differs from the device record in state")
            }
            index += 1
        }
        if index < expected.count {
            throw Failure(description: "devices: UDI \(expected[index].udi) is missing from the device projection")
        }
    }

    /// Refusals are the node's unsigned local audit, not consensus data: nothing on the ledger
    /// commits to them. What can be checked is their syntax, and that ids run on by one from the
    /// oldest row kept (SQLite assigns max + 1; past ``LedgerStore/maxStoredRefusals`` the oldest
    /// are pruned from the low end), so a deleted or inserted row in the middle shows as a gap or a repeat.
    static func checkRefusals(snapshot: LedgerSnapshot) throws {
        // Pruning leaves exactly maxStoredRefusals rows; otherwise the first id is 1.
        let pruned = try snapshot.count("refusals") == LedgerStore.maxStoredRefusals
        var nextID: Int64?
        try snapshot.forEachRefusalRow { row in
            guard let row else { throw Failure(description: "refusals: row after id \((nextID ?? 1) - 1) has a value of the wrong type") }
            let at = "refusals: row \(row.id)"
            let expectedID = nextID ?? (pruned ? row.id : 1)
            guard row.id == expectedID else {
                throw Failure(description: "\(at): ids jump from \(expectedID - 1) to \(row.id) (rows were deleted or inserted)")
            }
            guard row.time > 0 else { throw Failure(description: "\(at): time \(row.time) is not a time") }
            guard row.transactionID.map({ $0.count == 32 }) ?? true, row.creator.map({ $0.count == 32 }) ?? true else {
                throw Failure(description: "\(at): tx_id and creator must be 32-byte hashes")
            }
            let code = LedgerError.Code(rawValue: row.code)
            guard LedgerError.Code(ledgerStatus: code.ledgerStatus) == code else {
                throw Failure(description: "\(at): code \(row.code) is not a MedLedger error code")
            }
            nextID = expectedID + 1
        }
    }
}
