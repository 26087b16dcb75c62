public import LedgerCore
internal import Crypto
internal import _CryptoExtras

/// A password hashed with scrypt (RFC 7914), in a self-describing PHC-style stored form:
///
///     $scrypt$ln=15,r=8,p=1$<salt: unpadded Base64>$<hash: unpadded Base64>
///
/// with a fresh 16-byte salt and a 32-byte hash. The stored form names its own parameters, so
/// hashes made under older parameters still verify, and ``needsRehash(current:)`` says when to
/// replace one at the next successful login.
///
/// ```swift
/// let stored = try PasswordHash(hashing: password).encoded          // into the account row
/// guard try PasswordHash.verify(typed, against: stored) else { … }  // at login
/// if try PasswordHash.needsRehash(stored) { /* hash `typed` again and store it */ }
/// ```
///
/// Passwords are normalised to Unicode NFKC and hashed as UTF-8 (NIST SP 800-63B §5.1.1.2), so a
/// password typed as precomposed `é` or as `e` + combining acute, or with full-width letters, is the
/// same password. `description` names the parameters only, never the salt or the hash.
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The length of a fresh salt.
    public static let saltByteCount = 16
    /// The length of a fresh hash.
    public static let hashByteCount = 32

    /// The scrypt parameters this hash was made with.
    public let parameters: Parameters
    let salt: [UInt8]
    let hash: [UInt8]

    /// Hashes `password` (after NFKC) with a fresh random salt.
    public init(hashing password: String, parameters: Parameters = .default) throws(LedgerError) {
        let salt = SymmetricKey(size: SymmetricKeySize(bitCount: Self.saltByteCount * 8)).withUnsafeBytes { Array($0) }
        try self.init(hashing: password, salt: salt, parameters: parameters)
    }

    /// Hashes `password` with a given salt (tests; everything else takes a fresh one).
    init(hashing password: String, salt: [UInt8], parameters: Parameters) throws(LedgerError) {
        self.parameters = parameters
        self.salt = salt
        self.hash = try Self.derive(password: password, salt: salt, parameters: parameters, outputByteCount: Self.hashByteCount)
    }

    init(parameters: Parameters, salt: [UInt8], hash: [UInt8]) {
        self.parameters = parameters
        self.salt = salt
        self.hash = hash
    }

    /// Whether `password` is the one this hash was made from: it is hashed again with the stored
    /// parameters and salt and compared in constant time. A wrong password is `false`; only a
    /// failure of scrypt itself (memory) throws.
    public func verify(_ password: String) throws(LedgerError) -> Bool {
        let candidate = try Self.derive(password: password, salt: salt, parameters: parameters, outputByteCount: hash.count)
        return ConstantTime.equal(candidate, hash)
    }

    /// Whether `password` matches the stored form `stored`. Throws when `stored` is not a stored
    /// password hash or names parameters beyond ``Parameters`` bounds (see ``init(parsing:)``).
    public static func verify(_ password: String, against stored: String) throws(LedgerError) -> Bool {
        try PasswordHash(parsing: stored).verify(password)
    }

    /// Whether this hash was made with weaker parameters than `current` (any of N, r or p lower),
    /// and should be replaced by a new hash of the password at the next successful login.
    public func needsRehash(current: Parameters = .default) -> Bool {
        parameters.isWeaker(than: current)
    }

    /// ``needsRehash(current:)`` of a stored form.
    public static func needsRehash(_ stored: String, current: Parameters = .default) throws(LedgerError) -> Bool {
        try PasswordHash(parsing: stored).needsRehash(current: current)
    }

    public var description: String { "PasswordHash(scrypt \(parameters), redacted)" }
    public var debugDescription: String { description }

    public static func == (lhs: PasswordHash, rhs: PasswordHash) -> Bool {
        lhs.parameters == rhs.parameters && ConstantTime.equal(lhs.salt, rhs.salt) && ConstantTime.equal(lhs.hash, rhs.hash)
    }

    /// scrypt of the NFKC form of `password` as UTF-8.
    static func derive(password: String, salt: [UInt8], parameters: Parameters, outputByteCount: Int) throws(LedgerError) -> [UInt8] {
        try derive(password: Array(password.nfkc.utf8), salt: salt, logN: parameters.logN, blockSize: parameters.blockSize,
                   parallelism: parameters.parallelism, outputByteCount: outputByteCount)
    }

    /// Raw scrypt (RFC 7914) with N = 2^`logN`, without the bounds of ``Parameters`` (its
    /// known-answer vectors use p = 16), but with RFC 7914's own: N > 1 and N < 2^(16·r), r ≥ 1,
    /// p ≥ 1, and a positive output length.
    package static func derive(password: [UInt8], salt: [UInt8], logN: Int, blockSize: Int, parallelism: Int,
                               outputByteCount: Int) throws(LedgerError) -> [UInt8] {
        guard blockSize >= 1, parallelism >= 1, logN >= 1, logN <= 40, logN < 16 * blockSize, outputByteCount >= 1 else {
            throw LedgerError(.invalidArgument, "scrypt parameters ln=\(logN),r=\(blockSize),p=\(parallelism) are outside RFC 7914's ranges")
        }
        do {
            let key = try KDF.Scrypt.deriveKey(from: password, salt: salt, outputByteCount: outputByteCount,
                                               rounds: 1 << logN, blockSize: blockSize, parallelism: parallelism)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw LedgerError(.internal, "scrypt failed for ln=\(logN),r=\(blockSize),p=\(parallelism) (out of memory?)")
        }
    }
}
