import Crypto
public import LedgerCore

/// An envelope as it arrives in a block: raw bytes, decoded once.
public struct PreparedTransaction: Sendable {
    public let bytes: [UInt8]
    /// SHA-256 of the payload bytes (or of the raw bytes when the envelope does not decode).
    public let id: Hash256
    public let envelope: Envelope?
    public let payload: TransactionPayload?
    public let decodeError: LedgerError?
    /// Set when admission (or a parallel pre-pass) already checked the signature against the
    /// creator's registered key.
    public var signatureVerified: Bool

    public init(bytes: [UInt8], signatureVerified: Bool = false) {
        self.bytes = bytes
        self.signatureVerified = signatureVerified
        let envelope = try? Envelope(decoding: bytes)
        self.envelope = envelope
        self.id = envelope?.id ?? Hash256.of(bytes)
        if let envelope {
            do {
                self.payload = try envelope.payload()
                self.decodeError = nil
            } catch {
                self.payload = nil
                self.decodeError = error
            }
        } else {
            self.payload = nil
            self.decodeError = (Result { () throws(LedgerError) in try Envelope(decoding: bytes) }).failureError
        }
    }

    public init(envelope: Envelope, bytes: [UInt8], payload: TransactionPayload, signatureVerified: Bool) {
        self.bytes = bytes
        self.id = envelope.id
        self.envelope = envelope
        self.payload = payload
        self.decodeError = nil
        self.signatureVerified = signatureVerified
    }
}

/// The outcome of executing one block.
public struct BlockExecution: Sendable {
    public var results: [TransactionResult] = []
    /// Why each refused transaction was refused (`nil` for committed ones).
    public var refusals: [LedgerError?] = []
    /// Each transaction's writes (empty for refused ones), in block order.
    public var transactionWrites: [WriteSet] = []
    /// The net effect of the whole block.
    public var writes = WriteSet()

    /// SHA-256 of the concatenated per-transaction write-set hashes, in block order.
    public var writeSetHash: Hash256 {
        Hash256.of(parts: results.map(\.writeSetHash.bytes))
    }
}

/// Executes ordered transactions against a ledger view with the built-in contracts.
///
/// Deterministic: the same transactions, height, block time and state give the same results on
/// every node. The checks here are the authoritative ones (admission repeats them only to refuse
/// early); they use block time, never the clock.
public struct BlockExecutor: Sendable {
    public let contracts: [any Contract]

    public init(contracts: [any Contract]) {
        self.contracts = contracts
    }

    /// Every built-in contract, with `research` answering research queries.
    public init(research: ResearchContract = ResearchContract()) {
        self.init(contracts: [GovernanceContract(), DeviceContract(), research, RecordsContract(), ConsentContract()])
    }

    public func contract(named name: String) -> (any Contract)? {
        contracts.first { $0.name == name }
    }

    /// Throws only when state cannot be read (``LedgerError/Code/storage``): that is a fault of
    /// this node, not of the transaction, so the block must not be built at all.
    public func execute(_ transactions: [PreparedTransaction], network: Hash256, height: UInt64, blockTime: Int64,
                        base: any LedgerView) throws(LedgerError) -> BlockExecution {
        var execution = BlockExecution()
        let overlay = BlockOverlay(base: base)
        var seen = Set<Hash256>()
        let emptyHash = WriteSet().hash
        for transaction in transactions {
            let duplicateInBlock = !seen.insert(transaction.id).inserted
            do throws(LedgerError) {
                if duplicateInBlock {
                    throw LedgerError(.duplicateTransaction, "transaction \(transaction.id.hex.prefix(16))… appears twice in the block")
                }
                var context = try context(for: transaction, network: network, height: height, blockTime: blockTime,
                                          base: base, overlay: overlay)
                guard let contract = contracts.first(where: { $0.name == context.payload.contract }) else {
                    throw LedgerError(.unknownAction, "no contract named \(context.payload.contract)")
                }
                try contract.execute(&context)
                if height == 0 {
                    try checkGenesisSignature(transaction, context)
                }
                execution.results.append(TransactionResult(status: 0, writeSetHash: context.writes.hash))
                execution.refusals.append(nil)
                execution.transactionWrites.append(context.writes)
                overlay.writes.merge(context.writes)
            } catch {
                if error.code == .storage { throw error }
                execution.results.append(TransactionResult(status: error.code.ledgerStatus, writeSetHash: emptyHash))
                execution.refusals.append(error)
                execution.transactionWrites.append(WriteSet())
            }
        }
        execution.writes = overlay.writes
        return execution
    }

    func checkGenesisSignature(_ transaction: PreparedTransaction, _ context: TransactionContext) throws(LedgerError) {
        guard let envelope = transaction.envelope,
              let founder = try context.get(Member.self, StateKey.member(context.payload.creator)),
              let key = try? P256.Signing.PublicKey(rawRepresentation: founder.certificate.publicKey),
              SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key)
        else {
            throw LedgerError(.badSignature, "genesis signature does not verify against the sealing node's certificate")
        }
    }

    /// Every check that does not depend on the contract: encoding, network, replay, creator,
    /// certificate validity and revocation at block time, signature, timestamp skew.
    func context(for transaction: PreparedTransaction, network: Hash256, height: UInt64, blockTime: Int64,
                 base: any LedgerView, overlay: BlockOverlay) throws(LedgerError) -> TransactionContext {
        if let error = transaction.decodeError { throw error }
        guard let envelope = transaction.envelope, let payload = transaction.payload else {
            throw LedgerError(.malformedEncoding, "envelope does not decode")
        }
        guard payload.network == network else {
            throw LedgerError(.wrongNetwork, "transaction is for network \(payload.network.hex.prefix(16))…, this is \(network.hex.prefix(16))…")
        }
        if try base.containsTransaction(transaction.id) {
            throw LedgerError(.duplicateTransaction, "transaction \(transaction.id.hex.prefix(16))… is already on the ledger")
        }
        let probe = TransactionContext(id: transaction.id, payload: payload, creator: nil, height: height, blockTime: blockTime, overlay: overlay)
        if height == 0 {
            // Genesis: the creator is one of the nodes it registers (the sealing node); the contract
            // checks that and the admins' approvals, and the signature is checked against the
            // registered key below, after execution.
            guard payload.contract == GovernanceContract.name, payload.action == "genesis" else {
                throw LedgerError(.forbidden, "block 0 may only hold the genesis transaction")
            }
            return probe
        }
        guard let member = try overlay.member(payload.creator) else {
            throw LedgerError(.unknownMember, "creator certificate \(payload.creator.hex.prefix(16))… is not a registered member")
        }
        try member.checkActive(organization: try probe.organization(member.organization), at: blockTime, subject: "creator")
        if !transaction.signatureVerified {
            try member.checkSignature(of: envelope, subject: "creator")
        }
        try probe.checkSkew(of: payload.timestamp, what: "transaction")
        return TransactionContext(id: transaction.id, payload: payload, creator: member, height: height, blockTime: blockTime, overlay: overlay)
    }
}

extension Result {
    var failureError: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
