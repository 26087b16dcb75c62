/// Which noise distribution a differentially private release used.
public enum NoiseMechanism: UInt8, Sendable, Hashable, Codable, CaseIterable {
    /// Discrete Laplace (two-sided geometric): P(k) ∝ exp(−|k|/b), pure ε-DP with b = Δ/ε.
    case laplace = 1
    /// Discrete Gaussian: P(k) ∝ exp(−k²/(2σ²)), (ε, δ)-DP through zero-concentrated DP.
    case gaussian = 2

    public var name: String {
        switch self {
        case .laplace: "laplace"
        case .gaussian: "gaussian"
        }
    }

    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}

/// How a released value was perturbed: enough for a reader to judge its accuracy, and stored on
/// the ledger with the value. Integers only (ledger state never holds floating point).
///
/// `scaleNumerator / scaleDenominator` is the Laplace scale b (= Δ/ε) or the Gaussian variance σ².
public struct NoiseDescription: BinaryCodable, Hashable, Sendable {
    public var mechanism: NoiseMechanism
    /// Largest change of the exact value when one device is added or removed (L1 for Laplace, L2 for Gaussian).
    public var sensitivity: UInt64
    /// ε spent on this value, in millionths.
    public var epsilonMicros: UInt64
    /// δ spent on this value, in units of 10⁻¹² (0 for Laplace without partition selection).
    public var deltaPicos: UInt64
    public var scaleNumerator: UInt64
    public var scaleDenominator: UInt64
    /// The exact value lies within ± this of the released one with probability ≥ 95 %.
    public var halfWidth95: UInt64

    public init(mechanism: NoiseMechanism, sensitivity: UInt64, epsilonMicros: UInt64, deltaPicos: UInt64,
                scaleNumerator: UInt64, scaleDenominator: UInt64, halfWidth95: UInt64) {
        self.mechanism = mechanism
        self.sensitivity = sensitivity
        self.epsilonMicros = epsilonMicros
        self.deltaPicos = deltaPicos
        self.scaleNumerator = scaleNumerator
        self.scaleDenominator = scaleDenominator
        self.halfWidth95 = halfWidth95
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(mechanism.rawValue)
        writer.write(sensitivity)
        writer.write(epsilonMicros)
        writer.write(deltaPicos)
        writer.write(scaleNumerator)
        writer.write(scaleDenominator)
        writer.write(halfWidth95)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard let mechanism = NoiseMechanism(rawValue: try reader.readUInt8("noise mechanism")) else {
            throw LedgerError(.malformedEncoding, "noise: unknown mechanism")
        }
        self.mechanism = mechanism
        sensitivity = try reader.readUInt64("noise sensitivity")
        epsilonMicros = try reader.readUInt64("noise epsilon")
        deltaPicos = try reader.readUInt64("noise delta")
        scaleNumerator = try reader.readUInt64("noise scale numerator")
        scaleDenominator = try reader.readUInt64("noise scale denominator")
        guard scaleDenominator > 0 else { throw LedgerError(.malformedEncoding, "noise: zero scale denominator") }
        halfWidth95 = try reader.readUInt64("noise half width")
    }
}

/// Decimal fixed point for privacy parameters: ε in millionths, δ in 10⁻¹² units. Parsed from and
/// printed as exact decimal text, never through floating point.
public enum FixedPoint {
    public static let epsilonDigits = 6
    public static let deltaDigits = 12

    /// `"0.25"` with 6 digits → 250000; nil for anything but plain decimal text that fits.
    public static func parse(_ text: String, digits: Int) -> UInt64? {
        var whole: UInt64 = 0
        var fraction: UInt64 = 0
        var fractionDigits = 0
        var seenPoint = false
        var seenDigit = false
        for character in text.utf8 {
            if character == UInt8(ascii: ".") {
                guard !seenPoint else { return nil }
                seenPoint = true
                continue
            }
            guard character >= UInt8(ascii: "0"), character <= UInt8(ascii: "9") else { return nil }
            seenDigit = true
            let digit = UInt64(character - UInt8(ascii: "0"))
            if seenPoint {
                guard fractionDigits < digits else {
                    if digit != 0 { return nil }
                    continue
                }
                fraction = fraction * 10 + digit
                fractionDigits += 1
            } else {
                let (shifted, o1) = whole.multipliedReportingOverflow(by: 10)
                let (added, o2) = shifted.addingReportingOverflow(digit)
                guard !o1, !o2 else { return nil }
                whole = added
            }
        }
        guard seenDigit else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        for _ in fractionDigits..<digits { fraction *= 10 }
        let (scaled, o1) = whole.multipliedReportingOverflow(by: scale)
        let (total, o2) = scaled.addingReportingOverflow(fraction)
        guard !o1, !o2 else { return nil }
        return total
    }

    /// 250000 with 6 digits → `"0.25"`.
    public static func format(_ value: UInt64, digits: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        let whole = value / scale
        var fraction = String(value % scale)
        guard fraction != "0" else { return String(whole) }
        fraction = String(repeating: "0", count: digits - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}
