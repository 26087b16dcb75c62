public import LedgerCore

/// Privacy-budget accounting as a pure function: the usage so far, the limit and the cost in;
/// the new usage or a refusal out. Periods are fixed windows of block time, so every node agrees.
public enum BudgetAccount {
    public static func charge(_ cost: PrivacyBudget, usage: BudgetUsage?, limit: PrivacyBudget, blockTime: Int64,
                              periodMilliseconds: UInt64) throws(LedgerError) -> BudgetUsage {
        var current = current(usage, at: blockTime, periodMilliseconds: periodMilliseconds)
        let (epsilon, o1) = current.spent.epsilonMicros.addingReportingOverflow(cost.epsilonMicros)
        let (delta, o2) = current.spent.deltaPicos.addingReportingOverflow(cost.deltaPicos)
        guard !o1, !o2, epsilon <= limit.epsilonMicros, delta <= limit.deltaPicos else {
            throw LedgerError(.budgetExhausted, "privacy budget exhausted: the query costs \(cost.description); \(remaining(current, limit: limit).description) remains this period (it renews at \(periodEnd(current, periodMilliseconds: periodMilliseconds)) ms)")
        }
        current.spent = PrivacyBudget(epsilonMicros: epsilon, deltaPicos: delta)
        current.queries += 1
        return current
    }

    /// The usage of the period containing `time`: `usage` if it is of that period, else nothing spent.
    public static func current(_ usage: BudgetUsage?, at time: Int64, periodMilliseconds: UInt64) -> BudgetUsage {
        let period = UInt64(max(time, 0)) / periodMilliseconds
        return usage.flatMap { $0.period == period ? $0 : nil } ?? BudgetUsage(period: period, spent: .zero, queries: 0)
    }

    /// What `limit` leaves after `usage`.
    public static func remaining(_ usage: BudgetUsage, limit: PrivacyBudget) -> PrivacyBudget {
        PrivacyBudget(epsilonMicros: limit.epsilonMicros - min(limit.epsilonMicros, usage.spent.epsilonMicros),
                      deltaPicos: limit.deltaPicos - min(limit.deltaPicos, usage.spent.deltaPicos))
    }

    /// When the period of `usage` ends (ms since the epoch, saturating).
    public static func periodEnd(_ usage: BudgetUsage, periodMilliseconds: UInt64) -> Int64 {
        Int64(clamping: (usage.period + 1).multipliedReportingOverflow(by: periodMilliseconds).partialValue)
    }
}
