import Crypto
import Testing
import LedgerCore
@testable import Accounts

/// The pure building blocks of web accounts: Base32, TOTP/HOTP, scrypt password hashes and the
/// NIST SP 800-63B password policy. Every expected value is a published vector (RFC 4648, 4226,
/// 6238, 7914) or was computed independently with Python's hashlib, hmac, base64 and urllib.
@Suite("Accounts primitives")
struct AccountsPrimitivesTests {
    // MARK: Base32

    @Test("Base32: RFC 4648 §10 vectors, padded and unpadded, any case, spaces ignored",
          arguments: [("", ""), ("f", "MY======"), ("fo", "MZXQ===="), ("foo", "MZXW6==="), ("foob", "MZXW6YQ="),
                      ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI======")])
    func base32Vectors(plain: String, encoded: String) throws {
        let bytes = Array(plain.utf8)
        let unpadded = String(encoded.prefix { $0 != "=" })
        #expect(Base32.encode(bytes, padding: true) == encoded)
        #expect(Base32.encode(bytes) == unpadded)
        #expect(try Base32.decode(encoded) == bytes)
        #expect(try Base32.decode(unpadded) == bytes)
        #expect(try Base32.decode(encoded.lowercased()) == bytes)
        let spaced = unpadded.enumerated().map { $0.offset % 4 == 3 ? "\($0.element) " : "\($0.element)" }.joined()
        #expect(try Base32.decode(" " + spaced + " ") == bytes)
    }

    @Test("Base32: round trip of every length from 0 to 40 bytes")
    func base32RoundTrip() throws {
        for length in 0...40 {
            let bytes = Array(SHA256.hash(data: [UInt8(length)])) + Array(SHA256.hash(data: [UInt8(length), 1]))
            let prefix = Array(bytes.prefix(length))
            #expect(try Base32.decode(Base32.encode(prefix)) == prefix)
            #expect(try Base32.decode(Base32.encode(prefix, padding: true)) == prefix)
        }
    }

    @Test("Base32: bad characters, lengths, padding and trailing bits are refused",
          arguments: ["MZXW6!", "MZXW1", "MZXW8", "MZXW6Ö", "MZ=XW6==", "M", "MZX", "MZXW6Y", "MY=====", "MY=======",
                      "========", "MZ", "MZXW6YTBOI=====\t", "MZXW6-YTB"])
    func base32Refusals(text: String) {
        #expect(throws: LedgerError.self) { try Base32.decode(text) }
        do {
            _ = try Base32.decode(text)
        } catch {
            #expect(error.code == .malformedEncoding)
        }
    }

    // MARK: TOTP and HOTP

    static let rfcSecret = Array("12345678901234567890".utf8)

    @Test("HOTP: RFC 4226 Appendix D, counters 0 to 9")
    func hotpVectors() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        let codes = (0..<10).map { totp.code(counter: UInt64($0)) }
        #expect(codes == ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"])
    }

    @Test("TOTP: RFC 6238 Appendix B, SHA-1, 8 digits",
          arguments: [(Int64(59), "94287082"), (1_111_111_109, "07081804"), (1_111_111_111, "14050471"),
                      (1_234_567_890, "89005924"), (2_000_000_000, "69279037"), (20_000_000_000, "65353130")])
    func totpVectors(time: Int64, code: String) throws {
        let totp = try TOTP(secret: Self.rfcSecret, digits: 8)
        #expect(totp.code(at: time) == code)
        #expect(totp.verify(code, at: time, lastUsedStep: nil) == time / 30)
    }

    static let windowTime: Int64 = 1_111_111_109
    static let windowStep: Int64 = 37_037_036
    /// The 6-digit codes of steps windowStep-2 ... windowStep+2 (Python hmac).
    static let windowCodes: [Int64: String] = [-2: "150727", -1: "731029", 0: "081804", 1: "050471", 2: "266759"]

    @Test("TOTP: the codes of one step either side are accepted, two steps are not")
    func totpWindow() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        #expect(totp.timeStep(at: Self.windowTime) == Self.windowStep)
        for offset: Int64 in -2...2 {
            let code = try #require(Self.windowCodes[offset])
            #expect(totp.code(counter: UInt64(Self.windowStep + offset)) == code)
            let expected: Int64? = abs(offset) <= 1 ? Self.windowStep + offset : nil
            #expect(totp.verify(code, at: Self.windowTime, lastUsedStep: nil) == expected, "offset \(offset)")
        }
    }

    @Test("TOTP: a code is used once, and never after a later one")
    func totpReplay() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        let now = Self.windowTime
        let current = try #require(Self.windowCodes[0])
        let next = try #require(Self.windowCodes[1])
        let previous = try #require(Self.windowCodes[-1])

        let used = try #require(totp.verify(current, at: now, lastUsedStep: nil))
        #expect(used == Self.windowStep)
        #expect(totp.verify(current, at: now, lastUsedStep: used) == nil)       // replay
        #expect(totp.verify(previous, at: now, lastUsedStep: used) == nil)      // older after newer
        let later = try #require(totp.verify(next, at: now, lastUsedStep: used))
        #expect(later == Self.windowStep + 1)
        #expect(totp.verify(current, at: now, lastUsedStep: later) == nil)
        #expect(totp.verify(next, at: now + 30, lastUsedStep: later) == nil)    // the same code in the next step
        #expect(totp.verify(previous, at: now, lastUsedStep: Self.windowStep - 2) == Self.windowStep - 1)
    }

    @Test("TOTP: another secret's codes are refused")
    func totpOtherSecret() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        let other = try TOTP(secret: Array(100..<120))
        // Python: the other secret's codes for the window, none equal to one of ours.
        #expect([-1, 0, 1].map { other.code(counter: UInt64(Self.windowStep + $0)) } == ["745557", "941013", "081589"])
        for code in ["745557", "941013", "081589"] {
            #expect(totp.verify(code, at: Self.windowTime, lastUsedStep: nil) == nil)
        }
    }

    @Test("TOTP: malformed codes are refused without a crash",
          arguments: ["", "12345", "abcdef", "0818040", "08180", "٠٨١٨٠٤", "۰۸۱۸۰۴", "０８１８０４", " 081804", "081804 ",
                      "081 804", "+81804", "-81804", "08180\u{0}4", "0818O4", "081804\n"])
    func totpMalformed(code: String) throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        #expect(totp.verify(code, at: Self.windowTime, lastUsedStep: nil) == nil)
    }

    @Test("TOTP: an 8-digit TOTP refuses the 6-digit code, and the reverse")
    func totpDigitCounts() throws {
        let six = try TOTP(secret: Self.rfcSecret)
        let eight = try TOTP(secret: Self.rfcSecret, digits: 8)
        #expect(eight.verify("081804", at: Self.windowTime, lastUsedStep: nil) == nil)
        #expect(six.verify("07081804", at: Self.windowTime, lastUsedStep: nil) == nil)
        #expect(eight.verify("07081804", at: Self.windowTime, lastUsedStep: nil) == Self.windowStep)
    }

    @Test("TOTP: times near 0 use no negative step; times before 1970 count as step 0")
    func totpNearZero() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        #expect(totp.timeStep(at: 0) == 0)
        #expect(totp.timeStep(at: 29) == 0)
        #expect(totp.timeStep(at: -1) == 0)
        #expect(totp.timeStep(at: .min) == 0)
        #expect(totp.code(at: 0) == "755224")
        #expect(totp.code(at: -100) == "755224")
        #expect(totp.verify("755224", at: 0, lastUsedStep: nil) == 0)
        #expect(totp.verify("287082", at: 0, lastUsedStep: nil) == 1)
        #expect(totp.verify("755224", at: 0, lastUsedStep: 0) == nil)
        #expect(totp.verify("755224", at: 0, lastUsedStep: -1) == 0)
        #expect(totp.verify("755224", at: 0, lastUsedStep: .min) == 0)
        #expect(totp.verify("755224", at: .min, lastUsedStep: nil) == 0)
        #expect(totp.verify("359152", at: 0, lastUsedStep: nil) == nil)     // step 2: outside the window
        #expect(totp.verify("755224", at: 60, lastUsedStep: nil) == nil)    // step 0 from step 2
    }

    @Test("TOTP: the largest times and steps do not trap")
    func totpHugeValues() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        let last = Int64.max / 30                       // 307445734561825860
        #expect(totp.timeStep(at: .max) == last)
        #expect(totp.code(at: .max) == "451934")
        #expect(totp.verify("451934", at: .max, lastUsedStep: nil) == last)
        #expect(totp.verify("704075", at: .max, lastUsedStep: nil) == last + 1)
        #expect(totp.verify("451934", at: .max, lastUsedStep: .max) == nil)

        let perSecond = try TOTP(secret: Self.rfcSecret, step: 1)
        #expect(perSecond.code(at: .max) == "181742")
        let beforeLast: Int64 = .max - 1
        #expect(perSecond.verify("181742", at: .max, lastUsedStep: nil) == Int64.max)
        #expect(perSecond.verify("891618", at: .max, lastUsedStep: nil) == beforeLast)
        #expect(perSecond.verify("891618", at: .max, lastUsedStep: beforeLast) == nil)
    }

    @Test("TOTP: new secrets are 20 fresh bytes; short secrets, other digit counts and steps are refused")
    func totpSecretsAndArguments() throws {
        let first = TOTP.newSecret()
        let second = TOTP.newSecret()
        #expect(first.count == 20)
        #expect(first != second)
        #expect(throws: LedgerError.self) { try TOTP(secret: Array(first.prefix(15))) }
        #expect(throws: LedgerError.self) { try TOTP(secret: first, digits: 7) }
        #expect(throws: LedgerError.self) { try TOTP(secret: first, digits: 10) }
        #expect(throws: LedgerError.self) { try TOTP(secret: first, step: 0) }
        #expect(throws: LedgerError.self) { try TOTP(secret: first, step: -30) }
        let totp = try TOTP(secret: first)
        #expect(try Base32.decode(totp.base32Secret) == first)
        #expect(!"\(totp)".contains(totp.base32Secret))
        #expect(!String(reflecting: totp).contains(totp.base32Secret))
    }

    @Test("TOTP: otpauth URI with percent-encoded issuer and account")
    func otpauthURI() throws {
        let totp = try TOTP(secret: Self.rfcSecret)
        #expect(try totp.otpauthURI(issuer: "Med Ledger & Co", account: "alice+test@example.org") ==
            "otpauth://totp/Med%20Ledger%20%26%20Co:alice%2Btest%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            + "&issuer=Med%20Ledger%20%26%20Co&algorithm=SHA1&digits=6&period=30")
        #expect(try totp.otpauthURI(issuer: "Zoë Clinic", account: "zoë") ==
            "otpauth://totp/Zo%C3%AB%20Clinic:zo%C3%AB?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
            + "&issuer=Zo%C3%AB%20Clinic&algorithm=SHA1&digits=6&period=30")
        let eight = try TOTP(secret: Self.rfcSecret, digits: 8, step: 60)
        #expect(try eight.otpauthURI(issuer: "MedLedger", account: "bob").hasSuffix("&digits=8&period=60"))
        #expect(throws: LedgerError.self) { try totp.otpauthURI(issuer: "Med:Ledger", account: "bob") }
        #expect(throws: LedgerError.self) { try totp.otpauthURI(issuer: "MedLedger", account: "bob:admin") }
        #expect(throws: LedgerError.self) { try totp.otpauthURI(issuer: "", account: "bob") }
        #expect(throws: LedgerError.self) { try totp.otpauthURI(issuer: "MedLedger", account: "") }
    }

    // MARK: PasswordHash

    static let cheap = try! PasswordHash.Parameters(logN: 10)

    @Test("scrypt: RFC 7914 §12 vectors through the wrapper's derivation",
          arguments: [("", "", 4, 1, 1,
                       "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"),
                      ("password", "NaCl", 10, 8, 16,
                       "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
                      ("pleaseletmein", "SodiumChloride", 14, 8, 1,
                       "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")])
    func scryptVectors(password: String, salt: String, logN: Int, blockSize: Int, parallelism: Int, expected: String) throws {
        let derived = try PasswordHash.derive(password: Array(password.utf8), salt: Array(salt.utf8), logN: logN,
                                              blockSize: blockSize, parallelism: parallelism, outputByteCount: 64)
        #expect(Hex.encode(derived) == expected)
    }

    @Test("PasswordHash: the stored form of a fixed salt is Python's hashlib.scrypt, and NFKC comes first")
    func storedFormKnownAnswer() throws {
        let salt = Array(UInt8(0)..<16)
        let plain = try PasswordHash(hashing: "correct horse battery staple", salt: salt, parameters: Self.cheap)
        #expect(plain.encoded == "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU")
        // Full-width letters, half-width kana with a voiced mark, a ligature and a decomposed é:
        // NFKC is "Pass word ガ fi é".
        let expected = "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$lvQbtoQrb1E2D5MxzS8VAep5j3illSUxoNKUuC3TmxM"
        #expect(try PasswordHash(hashing: "Ｐａｓｓ ｗｏｒｄ ｶﾞ ﬁ e\u{301}", salt: salt, parameters: Self.cheap).encoded == expected)
        #expect(try PasswordHash(hashing: "Pass word \u{30AC} fi \u{E9}", salt: salt, parameters: Self.cheap).encoded == expected)
        #expect(try PasswordHash.verify("Pass word ガ fi é", against: expected))
        #expect(try !PasswordHash.verify("pass word ガ fi é", against: expected))
    }

    @Test("PasswordHash: round trip, fresh salts, wrong password, redacted description")
    func roundTrip() throws {
        let password = "violet tractor umbrella gravel"
        let hash = try PasswordHash(hashing: password, parameters: Self.cheap)
        let stored = hash.encoded
        let fields = stored.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 5 && fields[1] == "scrypt" && fields[2] == "ln=10,r=8,p=1")
        #expect(fields[3].count == 22 && fields[4].count == 43)     // 16 and 32 bytes, unpadded
        #expect(try PasswordHash(parsing: stored) == hash)
        #expect(try PasswordHash(parsing: stored).encoded == stored)
        #expect(try hash.verify(password))
        #expect(try PasswordHash.verify(password, against: stored))
        #expect(try !PasswordHash.verify("violet tractor umbrella grave", against: stored))
        #expect(try !PasswordHash.verify("", against: stored))
        #expect(try PasswordHash(hashing: password, parameters: Self.cheap).encoded != stored)
        for text in ["\(hash)", String(reflecting: hash)] {
            #expect(!text.contains(String(fields[3])) && !text.contains(String(fields[4])))
            #expect(text.contains("ln=10,r=8,p=1"))
        }
    }

    @Test("PasswordHash: the default parameters (N = 2^15, r = 8, p = 1) hash and verify")
    func defaultParameters() throws {
        #expect(try PasswordHash.Parameters.default == PasswordHash.Parameters(logN: 15, blockSize: 8, parallelism: 1))
        #expect(PasswordHash.Parameters.default.memoryBytes == 32 << 20)
        let hash = try PasswordHash(hashing: "violet tractor umbrella gravel")
        #expect(hash.encoded.hasPrefix("$scrypt$ln=15,r=8,p=1$"))
        #expect(try hash.verify("violet tractor umbrella gravel"))
        #expect(!hash.needsRehash())
    }

    @Test("PasswordHash: a tampered salt, hash or parameter no longer verifies")
    func tampering() throws {
        let password = "violet tractor umbrella gravel"
        let stored = try PasswordHash(hashing: password, parameters: Self.cheap).encoded
        var fields = stored.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        #expect(try PasswordHash.verify(password, against: fields.joined(separator: "$")))
        for index in [2, 3, 4] {
            var tampered = fields
            switch index {
            case 2: tampered[2] = "ln=11,r=8,p=1"
            default:
                // The first symbol uses all six of its bits, so any other letter is still canonical.
                let first = tampered[index].first!
                tampered[index] = (first == "A" ? "B" : "A") + tampered[index].dropFirst()
            }
            #expect(try !PasswordHash.verify(password, against: tampered.joined(separator: "$")), "field \(index)")
        }
        fields[3] = Base64NoPadding.encode(Array(repeating: 0, count: 16))
        #expect(try !PasswordHash.verify(password, against: fields.joined(separator: "$")))
    }

    static let salt22 = "AAECAwQFBgcICQoLDA0ODw"
    static let hash43 = "mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU"

    /// Stored forms that are refused, with the code and a fragment of the message.
    static let malformedCases: [(String, LedgerError.Code, String)] = [
        ("", .malformedEncoding, "starts with $scrypt$"),
        ("scrypt$ln=10,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "starts with $scrypt$"),
        ("$argon2id$v=19$m=65536,t=3,p=4$\(salt22)$\(hash43)", .malformedEncoding, "starts with $scrypt$"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)", .malformedEncoding, "has 3"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)$\(hash43)$", .malformedEncoding, "has 5"),
        ("$scrypt$ln=10,r=8$\(salt22)$\(hash43)", .malformedEncoding, "in that order"),
        ("$scrypt$r=8,ln=10,p=1$\(salt22)$\(hash43)", .malformedEncoding, "in that order"),
        ("$scrypt$ln=10,r=8,p=1,x=2$\(salt22)$\(hash43)", .malformedEncoding, "in that order"),
        ("$scrypt$ln=010,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "ln is not a decimal"),
        ("$scrypt$ln=-1,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "ln is not a decimal"),
        ("$scrypt$ln=,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "ln is not a decimal"),
        ("$scrypt$ln=99999999999999999999999,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "ln is not a decimal"),
        ("$scrypt$ln=10,r=８,p=1$\(salt22)$\(hash43)", .malformedEncoding, "r is not a decimal"),
        ("$scrypt$ln=0,r=8,p=1$\(salt22)$\(hash43)", .malformedEncoding, "ln is not a decimal"),
        ("$scrypt$ln=21,r=8,p=1$\(salt22)$\(hash43)", .invalidArgument, "ln=21"),
        ("$scrypt$ln=64,r=8,p=1$\(salt22)$\(hash43)", .invalidArgument, "ln=64"),
        ("$scrypt$ln=10,r=17,p=1$\(salt22)$\(hash43)", .invalidArgument, "r=17"),
        ("$scrypt$ln=10,r=8,p=5$\(salt22)$\(hash43)", .invalidArgument, "p=5"),
        ("$scrypt$ln=20,r=16,p=1$\(salt22)$\(hash43)", .invalidArgument, "1 GiB"),
        ("$scrypt$ln=16,r=1,p=1$\(salt22)$\(hash43)", .invalidArgument, "N < 2^(16·r)"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)==$\(hash43)", .malformedEncoding, "salt of an scrypt password hash is not"),
        ("$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0OD!$\(hash43)", .malformedEncoding, "salt of an scrypt password hash is not"),
        ("$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODx$\(hash43)", .malformedEncoding, "salt of an scrypt password hash is not"),
        ("$scrypt$ln=10,r=8,p=1$AAECAwQFBgc$\(hash43)", .malformedEncoding, "16 to 64 bytes, this one 8"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)$\(salt22)", .malformedEncoding, "32 to 64 bytes, this one 16"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)$\(hash43)=", .malformedEncoding, "hash of an scrypt password hash is not"),
        ("$scrypt$ln=10,r=8,p=1$\(salt22)$\(String(repeating: "A", count: 500))", .malformedEncoding, "at most 512"),
    ]

    @Test("PasswordHash: malformed stored forms throw a specific error before any hashing", arguments: Self.malformedCases)
    func malformedStoredForms(stored: String, code: LedgerError.Code, fragment: String) {
        do {
            _ = try PasswordHash(parsing: stored)
            Issue.record("\(stored) was accepted")
        } catch {
            #expect(error.code == code, "\(stored): \(error)")
            #expect(error.message.contains(fragment), "\(stored): \(error)")
        }
        #expect(throws: LedgerError.self) { try PasswordHash.verify("violet tractor umbrella gravel", against: stored) }
        #expect(throws: LedgerError.self) { try PasswordHash.needsRehash(stored) }
    }

    @Test("PasswordHash: needsRehash when any parameter is below the current one")
    func needsRehash() throws {
        func stored(_ parameters: String) -> String { "$scrypt$\(parameters)$\(Self.salt22)$\(Self.hash43)" }
        #expect(try !PasswordHash.needsRehash(stored("ln=15,r=8,p=1")))
        #expect(try PasswordHash.needsRehash(stored("ln=14,r=8,p=1")))
        #expect(try PasswordHash.needsRehash(stored("ln=15,r=4,p=1")))
        #expect(try PasswordHash.needsRehash(stored("ln=10,r=8,p=1")))
        #expect(try !PasswordHash.needsRehash(stored("ln=16,r=8,p=2")))
        let stronger = try PasswordHash.Parameters(logN: 15, blockSize: 8, parallelism: 2)
        #expect(try PasswordHash.needsRehash(stored("ln=15,r=8,p=1"), current: stronger))
        #expect(try !PasswordHash.needsRehash(stored("ln=10,r=8,p=1"), current: Self.cheap))
    }

    @Test("PasswordHash.Parameters: bounds")
    func parameterBounds() throws {
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 0) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 21) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 10, blockSize: 0) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 10, blockSize: 17) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 10, parallelism: 0) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 10, parallelism: 5) }
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 20, blockSize: 16) }
        let largest = try PasswordHash.Parameters(logN: 20, blockSize: 8, parallelism: 4)
        #expect(largest.memoryBytes == 1 << 30)
        #expect(try PasswordHash.Parameters(logN: 15, blockSize: 1).logN == 15)
        #expect(throws: LedgerError.self) { try PasswordHash.Parameters(logN: 16, blockSize: 1) }
    }

    // MARK: PasswordPolicy

    static let policy = PasswordPolicy()
    /// An account name that no test password contains (Base32 has no "_").
    static let stranger = "x_y_z"

    /// `count` letters and digits with no pattern: Base32 of SHA-256 chains, which no list holds.
    static func randomLooking(_ count: Int, seed: UInt8 = 1) -> String {
        var text = ""
        var block = Array(SHA256.hash(data: [seed]))
        while text.count < count {
            text += Base32.encode(block).lowercased()
            block = Array(SHA256.hash(data: block))
        }
        return String(text.prefix(count))
    }

    @Test("PasswordPolicy: common passwords are refused, whatever their case or width",
          arguments: ["password1234", "PassWord1234", "Ｐａｓｓｗｏｒｄ１２３４", "1qaz2wsx3edc", "startfinding", "JesusLovesMe",
                      "friend of emily"])
    func commonRefused(password: String) {
        let verdict = Self.policy.evaluate(password, accountName: Self.stranger)
        #expect(verdict.refusals.contains(.common), "\(verdict)")
        #expect(PasswordPolicy.isCommon(password))
    }

    @Test("PasswordPolicy: long passphrases and random strings are accepted, with no composition rules")
    func goodPasswordsAccepted() {
        for password in ["violet tractor umbrella gravel", "correct horse battery staple", "zoë räumt das fahrrad auf",
                         Self.randomLooking(20), TOTP.newSecret().map { String($0, radix: 16) }.joined()] {
            #expect(Self.policy.evaluate(password, accountName: "alice@example.org") == .accepted, "\(password)")
            #expect(throws: Never.self) { try Self.policy.check(password, accountName: "alice@example.org") }
        }
    }

    @Test("PasswordPolicy: 11 code points refused, 12 and 128 accepted, 129 refused (never truncated)")
    func lengthBounds() {
        #expect(Self.policy.evaluate(Self.randomLooking(11), accountName: Self.stranger) == .refused([.tooShort(minimum: 12, length: 11)]))
        #expect(Self.policy.evaluate(Self.randomLooking(12), accountName: Self.stranger) == .accepted)
        #expect(Self.policy.evaluate(Self.randomLooking(128), accountName: Self.stranger) == .accepted)
        #expect(Self.policy.evaluate(Self.randomLooking(129), accountName: Self.stranger) == .refused([.tooLong(maximum: 128)]))
        #expect(Self.policy.evaluate(Self.randomLooking(100_000), accountName: Self.stranger) == .refused([.tooLong(maximum: 128)]))
        #expect(Self.policy.evaluate("", accountName: Self.stranger).refusals.contains(.tooShort(minimum: 12, length: 0)))
    }

    @Test("PasswordPolicy: lengths count code points after NFKC")
    func lengthAfterNFKC() {
        let ten = Self.randomLooking(10)
        // "ﬁ" is one scalar that NFKC makes two: 11 typed, 12 counted.
        #expect(Self.policy.evaluate(ten + "ﬁ", accountName: Self.stranger) == .accepted)
        // "e" + combining acute is two scalars that NFKC makes one: 12 typed, 11 counted.
        #expect(Self.policy.evaluate(ten + "e\u{301}", accountName: Self.stranger) == .refused([.tooShort(minimum: 12, length: 11)]))
        // A skin-toned emoji is one Character but two code points.
        #expect(Self.policy.evaluate(ten + "👍🏽", accountName: Self.stranger) == .accepted)
        #expect(Self.policy.evaluate(Self.randomLooking(127) + "ﬁ", accountName: Self.stranger) == .refused([.tooLong(maximum: 128)]))
    }

    @Test("PasswordPolicy: the account name (or an e-mail's local part) is refused, case-insensitively")
    func accountName() {
        let account = "Alice.Smith@Example.org"
        for password in ["alice.smith@example.org", "I am ALICE.SMITH on weekdays", "me: alice.smith@example.org!",
                         "Ａｌｉｃｅ．Ｓｍｉｔｈ　rides a bike"] {
            #expect(Self.policy.evaluate(password, accountName: account).refusals.contains(.containsAccountName), "\(password)")
        }
        #expect(!Self.policy.evaluate("alice rides a bike daily", accountName: account).refusals.contains(.containsAccountName))
        #expect(Self.policy.evaluate("bobsled harbour lantern", accountName: "bob").refusals == [.containsAccountName])
        #expect(Self.policy.evaluate("violet tractor umbrella gravel", accountName: "al") == .accepted)
        #expect(Self.policy.evaluate("violet tractor umbrella gravel", accountName: "  ") == .accepted)
    }

    @Test("PasswordPolicy: the context word medledger is refused", arguments: ["medledger rocks 2026", "I love MedLedger!!", "ＭＥＤＬＥＤＧＥＲ ftw ok"])
    func contextWord(password: String) {
        #expect(Self.policy.evaluate(password, accountName: Self.stranger).refusals.contains(.containsContextWord("medledger")))
    }

    @Test("PasswordPolicy: repetitive strings are refused",
          arguments: ["aaaaaaaaaaaa", "AAAAAAAAAAAAAAAA", "abababababab", "abcabcabcabc", "abcabcabcabca", "passwordpassword",
                      "aaaaaaaaaaab", "1111111111111111", "blue42monkeyblue42monkey"])
    func repetitive(password: String) {
        #expect(Self.policy.evaluate(password, accountName: Self.stranger).refusals.contains(.repetitive))
    }

    @Test("PasswordPolicy: sequential strings are refused",
          arguments: ["123456789012", "abcdefghijkl", "ABCDEFGHIJKLMNOP", "lkjihgfedcba", "210987654321", "xyzabcdefghi",
                      "qwertyuiopas", "mnbvcxzlkjhg", "78901234567890123"])
    func sequential(password: String) {
        #expect(Self.policy.evaluate(password, accountName: Self.stranger).refusals.contains(.sequential))
    }

    @Test("PasswordPolicy: check throws weak_password with every reason, and never quotes the password")
    func checkThrows() {
        let password = "medledger123"
        do {
            try Self.policy.check(password, accountName: Self.stranger)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .weakPassword)
            #expect(error.message.contains("\"medledger\""))
            #expect(!error.message.contains(password))
        }
        let verdict = Self.policy.evaluate("xqxq", accountName: Self.stranger)
        #expect(verdict.refusals == [.tooShort(minimum: 12, length: 4), .repetitive])
        for refusal in verdict.refusals { #expect(!refusal.message.contains("xqxq") && !refusal.message.isEmpty) }
        #expect(verdict.refusals[0].message.contains("at least 12"))
    }

    @Test("CommonPasswords: the whole Django list, lowercase")
    func commonList() {
        #expect(CommonPasswords.sourceCount == 19_640)
        #expect(CommonPasswords.entries.count == 19_640)
        for entry in ["123456", "password", "iloveyou", "password1234", "fallen_angel", "friend of emily", "пароль"] {
            #expect(CommonPasswords.entries.contains(entry), "\(entry)")
        }
        #expect(CommonPasswords.entries.allSatisfy { $0 == $0.lowercased() && !$0.isEmpty })
        #expect(!PasswordPolicy.isCommon("violet tractor umbrella gravel"))
    }
}
