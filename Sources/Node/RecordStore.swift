#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Crypto
import Foundation
public import LedgerCore

/// A hospital node's off-chain patient data: sealed record blobs, content-addressed by the SHA-256
/// of their bytes, and the vault of per-record key-agreement keys that open the data keys wrapped
/// in the anchors (docs/patient-data.md).
///
/// ```text
/// DIR/blobs/<blob hash hex>   the sealed record (SealedRecord), 0600
/// DIR/vault/<blob hash hex>   the record's vault private key (32 bytes, P-256), 0600
/// ```
///
/// Only this node's organisation can open its records: other nodes replicate the anchors, never a
/// vault key or a blob. Erasure overwrites the vault key with zeros, syncs, and unlinks both files;
/// the data key wrapped on the ledger then opens with nothing (crypto-shredding).
public final class RecordStore: Sendable {
    public let path: String
    /// The largest sealed record this store accepts.
    public let maxRecordBytes: Int

    public static let defaultMaxRecordBytes = SealedRecord.maxUploadBytes

    public init(path: String, maxRecordBytes: Int = RecordStore.defaultMaxRecordBytes) throws(LedgerError) {
        self.path = path
        self.maxRecordBytes = maxRecordBytes
        try SecureFile.makeDirectory(path + "/blobs")
        try SecureFile.makeDirectory(path + "/vault")
        try SecureFile.restrictDirectory(path)
    }

    func blobPath(_ id: Hash256) -> String { path + "/blobs/" + id.hex }
    func vaultPath(_ id: Hash256) -> String { path + "/vault/" + id.hex }

    /// Stores a sealed record (idempotent) and returns its id and the public half of its vault key,
    /// which the client wraps the data key for. The blob and key are durable before this returns.
    public func accept(_ blob: [UInt8]) throws(LedgerError) -> (id: Hash256, holderKey: P256.KeyAgreement.PublicKey) {
        guard blob.count <= maxRecordBytes else {
            throw LedgerError(.payloadTooLarge, "a sealed record may be at most \(maxRecordBytes) bytes here")
        }
        guard blob.count >= SealedRecord.overhead, Array(blob.prefix(4)) == SealedRecord.magic else {
            throw LedgerError(.malformedEncoding, "a sealed record starts with MLR1 and holds at least \(SealedRecord.overhead) bytes")
        }
        let id = Hash256.of(blob)
        if !FileManager.default.fileExists(atPath: blobPath(id)) {
            try Self.writeDurably(blob, to: blobPath(id))
        }
        if let key = try vaultKey(id) { return (id, key.publicKey) }
        // Linked into place only if absent: of two concurrent uploads of one blob, both answer
        // with the key that is on disk.
        try Self.writeDurably(Array(KeyWrap.newPrivateKey().rawRepresentation), to: vaultPath(id), exclusive: true)
        guard let key = try vaultKey(id) else { throw LedgerError(.storage, "vault key \(id.hex.prefix(16))… vanished") }
        return (id, key.publicKey)
    }

    public func blob(_ id: Hash256) throws(LedgerError) -> [UInt8]? {
        guard FileManager.default.fileExists(atPath: blobPath(id)) else { return nil }
        return try SecureFile.read(blobPath(id))
    }

    public func vaultKey(_ id: Hash256) throws(LedgerError) -> P256.KeyAgreement.PrivateKey? {
        guard FileManager.default.fileExists(atPath: vaultPath(id)) else { return nil }
        do {
            return try P256.KeyAgreement.PrivateKey(rawRepresentation: try SecureFile.read(vaultPath(id)))
        } catch {
            throw LedgerError(.storage, "vault key \(id.hex.prefix(16))… is unreadable")
        }
    }

    /// The record's data key, from the anchor's wrap and this store's vault key; `nil` when this
    /// store holds no vault key for it (another holder's record, or erased).
    public func dataKey(for anchor: RecordAnchor) throws(LedgerError) -> SymmetricKey? {
        guard let key = try vaultKey(anchor.put.id) else { return nil }
        guard Array(key.publicKey.x963Representation) == anchor.put.holderKey else {
            throw LedgerError(.verificationFailed, "the anchor names another holder key than this vault's for record \(anchor.id.hex.prefix(16))…")
        }
        return try KeyWrap.unwrap(anchor.put.wrappedKey, with: key, info: KeyWrap.holderInfo(record: anchor.put.id))
    }

    /// Destroys the record's vault key (overwritten with zeros and synced before it is unlinked)
    /// and its blob. Idempotent.
    public func shred(_ id: Hash256) throws(LedgerError) {
        let key = vaultPath(id)
        if FileManager.default.fileExists(atPath: key) {
            let fd = open(key, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw LedgerError(.io, "cannot open vault key \(id.hex.prefix(16))… to destroy it") }
            let zeros = [UInt8](repeating: 0, count: 64)
            let written = zeros.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd) == 0
            close(fd)
            guard written == zeros.count, synced else { throw LedgerError(.io, "cannot overwrite vault key \(id.hex.prefix(16))…") }
            unlink(key)
        }
        unlink(blobPath(id))
        Self.syncDirectory(path + "/vault")
        Self.syncDirectory(path + "/blobs")
    }

    /// The blob hashes this store holds a vault key or a blob for (a crash may leave a blob whose
    /// vault key is gone).
    public func held() -> [Hash256] {
        let names = ["vault", "blobs"].flatMap { (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + $0)) ?? [] }
        return Set(names.compactMap { Hash256(hex: $0) }).sorted()
    }

    /// Writes `bytes` to a fresh 0600 file beside `path`, syncs it, moves it into place (with
    /// `exclusive`, only if nothing is there yet) and syncs the directory: after a crash the file
    /// is either absent or whole.
    static func writeDurably(_ bytes: [UInt8], to path: String, exclusive: Bool = false) throws(LedgerError) {
        let temporary = path + ".tmp-" + Hex.encode(SigningIdentity.randomNonce())
        try SecureFile.create(temporary, contents: bytes)
        defer { unlink(temporary) }
        if exclusive {
            guard link(temporary, path) == 0 || errno == EEXIST else {
                throw LedgerError(.io, "cannot store \(path): \(String(cString: strerror(errno)))")
            }
        } else {
            guard rename(temporary, path) == 0 else {
                throw LedgerError(.io, "cannot store \(path): \(String(cString: strerror(errno)))")
            }
        }
        syncDirectory((path as NSString).deletingLastPathComponent)
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
