import Foundation
import Testing
import LedgerCore
@testable import Privacy

/// The exact samplers against their exact distributions. Every test but the SecureRandom one draws
/// from a seeded SplitMix64, so the statistics are the same on every run; the thresholds are still
/// chosen so that a correct sampler would fail them rarely for an arbitrary seed (5 standard
/// errors, or the 0.999 quantile of χ²).
@Suite("Privacy")
struct PrivacyTests {
    static let draws = 200_000

    static let laplaceScales: [(UInt64, UInt64)] = [(1, 1), (5, 2), (10, 1)]
    /// σ² = 1, 7/3, 50, and a calibrated σ² ≈ 28.6 (Δ = 1, ε = 1, δ = 10⁻⁶) with its large
    /// numerator and power-of-two denominator.
    static let gaussianVariances: [(UInt64, UInt64)] = [(1, 1), (7, 3), (50, 1)] + [
        NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 1_000_000, deltaPicos: 1_000_000),
    ].map { ($0.scaleNumerator, $0.scaleDenominator) }

    @Test("discrete Laplace matches its pmf (χ² at 0.999)", arguments: laplaceScales)
    func laplaceGoodnessOfFit(numerator: UInt64, denominator: UInt64) {
        let noise = Statistics.noise(.laplace, numerator, denominator)
        let histogram = Statistics.histogram(of: noise, count: Self.draws, seed: numerator &* 31 &+ denominator)
        let (statistic, degrees) = Statistics.chiSquare(histogram, against: noise)
        #expect(degrees >= 10)
        #expect(statistic < Statistics.chiSquareQuantile999(degreesOfFreedom: degrees), "χ² \(statistic) with \(degrees) df")
    }

    @Test("discrete Gaussian matches its pmf (χ² at 0.999)", arguments: gaussianVariances)
    func gaussianGoodnessOfFit(numerator: UInt64, denominator: UInt64) {
        let noise = Statistics.noise(.gaussian, numerator, denominator)
        let histogram = Statistics.histogram(of: noise, count: Self.draws, seed: numerator &* 37 &+ denominator)
        let (statistic, degrees) = Statistics.chiSquare(histogram, against: noise)
        #expect(degrees >= 8)
        #expect(statistic < Statistics.chiSquareQuantile999(degreesOfFreedom: degrees), "χ² \(statistic) with \(degrees) df")
    }

    /// σ² = 2³⁴: the acceptance test's denominator exceeds 64 bits, so every proposal takes the
    /// 128/256-bit path; bins of σ/4 out to ±3σ, and the pmf sums in their Euler–Maclaurin form.
    @Test("wide discrete Gaussian (σ = 2¹⁷) matches its distribution in σ/4 bins (χ² at 0.999)")
    func wideGaussianGoodnessOfFit() {
        let noise = Statistics.noise(.gaussian, 1 << 34, 1)
        var generator = SplitMix64(seed: 34)
        let samples = (0..<Self.draws / 4).map { _ in noise.sample(using: &generator) }
        let edges = (-12...12).map { Int64($0) << 15 }
        let (statistic, degrees) = Statistics.binnedChiSquare(samples, against: noise, edges: edges)
        #expect(statistic < Statistics.chiSquareQuantile999(degreesOfFreedom: degrees), "χ² \(statistic) with \(degrees) df")
        let wrong = Statistics.noise(.gaussian, (1 << 34) + (1 << 32), 1)  // σ² 1.25× too large
        let rejected = Statistics.binnedChiSquare(samples, against: wrong, edges: edges)
        #expect(rejected.statistic > Statistics.chiSquareQuantile999(degreesOfFreedom: rejected.degreesOfFreedom))
    }

    /// Negative control: the same test rejects a sampler whose scale is 1.2× too large, so a
    /// passing χ² above is evidence, not a test that cannot fail.
    @Test("the χ² test rejects noise drawn with a 1.2× scale")
    func goodnessOfFitRejectsWrongScale() {
        let pairs = [
            (claimed: Statistics.noise(.laplace, 5, 2), drawn: Statistics.noise(.laplace, 3, 1)),
            (claimed: Statistics.noise(.gaussian, 50, 1), drawn: Statistics.noise(.gaussian, 60, 1)),
        ]
        for (claimed, drawn) in pairs {
            let histogram = Statistics.histogram(of: drawn, count: Self.draws / 4, seed: 99)
            let (statistic, degrees) = Statistics.chiSquare(histogram, against: claimed)
            #expect(statistic > Statistics.chiSquareQuantile999(degreesOfFreedom: degrees), "χ² \(statistic) with \(degrees) df")
        }
    }

    @Test("mean 0 and the exact variance", arguments: [
        Statistics.noise(.laplace, 2, 1), Statistics.noise(.laplace, 1_000, 7), Statistics.noise(.gaussian, 7, 3),
    ])
    func meanAndVariance(noise: NoiseDescription) {
        let (mean, variance, count) = Statistics.moments(Statistics.histogram(of: noise, count: Self.draws / 2, seed: 5))
        let exactVariance = noise.standardDeviation * noise.standardDeviation
        if noise.mechanism == .laplace {
            let p = exp(-Double(noise.scaleDenominator) / Double(noise.scaleNumerator))
            #expect(abs(exactVariance - 2 * p / ((1 - p) * (1 - p))) <= 1e-9 * exactVariance)
        }
        // Standard errors: √(Var/n) for the mean, √((μ₄ − Var²)/n) for the sample variance.
        let fourth = Statistics.moment(4, of: noise)
        #expect(abs(mean) <= 5 * (exactVariance / count).squareRoot(), "mean \(mean)")
        #expect(abs(variance - exactVariance) <= 5 * ((fourth - exactVariance * exactVariance) / count).squareRoot(),
                "variance \(variance) vs \(exactVariance)")
    }

    @Test("Bernoulli(exp(−γ)) for γ = 0, 1/3, 1, 5/2", arguments: [(0, 1), (1, 3), (1, 1), (5, 2)] as [(UInt64, UInt64)])
    func bernoulliExpMinus(numerator: UInt64, denominator: UInt64) {
        var generator = SplitMix64(seed: 11 + numerator)
        let count = 100_000
        let successes = (0..<count).count { _ in
            ExactSampler.bernoulliExpMinus(numerator: numerator, denominator: denominator, using: &generator)
        }
        let p = exp(-Double(numerator) / Double(denominator))
        let observed = Double(successes) / Double(count)
        #expect(abs(observed - p) <= 5 * (p * (1 - p) / Double(count)).squareRoot() + 1e-12, "\(observed) vs \(p)")
    }

    @Test("Bernoulli(n/d) at the edges and at 1/3")
    func bernoulli() {
        var generator = SplitMix64(seed: 3)
        #expect((0..<1_000).allSatisfy { _ in ExactSampler.bernoulli(numerator: 7, denominator: 7, using: &generator) })
        #expect((0..<1_000).allSatisfy { _ in !ExactSampler.bernoulli(numerator: 0, denominator: 7, using: &generator) })
        let count = 60_000
        let successes = (0..<count).count { _ in ExactSampler.bernoulli(numerator: 1, denominator: 3, using: &generator) }
        #expect(abs(Double(successes) / Double(count) - 1.0 / 3) <= 5 * (2.0 / 9 / Double(count)).squareRoot())
    }

    /// The 256-bit acceptance exponent of the Gaussian: γ = (high·2¹²⁸ + low)/d.
    @Test("Bernoulli(exp(−γ)) with a 256-bit numerator")
    func wideExponent() {
        var generator = SplitMix64(seed: 17)
        let count = 40_000
        // (2¹²⁸ + 2¹²⁶) / 2¹²⁷ = 5/2, through the two-word division.
        let successes = (0..<count).count { _ in
            Draws.with(&generator) { ExactSampler.bernoulliExpMinus(high: 1, low: 1 << 126, over: 1 << 127, using: &$0) }
        }
        let p = exp(-2.5)
        #expect(abs(Double(successes) / Double(count) - p) <= 5 * (p * (1 - p) / Double(count)).squareRoot())
        // γ ≥ 2¹²⁸ (high ≥ d): the first Bernoulli(exp(−1)) failure ends it.
        #expect((0..<1_000).allSatisfy { _ in
            !Draws.with(&generator) { ExactSampler.bernoulliExpMinus(high: 5, low: 0, over: 3, using: &$0) }
        })
    }

    @Test("extreme accepted parameters: no overflow, plausible spread")
    func extremeParameters() {
        var generator = SplitMix64(seed: 8)
        // b = 10¹² (Δ = 10⁹, ε = 0.001) and σ² = 2⁶², the largest each sampler accepts; the latter
        // takes the Gaussian's 256-bit path in about one proposal in twelve.
        for noise in [NoiseDescription.laplace(sensitivity: 1_000_000_000, epsilonMicros: 1_000),
                      Statistics.noise(.gaussian, 1 << 62, 1)] {
            let samples = (0..<2_000).map { _ in Double(noise.sample(using: &generator)) }
            let spread = (samples.reduce(0) { $0 + $1 * $1 } / Double(samples.count)).squareRoot()
            #expect(abs(spread / noise.standardDeviation - 1) < 0.15, "\(noise.mechanism): \(spread)")
        }
        // b = 1/100 and σ² = 2⁻⁶²: anything but 0 has probability below 10⁻⁴³.
        for noise in [NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000_000),
                      Statistics.noise(.gaussian, 1, 1 << 62)] {
            #expect((0..<1_000).allSatisfy { _ in noise.sample(using: &generator) == 0 })
        }
    }

    @Test("Gaussian pmf and tails against a brute-force sum to ±(40σ + 10)", arguments: [
        (7, 3), (50, 1), (100_020_001, 1), (1, 64),
    ] as [(UInt64, UInt64)])
    func gaussianMass(numerator: UInt64, denominator: UInt64) {
        let noise = Statistics.noise(.gaussian, numerator, denominator)
        let variance = Double(numerator) / Double(denominator)
        let limit = Int64(40 * variance.squareRoot() + 10)
        let terms = (0...limit).map { exp(-Double($0) * Double($0) / (2 * variance)) }
        let total = 2 * terms.reduce(0, +) - 1
        let sigma = variance.squareRoot()
        for k in [0, 1, Int64(sigma), Int64(3 * sigma)] {
            #expect(abs(noise.probability(of: k) / (terms[Int(k)] / total) - 1) < 1e-9, "pmf at \(k)")
        }
        for k in [1, Int64(sigma) + 1, Int64(3 * sigma) + 1] {
            let tail = terms[Int(k)...].reduce(0, +) / total
            #expect(abs(noise.tailProbability(atLeast: k) / tail - 1) < 1e-9, "tail at \(k)")
        }
    }

    /// A smoke test only: it shows the generator is wired to a source of changing, full-width words
    /// across several refills, not that the source is unpredictable (that is the OS CSPRNG's job).
    @Test("SecureRandom: distinct full-width words across refills; Laplace mean near 0")
    func secureRandom() {
        var random = SecureRandom()
        let words = (0..<2_000).map { _ in random.next() }
        #expect(Set(words).count == words.count)  // a collision among 2000 words: probability ≈ 10⁻¹³
        #expect(words.contains { $0 < 1 << 63 } && words.contains { $0 >= 1 << 63 })
        let noise = NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 500_000)
        let (mean, _, count) = Statistics.moments(Statistics.histogram(count: 50_000) { noise.sample(using: &random) })
        #expect(abs(mean) <= 5 * noise.standardDeviation / count.squareRoot(), "mean \(mean)")
    }
}
