#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Crypto
import Foundation
public import LedgerCore
import Synchronization

/// A hospital node's off-chain patient data: sealed record blobs, content-addressed by the SHA-256
/// of their bytes, and the vault of per-record key-agreement keys that open the data keys wrapped
/// in the anchors (docs/patient-data.md).
///
/// ```text
/// DIR/blobs/<blob hash hex>   the sealed record (SealedRecord), 0600
/// DIR/vault/<blob hash hex>   the record's vault private key (32 bytes, P-256), 0600
/// DIR/pending/<record id hex> the rotation prepared for that record and not yet committed
///                             (its `RecordPut`), 0600
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
    /// How old an upload nobody anchored may get before ``LedgerNode/sweepRecords(now:)`` removes it.
    public let orphanGrace: TimeInterval
    public static let defaultOrphanGrace: TimeInterval = 7 * 86_400
    let lastSweep = Mutex<Date?>(nil)
    /// Held while a rotation is prepared: one at a time per node (each holds a record's plaintext
    /// and two sealed copies in memory), and one pending rotation per record.
    let rotating = Mutex(())
    /// Held by ``accept(_:id:)`` and ``removeIfOlder(_:than:)``: a blob answered to a client is
    /// never removed between the sweep's check and its removal.
    let files = Mutex(())

    public init(path: String, maxRecordBytes: Int = RecordStore.defaultMaxRecordBytes,
                orphanGrace: TimeInterval = RecordStore.defaultOrphanGrace) throws(LedgerError) {
        self.path = path
        self.maxRecordBytes = maxRecordBytes
        self.orphanGrace = orphanGrace
        try SecureFile.makeDirectory(path + "/blobs")
        try SecureFile.makeDirectory(path + "/vault")
        try SecureFile.makeDirectory(path + "/pending")
        try SecureFile.restrictDirectory(path)
        // Uploads and key files a crash left half-written (no upload runs before the store exists).
        for folder in ["blobs", "vault", "pending"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + folder)) ?? [] where name.contains(".tmp-") {
                unlink(path + "/" + folder + "/" + name)
            }
        }
    }

    func blobPath(_ id: Hash256) -> String { path + "/blobs/" + id.hex }
    func vaultPath(_ id: Hash256) -> String { path + "/vault/" + id.hex }

    /// Stores a sealed record held in memory (idempotent); see ``accept(_:id:)``.
    public func accept(_ blob: [UInt8]) throws(LedgerError) -> (id: Hash256, holderKey: P256.KeyAgreement.PublicKey) {
        let upload = try beginUpload()
        try upload.append(blob)
        let id = try upload.finish()
        return (id, try accept(upload, id: id))
    }

    /// A new upload, written to a temporary file as its bytes arrive.
    public func beginUpload() throws(LedgerError) -> RecordUpload { try RecordUpload(store: self) }

    /// Moves a finished upload into place as blob `id` (kept as it is if the blob is already held)
    /// and returns the public half of the blob's vault key, which the client wraps the data key
    /// for. The blob and key are durable before this returns.
    public func accept(_ upload: RecordUpload, id: Hash256) throws(LedgerError) -> P256.KeyAgreement.PublicKey {
        try files.withLock { _ throws(LedgerError) in try acceptLocked(upload, id: id) }
    }

    func acceptLocked(_ upload: RecordUpload, id: Hash256) throws(LedgerError) -> P256.KeyAgreement.PublicKey {
        if FileManager.default.fileExists(atPath: blobPath(id)) {
            upload.discard()
            // Uploaded again (a client resending after a lost answer): its grace starts again.
            for path in [blobPath(id), vaultPath(id)] { utimes(path, nil) }
        } else {
            guard rename(upload.temporary, blobPath(id)) == 0 else {
                upload.discard()
                throw LedgerError(.io, "cannot store blob \(id.hex.prefix(16))…: \(String(cString: strerror(errno)))")
            }
            Self.syncDirectory(path + "/blobs")
        }
        if let key = try vaultKey(id) { return key.publicKey }
        // Linked into place only if absent: of two concurrent uploads of one blob, both answer
        // with the key that is on disk.
        try Self.writeDurably(Array(KeyWrap.newPrivateKey().rawRepresentation), to: vaultPath(id), exclusive: true)
        guard let key = try vaultKey(id) else { throw LedgerError(.storage, "vault key \(id.hex.prefix(16))… vanished") }
        return key.publicKey
    }

    /// When blob `id`'s files last changed (the newer of blob and vault key).
    public func modified(_ id: Hash256) -> Date? {
        [blobPath(id), vaultPath(id)].compactMap { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }.max()
    }

    /// Removes blob `id` and its vault key if both last changed before `cutoff` (an upload nobody
    /// anchored); checked and removed under the lock uploads take.
    func removeIfOlder(_ id: Hash256, than cutoff: Date) -> Bool {
        files.withLock { _ in
            guard let modified = modified(id), modified < cutoff else { return false }
            return (try? shred(id)) != nil
        }
    }

    /// Whether a sweep is due at `now` (none in the last hour); if so, records that one starts.
    func claimSweep(now: Date) -> Bool {
        lastSweep.withLock { last in
            guard last.map({ now.timeIntervalSince($0) >= 3600 }) ?? true else { return false }
            last = now
            return true
        }
    }

    // MARK: Pending rotations (red-team finding: a prepared copy outlived the record's erasure)

    func pendingPath(_ record: Hash256) -> String { path + "/pending/" + record.hex }

    /// The rotation prepared for `record` and not committed yet.
    public func pendingRotation(of record: Hash256) -> RecordPut? {
        (try? SecureFile.read(pendingPath(record))).flatMap { try? RecordPut(decoding: $0) }
    }

    func setPendingRotation(_ record: Hash256, _ put: RecordPut) throws(LedgerError) {
        try Self.writeDurably(put.encoded, to: pendingPath(record))
    }

    func clearPendingRotation(_ record: Hash256) {
        unlink(pendingPath(record))
        Self.syncDirectory(path + "/pending")
    }

    /// Every pending rotation: the record it re-seals and the prepared anchor of the copy.
    public func pendingRotations() -> [(record: Hash256, put: RecordPut)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/pending")) ?? []).sorted().compactMap { name in
            guard let record = Hash256(hex: name), let put = pendingRotation(of: record) else { return nil }
            return (record, put)
        }
    }

    /// The path of blob `id` and its size, if this store holds it.
    public func blobFile(_ id: Hash256) -> (path: String, size: Int)? {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: blobPath(id)))?[.size] as? Int else { return nil }
        return (blobPath(id), size)
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

/// A sealed record being uploaded: its bytes go to a temporary 0600 file beside the blobs as they
/// arrive and are hashed on the way, so a node holds one chunk of an upload in memory, not the
/// record. Refused as soon as it is longer than the store's limit or does not start with `MLR1`.
/// Discarded (the file unlinked) unless ``RecordStore/accept(_:id:)`` moves it into place.
public final class RecordUpload: @unchecked Sendable {
    let temporary: String
    let limit: Int
    private var fd: Int32
    private var hasher = SHA256()
    private var head: [UInt8] = []
    public private(set) var count = 0

    init(store: RecordStore) throws(LedgerError) {
        temporary = store.path + "/blobs/upload.tmp-" + Hex.encode(SigningIdentity.randomNonce())
        limit = store.maxRecordBytes
        fd = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LedgerError(.io, "cannot start an upload: \(String(cString: strerror(errno)))") }
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws(LedgerError) {
        guard fd >= 0 else { throw LedgerError(.internal, "the upload is closed") }
        guard bytes.count <= limit - count else {
            discard()
            throw LedgerError(.payloadTooLarge, "a sealed record may be at most \(limit) bytes here")
        }
        if head.count < SealedRecord.magic.count {
            head += bytes.prefix(SealedRecord.magic.count - head.count)
            guard SealedRecord.magic.starts(with: head) else {
                discard()
                throw LedgerError(.malformedEncoding, "a sealed record starts with MLR1")
            }
        }
        hasher.update(bufferPointer: bytes)
        guard SecureFile.writeAll(fd, bytes) else {
            let reason = String(cString: strerror(errno))
            discard()
            throw LedgerError(.io, "cannot write an upload: \(reason)")
        }
        count += bytes.count
    }

    public func append(_ bytes: [UInt8]) throws(LedgerError) {
        do { try bytes.withUnsafeBytes { try append($0) } } catch let error as LedgerError { throw error } catch {
            throw LedgerError(.internal, "\(error)")
        }
    }

    /// Syncs and closes the file; answers the SHA-256 of what was uploaded.
    public func finish() throws(LedgerError) -> Hash256 {
        guard fd >= 0 else { throw LedgerError(.internal, "the upload is closed") }
        guard count >= SealedRecord.overhead else {
            discard()
            throw LedgerError(.malformedEncoding, "a sealed record starts with MLR1 and holds at least \(SealedRecord.overhead) bytes")
        }
        let synced = fsync(fd) == 0
        close(fd)
        fd = -1
        guard synced else {
            discard()
            throw LedgerError(.io, "cannot sync an upload")
        }
        return Hash256(bytes: Array(hasher.finalize()))!
    }

    /// Drops the upload and its file (idempotent; also when it was moved into place: then the
    /// temporary name no longer exists).
    public func discard() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(temporary)
    }

    deinit { discard() }
}
