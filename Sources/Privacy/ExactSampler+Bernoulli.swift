/// The building blocks of the exact samplers: Bernoulli trials with rational and exponential
/// parameters, all on the concrete ``Draws`` generator.
extension ExactSampler {
    /// Bernoulli(n/d) for n ≤ d, d > 0: a uniform integer in [0, d) below n.
    static func bernoulli(_ n: UInt64, over d: UInt64, using generator: inout Draws) -> Bool {
        if n >= d { return true }
        return n > 0 && UInt64.random(in: 0..<d, using: &generator) < n
    }

    /// Bernoulli(n/d) with 128-bit parameters, drawing 64-bit integers whenever d allows.
    static func bernoulli(_ n: UInt128, over d: UInt128, using generator: inout Draws) -> Bool {
        if n >= d { return true }
        if let narrow = UInt64(exactly: d) { return bernoulli(UInt64(n), over: narrow, using: &generator) }
        return n > 0 && UInt128.random(in: 0..<d, using: &generator) < n
    }

    /// Bernoulli(exp(−γ)) for γ = n/d ∈ [0, 1] (Algorithm 1): count K while Bernoulli(γ/K)
    /// succeeds; P(K odd) = Σⱼ (−γ)ʲ/j! = exp(−γ).
    static func bernoulliExpMinusFraction(_ n: UInt64, over d: UInt64, using generator: inout Draws) -> Bool {
        var k: UInt64 = 1
        while true {
            // Bernoulli(n / (d·k)), exactly: one draw when d·k fits, otherwise as the product of
            // the independent events Bernoulli(n/d) and Bernoulli(1/k).
            let (dk, overflow) = d.multipliedReportingOverflow(by: k)
            let success = overflow
                ? bernoulli(n, over: d, using: &generator) && bernoulli(1, over: k, using: &generator)
                : bernoulli(n, over: dk, using: &generator)
            guard success else { break }
            k += 1
        }
        return k & 1 == 1
    }

    /// Algorithm 1 with a 128-bit γ = n/d ∈ [0, 1], exactly as the 64-bit version.
    static func bernoulliExpMinusFraction(_ n: UInt128, over d: UInt128, using generator: inout Draws) -> Bool {
        var k: UInt64 = 1
        while true {
            let (dk, overflow) = d.multipliedReportingOverflow(by: UInt128(k))
            let success = overflow
                ? bernoulli(n, over: d, using: &generator) && bernoulli(1, over: k, using: &generator)
                : bernoulli(n, over: dk, using: &generator)
            guard success else { break }
            k += 1
        }
        return k & 1 == 1
    }

    /// Bernoulli(exp(−1)): Algorithm 1 with γ = 1, whose first trial, Bernoulli(1/1), always succeeds.
    static func bernoulliExpMinusOne(using generator: inout Draws) -> Bool {
        var k: UInt64 = 2
        while bernoulli(1, over: k, using: &generator) { k += 1 }
        return k & 1 == 1
    }

    /// Bernoulli(exp(−n/d)) for any n/d ≥ 0: ⌊n/d⌋ draws of Bernoulli(exp(−1)), stopping at the
    /// first failure, then Bernoulli(exp(−(n mod d)/d)).
    static func bernoulliExpMinus(_ n: UInt64, over d: UInt64, using generator: inout Draws) -> Bool {
        let (whole, fraction) = n.quotientAndRemainder(dividingBy: d)
        for _ in 0..<whole {
            guard bernoulliExpMinusOne(using: &generator) else { return false }
        }
        return bernoulliExpMinusFraction(fraction, over: d, using: &generator)
    }

    /// Bernoulli(exp(−N/d)) for the 256-bit numerator N = high·2¹²⁸ + low: ⌊N/d⌋ draws of
    /// Bernoulli(exp(−1)) (counted in two 128-bit words, so even ⌊N/d⌋ ≥ 2¹²⁸ is exact), then
    /// Bernoulli(exp(−(N mod d)/d)).
    static func bernoulliExpMinus(
        high: UInt128, low: UInt128, over d: UInt128, using generator: inout Draws
    ) -> Bool {
        precondition(d > 0, "denominator must be positive")
        var wholeHigh: UInt128 = 0
        var wholeLow: UInt128
        let fraction: UInt128
        if high == 0 {
            (wholeLow, fraction) = low.quotientAndRemainder(dividingBy: d)
        } else {
            let (quotient, remainder) = high.quotientAndRemainder(dividingBy: d)
            wholeHigh = quotient
            (wholeLow, fraction) = d.dividingFullWidth((high: remainder, low: low))
        }
        while wholeHigh > 0 || wholeLow > 0 {
            guard bernoulliExpMinusOne(using: &generator) else { return false }
            if wholeLow == 0 {
                wholeHigh -= 1
                wholeLow = .max
            } else {
                wholeLow -= 1
            }
        }
        return bernoulliExpMinusFraction(fraction, over: d, using: &generator)
    }

    /// ⌊√n⌋ by Newton's method on integers, from a power-of-two start above the root.
    static func integerSquareRoot(_ n: UInt64) -> UInt64 {
        guard n > 1 else { return n }
        var x = UInt64(1) << ((UInt64.bitWidth - n.leadingZeroBitCount + 1) / 2)
        while true {
            let next = (x + n / x) / 2
            guard next < x else { return x }
            x = next
        }
    }
}
