import Foundation
import Testing
import LedgerCore
import Privacy

/// The privacy guarantee itself: neighbouring datasets, calibration, partition selection, and the
/// secure generator.
@Suite("Privacy guarantees")
struct PrivacyGuaranteeTests {
    /// Output o drawn as c + Z and as c + Δ + Z: wherever both estimates rest on ≥ 1000 hits, the
    /// estimated ratio P̂(o | c)/P̂(o | c + Δ) (either way round) may exceed e^ε only by sampling
    /// error. The log of a ratio of two independent Poisson-like counts n₁, n₂ has standard error
    /// √(1/n₁ + 1/n₂) (delta method), so each bin may exceed e^ε by a factor exp(5·that) at most.
    @Test("neighbouring datasets: empirical likelihood ratios stay within e^ε", arguments: [
        NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 500_000),
        NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 1_000_000, deltaPicos: 1_000_000),
    ])
    func neighbouringDatasets(noise: NoiseDescription) {
        let count = 150_000
        let exact: Int64 = 10
        let step = Int64(noise.sensitivity)
        var generator = SplitMix64(seed: 2024)
        let first = Statistics.histogram(count: count) { exact + noise.sample(using: &generator) }
        let second = Statistics.histogram(count: count) { exact + step + noise.sample(using: &generator) }
        let epsilon = Double(noise.epsilonMicros) / 1e6
        var compared = 0
        var largest = 0.0
        for (output, hits) in first {
            guard let other = second[output], hits >= 1_000, other >= 1_000 else { continue }
            compared += 1
            let tolerance = exp(5 * (1 / Double(hits) + 1 / Double(other)).squareRoot())
            let ratio = Double(hits) / Double(other)
            largest = max(largest, ratio, 1 / ratio)
            #expect(ratio <= exp(epsilon) * tolerance, "output \(output): ratio \(ratio)")
            #expect(1 / ratio <= exp(epsilon) * tolerance, "output \(output): ratio \(1 / ratio)")
        }
        #expect(compared >= 10)
        if noise.mechanism == .laplace {
            // The Laplace bound is tight: half the outputs sit at exactly e^ε.
            #expect(largest >= exp(epsilon) * 0.9)
        }
    }

    @Test("exact Laplace pmf ratios are at most e^ε for |k| ≤ 50", arguments: [(1, 500_000), (3, 250_000), (7, 2_000_000)] as [(UInt64, UInt64)])
    func exactLaplaceRatio(sensitivity: UInt64, epsilonMicros: UInt64) {
        let noise = NoiseDescription.laplace(sensitivity: sensitivity, epsilonMicros: epsilonMicros)
        let bound = exp(Double(epsilonMicros) / 1e6) * (1 + 1e-12)
        for k in Int64(-50)...50 {
            for shift in 1...Int64(sensitivity) {
                let ratio = noise.probability(of: k) / noise.probability(of: k - shift)
                #expect(ratio <= bound && 1 / ratio <= bound, "k \(k) shift \(shift): \(ratio)")
            }
        }
    }

    /// (ε, δ)-DP exactly as the hockey-stick divergence Σₒ max(0, P(o | c) − e^ε·P(o | c + Δ)) ≤ δ,
    /// summed from the pmf (the zCDP conversion is loose, so it holds with room to spare).
    @Test("calibrated Gaussian: hockey-stick divergence at most δ", arguments: [
        (1, 500_000, 1_000), (1, 1_000_000, 1_000_000), (5, 2_000_000, 10_000_000_000),
    ] as [(UInt64, UInt64, UInt64)])
    func gaussianHockeyStick(sensitivity: UInt64, epsilonMicros: UInt64, deltaPicos: UInt64) {
        let noise = NoiseDescription.gaussian(sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos)
        let limit = Int64(40 * noise.standardDeviation + 10) + Int64(sensitivity)
        let factor = exp(Double(epsilonMicros) / 1e6)
        let divergence = (-limit...limit).reduce(0.0) {
            $0 + max(0, noise.probability(of: $1) - factor * noise.probability(of: $1 - Int64(sensitivity)))
        }
        #expect(divergence <= Double(deltaPicos) * 1e-12, "divergence \(divergence)")
    }

    @Test("Laplace calibration is the exact rational Δ/ε")
    func laplaceCalibration() {
        let unit = NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 1_000_000)
        #expect((unit.scaleNumerator, unit.scaleDenominator) == (1, 1))
        #expect(unit.mechanism == .laplace && unit.deltaPicos == 0)
        let twelve = NoiseDescription.laplace(sensitivity: 3, epsilonMicros: 250_000)
        #expect((twelve.scaleNumerator, twelve.scaleDenominator) == (12, 1))
        let small = NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000_000)
        #expect((small.scaleNumerator, small.scaleDenominator) == (1, 100))
        let large = NoiseDescription.laplace(sensitivity: 1_000_000_000, epsilonMicros: 1_000)
        #expect((large.scaleNumerator, large.scaleDenominator) == (1_000_000_000_000, 1))
    }

    @Test("halfWidth95 is the brute-force 95 % half-width of the pmf", arguments: [
        NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 1_000_000),
        NoiseDescription.laplace(sensitivity: 3, epsilonMicros: 250_000),
        NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000_000),
        NoiseDescription.laplace(sensitivity: 7, epsilonMicros: 300_000),
        NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 500_000, deltaPicos: 1_000),
        NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 100_000_000, deltaPicos: 10_000_000_000),
        NoiseDescription.gaussian(sensitivity: 20, epsilonMicros: 2_000_000, deltaPicos: 1_000_000),
    ])
    func halfWidth(noise: NoiseDescription) {
        var inside = noise.probability(of: 0)
        var k: UInt64 = 0
        while 1 - inside > 0.05 {
            k += 1
            inside += 2 * noise.probability(of: Int64(k))
        }
        #expect(noise.halfWidth95 == k)
        if noise.mechanism == .laplace {
            // The pmf itself, independently of probability(of:): (1 − p)/(1 + p)·p^|k|.
            let p = exp(-Double(noise.scaleDenominator) / Double(noise.scaleNumerator))
            let covered = (1 - p) / (1 + p) * (1 + 2 * (1...max(k, 1)).reduce(0.0) { $0 + pow(p, Double($1)) })
            #expect(k == 0 || covered >= 0.95)
        }
    }

    @Test("Gaussian σ² grows as δ or ε shrinks, and the stored σ² keeps the guarantee")
    func gaussianCalibration() {
        func variance(_ noise: NoiseDescription) -> Double { Double(noise.scaleNumerator) / Double(noise.scaleDenominator) }
        let deltas: [UInt64] = [10_000_000_000, 1_000_000, 1_000, 1]
        let epsilons: [UInt64] = [100_000_000, 2_000_000, 500_000, 1_000]
        for sensitivity: UInt64 in [1, 17, 1_000] {
            let byDelta = deltas.map { NoiseDescription.gaussian(sensitivity: sensitivity, epsilonMicros: 500_000, deltaPicos: $0) }
            let byEpsilon = epsilons.map { NoiseDescription.gaussian(sensitivity: sensitivity, epsilonMicros: $0, deltaPicos: 1_000) }
            #expect(zip(byDelta, byDelta.dropFirst()).allSatisfy { variance($0) < variance($1) })
            #expect(zip(byEpsilon, byEpsilon.dropFirst()).allSatisfy { variance($0) < variance($1) })
            for noise in byDelta + byEpsilon {
                #expect(noise.scaleNumerator <= NoiseDescription.maximumGaussianVariance)
                #expect(noise.scaleDenominator.nonzeroBitCount == 1)
                // ρ = Δ²/(2σ²) back from the stored rational; ρ + 2√(ρ·ln(1/δ)) ≤ ε.
                let rho = Double(sensitivity * sensitivity) / (2 * variance(noise))
                let logInverseDelta = -log(Double(noise.deltaPicos) * 1e-12)
                #expect(rho + 2 * (rho * logInverseDelta).squareRoot() <= Double(noise.epsilonMicros) / 1e6)
            }
        }
        #expect(!NoiseDescription.canCalibrateGaussian(sensitivity: 1_000_000_000, epsilonMicros: 1_000, deltaPicos: 1))
        #expect(NoiseDescription.canCalibrateGaussian(sensitivity: 100_000, epsilonMicros: 1_000, deltaPicos: 1))
    }

    @Test("partition threshold τ: P(1 + Z ≥ τ) ≤ δ < P(1 + Z ≥ τ − 1)", arguments: [
        NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 1_000_000),
        NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 100_000_000),
        NoiseDescription.laplace(sensitivity: 1_000_000_000, epsilonMicros: 1_000),
        NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 500_000, deltaPicos: 1_000),
        NoiseDescription.gaussian(sensitivity: 100_000, epsilonMicros: 1_000, deltaPicos: 1),
    ])
    func partitionThreshold(noise: NoiseDescription) {
        for deltaPicos: UInt64 in [1, 1_000, 10_000_000_000] {
            let delta = Double(deltaPicos) * 1e-12
            let threshold = noise.partitionThreshold(deltaPicos: deltaPicos)
            #expect(threshold >= 2)
            #expect(noise.tailProbability(atLeast: threshold - 1) <= delta)
            #expect(noise.tailProbability(atLeast: threshold - 2) > delta)
        }
    }
}
