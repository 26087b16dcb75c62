import ArgumentParser
import Testing
import LedgerCore
import Privacy
@testable import medledger

/// `medledger privacy sample`: option validation and calibration (printing is left to the binary).
@Suite("Privacy command")
struct PrivacyCommandTests {
    @Test("calibrates as the library does, with δ = 10⁻⁹ by default for the Gaussian")
    func calibration() throws {
        let laplace = try PrivacyCommand.Sample.parse(["--mechanism", "laplace", "--epsilon", "0.25", "--sensitivity", "3", "--n", "5"])
        #expect(try laplace.noise() == NoiseDescription.laplace(sensitivity: 3, epsilonMicros: 250_000))
        let gaussian = try PrivacyCommand.Sample.parse(["--mechanism", "gaussian", "--epsilon", "0.5", "--sensitivity", "1", "--n", "5"])
        #expect(try gaussian.noise() == NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 500_000, deltaPicos: 1_000))
    }

    @Test("rejects out-of-range values with a message naming the option", arguments: [
        (["--mechanism", "cauchy", "--epsilon", "0.5", "--sensitivity", "1", "--n", "5"], "--mechanism"),
        (["--mechanism", "laplace", "--epsilon", "0.0009", "--sensitivity", "1", "--n", "5"], "--epsilon"),
        (["--mechanism", "laplace", "--epsilon", "100.5", "--sensitivity", "1", "--n", "5"], "--epsilon"),
        (["--mechanism", "laplace", "--epsilon", "1e-3", "--sensitivity", "1", "--n", "5"], "--epsilon"),
        (["--mechanism", "laplace", "--epsilon", "0.5", "--sensitivity", "0", "--n", "5"], "--sensitivity"),
        (["--mechanism", "laplace", "--epsilon", "0.5", "--sensitivity", "1", "--n", "0"], "--n"),
        (["--mechanism", "laplace", "--epsilon", "0.5", "--sensitivity", "1", "--n", "5", "--delta", "0.001"], "--delta"),
        (["--mechanism", "gaussian", "--epsilon", "0.5", "--sensitivity", "1", "--n", "5", "--delta", "0.02"], "--delta"),
        (["--mechanism", "gaussian", "--epsilon", "0.001", "--sensitivity", "1000000000", "--n", "5"], "--sensitivity"),
    ])
    func validation(arguments: [String], option: String) {
        do {
            _ = try PrivacyCommand.Sample.parse(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(PrivacyCommand.Sample.message(for: error).hasPrefix(option))
        }
    }
}
