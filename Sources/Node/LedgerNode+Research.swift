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
    /// The node's `research.answer` transaction that recorded it, and its block.
    public var answerTransaction: Hash256
    public var block: UInt64
    /// The recorded answer (the first one released for this question about this state).
    public var record: QueryRecord
    /// True when the answer was released before (to this or another researcher): nothing was spent.
    public var cached: Bool
}

extension LedgerNode {
    /// Answers a researcher's signed `research.ask`: evaluates it over the requested state, adds
    /// noise, and orders a `research.answer` that debits the budget and records the answer. The
    /// answer is returned only once that transaction has committed; when the ledger refuses it
    /// (exhausted budget, revoked researcher, …) the error says why and nothing is released.
    ///
    /// Idempotent: asking with the same signed envelope again returns the recorded answer.
    public func answerQuery(_ bytes: [UInt8], timeout: Duration = .seconds(30)) async throws(LedgerError) -> QueryOutcome {
        do {
            return try await answer(bytes, timeout: timeout)
        } catch {
            refuse(error, bytes: bytes)
            throw error
        }
    }

    private func answer(_ bytes: [UInt8], timeout: Duration) async throws(LedgerError) -> QueryOutcome {
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
        if let recorded = try recordedAnswer(for: ask.id) { return recorded }

        let hospitals = try hospitalIDs()
        let answer: QueryAnswer
        let (exact, height, time) = try evaluate(request, policy: policy, hospitals: hospitals)
        if let cached = try storeRead({ try store.value(forKey: StateKey.query(request.key(height: height))) }) {
            answer = try QueryRecord(decoding: cached).answer  // Asked before: nothing new to release.
        } else {
            var random = SecureRandom()
            answer = QueryRelease.answer(request, exact: exact, policy: policy, hospitals: hospitals, height: height,
                                         referenceTime: time, using: &random)
        }
        let release = ResearchRelease(query: ask, answer: answer)
        let (id, envelope) = identity.transaction(network: network, contract: ResearchContract.name, action: "answer", arguments: release.encoded)
        try submit(envelope.encoded)
        // The researcher waits for this debit: cut the block now instead of at the batch timeout.
        orderer.cutPending()
        let status: TransactionStatus
        do { status = try await waitForCommit(id, timeout: timeout) } catch { throw LedgerError(.storage, "status read failed") }
        switch status {
        case .committed:
            guard let recorded = try recordedAnswer(for: ask.id) else { throw LedgerError(.internal, "answer committed but not recorded") }
            return recorded
        case .rejected(_, _, _, let code, let message):
            // A concurrent request with the same envelope may have recorded it first.
            if code == .duplicateTransaction, let recorded = try recordedAnswer(for: ask.id) { return recorded }
            throw LedgerError(code, message ?? "the ledger refused the query")
        default:
            throw LedgerError(.overloaded, "the answer was not committed within \(timeout); ask again with the same signed query to get it")
        }
    }

    /// The answer recorded for a researcher's ask, if the ledger holds one.
    func recordedAnswer(for askID: Hash256) throws(LedgerError) -> QueryOutcome? {
        try storeRead {
            guard let askBytes = try store.value(forKey: StateKey.queryAsk(askID)) else { return nil }
            let ask = try QueryAskRecord(decoding: askBytes)
            guard let recordBytes = try store.value(forKey: StateKey.query(ask.key)),
                  let answer = try store.transaction(id: ask.answerTransaction)
            else { throw LedgerError(.storage, "query \(askID.hex.prefix(16))… points to a missing answer") }
            let record = try QueryRecord(decoding: recordBytes)
            return QueryOutcome(askID: askID, answerTransaction: answer.id, block: answer.height, record: record, cached: record.askID != askID)
        }
    }

    /// The exact aggregate, and the block whose state it describes.
    public func evaluate(_ request: QueryRequest, policy: ResearchPolicy, hospitals: [String]) throws(LedgerError) -> (ExactAggregate, UInt64, Int64) {
        if let asOf = request.asOfHeight, asOf < tip.height {
            // A past state: rebuilt from the per-key history (slower; the latest state is kept in memory).
            var records: [DeviceRecord] = []
            let (height, time) = try storeRead { try store.forEachDevice(atHeight: asOf) { records.append($0) } }
            let table = DeviceTable(records: records, height: height, time: time)
            return (table.evaluate(request.spec, policy: policy, hospitals: hospitals), height, time)
        }
        return try storeRead {
            try deviceTable.withLock { table throws -> (ExactAggregate, UInt64, Int64) in
                if table == nil {
                    // Built under the lock: blocks committed meanwhile wait to be applied after it.
                    var records: [DeviceRecord] = []
                    let (height, time) = try store.forEachDevice(atHeight: nil) { records.append($0) }
                    table = DeviceTable(records: records, height: height, time: time)
                }
                let current = table!
                if let asOf = request.asOfHeight, asOf != current.height {
                    throw LedgerError(.notFound, "block \(asOf) is not committed yet (the tip is \(current.height))")
                }
                return (current.evaluate(request.spec, policy: policy, hospitals: hospitals), current.height, current.time)
            }
        }
    }

    /// Keeps the in-memory device table at the committed state (called after each block commits).
    func applyToDeviceTable(_ writes: WriteSet, height: UInt64, time: Int64) {
        deviceTable.withLock { table in
            guard table != nil else { return }
            var records: [DeviceRecord] = []
            for (key, value) in writes.entries where key.hasPrefix("dev/") {
                if let value, let record = try? DeviceRecord(decoding: value) { records.append(record) }
            }
            table?.apply(records, height: height, time: time)
        }
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

    /// A research budget: the limit for the member and what remains this period (at the tip's time).
    public func budget(of member: Hash256) throws(LedgerError) -> (limit: PrivacyBudget, usage: BudgetUsage?, remaining: PrivacyBudget) {
        let policy = config.research
        return try storeRead {
            let limit = try store.value(forKey: StateKey.researchBudget(member)).map { try PrivacyBudget(decoding: $0) } ?? policy.budget
            let usage = try store.value(forKey: StateKey.researchSpent(member)).map { try BudgetUsage(decoding: $0) }
            let remaining = BudgetAccount.remaining(usage: usage, limit: limit, blockTime: max(tip.timestamp, Clock.nowMilliseconds()),
                                                    periodMilliseconds: policy.periodMilliseconds)
            return (limit, usage, remaining)
        }
    }

    /// Runs a store read, turning any failure that is not already a ``LedgerError`` into `storage_error`.
    func storeRead<T>(_ body: () throws -> T) throws(LedgerError) -> T {
        do { return try body() } catch let error as LedgerError { throw error } catch {
            throw LedgerError(.storage, "ledger read failed: \(error)")
        }
    }
}
