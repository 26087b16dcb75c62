import Foundation
import LedgerCore
import Privacy

/// SplitMix64 (Steele, Lea & Flood 2014): a small deterministic generator, so statistical tests are
/// reproducible run to run. Never used outside tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Statistics helpers for the privacy tests.
enum Statistics {
    /// How many times each value was drawn in `count` draws.
    static func histogram(count: Int, draw: () -> Int64) -> [Int64: Int] {
        var histogram: [Int64: Int] = [:]
        for _ in 0..<count { histogram[draw(), default: 0] += 1 }
        return histogram
    }

    /// `count` samples of a noise description from a seeded generator.
    static func histogram(of noise: NoiseDescription, count: Int, seed: UInt64) -> [Int64: Int] {
        var generator = SplitMix64(seed: seed)
        return histogram(count: count) { noise.sample(using: &generator) }
    }

    /// Pearson's χ² statistic of a histogram of a symmetric integer distribution against its pmf.
    ///
    /// Bins are the single values −K…K, where each expects at least 5 hits, plus the two tails
    /// (−∞, −K−1] and [K+1, ∞), pooled inwards until each expects at least 5 too. No parameter is
    /// estimated from the data, so the degrees of freedom are the number of bins − 1.
    static func chiSquare(_ histogram: [Int64: Int], against noise: NoiseDescription) -> (statistic: Double, degreesOfFreedom: Int) {
        let count = Double(histogram.values.reduce(0, +))
        var width: Int64 = 0
        while count * noise.probability(of: width + 1) >= 5 { width += 1 }
        while width > 0 && count * noise.tailProbability(atLeast: width + 1) < 5 { width -= 1 }
        var statistic = 0.0
        func add(observed: Int, expected: Double) {
            statistic += (Double(observed) - expected) * (Double(observed) - expected) / expected
        }
        for value in -width...width {
            add(observed: histogram[value] ?? 0, expected: count * noise.probability(of: value))
        }
        let tailExpected = count * noise.tailProbability(atLeast: width + 1)
        add(observed: histogram.filter { $0.key > width }.values.reduce(0, +), expected: tailExpected)
        add(observed: histogram.filter { $0.key < -width }.values.reduce(0, +), expected: tailExpected)
        return (statistic, Int(2 * width + 3) - 1)
    }

    /// Pearson's χ² over the bins [edges[i], edges[i + 1]) and the two outer tails, for noise too
    /// wide for one bin per value; bin probabilities come from ``NoiseDescription/tailProbability(atLeast:)``.
    static func binnedChiSquare(_ samples: [Int64], against noise: NoiseDescription, edges: [Int64]) -> (statistic: Double, degreesOfFreedom: Int) {
        var observed = [Int](repeating: 0, count: edges.count + 1)
        for sample in samples {
            observed[edges.firstIndex { $0 > sample } ?? edges.count] += 1
        }
        let tails = edges.map { noise.tailProbability(atLeast: $0) }  // P(Z ≥ edge)
        let probabilities = [1 - tails[0]] + zip(tails, tails.dropFirst()).map { $0 - $1 } + [tails[tails.count - 1]]
        let statistic = zip(observed, probabilities).reduce(0.0) { sum, bin in
            let expected = Double(samples.count) * bin.1
            return sum + (Double(bin.0) - expected) * (Double(bin.0) - expected) / expected
        }
        return (statistic, observed.count - 1)
    }

    /// The 0.999 quantile of χ² with `degreesOfFreedom`, by the Wilson–Hilferty approximation
    /// k·(1 − 2/(9k) + z·√(2/(9k)))³ with z = Φ⁻¹(0.999) = 3.0902. It is slightly above the exact
    /// quantile (checked against scipy: +2.3 % at k = 2, +0.6 % at k = 10, +0.09 % at k = 50), so a
    /// test against it errs towards accepting a correct sampler.
    static func chiSquareQuantile999(degreesOfFreedom: Int) -> Double {
        let k = Double(degreesOfFreedom)
        let z = 3.090_232
        let term = 1 - 2 / (9 * k) + z * (2 / (9 * k)).squareRoot()
        return k * term * term * term
    }

    /// Sample mean and (unbiased) variance of a histogram.
    static func moments(_ histogram: [Int64: Int]) -> (mean: Double, variance: Double, count: Double) {
        let count = Double(histogram.values.reduce(0, +))
        let mean = histogram.reduce(0.0) { $0 + Double($1.key) * Double($1.value) } / count
        let squares = histogram.reduce(0.0) { $0 + (Double($1.key) - mean) * (Double($1.key) - mean) * Double($1.value) }
        return (mean, squares / (count - 1), count)
    }

    /// E[Z^power] of a symmetric noise distribution, summed from its pmf.
    static func moment(_ power: Double, of noise: NoiseDescription) -> Double {
        let limit = Int64(60 * noise.standardDeviation + 20)
        return (-limit...limit).reduce(0.0) { $0 + pow(Double($1), power) * noise.probability(of: $1) }
    }

    /// A noise description with the given rational scale (Laplace b or Gaussian σ²) and no
    /// calibration metadata, for testing the samplers on round numbers.
    static func noise(_ mechanism: NoiseMechanism, _ numerator: UInt64, _ denominator: UInt64) -> NoiseDescription {
        NoiseDescription(mechanism: mechanism, sensitivity: 1, epsilonMicros: 1_000_000, deltaPicos: 0,
                         scaleNumerator: numerator, scaleDenominator: denominator, halfWidth95: 0)
    }
}
