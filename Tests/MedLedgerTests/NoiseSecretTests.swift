import Crypto
import Foundation
import Testing
import LedgerCore
import Contracts
@testable import Privacy
import Research
import Node

/// The network noise secret (wrapping, commitment, seeds) and the deterministic noise stream.
@Suite("Noise secret and noise stream")
struct NoiseSecretTests {
    @Test("NoiseStream: HMAC-SHA256 counter-mode known answer")
    func streamKnownAnswer() {
        var stream = NoiseStream(seed: Array(0..<32))
        let words = (0..<8).map { _ in stream.next() }
        #expect(words == [0xa42c_8d61_fea0_e71c, 0xf565_8bcb_0577_50b9, 0x91d0_2a68_db39_7a5e, 0xcb1b_eb31_f83e_c389,
                          0x030a_4efe_29f7_82d5, 0xac0e_009e_2a07_618c, 0x8f86_3286_dc3e_e47f, 0xe27b_d134_91bd_2096])
    }

    @Test("commitment and seed known answers")
    func secretKnownAnswers() {
        let secret = NoiseSecret(bytes: [UInt8](repeating: 7, count: 32))
        #expect(secret.commitment(epoch: 1).hex == "bdb04876430fd8bb0db44db5a7aa4b1aa84ded1b5c0a3efe23efbb421da90f0a")
        let seed = secret.seed(network: .zero, epoch: 1, question: Hash256(bytes: [UInt8](repeating: 1, count: 32))!)
        #expect(Hash256(bytes: seed)!.hex == "587ae9dc4d9bd93f39548bbd0f6393e4e3b38e9da5f32b06b2827291d81cc430")
        #expect("\(secret)" == "NoiseSecret(redacted)")
    }

    @Test("the exact samplers keep their distributions on the noise stream (χ² at 0.999)",
          arguments: [(NoiseMechanism.laplace, UInt64(5), UInt64(2)), (.gaussian, 7, 3),
                      (.gaussian, NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 1_000_000, deltaPicos: 1_000_000).scaleNumerator,
                       NoiseDescription.gaussian(sensitivity: 1, epsilonMicros: 1_000_000, deltaPicos: 1_000_000).scaleDenominator)])
    func samplersOnTheStream(mechanism: NoiseMechanism, numerator: UInt64, denominator: UInt64) {
        let noise = Statistics.noise(mechanism, numerator, denominator)
        var stream = NoiseStream(seed: Array(Hash256.of(Array("χ² \(numerator)/\(denominator)".utf8)).bytes))
        let histogram = Statistics.histogram(count: 60_000) { noise.sample(using: &stream) }
        let (statistic, degrees) = Statistics.chiSquare(histogram, against: noise)
        #expect(degrees >= 8)
        #expect(statistic < Statistics.chiSquareQuantile999(degreesOfFreedom: degrees), "χ² \(statistic) with \(degrees) df")
    }

    static func node() -> (Hash256, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        return (Hash256.of(Array(key.publicKey.rawRepresentation)), key)
    }

    @Test("wrapped to each node: round trip, not a recipient, tampering, wrong key")
    func wrapping() throws {
        let (a, keyA) = Self.node()
        let (b, keyB) = Self.node()
        let (outsider, outsiderKey) = Self.node()
        let secret = NoiseSecret()
        let record = try secret.wrapped(epoch: 3, to: [(a, keyA.publicKey), (b, keyB.publicKey)])
        try record.validate()
        #expect(try NoiseKeyEpoch(decoding: record.encoded) == record)
        let unwrappedA = try NoiseSecret.unwrap(record, fingerprint: a, privateKey: keyA)
        let unwrappedB = try NoiseSecret.unwrap(record, fingerprint: b, privateKey: keyB)
        #expect(unwrappedA.commitment(epoch: 3) == secret.commitment(epoch: 3))
        #expect(unwrappedA.seed(network: .zero, epoch: 3, question: .zero) == unwrappedB.seed(network: .zero, epoch: 3, question: .zero))

        func code(_ body: () throws(LedgerError) -> NoiseSecret) -> LedgerError.Code? {
            do throws(LedgerError) { _ = try body(); return nil } catch { return error.code }
        }
        // Not a recipient; a recipient's box opened with another key.
        #expect(code { () throws(LedgerError) in try NoiseSecret.unwrap(record, fingerprint: outsider, privateKey: outsiderKey) } == .forbidden)
        #expect(code { () throws(LedgerError) in try NoiseSecret.unwrap(record, fingerprint: a, privateKey: outsiderKey) } == .verificationFailed)
        // A flipped bit in the box, and a box moved to another epoch (the epoch is authenticated).
        var tampered = record
        let index = tampered.wrapped.firstIndex { $0.recipient == a }!
        tampered.wrapped[index].sealed[20] ^= 1
        #expect(code { () throws(LedgerError) in try NoiseSecret.unwrap(tampered, fingerprint: a, privateKey: keyA) } == .verificationFailed)
        var moved = record
        moved.epoch = 4
        #expect(code { () throws(LedgerError) in try NoiseSecret.unwrap(moved, fingerprint: a, privateKey: keyA) } == .verificationFailed)
        // A valid box of another secret under this record's commitment.
        var swapped = record
        swapped.wrapped[index] = try NoiseSecret().wrapped(epoch: 3, to: [(a, keyA.publicKey)]).wrapped[0]
        #expect(code { () throws(LedgerError) in try NoiseSecret.unwrap(swapped, fingerprint: a, privateKey: keyA) } == .verificationFailed)
    }

    @Test("different secrets, questions or epochs give unrelated seeds")
    func seedsSeparate() {
        let one = NoiseSecret(), two = NoiseSecret()
        let question = Hash256.of([1])
        let seed = one.seed(network: .zero, epoch: 1, question: question)
        #expect(seed != two.seed(network: .zero, epoch: 1, question: question))
        #expect(seed != one.seed(network: .zero, epoch: 2, question: question))
        #expect(seed != one.seed(network: .zero, epoch: 1, question: Hash256.of([2])))
        #expect(seed != one.seed(network: Hash256.of([3]), epoch: 1, question: question))
    }
}

extension NoiseSecretTests {
    @Test("formats: GenesisConfig with and without a noise key, rotateNoiseKey proposals")
    func formats() throws {
        let (a, key) = Self.node()
        let record = try NoiseSecret().wrapped(epoch: 1, to: [(a, key.publicKey)])
        #expect(record.encoded.count == 4 + 32 + 4 + 157)
        let without = GenesisConfig(networkName: "n", config: NetworkConfig(), organizations: [], members: [])
        var with = without
        with.noiseKey = record
        #expect(try GenesisConfig(decoding: without.encoded) == without)
        #expect(try GenesisConfig(decoding: with.encoded) == with)
        #expect(with.encoded == without.encoded + record.encoded)
        let action = ProposalAction.rotateNoiseKey(record)
        #expect(action.encoded.first == 6)
        #expect(try ProposalAction(decoding: action.encoded) == action)
    }
}
