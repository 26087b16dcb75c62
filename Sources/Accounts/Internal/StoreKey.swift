#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import Crypto
internal import Foundation
public import LedgerCore

/// The account store's own key: 32 random bytes in a 0600 file beside the database, under which
/// TOTP secrets are sealed (AES-256-GCM). A copy of the database alone, a backup or a stolen disk
/// image without the key file, does not give the second factors away.
struct StoreKey: Sendable {
    static let byteCount = 32
    private let key: SymmetricKey

    init(bytes: [UInt8]) {
        key = SymmetricKey(data: bytes)
    }

    /// Reads the key at `path`, or creates it when `creating` (O_CREAT|O_EXCL, 0600 from the first
    /// byte, synced). An existing key file is narrowed to 0600. A missing key is refused when the
    /// database already exists: a new key would leave every sealed secret unreadable.
    static func load(at path: String, creating: Bool) throws(LedgerError) -> StoreKey {
        if access(path, F_OK) != 0 {
            guard creating else {
                throw LedgerError(.invalidConfiguration,
                                  "the account store key \(path) is missing but its database exists: restore the key file (a new key could not open the TOTP secrets)")
            }
            try create(at: path)
        }
        guard chmod(path, 0o600) == 0 else { throw LedgerError(.io, "cannot restrict the permissions of \(path)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw LedgerError(.io, "cannot read \(path)") }
        guard data.count == byteCount else {
            throw LedgerError(.invalidConfiguration, "the account store key \(path) has \(data.count) bytes, not \(byteCount)")
        }
        return StoreKey(bytes: Array(data))
    }

    private static func create(at path: String) throws(LedgerError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            // Another process created it first: use that one.
            if errno == EEXIST { return }
            throw LedgerError(.io, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Secrets.randomBytes(byteCount)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == byteCount, fsync(fd) == 0 else {
            unlink(path)
            throw LedgerError(.io, "cannot write \(path)")
        }
    }

    /// AES-GCM seal of `plaintext`, bound to `account` and `purpose` as associated data, so a
    /// sealed value moved to another account's row (or column) does not open.
    func seal(_ plaintext: [UInt8], account: Int64, purpose: String) throws(LedgerError) -> Data {
        do {
            guard let combined = try AES.GCM.seal(plaintext, using: key, authenticating: Self.context(account, purpose)).combined else {
                throw LedgerError(.internal, "AES-GCM gave no combined form")
            }
            return combined
        } catch {
            throw LedgerError(.internal, "cannot seal a \(purpose) secret")
        }
    }

    func unseal(_ sealed: Data, account: Int64, purpose: String) throws(LedgerError) -> [UInt8] {
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return Array(try AES.GCM.open(box, using: key, authenticating: Self.context(account, purpose)))
        } catch {
            throw LedgerError(.storage, "the sealed \(purpose) secret of account \(account) does not open under the store key")
        }
    }

    private static func context(_ account: Int64, _ purpose: String) -> [UInt8] {
        Array("MedLedger accounts v1|\(purpose)|\(account)".utf8)
    }
}
