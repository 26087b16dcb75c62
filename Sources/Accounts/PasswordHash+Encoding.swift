public import LedgerCore

extension PasswordHash {
    /// The longest stored form read: far above any real one (about 110 characters), so that a
    /// garbled field is refused before anything is decoded.
    static let maximumEncodedLength = 512

    /// The stored form, `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`. This is what goes into the account
    /// row; it is not a secret in the way the password is, but it is kept out of logs all the same.
    public var encoded: String {
        "$scrypt$\(parameters)$\(Base64NoPadding.encode(salt))$\(Base64NoPadding.encode(hash))"
    }

    /// Reads a stored form. Refuses (`malformed_encoding`) anything that is not exactly
    /// `$scrypt$ln=<n>,r=<n>,p=<n>$<salt>$<hash>` with decimal parameters, unpadded standard Base64
    /// fields, a salt of 16 to 64 bytes and a hash of 32 to 64 bytes; and (`invalid_argument`)
    /// parameters beyond the bounds of ``Parameters``, before any memory is allocated for them.
    public init(parsing stored: String) throws(LedgerError) {
        guard stored.utf8.count <= Self.maximumEncodedLength else {
            throw LedgerError(.malformedEncoding, "a stored password hash has at most \(Self.maximumEncodedLength) bytes")
        }
        let fields = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count >= 2, fields[0].isEmpty, fields[1] == "scrypt" else {
            throw LedgerError(.malformedEncoding, "not an scrypt password hash: the stored form starts with $scrypt$")
        }
        guard fields.count == 5 else {
            throw LedgerError(.malformedEncoding,
                              "an scrypt password hash has the fields $scrypt$ln=…,r=…,p=…$salt$hash, this one has \(fields.count - 1)")
        }
        let parameters = try Parameters(logN: Self.number(fields[2], 0, "ln"),
                                        blockSize: Self.number(fields[2], 1, "r"),
                                        parallelism: Self.number(fields[2], 2, "p"))
        guard let salt = Base64NoPadding.decode(fields[3]) else {
            throw LedgerError(.malformedEncoding, "the salt of an scrypt password hash is not unpadded Base64")
        }
        guard (16...64).contains(salt.count) else {
            throw LedgerError(.malformedEncoding, "the salt of an scrypt password hash has 16 to 64 bytes, this one \(salt.count)")
        }
        guard let hash = Base64NoPadding.decode(fields[4]) else {
            throw LedgerError(.malformedEncoding, "the hash of an scrypt password hash is not unpadded Base64")
        }
        guard (32...64).contains(hash.count) else {
            throw LedgerError(.malformedEncoding, "the hash of an scrypt password hash has 32 to 64 bytes, this one \(hash.count)")
        }
        self.init(parameters: parameters, salt: salt, hash: hash)
    }

    /// The `position`th parameter of `ln=<n>,r=<n>,p=<n>`, which must be named `name`: 1 to 3
    /// decimal digits without a leading zero.
    private static func number(_ field: Substring, _ position: Int, _ name: String) throws(LedgerError) -> Int {
        let pairs = field.split(separator: ",", omittingEmptySubsequences: false)
        let expected = "scrypt parameters are ln=<n>,r=<n>,p=<n> in that order"
        guard pairs.count == 3 else { throw LedgerError(.malformedEncoding, expected) }
        let pair = pairs[position]
        guard pair.hasPrefix(name + "=") else { throw LedgerError(.malformedEncoding, expected) }
        let digits = pair.utf8.dropFirst(name.utf8.count + 1)
        guard (1...3).contains(digits.count), digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              digits.first != UInt8(ascii: "0") else {
            throw LedgerError(.malformedEncoding, "scrypt parameter \(name) is not a decimal number from 1 to 999")
        }
        return digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }
}
