public import LedgerCore

extension PasswordHash {
    /// scrypt's cost parameters: N = 2^``logN`` (memory and time), ``blockSize`` r and
    /// ``parallelism`` p. One hash takes about 128·N·r bytes of memory: 32 MiB for the default.
    ///
    /// Bounded, so that a stored hash (or a configuration) cannot make a login allocate gigabytes
    /// or take minutes: ln ≤ 20, r ≤ 16, p ≤ 4, and 128·N·r ≤ 1 GiB.
    public struct Parameters: Sendable, Hashable, CustomStringConvertible {
        /// The base-2 logarithm of N, the `ln` of the stored form.
        public let logN: Int
        /// r, the `r` of the stored form.
        public let blockSize: Int
        /// p, the `p` of the stored form.
        public let parallelism: Int

        /// N = 2^15, r = 8, p = 1: 32 MiB and about 0.1 s per hash (release build, one core).
        /// (OWASP's cheat sheet pairs N = 2^15, r = 8 with p = 3 as equal to its N = 2^17 minimum;
        /// p = 1 keeps a login under a tenth of a second and a burst of logins within memory.)
        public static let `default` = Parameters(checkedLogN: 15, blockSize: 8, parallelism: 1)

        public static let maximumLogN = 20
        public static let maximumBlockSize = 16
        public static let maximumParallelism = 4
        /// The most memory one hash may need, in bytes.
        public static let maximumMemory = 1 << 30

        /// Refuses (`invalid_argument`) parameters outside the bounds, or that scrypt itself refuses
        /// (ln ≥ 1, N < 2^(16·r)).
        public init(logN: Int, blockSize: Int = 8, parallelism: Int = 1) throws(LedgerError) {
            guard (1...Self.maximumLogN).contains(logN) else {
                throw LedgerError(.invalidArgument, "scrypt ln=\(logN) is outside 1...\(Self.maximumLogN)")
            }
            guard (1...Self.maximumBlockSize).contains(blockSize) else {
                throw LedgerError(.invalidArgument, "scrypt r=\(blockSize) is outside 1...\(Self.maximumBlockSize)")
            }
            guard (1...Self.maximumParallelism).contains(parallelism) else {
                throw LedgerError(.invalidArgument, "scrypt p=\(parallelism) is outside 1...\(Self.maximumParallelism)")
            }
            guard logN < 16 * blockSize else {
                throw LedgerError(.invalidArgument, "scrypt needs N < 2^(16·r): ln=\(logN) is too large for r=\(blockSize)")
            }
            guard 128 * blockSize << logN <= Self.maximumMemory else {
                throw LedgerError(.invalidArgument, "scrypt ln=\(logN),r=\(blockSize) needs more than 1 GiB per hash")
            }
            self.init(checkedLogN: logN, blockSize: blockSize, parallelism: parallelism)
        }

        private init(checkedLogN logN: Int, blockSize: Int, parallelism: Int) {
            self.logN = logN
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// The memory one hash needs, in bytes (128·N·r).
        public var memoryBytes: Int { 128 * blockSize << logN }

        /// Whether any of N, r and p is lower than in `other`.
        public func isWeaker(than other: Parameters) -> Bool {
            logN < other.logN || blockSize < other.blockSize || parallelism < other.parallelism
        }

        /// The stored form: `ln=15,r=8,p=1`.
        public var description: String { "ln=\(logN),r=\(blockSize),p=\(parallelism)" }
    }
}
