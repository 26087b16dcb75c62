#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#else
import Crypto
#endif

/// A cryptographically secure random number generator for drawing differential-privacy noise.
///
/// Noise protects individuals only if nobody can predict it. There is no seed here: every word comes
/// straight from the operating system's CSPRNG (arc4random_buf on Linux and Apple platforms,
/// swift-crypto's key generation elsewhere), so neither a researcher nor an operator can ever learn or choose a seed,
/// and a released value cannot be "de-noised" by replaying the generator.
///
/// Bytes are fetched 4 KiB at a time, one CSPRNG call per 512 draws of `next()`, which keeps the
/// samplers fast (a discrete Laplace sample takes about ten draws).
///
/// Create one per release and keep it local; it is deliberately not `Sendable`, so one generator is
/// never shared between concurrent releases.
///
/// ```swift
/// var random = SecureRandom()
/// let noisy = exactCount + description.sample(using: &random)
/// ```
public struct SecureRandom: RandomNumberGenerator {
    /// Words per refill: 4 KiB.
    static let bufferWords = 512

    private var buffer: [UInt64]
    private var index: Int

    /// A generator whose first draw triggers the first refill.
    public init() {
        buffer = [UInt64](repeating: 0, count: Self.bufferWords)
        index = Self.bufferWords
    }

    /// The next 64 uniformly random bits.
    public mutating func next() -> UInt64 {
        if index == Self.bufferWords { refill() }
        defer { index += 1 }
        return buffer[index]
    }

    private mutating func refill() {
        buffer.withUnsafeMutableBytes(Self.fill)
        index = 0
    }

    #if canImport(Glibc) || canImport(Darwin)
    /// One arc4random_buf call for the whole buffer: the C library's CSPRNG (glibc ≥ 2.36 serves it
    /// from the kernel's getrandom(2), macOS from its kernel CSPRNG). swift-crypto reads the same
    /// kernel source on Linux, but through SystemRandomNumberGenerator eight bytes per system call,
    /// which measured 0.3 µs per draw here, more than the rest of a Laplace sample.
    private static func fill(_ destination: UnsafeMutableRawBufferPointer) {
        arc4random_buf(destination.baseAddress!, destination.count)
    }
    #else
    /// swift-crypto's key generation, which draws from the platform CSPRNG.
    private static func fill(_ destination: UnsafeMutableRawBufferPointer) {
        let key = SymmetricKey(size: SymmetricKeySize(bitCount: destination.count * 8))
        key.withUnsafeBytes { source in
            precondition(source.count == destination.count, "CSPRNG returned a short buffer")
            destination.copyMemory(from: source)
        }
    }
    #endif
}

@available(*, unavailable, message: "create one SecureRandom per release instead of sharing one")
extension SecureRandom: Sendable {}
