import Foundation
import Synchronization
public import LedgerCore
import Contracts
import LedgerStore
import Privacy
import Ordering
public import Research

/// What a researcher gets back for a query.
public struct QueryOutcome: Sendable {
    /// The researcher's `research.ask` transaction.
    public var askID: Hash256
    /// The node's `research.charge` that recorded this ask, and the `research.answer` that
    /// recorded the answer (the first asker's, for a repeated question), with its block.
    public var chargeTransaction: Hash256
    public var answerTransaction: Hash256
    public var block: UInt64
    /// The answered question.
    public var record: QueryRecord
    /// The released answer.
    public var answer: QueryAnswer
    /// True when the question had been asked before (by this or another researcher): nothing was spent.
    public var cached: Bool
}

extension LedgerNode {
    /// Answers a researcher's signed `research.ask`, in two ordered steps:
    /// 1. evaluates the query exactly (the value stays in this process) and orders a
    ///    `research.charge` that debits the budget — or finds the question already paid for, or
    ///    refuses with nothing released;
    /// 2. only after the charge committed, draws the noise once and orders the `research.answer`.
    ///
    /// Idempotent: the same signed envelope again returns the recorded answer; concurrent
    /// identical asks share one charge and one draw.
    public func answerQuery(_ bytes: [UInt8], timeout: Duration = .seconds(30)) async throws(LedgerError) -> QueryOutcome {
        do {
            return try await answer(bytes, timeout: timeout)
        } catch {
            refuse(error, bytes: bytes)
            throw error
        }
    }

    private func answer(_ bytes: [UInt8], timeout: Duration) async throws(LedgerError) -> QueryOutcome {
        let deadline = ContinuousClock.now + timeout
        // A retry of an ask already charged gets its answer whatever has changed since (clock,
        // policy): recorded answers are on the ledger for anyone with read access anyway.
        let askID = try Envelope(decoding: bytes).id
        if let outcome = try await outcome(for: askID, deadline: deadline) { return outcome }

        let (ask, payload, asker) = try checkSigned(bytes)
        guard payload.contract == ResearchContract.name, payload.action == "ask" else {
            throw LedgerError(.invalidArgument, "a query must be a research.ask transaction")
        }
        let request = try QueryRequest(decoding: payload.arguments)
        let policy = config.research
        try request.validate(policy: policy)
        try QueryRelease.checkCalibration(request, policy: policy)
        try ResearchContract.checkAsker(asker, policy: policy, at: Clock.nowMilliseconds()) { id throws(LedgerError) in
            try storeRead { try store.value(forKey: StateKey.organization(id)).map { try Organization(decoding: $0) } }
        }
        if let noiseKey = try noiseKeyEpoch(), !researchOracle.holdsSecret(epoch: noiseKey.epoch) {
            throw LedgerError(.invalidConfiguration, "this node holds no noise secret of epoch \(noiseKey.epoch), so its answers would be refused; ask another node")
        }
        // One charge per ask even when the same envelope arrives concurrently.
        guard research.withLock({ $0.asks.insert(askID).inserted }) else {
            try await pause(until: deadline)
            return try await answer(bytes, timeout: deadline - ContinuousClock.now)
        }
        defer { _ = research.withLock { $0.asks.remove(askID) } }

        // With a noise secret, every node evaluates the question when the charge's block executes
        // (see prepareResearch); without one, this node evaluates it now.
        let height: UInt64
        var exact: (ExactAggregate, Int64, [String], UInt64)?
        if try noiseKeyEpoch() != nil {
            let latest = tip.height
            if let asOf = request.asOfHeight, asOf > latest {
                throw LedgerError(.notFound, "block \(asOf) is not committed yet (the tip is \(latest))")
            }
            height = request.asOfHeight ?? latest
        } else {
            let hospitals = try hospitalIDs()
            let (aggregate, at, time) = try evaluate(request, policy: policy, hospitals: hospitals)
            (height, exact) = (at, (aggregate, time, hospitals, at))
        }
        let charge = ResearchCharge(query: ask, height: height)
        let status = try await finalStatus(of: try order(action: "charge", arguments: charge.encoded), action: "charge", deadline: deadline)
        if case .rejected(_, _, _, let code, let message) = status {
            if code == .duplicateTransaction, let outcome = try await outcome(for: askID, deadline: deadline) { return outcome }
            throw LedgerError(code, message ?? "the ledger refused the query")
        }
        guard let outcome = try await outcome(for: askID, deadline: deadline, exact: exact) else {
            throw LedgerError(.internal, "the charge committed but the ask is not recorded")
        }
        return outcome
    }

    /// The outcome of an ask the ledger has charged; nil if it has not. A question this node
    /// charged and has not answered yet (it is answering, or it stopped before answering) is
    /// answered now; a question charged by another node is waited for.
    func outcome(for askID: Hash256, deadline: ContinuousClock.Instant,
                 exact: (ExactAggregate, Int64, [String], UInt64)? = nil) async throws(LedgerError) -> QueryOutcome? {
        guard let askBytes = try storeRead({ try store.value(forKey: StateKey.queryAsk(askID)) }) else { return nil }
        let ask = try QueryAskRecord(decoding: askBytes)
        while true {
            guard let recordBytes = try storeRead({ try store.value(forKey: StateKey.query(ask.key)) }) else {
                throw LedgerError(.storage, "query \(askID.hex.prefix(16))… points to a missing question")
            }
            let record = try QueryRecord(decoding: recordBytes)
            if let answer = record.answer, let answerTransaction = record.answerTransaction {
                let block = try storeRead { try store.transaction(id: answerTransaction)?.height } ?? 0
                return QueryOutcome(askID: askID, chargeTransaction: ask.chargeTransaction, answerTransaction: answerTransaction,
                                    block: block, record: record, answer: answer, cached: record.askID != askID)
            }
            if record.node == identity.fingerprint {
                if let reason = research.withLock({ $0.abandoned[ask.key] }) {
                    throw LedgerError(.internal, "the ledger refused this question's answer (\(reason)); it is not drawn again, which would release a second noisy value for one charge")
                }
                if let submitted = research.withLock({ $0.submitted[ask.key] }) {
                    // An answer is on its way: wait for it, never draw another.
                    try await settle(question: ask.key, answer: submitted, deadline: deadline)
                    continue
                }
                if research.withLock({ $0.answering.insert(ask.key).inserted }) {
                    defer { _ = research.withLock { $0.answering.remove(ask.key) } }
                    try await release(record, exact: record.askID == askID ? exact : nil, deadline: deadline)
                    continue
                }
            }
            try await pause(until: deadline)
        }
    }

    /// Waits for the answer submitted for `question`; once it is final, forgets it (committed) or
    /// marks the question abandoned (refused).
    func settle(question: Hash256, answer id: Hash256, deadline: ContinuousClock.Instant) async throws(LedgerError) {
        if case .rejected(_, _, _, let code, let message) = try await finalStatus(of: id, action: "answer", deadline: deadline) {
            research.withLock { state in
                state.submitted.removeValue(forKey: question)
                if code != .duplicateTransaction { state.abandoned[question] = "\(code): \(message ?? "")" }
            }
        } else {
            _ = research.withLock { $0.submitted.removeValue(forKey: question) }
        }
    }

    /// Computes the answer of a charged question and orders it. With a noise secret on the
    /// ledger the answer is the one every node computes and checks (``NodeResearchOracle``): the
    /// same at every retry, so its noise is drawn once by construction. Without one (a network
    /// created before noise secrets) the noise is drawn once from ``SecureRandom``, and the
    /// contract accepts one answer per question.
    func release(_ record: QueryRecord, exact: (ExactAggregate, Int64, [String], UInt64)?, deadline: ContinuousClock.Instant) async throws(LedgerError) {
        let policy = config.research
        let answer: QueryAnswer
        if let noiseKey = try noiseKeyEpoch() {
            if researchOracle.evaluation(question: record.key) == nil { try rememberEvaluation(of: record) }
            guard let computed = researchOracle.answer(for: record, policy: policy, noiseKey: noiseKey) else {
                throw LedgerError(.invalidConfiguration, "this node holds no noise secret of epoch \(noiseKey.epoch); ask another node")
            }
            answer = computed
        } else {
            let (aggregate, time, hospitals): (ExactAggregate, Int64, [String])
            if let exact, exact.3 == record.height {
                (aggregate, time, hospitals, _) = exact
            } else {
                // This node charged it earlier and stopped before answering: evaluate again.
                let groups = try hospitalIDs(atHeight: record.height)
                let (value, _, at) = try evaluate(record.request, policy: policy, hospitals: groups, height: record.height)
                (aggregate, time, hospitals) = (value, at, groups)
            }
            var random = SecureRandom()
            answer = QueryRelease.answer(record.request, exact: aggregate, policy: policy, hospitals: hospitals,
                                         height: record.height, referenceTime: time, using: &random)
        }
        // Recorded once it is admitted: until it is final, retries wait for it instead of drawing
        // again. (Refused at admission, it was never ordered and nothing was released.)
        let id = try order(action: "answer", arguments: ResearchAnswer(key: record.key, answer: answer).encoded)
        research.withLock { $0.submitted[record.key] = id }
        try await settle(question: record.key, answer: id, deadline: deadline)
    }

    /// Signs a research transaction as this node, submits it and cuts the block at once (a
    /// researcher is waiting on it).
    func order(action: String, arguments: [UInt8]) throws(LedgerError) -> Hash256 {
        let (id, envelope) = identity.transaction(network: network, contract: ResearchContract.name, action: action, arguments: arguments)
        try submit(envelope.encoded)
        orderer.cutPending()
        return id
    }

    /// The final status of a research transaction this node submitted, or `overloaded` at the deadline.
    func finalStatus(of id: Hash256, action: String, deadline: ContinuousClock.Instant) async throws(LedgerError) -> TransactionStatus {
        let status: TransactionStatus
        do { status = try await waitForCommit(id, timeout: max(deadline - ContinuousClock.now, .milliseconds(1))) } catch {
            throw LedgerError(.storage, "status read failed")
        }
        guard status.isFinal else {
            throw LedgerError(.overloaded, "the ledger has not committed the query's \(action) yet; ask again with the same signed query to get the answer")
        }
        return status
    }

    func pause(until deadline: ContinuousClock.Instant) async throws(LedgerError) {
        guard ContinuousClock.now < deadline else {
            throw LedgerError(.overloaded, "the answer is not recorded yet; ask again with the same signed query to get it")
        }
        try? await Task.sleep(for: .milliseconds(5))
    }

    /// The exact aggregate, and the block whose state it describes: `height`, else the request's
    /// `asOfHeight`, else the latest committed block.
    public func evaluate(_ request: QueryRequest, policy: ResearchPolicy, hospitals: [String],
                         height: UInt64? = nil) throws(LedgerError) -> (ExactAggregate, UInt64, Int64) {
        let asOf = height ?? request.asOfHeight
        let latest = try storeRead {
            try deviceTable.withLock { table throws -> (ExactAggregate, UInt64, Int64)? in
                if table == nil {
                    // Built under the lock: blocks committed meanwhile wait to be applied after it.
                    table = try loadDeviceTable(atHeight: nil)
                }
                let current = table!
                if let asOf, asOf != current.height {
                    guard asOf < current.height else {
                        throw LedgerError(.notFound, "block \(asOf) is not committed yet (the tip is \(current.height))")
                    }
                    return nil
                }
                return (current.evaluate(request.spec, policy: policy, hospitals: hospitals), current.height, current.time)
            }
        }
        if let latest { return latest }
        // A past state: rebuilt from the per-key history (slower; the latest state is kept in memory).
        let table = try loadDeviceTable(atHeight: asOf)
        return (table.evaluate(request.spec, policy: policy, hospitals: hospitals), table.height, table.time)
    }

    /// The device state of block `height` (nil: the latest) as a column store, filled straight from
    /// one store snapshot (no intermediate list of a million records).
    func loadDeviceTable(atHeight height: UInt64?) throws(LedgerError) -> DeviceTable {
        var table = DeviceTable(height: 0, time: 0)
        let (at, time) = try storeRead { try store.forEachDevice(atHeight: height) { table.upsert($0) } }
        table.apply([], height: at, time: time)
        return table
    }

    /// Keeps the in-memory device table at the committed state (called after each block commits).
    func applyToDeviceTable(_ writes: WriteSet, height: UInt64, time: Int64) {
        deviceTable.withLock { $0?.apply(writes.deviceRecords, height: height, time: time) }
    }

    /// Hospital organisation ids (the closed domain of `hospital`).
    func hospitalIDs() throws(LedgerError) -> [String] {
        try storeRead {
            try store.state(prefix: "org/", limit: 100_000).compactMap { entry in
                let organization = try Organization(decoding: entry.value)
                return organization.kind == .hospital ? organization.id : nil
            }
        }
    }

    /// A researcher's budget: the limit, and the usage of the period in force now (by the later of
    /// the tip's time and the clock).
    public func budget(of member: Hash256) throws(LedgerError) -> (limit: PrivacyBudget, usage: BudgetUsage) {
        let policy = config.research
        return try storeRead {
            let limit = try store.value(forKey: StateKey.researchBudget(member)).map { try PrivacyBudget(decoding: $0) } ?? policy.budget
            let usage = try store.value(forKey: StateKey.researchSpent(member)).map { try BudgetUsage(decoding: $0) }
            return (limit, BudgetAccount.current(usage, at: max(tip.timestamp, Clock.nowMilliseconds()), periodMilliseconds: policy.periodMilliseconds))
        }
    }

    /// Runs a store read, turning any failure that is not already a ``LedgerError`` into `storage_error`.
    func storeRead<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do { return try body() } catch let error as LedgerError { throw error } catch {
            throw LedgerError(.storage, "ledger read failed: \(error)")
        }
    }
}
