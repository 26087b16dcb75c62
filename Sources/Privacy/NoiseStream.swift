public import Crypto

/// A deterministic random-bit generator for differential-privacy noise that every node can
/// reproduce: HMAC-SHA256 in counter mode under a 32-byte seed.
///
/// Block i (i = 0, 1, …) is HMAC-SHA256(seed, "medledger/noise-stream/v1" ‖ u64be(i)); its 32 bytes
/// are four 64-bit words, read big-endian, in order. ``next()`` returns the words one after the
/// other. HMAC-SHA256 is a PRF, so for a seed unknown to the reader the words are
/// indistinguishable from uniform; the exact samplers (``ExactSampler``) then give exactly their
/// distribution up to that indistinguishability.
///
/// The seed is derived from the network noise secret and the question (see the node's research
/// oracle and docs/privacy.md): whoever does not hold that secret cannot predict the noise, and
/// whoever holds it gets the same noise for the same question, on every node, at every retry.
///
/// ```swift
/// var stream = NoiseStream(seed: seed)
/// let noise = description.sample(using: &stream)
/// ```
public struct NoiseStream: RandomNumberGenerator {
    /// The label that starts every block's HMAC input.
    public static let label = Array("medledger/noise-stream/v1".utf8)

    /// HMAC keyed by the seed with the label absorbed: each block copies it and adds the counter.
    private let keyed: HMAC<SHA256>
    private var counter: UInt64 = 0
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var index = 4

    /// - Precondition: `seed` is 32 bytes.
    public init(seed: [UInt8]) {
        precondition(seed.count == 32, "a noise stream seed is 32 bytes")
        var keyed = HMAC<SHA256>(key: SymmetricKey(data: seed))
        keyed.update(data: Self.label)
        self.keyed = keyed
    }

    public mutating func next() -> UInt64 {
        if index == 4 { refill() }
        defer { index += 1 }
        switch index {
        case 0: return words.0
        case 1: return words.1
        case 2: return words.2
        default: return words.3
        }
    }

    private mutating func refill() {
        var mac = keyed
        withUnsafeBytes(of: counter.bigEndian) { mac.update(data: $0) }
        counter += 1
        words = mac.finalize().withUnsafeBytes { block in
            (block.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian,
             block.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian,
             block.loadUnaligned(fromByteOffset: 16, as: UInt64.self).bigEndian,
             block.loadUnaligned(fromByteOffset: 24, as: UInt64.self).bigEndian)
        }
        index = 0
    }
}

@available(*, unavailable, message: "create one NoiseStream per release")
extension NoiseStream: Sendable {}
