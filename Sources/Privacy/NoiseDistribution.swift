import LedgerCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The exact distribution of the noise, evaluated in floating point: for accuracy statements
/// (``NoiseDescription/halfWidth95``), partition-selection thresholds, and statistical tests.
/// None of this is used to draw noise.
extension NoiseDescription {
    /// P(Z = k).
    ///
    /// Laplace: (1 − p)/(1 + p)·p^|k| with p = exp(−1/b), written as tanh(1/(2b))·exp(−|k|/b) to stay
    /// accurate for large b. Gaussian: exp(−k²/(2σ²)) over the normalising sum Σⱼ exp(−j²/(2σ²)),
    /// recomputed on every call (about 9σ terms up to σ = 10⁴, a closed form beyond).
    public func probability(of k: Int64) -> Double {
        switch mechanism {
        case .laplace:
            let rate = laplaceRate
            return tanh(rate / 2) * exp(-rate * Double(k.magnitude))
        case .gaussian:
            let mass = GaussianMass(variance: parameter)
            return mass.term(Double(k.magnitude)) / mass.total
        }
    }

    /// P(Z ≥ k). Laplace: p^k/(1 + p) for k ≥ 1; Gaussian: the tail sum over the normalising sum.
    /// For k ≤ 0 it is 1 − P(Z ≥ 1 − k), by symmetry.
    public func tailProbability(atLeast k: Int64) -> Double {
        guard k >= 1 else { return k == .min ? 1 : 1 - tailProbability(atLeast: 1 - k) }
        switch mechanism {
        case .laplace:
            let rate = laplaceRate
            return exp(-rate * Double(k)) / (1 + exp(-rate))
        case .gaussian:
            let mass = GaussianMass(variance: parameter)
            return mass.tail(from: Double(k)) / mass.total
        }
    }

    /// The standard deviation of Z. Laplace: √(2p/(1 − p)²). Gaussian: summed from the pmf (slightly
    /// below σ for small σ); for σ > 10⁴ it is σ, the difference being far below double precision.
    public var standardDeviation: Double {
        switch mechanism {
        case .laplace:
            let rate = laplaceRate
            return (2 * exp(-rate)).squareRoot() / -expm1(-rate)
        case .gaussian:
            let mass = GaussianMass(variance: parameter)
            guard !mass.isAnalytic else { return mass.sigma }
            var moment = 0.0
            var j = 1.0
            while j <= 40 * mass.sigma + 10 {
                let term = mass.term(j)
                if term == 0 { break }
                moment += j * j * term
                j += 1
            }
            return (2 * moment / mass.total).squareRoot()
        }
    }

    /// The smallest τ ≥ 1 with P(1 + Z ≥ τ) ≤ δ, for differentially private partition selection:
    /// a group whose noisy count (count + Z) is below τ is not released, so a group present with
    /// count 1 in one dataset and absent from its neighbour appears with probability at most δ.
    ///
    /// - Precondition: `deltaPicos` in ``deltaPicosRange``.
    public func partitionThreshold(deltaPicos: UInt64) -> Int64 {
        precondition(Self.deltaPicosRange.contains(deltaPicos), "δ must be 10^-12…10^-2")
        let delta = Double(deltaPicos) * 1e-12
        let guess: Double
        switch mechanism {
        case .laplace:
            guess = (-log(delta) - log1p(exp(-laplaceRate))) / laplaceRate
        case .gaussian:
            guess = parameter.squareRoot() * (2 * -log(delta)).squareRoot()
        }
        // P(1 + Z ≥ τ) = P(Z ≥ τ − 1), and P(Z ≥ 0) > 1/2 > δ, so τ − 1 ≥ 1.
        let shift = Self.smallest(atLeast: 1, guess: guess) { tailProbability(atLeast: $0) <= delta }
        return shift + 1
    }

    /// The smallest k ≥ 0 with P(|Z| > k) ≤ 1 − coverage, i.e. 2·P(Z ≥ k + 1) ≤ 1 − coverage.
    public func halfWidth(coverage: Double) -> UInt64 {
        let miss = 1 - coverage
        let guess: Double
        switch mechanism {
        case .laplace:
            guess = log(2 / (miss * (1 + exp(-laplaceRate)))) / laplaceRate - 1
        case .gaussian:
            guess = 1.96 * parameter.squareRoot()
        }
        return UInt64(Self.smallest(atLeast: 0, guess: guess) { 2 * tailProbability(atLeast: $0 + 1) <= miss })
    }

    /// b (Laplace) or σ² (Gaussian) as a Double.
    var parameter: Double { Double(scaleNumerator) / Double(scaleDenominator) }

    /// 1/b = s/t for the Laplace, so that p = exp(−rate).
    var laplaceRate: Double { Double(scaleDenominator) / Double(scaleNumerator) }

    /// The smallest k ≥ `lower` where `holds` is true, for a predicate that is false up to some
    /// point and true from there on: gallops from the guess, then bisects.
    static func smallest(atLeast lower: Int64, guess: Double, where holds: (Int64) -> Bool) -> Int64 {
        let start = guess.isFinite ? max(lower, Int64(min(max(guess.rounded(.up), 0), 0x1p62))) : lower
        var below = lower - 1  // largest known false (or lower − 1)
        var above: Int64  // smallest known true
        var step: Int64 = 1
        if holds(start) {
            above = start
            while above > lower {
                let probe = max(lower, above - step)
                if holds(probe) { above = probe } else { below = probe; break }
                step *= 2
            }
        } else {
            below = start
            while true {
                let probe = below + step
                if holds(probe) { above = probe; break }
                below = probe
                step *= 2
            }
        }
        while above - below > 1 {
            let middle = below + (above - below) / 2
            if holds(middle) { above = middle } else { below = middle }
        }
        return above
    }
}
