/// Exact samplers for differential privacy, after Canonne, Kamath & Steinke, "The Discrete Gaussian
/// for Differential Privacy" (NeurIPS 2020), Algorithms 1–3.
///
/// Every decision is made with integer arithmetic on uniform integers drawn from the generator
/// (`random(in:using:)`, which is unbiased), so the output distribution is exactly the stated one
/// whenever the generator is uniform: no `log`, `exp` or floating point is involved, and with it none
/// of the floating-point attacks on textbook Laplace noise (Mironov 2012).
///
/// Arithmetic runs in 64 bits while `multipliedReportingOverflow` says it fits, and otherwise in
/// `UInt128` (and 256 bits for the Gaussian's squared acceptance exponent), so no random value can
/// make a product overflow; Bernoulli(γ/K) falls back to the equivalent Bernoulli(γ) ∧
/// Bernoulli(1/K) when d·K does not fit. No branch is approximate. The single exception is the
/// range of the result type, documented on
/// ``discreteLaplace(scaleNumerator:scaleDenominator:using:)``.
///
/// ```swift
/// var random = SecureRandom()
/// let noise = ExactSampler.discreteLaplace(scaleNumerator: 2, scaleDenominator: 1, using: &random)
/// ```
public enum ExactSampler {
    /// Returns true with probability exactly `numerator / denominator`.
    ///
    /// - Precondition: `0 < denominator` and `numerator <= denominator`.
    public static func bernoulli(
        numerator: UInt64, denominator: UInt64, using generator: inout some RandomNumberGenerator
    ) -> Bool {
        precondition(denominator > 0 && numerator <= denominator, "Bernoulli parameter must be a probability")
        return Draws.with(&generator) { bernoulli(numerator, over: denominator, using: &$0) }
    }

    /// Returns true with probability exactly exp(−numerator / denominator), for any ratio ≥ 0.
    ///
    /// Algorithm 1 of CKS20: Bernoulli(exp(−γ)) for γ ∈ [0, 1] from Bernoulli(γ/k) trials, and for
    /// γ > 1 the product of ⌊γ⌋ draws of Bernoulli(exp(−1)) with Bernoulli(exp(−(γ − ⌊γ⌋))), stopping
    /// at the first failure (so large γ costs little in expectation).
    ///
    /// - Precondition: `0 < denominator`.
    public static func bernoulliExpMinus(
        numerator: UInt64, denominator: UInt64, using generator: inout some RandomNumberGenerator
    ) -> Bool {
        precondition(denominator > 0, "denominator must be positive")
        return Draws.with(&generator) { bernoulliExpMinus(numerator, over: denominator, using: &$0) }
    }

    /// A discrete Laplace sample with scale b = t/s: P(x) ∝ exp(−|x|·s/t) on all integers
    /// (Algorithm 2 of CKS20). Expected cost is constant in t and s (about ten uniform draws).
    ///
    /// A geometric X with P(X = x) ∝ exp(−x/t) is built as U + t·V from a uniform U ∈ [0, t)
    /// accepted with probability exp(−U/t) and a geometric V counting Bernoulli(exp(−1)) successes;
    /// Y = ⌊X/s⌋ is then geometric with ratio exp(−s/t), and a fair sign with "−0" rejected gives
    /// the two-sided distribution. X is exact: in 64 bits when t·V + U fits, in `UInt128` otherwise
    /// (t ≤ 2⁶², V < 2⁶⁴).
    ///
    /// The result type bounds |x| < 2⁶³. A Y beyond it is rejected and drawn again, so the output is
    /// exactly the discrete Laplace conditioned on |x| < 2⁶³; with b < 2⁴⁰ such a Y has probability
    /// at most 2·exp(−2⁶³/b) < 2·exp(−2²³), so the difference from the unconditioned distribution is
    /// below 2⁻¹²⁰⁰⁰⁰⁰⁰ in total variation. Calibrated parameters (Δ ≤ 10⁹, ε ≥ 0.001) give b ≤ 10¹².
    ///
    /// - Precondition: 1 ≤ t ≤ 2⁶², 1 ≤ s ≤ 2⁶², and t/s < 2⁴⁰.
    public static func discreteLaplace(
        scaleNumerator t: UInt64, scaleDenominator s: UInt64, using generator: inout some RandomNumberGenerator
    ) -> Int64 {
        precondition((1...1 << 62).contains(t) && (1...1 << 62).contains(s), "Laplace scale out of range")
        precondition(t / s < 1 << 40, "Laplace scale t/s must be below 2^40")
        return Draws.with(&generator) { laplace(t, s, using: &$0) }
    }

    /// A discrete Gaussian sample with variance parameter σ² = a/b: P(x) ∝ exp(−x²/(2σ²)) on all
    /// integers (Algorithm 3 of CKS20). Expected cost is constant in σ.
    ///
    /// Draws Y from the discrete Laplace with scale t = ⌊σ⌋ + 1 and accepts it with probability
    /// exp(−(|Y| − σ²/t)²/(2σ²)) = exp(−(|Y|·t·b − a)² / (2·a·b·t²)). With a, b ≤ 2⁶², t·b and
    /// b·t² are at most 2⁶⁴ (t ≤ 2σ when σ ≥ 1, t = 1 otherwise), so |Y|·t·b < 2¹²⁷ and the
    /// denominator 2·a·b·t² ≤ 2¹²⁷; the squared numerator is kept in 256 bits. (Calibrated variances
    /// from 1 to 2²⁹ have a ≤ 2³⁰, so the denominator, at most 8a², fits 64 bits and in most
    /// proposals so does the numerator: those take a 64-bit path.) Every step is exact; the only
    /// caveat is the Laplace proposal's range, see
    /// ``discreteLaplace(scaleNumerator:scaleDenominator:using:)`` (t ≤ 2³¹ + 1 here).
    ///
    /// - Precondition: 1 ≤ a ≤ 2⁶² and 1 ≤ b ≤ 2⁶².
    public static func discreteGaussian(
        varianceNumerator a: UInt64, varianceDenominator b: UInt64, using generator: inout some RandomNumberGenerator
    ) -> Int64 {
        precondition((1...1 << 62).contains(a) && (1...1 << 62).contains(b), "Gaussian variance out of range")
        let t = integerSquareRoot(a / b) + 1  // ⌊√(a/b)⌋ = ⌊√⌊a/b⌋⌋
        let (tb, o1) = UInt128(t).multipliedReportingOverflow(by: UInt128(b))
        let (btt, o2) = tb.multipliedReportingOverflow(by: UInt128(t))
        let (abtt, o3) = btt.multipliedReportingOverflow(by: UInt128(a))
        let (denominator, o4) = abtt.multipliedReportingOverflow(by: 2)
        precondition(!(o1 || o2 || o3 || o4), "a, b ≤ 2^62 keep 2·a·b·t² below 2^127")
        let proposal = GaussianProposal(a: a, t: t, tb: tb, denominator: denominator)
        return Draws.with(&generator) { gaussian(proposal, using: &$0) }
    }

    // MARK: - Algorithms 2 and 3 on the concrete generator

    /// Algorithm 2; parameters checked by the caller.
    static func laplace(_ t: UInt64, _ s: UInt64, using generator: inout Draws) -> Int64 {
        while true {
            let u = UInt64.random(in: 0..<t, using: &generator)
            guard bernoulliExpMinusFraction(u, over: t, using: &generator) else { continue }
            var v: UInt64 = 0
            while bernoulliExpMinusOne(using: &generator) { v += 1 }
            let y: UInt64
            let (tv, productOverflow) = t.multipliedReportingOverflow(by: v)
            let (x, sumOverflow) = tv.addingReportingOverflow(u)
            if !productOverflow && !sumOverflow {
                y = x / s
            } else {
                let (wideTV, wideOverflow) = UInt128(t).multipliedReportingOverflow(by: UInt128(v))
                precondition(!wideOverflow, "t ≤ 2^62 and v < 2^64 keep U + t·V below 2^127")
                guard let narrow = UInt64(exactly: (wideTV + UInt128(u)) / UInt128(s)) else { continue }
                y = narrow
            }
            let negative = Bool.random(using: &generator)
            if negative && y == 0 { continue }
            guard let magnitude = Int64(exactly: y) else { continue }
            return negative ? -magnitude : magnitude
        }
    }

    /// The constants of Algorithm 3 for σ² = a/b: t = ⌊σ⌋ + 1, t·b and 2·a·b·t², with 64-bit
    /// copies when they fit.
    struct GaussianProposal {
        let a: UInt64
        let t: UInt64
        let tb: UInt128
        let denominator: UInt128
        let narrowTB: UInt64?
        let narrowDenominator: UInt64?

        init(a: UInt64, t: UInt64, tb: UInt128, denominator: UInt128) {
            (self.a, self.t, self.tb, self.denominator) = (a, t, tb, denominator)
            narrowTB = UInt64(exactly: tb)
            narrowDenominator = UInt64(exactly: denominator)
        }

        /// (|y|·t·b − a)² when every step fits in 64 bits.
        func narrowNumerator(_ y: UInt64) -> UInt64? {
            guard let narrowTB, narrowDenominator != nil else { return nil }
            let (ytb, overflow) = y.multipliedReportingOverflow(by: narrowTB)
            guard !overflow else { return nil }
            let w = ytb >= a ? ytb - a : a - ytb
            let (square, squareOverflow) = w.multipliedReportingOverflow(by: w)
            return squareOverflow ? nil : square
        }
    }

    /// Algorithm 3.
    static func gaussian(_ proposal: GaussianProposal, using generator: inout Draws) -> Int64 {
        while true {
            let y = laplace(proposal.t, 1, using: &generator)
            let accepted: Bool
            if let numerator = proposal.narrowNumerator(y.magnitude), let denominator = proposal.narrowDenominator {
                accepted = bernoulliExpMinus(numerator, over: denominator, using: &generator)
            } else {
                let (ytb, overflow) = UInt128(y.magnitude).multipliedReportingOverflow(by: proposal.tb)
                precondition(!overflow, "|Y| < 2^63 and t·b ≤ 2^64 keep |Y|·t·b below 2^127")
                let a = UInt128(proposal.a)
                let w = ytb >= a ? ytb - a : a - ytb
                let square = w.multipliedFullWidth(by: w)
                accepted = bernoulliExpMinus(high: square.high, low: square.low, over: proposal.denominator, using: &generator)
            }
            if accepted { return y }
        }
    }
}
