public import LedgerCore

/// Privacy-budget accounting as a pure function: the usage so far, the limit and the cost in;
/// the new usage or a refusal out. Periods are fixed windows of block time, so every node agrees.
public enum BudgetAccount {
    public static func charge(_ cost: PrivacyBudget, usage: BudgetUsage?, limit: PrivacyBudget, blockTime: Int64,
                              periodMilliseconds: UInt64) throws(LedgerError) -> BudgetUsage {
        let period = UInt64(max(blockTime, 0)) / periodMilliseconds
        var current = usage.flatMap { $0.period == period ? $0 : nil } ?? BudgetUsage(period: period, spent: .zero, queries: 0)
        let (epsilon, o1) = current.spent.epsilonMicros.addingReportingOverflow(cost.epsilonMicros)
        let (delta, o2) = current.spent.deltaPicos.addingReportingOverflow(cost.deltaPicos)
        guard !o1, !o2, epsilon <= limit.epsilonMicros, delta <= limit.deltaPicos else {
            let remaining = PrivacyBudget(epsilonMicros: limit.epsilonMicros - min(limit.epsilonMicros, current.spent.epsilonMicros),
                                          deltaPicos: limit.deltaPicos - min(limit.deltaPicos, current.spent.deltaPicos))
            throw LedgerError(.budgetExhausted, "privacy budget exhausted: the query costs \(cost.description); \(remaining.description) remains this period (it renews at \(Int64(clamping: (period + 1).multipliedReportingOverflow(by: periodMilliseconds).partialValue)) ms)")
        }
        current.spent = PrivacyBudget(epsilonMicros: epsilon, deltaPicos: delta)
        current.queries += 1
        return current
    }

    /// What remains of a researcher's budget at `blockTime`.
    public static func remaining(usage: BudgetUsage?, limit: PrivacyBudget, blockTime: Int64, periodMilliseconds: UInt64) -> PrivacyBudget {
        let period = UInt64(max(blockTime, 0)) / periodMilliseconds
        guard let usage, usage.period == period else { return limit }
        return PrivacyBudget(epsilonMicros: limit.epsilonMicros - min(limit.epsilonMicros, usage.spent.epsilonMicros),
                             deltaPicos: limit.deltaPicos - min(limit.deltaPicos, usage.spent.deltaPicos))
    }
}
