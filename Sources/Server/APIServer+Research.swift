import Foundation
import Hummingbird
import NIOCore
import LedgerCore
import LedgerStore
import Node
import Contracts

extension APIServer {
    static func addResearchRoutes(to router: GuardedRouter, node: LedgerNode) {
        // A researcher's signed research.ask (binary, or {"envelope": "<base64>"}); answers once recorded.
        router.post("/v1/queries", .submitQuery) { request, _, _ in
            await handle {
                var request = request
                let bytes = try await envelope(&request, node: node)
                return json(QueryView(try await node.answerQuery(bytes)))
            }
        }
        router.get("/v1/research/budget/:member", .researchBudget) { _, context, caller in
            await handle {
                let member = try hash(context.parameters.get("member").map { Substring($0) }, "member fingerprint")
                try require(caller, .researchBudget, .budgetOf(member))
                guard node.member(member) != nil else { throw LedgerError(.unknownMember, "no member has certificate \(member.hex.prefix(16))…") }
                let (limit, usage) = try node.budget(of: member)
                let period = node.config.research.periodMilliseconds
                return json(BudgetView(member: member, limit: .init(limit), spent: .init(usage.spent),
                                       remaining: .init(BudgetAccount.remaining(usage, limit: limit)), queries: usage.queries,
                                       period_milliseconds: period, period_ends: BudgetAccount.periodEnd(usage, periodMilliseconds: period)))
            }
        }
        // Who asked what, with which ε, about which block, and the hash of what was released.
        router.get("/v1/research/log", .researchLog) { request, _, caller in
            await handle {
                let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 100
                let before = try Parameters.integer(request, "before", in: 0...Parameters.maxHeight)
                guard case .own(let asker) = try require(caller, .researchLog, .route) else {
                    return json(try node.store.researchTransactions(limit: limit, beforeSequence: before).map { logEntry($0, node: node) })
                }
                return json(try ownLogEntries(asker: asker, limit: limit, before: before, node: node))
            }
        }
        // The last block at or before a time (ms since the epoch): for queries "as of" a time.
        router.get("/v1/chain/height-at", .chainHeightAt) { request, _, _ in
            await handle {
                guard let time = try Parameters.integer(request, "time", in: Int64.min...Int64.max) else {
                    throw LedgerError(.invalidArgument, "time=<ms since the epoch> is required")
                }
                guard let height = try node.store.height(atTime: time) else { throw LedgerError(.notFound, "no block is that old") }
                return json(["height": height])
            }
        }
    }

    /// Most log entries scanned for one researcher's page.
    static let maxScannedLogEntries = 20_000

    /// A researcher's own entries, newest first: its asks, and the answers to the questions it
    /// asked (found among the entries scanned). Scans at most ``maxScannedLogEntries``.
    static func ownLogEntries(asker: Hash256, limit: Int, before: UInt64?, node: LedgerNode) throws -> [ResearchLogEntry] {
        var found: [ResearchLogEntry] = []
        var answers: [ResearchLogEntry] = []
        var questions: Set<Hash256> = []
        var cursor = before
        var scanned = 0
        while found.count < limit, scanned < maxScannedLogEntries {
            let page = try node.store.researchTransactions(limit: 1000, beforeSequence: cursor)
            guard let last = page.last else { break }
            scanned += page.count
            cursor = last.sequence
            for transaction in page {
                let entry = logEntry(transaction, node: node)
                if entry.asker == asker {
                    if let question = entry.question { questions.insert(question) }
                    found.append(entry)
                } else if entry.asker == nil, entry.question != nil {
                    answers.append(entry)
                }
            }
        }
        // An answer follows its ask, so newest-first it is seen before the ask that reveals it is ours.
        found += answers.filter { $0.question.map(questions.contains) ?? false }
        return Array(found.sorted { $0.sequence > $1.sequence }.prefix(limit))
    }

    static func logEntry(_ transaction: StoredTransaction, node: LedgerNode) -> ResearchLogEntry {
        let committed = transaction.result.isCommitted
        var entry = ResearchLogEntry(
            sequence: transaction.sequence, transaction: transaction.id, block: transaction.height, action: transaction.action,
            status: committed ? "committed" : "rejected",
            code: committed ? nil : LedgerError.Code(ledgerStatus: transaction.result.status).rawValue,
            node: transaction.creator
        )
        guard let envelope = try? Envelope(decoding: transaction.envelope), let payload = try? envelope.payload() else { return entry }
        if let answer = try? ResearchAnswer(decoding: payload.arguments) {
            entry.question = answer.key
            entry.height = answer.answer.height
            // Only a committed answer was released (a refused one was paid for, but is not shown).
            if committed { entry.answer_hash = Hash256.of(answer.answer.encoded) }
            return entry
        }
        guard let charge = try? ResearchCharge(decoding: payload.arguments), let ask = try? charge.query.payload(),
              let request = try? QueryRequest(decoding: ask.arguments)
        else { return entry }
        entry.question = request.key(height: charge.height)
        entry.asker = ask.creator
        entry.asker_name = node.member(ask.creator)?.certificate.name
        entry.ask_id = charge.query.id
        entry.kind = request.spec.kind.name
        entry.query = request.spec.summary
        entry.epsilon = FixedPoint.format(request.epsilonMicros, digits: FixedPoint.epsilonDigits)
        entry.height = charge.height
        entry.signed_at = ask.timestamp
        return entry
    }
}
