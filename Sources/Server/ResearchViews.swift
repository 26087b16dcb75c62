import Foundation
public import LedgerCore
import Node
import Privacy

/// How a released value was perturbed, for readers (JSON).
public struct NoiseView: Codable, Sendable {
    public var mechanism: String
    public var sensitivity: UInt64
    public var epsilon: String
    public var delta: String
    /// Laplace scale b or Gaussian variance σ², exact (`numerator/denominator`) and approximate.
    public var scale: String
    public var scale_value: Double
    public var standard_deviation: Double
    public var half_width_95: UInt64

    init(_ noise: NoiseDescription) {
        mechanism = noise.mechanism.name
        sensitivity = noise.sensitivity
        epsilon = FixedPoint.format(noise.epsilonMicros, digits: FixedPoint.epsilonDigits)
        delta = FixedPoint.format(noise.deltaPicos, digits: FixedPoint.deltaDigits)
        scale = "\(noise.scaleNumerator)/\(noise.scaleDenominator)"
        scale_value = Double(noise.scaleNumerator) / Double(noise.scaleDenominator)
        standard_deviation = noise.standardDeviation
        half_width_95 = noise.halfWidth95
    }
}

/// A released number with its 95 % interval: the exact value lies inside with probability ≥ 95 %.
public struct ValueView: Codable, Sendable {
    public var value: Double?
    public var interval_95: [Double]?
}

public struct GroupView: Codable, Sendable {
    public var label: String
    public var value: Int64
    public var interval_95: [Int64]
}

/// The answer to a research query (JSON), as `POST /v1/queries` and `medledger query --json` give it.
public struct QueryView: Codable, Sendable {
    public var ask_id: Hash256
    /// The node's `research.charge` for this ask and the `research.answer` that recorded the answer.
    public var charge_transaction: Hash256
    public var answer_transaction: Hash256
    public var block: UInt64
    /// True when this exact question about this block was answered before: nothing was spent.
    public var cached: Bool
    public var kind: String
    public var mechanism: String
    public var epsilon: String
    public var cost: BudgetView.Amount
    /// The block whose state was queried and its time (the reference of age_days and warranty_days).
    public var height: UInt64
    public var reference_time: Int64
    public var answer_hash: Hash256
    /// count, sum, average: the released value and its interval.
    public var result: ValueView?
    /// grouped_count: released groups (open domain: only those at or above `threshold`).
    public var groups: [GroupView]?
    public var threshold: Int64?
    /// The noise of each released part (`count`, `sum`, `groups`).
    public var noise: [String: NoiseView]

    public init(_ outcome: QueryOutcome) {
        let record = outcome.record
        ask_id = outcome.askID
        charge_transaction = outcome.chargeTransaction
        answer_transaction = outcome.answerTransaction
        block = outcome.block
        cached = outcome.cached
        kind = record.request.spec.kind.name
        mechanism = record.request.mechanism.name
        epsilon = FixedPoint.format(record.request.epsilonMicros, digits: FixedPoint.epsilonDigits)
        cost = BudgetView.Amount(outcome.cached ? .zero : record.cost)
        height = outcome.answer.height
        reference_time = outcome.answer.referenceTime
        answer_hash = Hash256.of(outcome.answer.encoded)
        noise = [:]
        switch outcome.answer.result {
        case .count(let value):
            result = Self.interval(value)
            noise["count"] = NoiseView(value.noise)
        case .sum(let value, _, _):
            result = Self.interval(value)
            noise["sum"] = NoiseView(value.noise)
        case .average(let sum, let count, let center, let lower, let upper):
            result = Self.average(sum: sum, count: count, center: center, lower: lower, upper: upper)
            noise["count"] = NoiseView(count.noise)
            noise["sum"] = NoiseView(sum.noise)
        case .grouped(let released, let groupNoise, let threshold):
            let width = Int64(clamping: groupNoise.halfWidth95)
            groups = released.map { GroupView(label: $0.label, value: $0.value, interval_95: [$0.value &- width, $0.value &+ width]) }
            self.threshold = threshold
            noise["groups"] = NoiseView(groupNoise)
        }
    }

    static func interval(_ value: NoisyValue) -> ValueView {
        let width = Double(value.noise.halfWidth95)
        return ValueView(value: Double(value.value), interval_95: [Double(value.value) - width, Double(value.value) + width])
    }

    /// average = center + S/n from the noisy centred sum S and noisy count n. The interval takes
    /// both at 97.5 % (so both hold with ≥ 95 %) and the extreme ratios within them; it is the
    /// clamping range when the count's interval reaches zero.
    static func average(sum: NoisyValue, count: NoisyValue, center: Int64, lower: Int64, upper: Int64) -> ValueView {
        let low = Double(lower), high = Double(upper)
        let clamp = { (x: Double) in min(max(x, low), high) }
        let value = count.value > 0 ? clamp(Double(center) + Double(sum.value) / Double(count.value)) : nil
        let sumWidth = Double(sum.noise.halfWidth(coverage: 0.975))
        let countWidth = Double(count.noise.halfWidth(coverage: 0.975))
        let smallestCount = Double(count.value) - countWidth
        guard smallestCount >= 1 else { return ValueView(value: value, interval_95: [low, high]) }
        let corners = [Double(sum.value) - sumWidth, Double(sum.value) + sumWidth].flatMap { s in
            [smallestCount, Double(count.value) + countWidth].map { n in Double(center) + s / n }
        }
        return ValueView(value: value, interval_95: [clamp(corners.min()!), clamp(corners.max()!)])
    }
}

/// A researcher's budget (JSON).
public struct BudgetView: Codable, Sendable {
    public struct Amount: Codable, Sendable {
        public var epsilon: String
        public var delta: String
        init(_ budget: PrivacyBudget) {
            epsilon = FixedPoint.format(budget.epsilonMicros, digits: FixedPoint.epsilonDigits)
            delta = FixedPoint.format(budget.deltaPicos, digits: FixedPoint.deltaDigits)
        }
    }
    public var member: Hash256
    public var limit: Amount
    public var spent: Amount
    public var remaining: Amount
    public var queries: UInt64
    public var period_milliseconds: UInt64
    public var period_ends: Int64
}

/// One research transaction in the audit trail (JSON): a `charge` (who asked what, with which ε,
/// about which block; committed or refused) or an `answer` (the hash of what was released).
public struct ResearchLogEntry: Codable, Sendable {
    public var sequence: UInt64
    public var transaction: Hash256
    public var block: UInt64
    public var action: String
    public var status: String
    public var code: String?
    /// The question (`rq/<key>`) an answer is for.
    public var question: Hash256?
    /// The node that charged or answered, and the researcher who asked.
    public var node: Hash256
    public var asker: Hash256?
    public var asker_name: String?
    public var ask_id: Hash256?
    public var kind: String?
    public var query: String?
    public var epsilon: String?
    public var height: UInt64?
    public var answer_hash: Hash256?
    public var signed_at: Int64?
}
