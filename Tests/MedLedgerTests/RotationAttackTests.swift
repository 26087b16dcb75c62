import Testing
import Crypto
import Foundation
import LedgerCore
import Contracts
import Collector
import Node
import Server
import LedgerTesting

/// Red-team pass on key rotation (`records.rotate`, `POST /v1/records/{id}/rotate`): each test is
/// an attack that worked against the code it was written for, and says what should happen instead.
struct RotationAttackTests {
    typealias API = PatientRecordAPITests

    /// The answer of `POST /v1/records/{id}/rotate`.
    typealias Prepared = RotationView

    static func prepare(_ ward: API.Ward, _ record: Hash256, as name: String = "st-mary/admin") async throws -> Prepared {
        try await ward.client(name).node.postSigned("v1/records/\(record.hex)/rotate", body: [])
    }

    /// Attack (careless admin, then a malicious one): the admin asks the node to prepare a rotation
    /// and never signs it (the client's check failed, the submit timed out, the operator gave up).
    /// The node keeps a second copy of the record — the same plaintext re-sealed, with its own
    /// vault key — and nothing on the ledger points at it. The patient then erases the record:
    /// the node shreds the anchored blob and its vault key, but the prepared copy survives, on disk
    /// and across restarts (`shredErasedRecords` only looks at anchored blobs). Whoever kept the
    /// prepared arguments (any writer of the hospital: admin, clinician, collector) can then anchor
    /// them with `records.put`, and the "erased" content is live and readable again.
    ///
    /// Should: erasing (or rotating) a record also shreds every rotation prepared for it and not
    /// committed (the node knows which prepared blob belongs to which record), so that after the
    /// erasure nothing at the holder opens the content; a put of a stale prepared rotation then
    /// anchors a record that nothing opens.
    @Test func anUnsignedRotationOutlivesThePatientsErasureAndResurrectsTheRecord() async throws {
        let ward = try await API.Ward()
        let plaintext = Array("HIV-1 viral load 48000 copies/mL".utf8)
        let (record, status) = try await ward.client("st-mary/collector").put(plaintext, patient: ward.pseudonym, category: "report")
        try API.expectCommitted(status)
        let prepared = try await Self.prepare(ward, record)
        let put = try prepared.put()

        try API.expectCommitted(try await ward.client(ward.patient).submit(contract: "records", action: "erase",
                                                                           arguments: RecordAction.erase(record: record, reason: "GDPR art. 17").arguments))
        let store = try #require(ward.harness.node.records)
        // After the erasure the holder should hold nothing that opens the record's content.
        #expect(try store.vaultKey(put.id) == nil, "the vault key of the unsigned rotation of an erased record is still on disk")
        #expect(try store.blob(put.id) == nil, "the blob of the unsigned rotation of an erased record is still on disk")

        // The prepared arguments, anchored as an ordinary record, bring the erased content back.
        let resurrected = try await ward.client("st-mary/admin").submit(contract: "records", action: "put", arguments: RecordAction.put(put).arguments)
        if resurrected.status == "committed" {
            _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                         purposes: [.treatment])))
            let clinician = try ward.harness.identity("st-mary/clinician")
            let decision = try await ward.consent(clinician, .request(record: prepared.rotated, purpose: .treatment))
            let opened = try? await ward.client(clinician).open(record: prepared.rotated, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!)
            #expect(opened != plaintext, "the content the patient erased is readable again under a stale prepared rotation")
        }
        try await ward.stop()
    }

    /// Attack (careless operator / malicious admin, resource use): every `POST .../rotate` re-seals
    /// the whole record (up to 64 MiB) and stores one more blob and vault key, from a body-less
    /// request; a client that retries, two admins racing, or a loop leave one full copy each, and
    /// the rotation that finally commits shreds only the old record, not the losers' copies.
    /// The copies of a rotated record are then readable by whoever kept their arguments.
    ///
    /// Should: at most one pending rotation per record (a second prepare answers the pending one or
    /// replaces and shreds it), and a committed rotation (or erasure) shreds the others: after it,
    /// the node holds the new record's blob and vault key and nothing else of this record.
    @Test func abandonedAndRacingPreparesEachLeaveAFullCopyThatTheCommittedRotationDoesNotShred() async throws {
        let ward = try await API.Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("MRI brain, no lesion".utf8), patient: ward.pseudonym, category: "report")
        try API.expectCommitted(status)
        let store = try #require(ward.harness.node.records)
        let before = store.held()
        var stale: [Hash256] = []
        for _ in 0..<4 { stale.append(try await Self.prepare(ward, record).blob) }
        #expect(store.held().count <= before.count + 1, "four prepares of one record stored \(store.held().count - before.count) copies")

        let (rotated, committed) = try await ward.client("st-mary/admin").rotate(record: record)
        try API.expectCommitted(committed)
        let newBlob = try #require(try ward.harness.node.anchor(rotated)).put.id
        // Besides the new record, the store should hold nothing of this record.
        #expect(store.held() == [newBlob], "after the rotation the node still holds \(store.held().count - 1) stale copies")
        // (Fixed by answering the pending rotation again: the four prepares named one copy, the one that committed.)
        #expect(Set(stale) == [newBlob], "the prepares named \(Set(stale).count) copies")
        for blob in stale where blob != newBlob { #expect(try store.vaultKey(blob) == nil, "stale prepared copy \(blob.hex.prefix(16))… keeps its vault key") }
        try await ward.stop()
    }

    /// Follow-ups of the first attack: a prepared copy anchored as an ordinary record (before any
    /// erasure) is shredded, so the duplicate opens with nothing; and a pending copy whose record
    /// was erased while the node was down (its settling after the commit never ran) is shredded
    /// by the start-up sweep.
    @Test func aPreparedCopyAnchoredByAPutOrOrphanedByACrashIsShredded() async throws {
        let ward = try await API.Ward()
        let store = try #require(ward.harness.node.records)
        let (record, status) = try await ward.client("st-mary/collector").put(Array("CT thorax".utf8), patient: ward.pseudonym, category: "report")
        try API.expectCommitted(status)
        let prepared = try await Self.prepare(ward, record)
        try API.expectCommitted(try await ward.client("st-mary/clinician").submit(contract: "records", action: "put",
                                                                                  arguments: RecordAction.put(try prepared.put()).arguments))
        #expect(try store.vaultKey(prepared.blob) == nil && store.blobFile(prepared.blob) == nil)
        #expect(store.pendingRotations().isEmpty)
        #expect(try ward.harness.node.anchor(record)?.erasedAt == nil, "the original stays")

        // A pending copy left behind for a record erased meanwhile (as after a crash): the sweep shreds it.
        let again = try await Self.prepare(ward, record)
        #expect(again.blob != prepared.blob)
        let marker = store.path + "/pending/" + record.hex
        let kept = try SecureFile.read(marker)
        try API.expectCommitted(try await ward.client(ward.patient).submit(contract: "records", action: "erase",
                                                                           arguments: RecordAction.erase(record: record, reason: "GDPR art. 17").arguments))
        #expect(try store.vaultKey(again.blob) == nil)
        // Put the copy and its mark back, as a crash before the settling would have left them.
        let copy = try SealedRecord.seal([1], key: SymmetricKey(size: .bits256))
        let (copyBlob, _, _) = try ward.harness.node.acceptRecord(copy)
        var put = try again.put()
        put.id = copyBlob
        try SecureFile.create(marker, contents: put.encoded)
        #expect(kept != put.encoded && store.pendingRotations().count == 1)
        ward.harness.node.sweepRecords()
        #expect(store.pendingRotations().isEmpty && store.blobFile(copyBlob) == nil)
        try await ward.stop()
    }

    /// Red team 2: an admin signs `records.rotate` with an anchor its node never prepared (a blob
    /// it does not hold): the rotation commits (the ledger cannot know), but the holder keeps the
    /// original's key and blob rather than shred the only copy; the record is not destroyed.
    @Test func aRotationToACopyTheNodeDoesNotHoldKeepsTheOriginal() async throws {
        let ward = try await API.Ward()
        let store = try #require(ward.harness.node.records)
        let (record, status) = try await ward.client("st-mary/collector").put(Array("EEG normal".utf8), patient: ward.pseudonym, category: "report")
        try API.expectCommitted(status)
        let original = try #require(try ward.harness.node.anchor(record)).put
        let vault = P256.KeyAgreement.PrivateKey()
        let invented = Hash256.of([0x0f, 0x0f])
        let put = RecordPut(id: invented, size: original.size, category: original.category, device: nil, patient: original.patient,
                            holderKey: Array(vault.publicKey.x963Representation),
                            wrappedKey: try KeyWrap.wrap(SymmetricKey(size: .bits256), for: vault.publicKey, info: KeyWrap.holderInfo(record: invented)))
        try API.expectCommitted(try await ward.client("st-mary/admin").submit(contract: "records", action: "rotate",
                                                                              arguments: RecordAction.rotate(record: record, put: put).arguments))
        #expect(try ward.harness.node.anchor(record)?.erasedAt != nil)
        #expect(try store.vaultKey(original.id) != nil && store.blobFile(original.id) != nil, "the only copy was shredded")
        // Nor does the start-up sweep shred it.
        ward.harness.node.sweepRecords()
        #expect(try store.vaultKey(original.id) != nil)
        try await ward.stop()
    }

    /// Attack (availability of a security control): St Mary's anchored readings from one of its
    /// devices; the device is later transferred to North General (devices.transfer +
    /// accept_transfer). St Mary's still holds the records, but can no longer rotate their keys:
    /// `records.rotate` re-runs the put checks and insists that the device belongs to the holder
    /// *now*, so the rotation is refused as `forbidden`. A hospital that suspects a data key leak
    /// cannot re-key readings of any device it has since given away or sold.
    ///
    /// Should: a rotation keeps the old anchor's (canonical) device whatever its current owner —
    /// the device was the holder's when the record was stored — so it commits.
    @Test func aRecordFromADeviceTransferredAwayCanNoLongerBeRotated() throws {
        var clinic = try ConsentContractTests.Clinic()
        let old = try #require(clinic.anchor(clinic.readings))
        try ConsentContractTests.expectCommitted(clinic.net.apply(clinic.net.device("st-mary/admin", .transfer(udi: clinic.readingsDevice, to: "north-general"))))
        try ConsentContractTests.expectCommitted(clinic.net.apply(clinic.net.device("north-general/admin", .acceptTransfer(udi: clinic.readingsDevice))))
        #expect(clinic.net.device(clinic.readingsDevice)?.owner == "north-general")

        let vault = P256.KeyAgreement.PrivateKey()
        let blob = Hash256.of([0x52, 0x4f, 0x54])
        let put = RecordPut(id: blob, size: old.put.size, category: old.put.category, device: old.put.device, patient: old.put.patient,
                            holderKey: Array(vault.publicKey.x963Representation),
                            wrappedKey: try KeyWrap.wrap(SymmetricKey(size: .bits256), for: vault.publicKey, info: KeyWrap.holderInfo(record: blob)))
        let result = clinic.net.apply(clinic.records("st-mary/admin", .rotate(record: clinic.readings, put: put)))
        #expect(result == [nil], "rotation of St Mary's own record refused: \(result)")
        #expect(clinic.anchor(clinic.readings)?.erasedAt != nil)
    }
}

extension RotationView {
    /// The prepared anchor in the `records.rotate` arguments.
    func put() throws -> RecordPut {
        guard let bytes = Hex.decode(arguments), case .rotate(_, let put) = try RecordAction(action: action, arguments: bytes) else {
            throw LedgerError(.malformedEncoding, "not a records.rotate")
        }
        return put
    }
}
