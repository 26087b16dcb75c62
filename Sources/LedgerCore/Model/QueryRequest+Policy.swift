extension QueryRequest {
    /// Checks the request against the research policy in force: ε range, declared bounds for
    /// aggregated fields. (Who may ask is checked against the asker's role separately.)
    public func validate(policy: ResearchPolicy) throws(LedgerError) {
        try spec.validate()
        guard epsilonMicros >= Self.minimumEpsilonMicros else {
            throw LedgerError(.invalidArgument, "ε must be at least \(FixedPoint.format(Self.minimumEpsilonMicros, digits: FixedPoint.epsilonDigits))")
        }
        if case .average = spec.kind, epsilonMicros < 2 * Self.minimumEpsilonMicros {
            throw LedgerError(.invalidArgument, "an average splits ε between its sum and its count: ε must be at least 0.002")
        }
        guard epsilonMicros <= policy.maxEpsilonMicrosPerQuery else {
            throw LedgerError(.invalidArgument, "ε \(FixedPoint.format(epsilonMicros, digits: FixedPoint.epsilonDigits)) exceeds the per-query maximum \(FixedPoint.format(policy.maxEpsilonMicrosPerQuery, digits: FixedPoint.epsilonDigits))")
        }
        switch spec.kind {
        case .sum(let field), .average(let field):
            guard policy.bounds(of: field) != nil else {
                throw LedgerError(.invalidArgument, "\(field.rawValue) has no declared clamping bounds; aggregatable: \(policy.bounds.map(\.field.rawValue).joined(separator: ", "))")
            }
        default: break
        }
    }

    /// Whether a grouped count is over an open domain (released through partition selection).
    public func isOpenDomain(policy: ResearchPolicy) -> Bool {
        guard case .groupedCount(.field(let field)) = spec.kind else { return false }
        return !QueryRequest.inherentlyClosed.contains(field) && policy.domain(of: field) == nil
    }

    /// Fields whose domain is known without declaring it: hospitals are the ledger's organisations.
    public static let inherentlyClosed: Set<QueryField> = [.hospital, .active, .status]

    /// What answering costs: the request's ε, and δ when the mechanism or partition selection needs one.
    public func cost(policy: ResearchPolicy) -> PrivacyBudget {
        let needsDelta = mechanism == .gaussian || isOpenDomain(policy: policy)
        return PrivacyBudget(epsilonMicros: epsilonMicros, deltaPicos: needsDelta ? policy.deltaPicosPerQuery : 0)
    }

    /// The sensitivity of what each share of ``split(policy:)`` pays for: a count or grouped count
    /// 1 (one device changes one count by one); a sum max(|L|, |U|); an average 1 for its count and
    /// max(U − c, c − L) for its centred sum (``ClampedField``). The second is 0 when there is no
    /// second value. Nil when a summed or averaged field has no declared bounds (which
    /// ``validate(policy:)`` refuses).
    public func sensitivities(policy: ResearchPolicy) -> (first: UInt64, second: UInt64)? {
        switch spec.kind {
        case .count, .groupedCount:
            return (1, 0)
        case .sum(let field):
            guard let bounds = policy.bounds(of: field) else { return nil }
            return (max(bounds.lower.magnitude, bounds.upper.magnitude), 0)
        case .average(let field):
            guard let bounds = policy.bounds(of: field) else { return nil }
            return (1, ClampedField.centeredSensitivity(lower: bounds.lower, upper: bounds.upper))
        }
    }

    /// How ε and δ are divided between the values an answer releases: an average gives half to
    /// the count (rounded down) and the rest to the sum; an open-domain Gaussian grouped count
    /// gives half of δ to the noise and half to the threshold. Everything else spends it all on one value.
    public func split(policy: ResearchPolicy) -> (count: PrivacyBudget, sum: PrivacyBudget) {
        let cost = cost(policy: policy)
        switch spec.kind {
        case .average:
            let count = PrivacyBudget(epsilonMicros: cost.epsilonMicros / 2, deltaPicos: cost.deltaPicos / 2)
            return (count, PrivacyBudget(epsilonMicros: cost.epsilonMicros - count.epsilonMicros, deltaPicos: cost.deltaPicos - count.deltaPicos))
        case .groupedCount where mechanism == .gaussian && isOpenDomain(policy: policy):
            return (PrivacyBudget(epsilonMicros: cost.epsilonMicros, deltaPicos: cost.deltaPicos / 2), .zero)
        default:
            return (cost, .zero)
        }
    }
}

/// Clamping arithmetic shared by the evaluator and the contract.
public enum ClampedField {
    /// The midpoint the average's sum is centred on (rounded down).
    public static func center(lower: Int64, upper: Int64) -> Int64 { lower + (upper - lower) / 2 }

    /// Sensitivity of the sum of `clamp(x) − center`: the farther bound from the centre.
    public static func centeredSensitivity(lower: Int64, upper: Int64) -> UInt64 {
        let center = center(lower: lower, upper: upper)
        return max(UInt64(upper - center), UInt64(center - lower))
    }
}
