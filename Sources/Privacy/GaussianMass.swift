#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unnormalised masses of the discrete Gaussian, f(j) = exp(−j²/(2σ²)), in floating point.
///
/// For σ ≤ 10⁴ tails are summed term by term until the rest is provably below 2⁻⁶⁰ of the sum
/// (for j ≥ 0 consecutive terms shrink by r_j = exp(−(2j + 1)/(2σ²)) or faster, so the rest after
/// f(j) is at most f(j)·r_j/(1 − r_j)); that stops near 9σ instead of summing to ±40σ. For larger σ
/// term-by-term sums get slow, and the Euler–Maclaurin formula
/// Σ_{j ≥ k} f(j) = σ√(π/2)·erfc(k/(σ√2)) + f(k)/2 + k·f(k)/(12σ²) + O(f'''(k)) is exact to double
/// precision (the next term is a factor of order 1/σ⁴ smaller).
struct GaussianMass {
    /// σ above which the Euler–Maclaurin form replaces direct summation.
    static let analyticSigma = 10_000.0

    let variance: Double
    let sigma: Double
    /// Σ over all integers j of f(j) = 1 + 2·Σ_{j ≥ 1} f(j).
    private(set) var total = 0.0

    init(variance: Double) {
        self.variance = variance
        sigma = variance.squareRoot()
        total = 1 + 2 * tail(from: 1)
    }

    var isAnalytic: Bool { sigma > Self.analyticSigma }

    /// f(j) = exp(−j²/(2σ²)).
    func term(_ j: Double) -> Double {
        exp(-j * j / (2 * variance))
    }

    /// Σ_{j ≥ k} f(j), for k ≥ 0.
    func tail(from k: Double) -> Double {
        precondition(k >= 0, "tail sums start at a non-negative index")
        if isAnalytic {
            let head = term(k)
            return sigma * (Double.pi / 2).squareRoot() * erfc(k / (sigma * 2.0.squareRoot()))
                + head / 2 + k * head / (12 * variance)
        }
        var sum = 0.0
        var j = k
        while true {
            let current = term(j)
            sum += current
            let exponent = -(2 * j + 1) / (2 * variance)
            if current == 0 || current * exp(exponent) / -expm1(exponent) <= sum * 0x1p-60 { return sum }
            j += 1
        }
    }
}
