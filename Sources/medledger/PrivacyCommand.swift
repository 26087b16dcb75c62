import ArgumentParser
import Foundation
import LedgerCore
import Privacy

struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "Inspect the differential-privacy noise mechanisms.",
        subcommands: [Sample.self]
    )
}

extension PrivacyCommand {
    /// Raw noise from the production samplers and generator, for auditors' own statistical tests.
    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print raw noise samples exactly as releases draw them, for statistical audit.",
            discussion: """
                Calibrates the mechanism as the research contract does (Laplace: scale Δ/ε; Gaussian: \
                variance Δ²/(2ρ) through zero-concentrated DP) and draws N samples with the exact integer \
                samplers from the operating system's CSPRNG. Prints one sample per line, or with --json \
                the calibration (scale as an exact rational) and the samples.

                Examples:
                  medledger privacy sample --mechanism laplace --epsilon 0.5 --sensitivity 1 --n 100000
                  medledger privacy sample --mechanism gaussian --epsilon 1 --delta 0.000001 --sensitivity 3 --n 1000 --json
                """
        )

        @Option(name: .long, help: "laplace or gaussian.")
        var mechanism: String

        @Option(name: .long, help: "ε as a decimal, 0.001 to 100 (at most 6 decimals).")
        var epsilon: String

        @Option(name: .long, help: "Sensitivity Δ of the released value, 1 to 1000000000.")
        var sensitivity: UInt64

        @Option(name: .customLong("n"), help: "Number of samples, 1 to 100000000.")
        var count: Int

        @Option(name: .long, help: "δ as a decimal, 0.000000000001 to 0.01 (gaussian only; default 0.000000001).")
        var delta: String?

        @Flag(name: .long, help: "Print one JSON object with the calibration and the samples.")
        var json = false

        struct Report: Encodable {
            var mechanism: String
            var sensitivity: UInt64
            var epsilon: String
            var delta: String
            var scaleNumerator: UInt64
            var scaleDenominator: UInt64
            var halfWidth95: UInt64
            var standardDeviation: Double
            var samples: [Int64]
        }

        func validate() throws {
            _ = try noise()
            guard (1...100_000_000).contains(count) else { throw ValidationError("--n must be 1 to 100000000") }
        }

        func run() throws {
            let noise = try noise()
            var random = SecureRandom()
            if json {
                let samples = (0..<count).map { _ in noise.sample(using: &random) }
                Output.json(Report(
                    mechanism: noise.mechanism.name, sensitivity: noise.sensitivity,
                    epsilon: FixedPoint.format(noise.epsilonMicros, digits: FixedPoint.epsilonDigits),
                    delta: FixedPoint.format(noise.deltaPicos, digits: FixedPoint.deltaDigits),
                    scaleNumerator: noise.scaleNumerator, scaleDenominator: noise.scaleDenominator,
                    halfWidth95: noise.halfWidth95, standardDeviation: noise.standardDeviation, samples: samples))
                return
            }
            var text = ""
            text.reserveCapacity(1 << 16)
            for index in 0..<count {
                text += String(noise.sample(using: &random))
                text += "\n"
                if text.utf8.count >= 1 << 16 || index == count - 1 {
                    FileHandle.standardOutput.write(Data(text.utf8))
                    text.removeAll(keepingCapacity: true)
                }
            }
        }

        /// The calibrated mechanism, or a ValidationError naming the option that is out of range.
        func noise() throws -> NoiseDescription {
            guard let kind = NoiseMechanism(name: mechanism) else {
                throw ValidationError("--mechanism must be laplace or gaussian")
            }
            guard let epsilonMicros = FixedPoint.parse(epsilon, digits: FixedPoint.epsilonDigits),
                  NoiseDescription.epsilonMicrosRange.contains(epsilonMicros) else {
                throw ValidationError("--epsilon must be a decimal from 0.001 to 100 with at most 6 decimals")
            }
            guard NoiseDescription.sensitivityRange.contains(sensitivity) else {
                throw ValidationError("--sensitivity must be 1 to 1000000000")
            }
            switch kind {
            case .laplace:
                guard delta == nil else { throw ValidationError("--delta applies to the gaussian mechanism only") }
                return .laplace(sensitivity: sensitivity, epsilonMicros: epsilonMicros)
            case .gaussian:
                guard let deltaPicos = FixedPoint.parse(delta ?? "0.000000001", digits: FixedPoint.deltaDigits),
                      NoiseDescription.deltaPicosRange.contains(deltaPicos) else {
                    throw ValidationError("--delta must be a decimal from 0.000000000001 to 0.01 with at most 12 decimals")
                }
                guard NoiseDescription.canCalibrateGaussian(
                    sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos) else {
                    throw ValidationError("--sensitivity is too large for this ε and δ: the Gaussian variance would exceed 2^62")
                }
                return .gaussian(sensitivity: sensitivity, epsilonMicros: epsilonMicros, deltaPicos: deltaPicos)
            }
        }
    }
}
