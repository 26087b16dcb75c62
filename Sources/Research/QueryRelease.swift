public import LedgerCore
import Privacy

/// Turns an exact aggregate into the answer a researcher may see: every released number gets
/// fresh noise from `random` (``SecureRandom`` in production), calibrated to the request's ε and
/// mechanism and to the sensitivity the policy implies.
///
/// - count, grouped count: sensitivity 1 (adding or removing one device changes one count by 1).
/// - sum: values clamped to `[L, U]`, sensitivity max(|L|, |U|).
/// - average: a noisy count (ε/2, sensitivity 1) and a noisy sum of `clamp(x) − c` with c the
///   midpoint (ε/2, sensitivity max(U − c, c − L)); the reader divides. No exact count is released.
/// - grouped count over a closed domain: every label, zeros included, each with noise.
/// - grouped count over an open domain: only groups whose noisy count reaches the partition
///   threshold τ, chosen so a group holding a single device is released with probability ≤ δ.
public enum QueryRelease {
    /// Refuses a Gaussian request whose variance would exceed what the exact sampler handles
    /// (large clamping bounds at a small ε); Laplace noise covers every accepted parameter.
    public static func checkCalibration(_ request: QueryRequest, policy: ResearchPolicy) throws(LedgerError) {
        guard request.mechanism == .gaussian, let sensitivity = request.sensitivities(policy: policy) else { return }
        let (first, second) = request.split(policy: policy)
        var parts = [(first, sensitivity.first)]
        if sensitivity.second > 0 { parts.append((second, sensitivity.second)) }
        for (share, sensitivity) in parts
        where !NoiseDescription.canCalibrateGaussian(sensitivity: sensitivity, epsilonMicros: share.epsilonMicros, deltaPicos: share.deltaPicos) {
            throw LedgerError(.invalidArgument, "Gaussian noise for sensitivity \(sensitivity) at ε \(FixedPoint.format(share.epsilonMicros, digits: FixedPoint.epsilonDigits)) is beyond the exact sampler's range; use Laplace or a larger ε")
        }
    }

    public static func answer(_ request: QueryRequest, exact: ExactAggregate, policy: ResearchPolicy, hospitals: [String],
                              height: UInt64, referenceTime: Int64, using random: inout some RandomNumberGenerator) -> QueryAnswer {
        let (first, second) = request.split(policy: policy)
        // The request passed validate(policy:), so its fields have declared bounds.
        let sensitivity = request.sensitivities(policy: policy)!
        func calibrate(_ share: PrivacyBudget, sensitivity: UInt64) -> NoiseDescription {
            var noise = switch request.mechanism {
            case .laplace: NoiseDescription.laplace(sensitivity: sensitivity, epsilonMicros: share.epsilonMicros)
            case .gaussian: NoiseDescription.gaussian(sensitivity: sensitivity, epsilonMicros: share.epsilonMicros, deltaPicos: share.deltaPicos)
            }
            noise.deltaPicos = share.deltaPicos
            return noise
        }
        func noisy(_ value: Int64, _ noise: NoiseDescription) -> NoisyValue {
            NoisyValue(value: value &+ noise.sample(using: &random), noise: noise)
        }
        let result: QueryResult
        switch (request.spec.kind, exact) {
        case (.count, .count(let n)):
            result = .count(noisy(n, calibrate(first, sensitivity: sensitivity.first)))
        case (.sum(let field), .sum(let sum)):
            let bounds = policy.bounds(of: field)!
            let noise = calibrate(first, sensitivity: sensitivity.first)
            result = .sum(noisy(sum, noise), lower: bounds.lower, upper: bounds.upper)
        case (.average(let field), .average(let n, let sum)):
            let bounds = policy.bounds(of: field)!
            let countNoise = calibrate(first, sensitivity: sensitivity.first)
            let sumNoise = calibrate(second, sensitivity: sensitivity.second)
            result = .average(centeredSum: noisy(sum, sumNoise), count: noisy(n, countNoise),
                              center: ClampedField.center(lower: bounds.lower, upper: bounds.upper), lower: bounds.lower, upper: bounds.upper)
        case (.groupedCount(let grouping), .groups(let groups)):
            let noise = calibrate(first, sensitivity: sensitivity.first)
            if let labels = GroupLabel.closed(grouping, policy: policy, hospitals: hospitals) {
                let counts = Dictionary(groups.map { ($0.label, $0.value) }, uniquingKeysWith: +)
                let released = labels.map { ReleasedGroup(label: $0, value: noisy(counts[$0] ?? 0, noise).value) }
                result = .grouped(groups: released.sorted { $0.label.utf8.lexicographicallyPrecedes($1.label.utf8) }, noise: noise, threshold: nil)
            } else {
                let cost = request.cost(policy: policy)
                let thresholdDelta = request.mechanism == .gaussian ? cost.deltaPicos - first.deltaPicos : cost.deltaPicos
                let threshold = noise.partitionThreshold(deltaPicos: thresholdDelta)
                var passed: [ReleasedGroup] = []
                for group in groups where group.value > 0 {
                    let value = noisy(group.value, noise).value
                    if value >= threshold { passed.append(ReleasedGroup(label: group.label, value: value)) }
                }
                // Keeping the largest is post-processing of released values: it costs no privacy.
                passed.sort { $0.value != $1.value ? $0.value > $1.value : $0.label.utf8.lexicographicallyPrecedes($1.label.utf8) }
                let kept = passed.prefix(Int(policy.maxGroups)).sorted { $0.label.utf8.lexicographicallyPrecedes($1.label.utf8) }
                result = .grouped(groups: Array(kept), noise: noise, threshold: threshold)
            }
        default:
            preconditionFailure("exact aggregate does not match the query kind")
        }
        return QueryAnswer(height: height, referenceTime: referenceTime, result: result)
    }
}
