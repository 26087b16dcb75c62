import LedgerCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calibration: from a privacy guarantee (Δ, ε, δ) to the integer noise parameters that are stored on
/// the ledger beside each released value, and sampling from them.
///
/// ```swift
/// let noise = NoiseDescription.laplace(sensitivity: 1, epsilonMicros: 500_000)  // b = 2
/// var random = SecureRandom()
/// let released = exactCount + noise.sample(using: &random)
/// ```
extension NoiseDescription {
    /// Accepted sensitivities Δ: 1 … 10⁹.
    public static let sensitivityRange: ClosedRange<UInt64> = 1...1_000_000_000
    /// Accepted ε in millionths: 0.001 … 100.
    public static let epsilonMicrosRange: ClosedRange<UInt64> = 1_000...100_000_000
    /// Accepted δ in units of 10⁻¹²: 10⁻¹² … 10⁻².
    public static let deltaPicosRange: ClosedRange<UInt64> = 1...10_000_000_000
    /// Largest Gaussian variance the exact sampler accepts (its integer arithmetic stays within
    /// 128 bits up to here); see ``canCalibrateGaussian(sensitivity:epsilonMicros:deltaPicos:)``.
    public static let maximumGaussianVariance: UInt64 = 1 << 62

    /// Discrete Laplace noise for pure ε-DP: scale b = Δ/ε, held exactly as the reduced rational
    /// (Δ·10⁶)/epsilonMicros (at most 10¹⁵/1, at least 1/100 in the accepted ranges).
    ///
    /// A count or sum with L1 sensitivity Δ plus discrete Laplace noise of scale Δ/ε is ε-DP: the
    /// ratio of the probabilities of any output under neighbouring inputs is at most exp(ε).
    ///
    /// - Precondition: Δ in ``sensitivityRange`` and ε in ``epsilonMicrosRange``.
    public static func laplace(sensitivity: UInt64, epsilonMicros: UInt64) -> NoiseDescription {
        precondition(sensitivityRange.contains(sensitivity), "sensitivity must be 1…10^9")
        precondition(epsilonMicrosRange.contains(epsilonMicros), "ε must be 0.001…100")
        let (numerator, overflow) = sensitivity.multipliedReportingOverflow(by: 1_000_000)
        precondition(!overflow, "Δ ≤ 10^9 keeps Δ·10^6 below 2^64")
        let divisor = greatestCommonDivisor(numerator, epsilonMicros)
        var description = NoiseDescription(
            mechanism: .laplace, sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: 0,
            scaleNumerator: numerator / divisor, scaleDenominator: epsilonMicros / divisor, halfWidth95: 0)
        description.halfWidth95 = description.halfWidth(coverage: 0.95)
        return description
    }

    /// Discrete Gaussian noise for (ε, δ)-DP, calibrated through zero-concentrated DP.
    ///
    /// The discrete Gaussian with variance parameter σ² added to a value of L2 sensitivity Δ is
    /// ρ-zCDP with ρ = Δ²/(2σ²) (Canonne, Kamath & Steinke 2020, Theorem 4), and ρ-zCDP implies
    /// (ρ + 2√(ρ·L), δ)-DP with L = ln(1/δ) (Bun & Steinke 2016, Proposition 1.3). Solving
    /// ρ + 2√(ρL) = ε, a quadratic in √ρ, gives √ρ = √(L + ε) − √L = ε / (√(L + ε) + √L) (the second
    /// form avoids cancellation), hence σ² = Δ²/(2ρ).
    ///
    /// That σ² is computed in floating point (the choice of σ is not ledger state), multiplied by
    /// 1 + 10⁻⁹ to cover rounding in log, sqrt and division (each well below 10⁻¹⁵ relative), and
    /// stored rounded up as a/b with b a power of two chosen so that 2²⁹ ≤ a ≤ 2³⁰ (or b = 1 when
    /// σ² ≥ 2²⁹). The stored variance is therefore never below the one the guarantee needs, so the
    /// released noise is at least as private as claimed, and at most 3·10⁻⁹ above it (relative).
    /// Keeping a near 2³⁰ lets the sampler's acceptance test, whose denominator is about 8a², run
    /// in 64-bit arithmetic for σ ≥ 1.
    ///
    /// - Precondition: Δ, ε, δ in their ranges and
    ///   ``canCalibrateGaussian(sensitivity:epsilonMicros:deltaPicos:)`` (σ² ≤ 2⁶²).
    public static func gaussian(sensitivity: UInt64, epsilonMicros: UInt64, deltaPicos: UInt64) -> NoiseDescription {
        precondition(deltaPicosRange.contains(deltaPicos), "δ must be 10^-12…10^-2")
        precondition(canCalibrateGaussian(sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos),
                     "σ² exceeds 2^62: sensitivity too large for this ε and δ")
        let variance = gaussianVariance(sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos)
            * (1 + 1e-9)
        let shift = min(62, max(0, 29 - Int(variance.exponent)))
        let scaled = (variance * Double(sign: .plus, exponent: shift, significand: 1)).rounded(.up)
        var numerator = UInt64(scaled)
        var denominator = UInt64(1) << shift
        let common = min(numerator.trailingZeroBitCount, shift)
        numerator >>= common
        denominator >>= common
        var description = NoiseDescription(
            mechanism: .gaussian, sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos,
            scaleNumerator: numerator, scaleDenominator: denominator, halfWidth95: 0)
        description.halfWidth95 = description.halfWidth(coverage: 0.95)
        return description
    }

    /// Whether ``gaussian(sensitivity:epsilonMicros:deltaPicos:)`` accepts these parameters: each
    /// within its range, and the calibrated σ² at most ``maximumGaussianVariance``. (At ε = 0.001 and
    /// δ = 10⁻¹² that allows Δ up to about 2.9·10⁵; at ε = 1 and δ = 10⁻⁹ up to about 3.3·10⁸.)
    public static func canCalibrateGaussian(sensitivity: UInt64, epsilonMicros: UInt64, deltaPicos: UInt64) -> Bool {
        guard sensitivityRange.contains(sensitivity), epsilonMicrosRange.contains(epsilonMicros),
              deltaPicosRange.contains(deltaPicos) else { return false }
        let variance = gaussianVariance(sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos)
        return variance * (1 + 1e-9) <= Double(maximumGaussianVariance)
    }

    /// σ² = Δ²/(2ρ) with √ρ = ε / (√(L + ε) + √L), L = ln(1/δ), before any rounding.
    static func gaussianVariance(sensitivity: UInt64, epsilonMicros: UInt64, deltaPicos: UInt64) -> Double {
        let epsilon = Double(epsilonMicros) / 1e6
        let logInverseDelta = -log(Double(deltaPicos) / 1e12)
        let rootRho = epsilon / ((logInverseDelta + epsilon).squareRoot() + logInverseDelta.squareRoot())
        let sensitivity = Double(sensitivity)
        return sensitivity * sensitivity / (2 * rootRho * rootRho)
    }

    /// One exact noise sample from this distribution (integer arithmetic only).
    ///
    /// - Precondition: the parameters are those of ``laplace(sensitivity:epsilonMicros:)`` or
    ///   ``gaussian(sensitivity:epsilonMicros:deltaPicos:)`` (see the sampler's preconditions in
    ///   ``ExactSampler``).
    public func sample(using generator: inout some RandomNumberGenerator) -> Int64 {
        switch mechanism {
        case .laplace:
            ExactSampler.discreteLaplace(
                scaleNumerator: scaleNumerator, scaleDenominator: scaleDenominator, using: &generator)
        case .gaussian:
            ExactSampler.discreteGaussian(
                varianceNumerator: scaleNumerator, varianceDenominator: scaleDenominator, using: &generator)
        }
    }
}

private func greatestCommonDivisor(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
