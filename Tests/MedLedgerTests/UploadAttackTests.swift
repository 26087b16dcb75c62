import Testing
import Crypto
import Foundation
import LedgerCore
import Contracts
import Collector
import Node
import Ordering
import Server
import LedgerTesting

/// Red-team pass on streamed uploads and the record sweep (`POST /v1/records`, `RecordUpload`,
/// `LedgerNode.sweepRecords(now:)`): each test is an attack that works against the code it was
/// written for, and says what should happen instead.
struct UploadAttackTests {
    typealias API = PatientRecordAPITests

    struct Stored: Decodable { var blob: Hash256; var record: Hash256; var holder_key: String }

    /// Moves the modification time of blob `id`'s files (blob and vault key) `age` seconds back.
    static func age(_ store: RecordStore, _ id: Hash256, by age: TimeInterval) throws {
        let then = Date() - age
        for path in [store.path + "/blobs/" + id.hex, store.path + "/vault/" + id.hex] {
            try FileManager.default.setAttributes([.modificationDate: then], ofItemAtPath: path)
        }
    }

    /// Attack (careless client / network outage, data loss): a collector uploads a sealed record,
    /// the answer is lost, and its outbox resends the same blob after the grace period (a week
    /// offline, or a node that was idle so no sweep ran since the blob aged). The node sees the
    /// blob is already held, keeps the old files as they are — with their old modification times —
    /// and answers the vault key. The client wraps the data key for it and anchors the record, but
    /// the sweep (the one this very upload triggers when none ran in the last hour, or the next
    /// hourly one) finds an unanchored blob older than `orphanGrace` and shreds blob and vault key:
    /// the record the client was just told is stored commits, and nothing opens it.
    ///
    /// Should: a re-upload of a held blob restarts its grace (touch the blob and vault key, or
    /// record the upload time elsewhere), and the sweep and `accept` do not race (the sweep
    /// re-checks under a lock that uploads of the same blob take), so a blob answered to a client
    /// is kept for the full grace period from that answer.
    @Test func aReUploadOfAnOldUnanchoredBlobIsSweptRightAfterTheNodeAnswersItsVaultKey() async throws {
        let ward = try await API.Ward()
        let store = try #require(ward.harness.node.records)
        let collector = try ward.client("st-mary/collector")
        let plaintext = Array("troponin 0.9 ng/mL".utf8)
        let key = SymmetricKey(size: .bits256)
        let blob = try SealedRecord.seal(plaintext, key: key)
        let first: Stored = try await collector.node.postSigned("v1/records", body: blob)
        // The first answer never reached the collector; eight days later its outbox sends the blob again.
        try Self.age(store, first.blob, by: store.orphanGrace + 86_400)
        let again: Stored = try await collector.node.postSigned("v1/records", body: blob)
        #expect(again.blob == first.blob && again.holder_key == first.holder_key)
        // The next sweep, minutes later (before or while the client anchors).
        ward.harness.node.sweepRecords(now: Date())
        #expect(try store.vaultKey(again.blob) != nil, "the vault key the node has just answered to a client was shredded as an old orphan")
        #expect(store.blobFile(again.blob) != nil, "the blob the node has just accepted again was removed as an old orphan")

        // The client anchors what it was told is stored; a granted reader should be able to open it.
        let holderBytes = try #require(Hex.decode(again.holder_key))
        let put = RecordPut(id: again.blob, size: UInt64(blob.count), category: "report", device: nil, patient: ward.pseudonym,
                            holderKey: holderBytes,
                            wrappedKey: try KeyWrap.wrap(key, for: try P256.KeyAgreement.PublicKey(x963Representation: holderBytes),
                                                         info: KeyWrap.holderInfo(record: again.blob)))
        try API.expectCommitted(try await collector.submit(contract: "records", action: "put", arguments: RecordAction.put(put).arguments))
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let decision = try await ward.consent(clinician, .request(record: again.record, purpose: .treatment))
        let opened = try? await ward.client(clinician).open(record: again.record, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!)
        #expect(opened == plaintext, "an anchored record the node accepted minutes earlier opens with nothing")
        try await ward.stop()
    }

    /// Attack (careless admin, data loss; a malicious admin can do the same on purpose): an admin
    /// asks for a rotation (`POST /v1/records/{id}/rotate`) and signs the answered `records.rotate`
    /// later — after an approval, a holiday, more than 7 days. Meanwhile the sweep removed the
    /// prepared copy as an unanchored upload (documented), but the pending mark stays and nothing
    /// refuses the stale arguments: the rotation commits, the node shreds the original's vault key
    /// and blob as for an erasure, and the new record has no vault key or blob. The patient's record
    /// is destroyed, without the patient's erasure, by a key rotation.
    ///
    /// Should: the original is shredded only when the copy that replaces it is held (blob and vault
    /// key) — otherwise the node keeps it (and logs) — and the sweep either leaves a pending
    /// rotation's copy alone or also drops its pending mark so the stale rotation is known dead;
    /// better, a rotation names a deadline the contract checks. Either way, after a rotation
    /// commits, the record's content still opens (under the new id) or the rotation is refused.
    @Test func aRotationSignedAfterTheSweepRemovedItsCopyCommitsAndDestroysTheRecord() async throws {
        let ward = try await API.Ward()
        let store = try #require(ward.harness.node.records)
        let plaintext = Array("histology: adenocarcinoma, margins clear".utf8)
        let (record, status) = try await ward.client("st-mary/collector").put(plaintext, patient: ward.pseudonym, category: "report")
        try API.expectCommitted(status)
        let oldBlob = try #require(try ward.harness.node.anchor(record)).put.id
        let prepared = try await RotationAttackTests.prepare(ward, record)

        // More than a week passes before the admin signs; the sweep runs in between.
        ward.harness.node.sweepRecords(now: Date() + store.orphanGrace + 3600)

        let rotated = try await ward.client("st-mary/admin").submit(contract: "records", action: prepared.action,
                                                                    arguments: try #require(Hex.decode(prepared.arguments)))
        guard rotated.status == "committed" else { try await ward.stop(); return }  // refusing the stale rotation is fine
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let decision = try await ward.consent(clinician, .request(record: prepared.rotated, purpose: .treatment))
        let opened = try? await ward.client(clinician).open(record: prepared.rotated, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!)
        let originalKept = try store.vaultKey(oldBlob) != nil
        #expect(opened == plaintext || originalKept,
                "the rotation committed, the original was shredded and the rotated record opens with nothing: the record is lost")
        try await ward.stop()
    }

    /// Attack (careless operator, mass data loss): a replicated node's database is damaged, or
    /// restored from an older backup, and the operator lets the node rebuild its ledger from the
    /// log (a fresh database; `DIR/*.records` beside it is kept, as it should be). At start, before
    /// the node has caught up, `sweepRecords` reads the (empty or old) local state: every held blob
    /// is "unanchored", and every one older than `orphanGrace` — that is, every record stored more
    /// than a week ago — is shredded. The node then catches up, the anchors are back, and their
    /// vault keys are gone: the hospital's patient records are destroyed.
    ///
    /// Should: the sweep removes unanchored uploads only when the node knows its state is current
    /// (a replicated node after it has caught up with the log, never at start on a state that may
    /// be behind), or on a record of when each upload arrived that does not depend on the ledger
    /// being complete; after the restart and catch-up the anchored record's vault key and blob are
    /// still held.
    @Test func aReplicatedNodeRebuildingItsLedgerShredsEveryRecordOlderThanAWeekAtStart() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        let name = "st-mary/node"
        let node = harness.node(name)
        let store = try #require(node.records)
        func identity(_ member: String) throws -> SigningIdentity { try harness.definition.identity(named: member, directory: harness.directory) }
        func commit(_ by: SigningIdentity, _ contract: String, _ action: String, _ arguments: [UInt8]) async throws {
            let envelope = by.transaction(network: node.network, contract: contract, action: action, arguments: arguments).envelope
            let status = try await node.waitForCommit(try node.submit(envelope.encoded), timeout: .seconds(30))
            guard case .committed = status else { throw LedgerError(.internal, "\(contract).\(action) did not commit: \(status)") }
        }
        // A patient enrolled at St Mary's and one record anchored there.
        let authority = try OrganizationDirectory.authority(in: NetworkDefinition.organizationPath("st-mary", in: harness.directory), organization: "st-mary")
        let patientKey = P256.Signing.PrivateKey()
        let patient = try authority.issue(name: "st-mary/patient-7", role: .patient, publicKey: patientKey.publicKey)
        let pseudonym = PatientPseudonym.derive(identifier: "MRN-7", hospital: "st-mary", secret: SymmetricKey(size: .bits256))
        let admin = try identity("st-mary/admin")
        try await commit(admin, "consent", "register", ConsentAction.register(certificate: patient.derBytes).arguments)
        let fingerprint = SigningIdentity(privateKey: patientKey, certificate: patient).fingerprint
        try await commit(admin, "consent", "enrol", ConsentAction.enrol(patient: pseudonym, member: fingerprint).arguments)
        let key = SymmetricKey(size: .bits256)
        let blob = try SealedRecord.seal(Array("discharge letter".utf8), key: key)
        let (hash, record, holderKey) = try node.acceptRecord(blob)
        let put = RecordPut(id: hash, size: UInt64(blob.count), category: "report", device: nil, patient: pseudonym, holderKey: holderKey,
                            wrappedKey: try KeyWrap.wrap(key, for: try P256.KeyAgreement.PublicKey(x963Representation: holderKey),
                                                         info: KeyWrap.holderInfo(record: hash)))
        try await commit(try identity("st-mary/collector"), "records", "put", RecordAction.put(put).arguments)
        #expect(try node.anchor(record) != nil)
        let height = harness.highestHeight

        // The record was stored a while ago; the node's database is rebuilt from the log.
        await harness.stop(name)
        try Self.age(store, hash, by: store.orphanGrace + 86_400)
        let database = harness.directory + "/" + name.replacingOccurrences(of: "/", with: "-") + ".sqlite"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        try harness.start(name)
        try await harness.waitForHeight(height)
        let restarted = harness.node(name)
        #expect(try restarted.anchor(record) != nil, "the anchor is back after the catch-up")
        let records = try #require(restarted.records)
        #expect(try records.vaultKey(hash) != nil, "the start-up sweep shredded the vault key of an anchored record while the ledger was behind")
        #expect(records.blobFile(hash) != nil, "the start-up sweep removed the blob of an anchored record while the ledger was behind")
        await harness.stopAll()
    }
}
