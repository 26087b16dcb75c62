import Testing
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore
import Contracts
import Collector
import Node
import LedgerTesting

/// Patient records end to end over the real HTTP API of a node: upload, anchor, consent, decision,
/// key release, decryption — and every way around it refused.
struct PatientRecordAPITests {
    /// A demo network's node and API, a patient registered and enrolled at St Mary's, and
    /// encryption keys for two clinicians.
    final class Ward: Sendable {
        let harness: NodeHarness
        let api: APIHarness
        let patient: SigningIdentity
        let pseudonym = PatientPseudonym.derive(identifier: "MRN-42", hospital: "st-mary", secret: SymmetricKey(size: .bits256))
        let keys: [String: P256.KeyAgreement.PrivateKey]

        init(maxRecordBytes: Int = RecordStore.defaultMaxRecordBytes) async throws {
            harness = try NodeHarness(maxRecordBytes: maxRecordBytes)
            api = try await APIHarness(harness)
            let authority = try OrganizationDirectory.authority(in: NetworkDefinition.organizationPath("st-mary", in: harness.directory),
                                                                 organization: "st-mary")
            let key = P256.Signing.PrivateKey()
            patient = SigningIdentity(privateKey: key, certificate: try authority.issue(name: "st-mary/patient-42", role: .patient, publicKey: key.publicKey))
            var keys: [String: P256.KeyAgreement.PrivateKey] = [:]
            for name in ["st-mary/clinician", "north-general/clinician", "medtech-research/researcher"] { keys[name] = P256.KeyAgreement.PrivateKey() }
            keys["patient"] = P256.KeyAgreement.PrivateKey()
            self.keys = keys
            let admin = try harness.identity("st-mary/admin")
            try await expectCommitted(client(admin).submit(contract: "consent", action: "register",
                                                           arguments: ConsentAction.register(certificate: patient.certificate.derBytes).arguments))
            try await expectCommitted(client(admin).submit(contract: "consent", action: "enrol",
                                                           arguments: ConsentAction.enrol(patient: pseudonym, member: patient.fingerprint).arguments))
            for (name, key) in keys {
                let identity = name == "patient" ? patient : try harness.identity(name)
                try await expectCommitted(client(identity).submit(contract: "records", action: "register_key",
                                                                  arguments: RecordAction.registerKey(Array(key.publicKey.x963Representation)).arguments))
            }
        }

        func client(_ identity: SigningIdentity) -> RecordClient {
            RecordClient(node: NodeClient(baseURL: api.base, signer: .init(identity: identity, network: harness.node.network)),
                         identity: identity, network: harness.node.network)
        }

        func client(_ name: String) throws -> RecordClient { client(try harness.identity(name)) }

        /// Submits a consent action and returns the committed decision (for requests) by its id.
        func consent(_ identity: SigningIdentity, _ action: ConsentAction) async throws -> Hash256 {
            let status = try await client(identity).submit(contract: "consent", action: action.name, arguments: action.arguments)
            try expectCommitted(status)
            return status.id
        }

        func stop() async throws {
            await api.stop()
            try await harness.stop()
        }
    }

    static func expectCommitted(_ status: NodeClient.Status, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(status.status == "committed", "\(status.code ?? "") \(status.message ?? "")", sourceLocation: sourceLocation)
        if status.status != "committed" { throw LedgerError(.internal, "not committed: \(status.code ?? "") \(status.message ?? "")") }
    }

    static func code(_ body: () async throws -> Void) async -> String? {
        do { try await body(); return nil } catch let error as LedgerError { return error.code.rawValue } catch { return "\(error)" }
    }

    @Test func aGrantedReaderDecryptsAndNobodyElseObtainsAReadableRecord() async throws {
        let ward = try await Ward()
        let plaintext = Array("blood pressure 120/80 mmHg, MRN-42".utf8)
        let (record, status) = try await ward.client("st-mary/collector").put(plaintext, patient: ward.pseudonym, category: "report")
        try Self.expectCommitted(status)

        // Consent: St Mary's may read for treatment; North General's clinician asks and is denied.
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let granted = try await ward.consent(clinician, .request(record: record, purpose: .treatment))
        let opened = try await ward.client(clinician).open(record: record, decision: granted, encryptionKey: ward.keys["st-mary/clinician"]!)
        #expect(opened == plaintext)

        let outsider = try ward.harness.identity("north-general/clinician")
        let denied = try await ward.consent(outsider, .request(record: record, purpose: .treatment))
        #expect(await Self.code { _ = try await ward.client(outsider).open(record: record, decision: denied, encryptionKey: ward.keys["north-general/clinician"]!) } == "forbidden")
        // Someone else's grant is no grant.
        #expect(await Self.code { _ = try await ward.client(outsider).open(record: record, decision: granted, encryptionKey: ward.keys["north-general/clinician"]!) } == "forbidden")
        // A researcher without any decision, and a made-up decision id.
        #expect(await Self.code { _ = try await ward.client("medtech-research/researcher").open(record: record, decision: .of([9]), encryptionKey: ward.keys["medtech-research/researcher"]!) } == "not_found")
        // Even the granted reader cannot open it with another key: the wrap is for its registered one.
        #expect(await Self.code { _ = try await ward.client(clinician).open(record: record, decision: granted, encryptionKey: P256.KeyAgreement.PrivateKey()) } == "verification_failed")

        // Anchors and the disclosure log: the patient and the hospital, not other organisations.
        let patientClient = ward.client(ward.patient).node
        struct Decision: Decodable { var id: Hash256; var granted: Bool; var basis: String; var reader_name: String? }
        let log: [Decision] = try await patientClient.get("v1/patients/\(ward.pseudonym.hex)/disclosures")
        #expect(log.map(\.id).sorted() == [granted, denied].sorted())
        #expect(log.first { $0.id == denied }?.basis == "no_consent")
        #expect(log.first { $0.id == granted }?.reader_name == "st-mary/clinician")
        let adminLog: [Decision] = try await ward.client("st-mary/admin").node.get("v1/patients/\(ward.pseudonym.hex)/disclosures")
        #expect(adminLog.count == 2)
        for name in ["north-general/admin", "medtech-research/researcher", "st-mary/collector"] {
            let answer = try await ward.client(name).node.raw("/v1/patients/\(ward.pseudonym.hex)/disclosures")
            #expect(answer.status == 403, "\(name)")
        }
        for name in ["north-general/clinician", "medtech-research/researcher"] {
            #expect(try await ward.client(name).node.raw("/v1/records/\(record.hex)").status == 403, "\(name)")
        }
        #expect(try await ward.client("st-mary/clinician").node.raw("/v1/records/\(record.hex)").status == 200)
        #expect(try await ward.client(ward.patient).node.raw("/v1/patients/\(ward.pseudonym.hex)/records").status == 200)
        // Without credentials: 401, whatever the route.
        for path in ["/v1/records/\(record.hex)", "/v1/records/\(record.hex)/blob?decision=\(granted.hex)", "/v1/patients/\(ward.pseudonym.hex)/consent"] {
            let (_, response) = try await URLSession.shared.data(from: URL(string: path, relativeTo: ward.api.base)!)
            #expect((response as? HTTPURLResponse)?.statusCode == 401, "\(path)")
        }

        // Nothing readable on disk: no plaintext, no patient identifier, in any file of the node.
        for planted in ["120/80", "MRN-42"] {
            #expect(try Self.files(containing: Array(planted.utf8), under: ward.harness.directory).isEmpty, "\(planted)")
        }
        try await ward.stop()
    }

    @Test func uploadsAreForTheHoldersOwnMembersAndBadInputIsRefused() async throws {
        let ward = try await Ward()
        let blob = try SealedRecord.seal(Array("x".utf8), key: SymmetricKey(size: .bits256))
        struct Stored: Decodable { var blob: Hash256; var record: Hash256 }
        for name in ["north-general/collector", "medtech-research/researcher", "device-regulator/auditor"] {
            #expect(await Self.code { let _: Stored = try await ward.client(name).node.postSigned("v1/records", body: blob) } == "forbidden", "\(name)")
        }
        #expect(await Self.code { let _: Stored = try await ward.client("st-mary/collector").node.postSigned("v1/records", body: [1, 2, 3]) } == "malformed_encoding")
        let stored: Stored = try await ward.client("st-mary/clinician").node.postSigned("v1/records", body: blob)
        #expect(stored.blob == Hash256.of(blob) && stored.record == RecordAnchor.recordID(holder: "st-mary", blob: stored.blob))

        // An outsider's large body is refused before it is read; a member's oversized one by its declared length.
        var request = URLRequest(url: ward.api.base.appendingPathComponent("v1/records"))
        request.httpMethod = "POST"
        request.httpBody = Data(count: 1 << 20)
        request.setValue(RequestSignature.Credentials(member: .of([1]), time: Clock.nowMilliseconds(), nonce: [UInt8](repeating: 1, count: 16),
                                                      signature: [UInt8](repeating: 0, count: 64)).headerValue, forHTTPHeaderField: "Authorization")
        let (body, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 401, "\(String(decoding: body, as: UTF8.self))")
        try await ward.stop()
    }

    @Test func aTamperedOrSwappedBlobIsDetectedBeforeDecryptionAndErasureShreds() async throws {
        let ward = try await Ward()
        let collector = try ward.client("st-mary/collector")
        let (first, firstStatus) = try await collector.put(Array("glucose 5.4".utf8), patient: ward.pseudonym, category: "device_readings")
        let (second, secondStatus) = try await collector.put(Array("glucose 7.9".utf8), patient: ward.pseudonym, category: "device_readings")
        try Self.expectCommitted(firstStatus)
        try Self.expectCommitted(secondStatus)
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let decision = try await ward.consent(clinician, .request(record: first, purpose: .treatment))
        let store = try #require(ward.harness.node.records)
        let (firstBlob, secondBlob) = (try #require(try ward.harness.node.anchor(first)).put.id, try #require(try ward.harness.node.anchor(second)).put.id)
        let blobPath = store.path + "/blobs/" + firstBlob.hex
        let original = try SecureFile.read(blobPath)

        // Swapped: the other record's blob in its place.
        try Data(try SecureFile.read(store.path + "/blobs/" + secondBlob.hex)).write(to: URL(fileURLWithPath: blobPath))
        #expect(await Self.code { _ = try await ward.client(clinician).open(record: first, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) } == "verification_failed")
        // Tampered: one bit of the ciphertext.
        var tampered = original
        tampered[20] ^= 1
        try Data(tampered).write(to: URL(fileURLWithPath: blobPath))
        #expect(await Self.code { _ = try await ward.client(clinician).open(record: first, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) } == "verification_failed")
        try Data(original).write(to: URL(fileURLWithPath: blobPath))
        #expect(try await ward.client(clinician).open(record: first, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) == Array("glucose 5.4".utf8))

        // Erasure: the patient asks; the holder destroys the vault key and blob; the anchor stays.
        let vaultKey = try #require(try store.vaultKey(firstBlob))
        _ = try await ward.client(ward.patient).submit(contract: "records", action: "erase",
                                                       arguments: RecordAction.erase(record: first, reason: "GDPR art. 17").arguments)
        #expect(!FileManager.default.fileExists(atPath: store.path + "/vault/" + firstBlob.hex))
        #expect(!FileManager.default.fileExists(atPath: blobPath))
        #expect(try Self.files(containing: Array(vaultKey.rawRepresentation), under: ward.harness.directory).isEmpty)
        #expect(try Self.files(containing: original, under: ward.harness.directory).isEmpty)
        #expect(try ward.harness.node.anchor(first)?.erasedAt != nil)
        #expect(await Self.code { _ = try await ward.client(clinician).open(record: first, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) } == "record_erased")
        // The other record is untouched.
        #expect(try store.vaultKey(secondBlob) != nil)
        try await ward.stop()
    }

    @Test func largeUploadsStreamToDiskAndBrokenOnesLeaveNothingBehind() async throws {
        let ward = try await Ward()
        let store = try #require(ward.harness.node.records)
        func leftovers() -> [String] {
            ["blobs", "vault"].flatMap { (try? FileManager.default.contentsOfDirectory(atPath: store.path + "/" + $0)) ?? [] }.filter { $0.contains(".tmp-") }
        }
        // 24 MiB through the client, far above anything the API collects in memory: stored, anchored, read back.
        var plaintext = [UInt8](repeating: 0x20, count: 24 << 20)
        for index in stride(from: 0, to: plaintext.count, by: 4096) { plaintext[index] = UInt8(truncatingIfNeeded: index >> 12) }
        let (record, status) = try await ward.client("st-mary/collector").put(plaintext, patient: ward.pseudonym, category: "imaging")
        try Self.expectCommitted(status)
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let decision = try await ward.consent(clinician, .request(record: record, purpose: .treatment))
        #expect(try await ward.client(clinician).open(record: record, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) == plaintext)
        let held = store.held()

        // A body other than the one whose hash was signed: refused when its end arrives, nothing kept.
        let collector = try ward.harness.identity("st-mary/collector")
        let signed = try SealedRecord.seal([1, 2, 3], key: SymmetricKey(size: .bits256))
        let sent = try SealedRecord.seal([4, 5, 6], key: SymmetricKey(size: .bits256))
        var request = URLRequest(url: ward.api.base.appendingPathComponent("v1/records"))
        request.httpMethod = "POST"
        request.httpBody = Data(sent)
        request.setValue(Hash256.of(signed).hex, forHTTPHeaderField: "MedLedger-Body-SHA256")
        request.setValue(ward.api.header(collector, method: "POST", target: "/v1/records", body: signed), forHTTPHeaderField: "Authorization")
        let (answer, _) = try await URLSession.shared.data(for: request)
        #expect(String(decoding: answer, as: UTF8.self).contains("bad_signature"), "\(String(decoding: answer, as: UTF8.self))")
        #expect(store.held() == held && leftovers().isEmpty)

        // Chunked, with no length, past the store's limit: 413 once the limit is crossed, nothing kept.
        // (A fresh signature for each request: a nonce is accepted once.)
        func head() -> String {
            "POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(ward.api.header(collector, method: "POST", target: "/v1/records"))\r\n"
                + "MedLedger-Body-SHA256: \(Hash256.of([UInt8]()).hex)\r\n"
        }
        let chunkedHead = head()
        let port = ward.api.port
        let limit = store.maxRecordBytes
        let refused = await Task.detached { () -> Int? in
            guard let connection = RawConnection(port: port) else { return nil }
            connection.send(chunkedHead + "Transfer-Encoding: chunked\r\n\r\n")
            let chunk = Array("100000\r\n".utf8) + SealedRecord.magic + [UInt8](repeating: 7, count: (1 << 20) - 4) + Array("\r\n".utf8)
            for _ in 0...(limit >> 20) where connection.send(chunk) {}
            return connection.status()
        }.value
        #expect(refused == 413)
        #expect(store.held() == held && leftovers().isEmpty, "\(leftovers())")

        // Streamed: while a client is half-way, what it sent is on disk (not in memory); when it
        // goes away, its partial upload is removed.
        var connection = try #require(RawConnection(port: port))
        #expect(connection.send(head() + "Content-Length: \(4 << 20)\r\n\r\n") && connection.send(SealedRecord.magic + [UInt8](repeating: 9, count: 1 << 20)))
        func partial() -> Int {
            leftovers().compactMap { (try? FileManager.default.attributesOfItem(atPath: store.path + "/blobs/" + $0))?[.size] as? Int }.max() ?? 0
        }
        var deadline = ContinuousClock.now + .seconds(10)
        while partial() < (1 << 20) + 4, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(partial() == (1 << 20) + 4, "the upload in progress is not on disk")
        connection = try #require(RawConnection(port: port))  // the half-sent one is closed
        deadline = ContinuousClock.now + .seconds(10)
        while !leftovers().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(leftovers().isEmpty && store.held() == held)

        // A crash mid-upload leaves a temporary file: the store removes it when it opens.
        try SecureFile.create(store.path + "/blobs/upload.tmp-0001", contents: SealedRecord.magic)
        _ = try RecordStore(path: store.path)
        #expect(leftovers().isEmpty)
        try await ward.stop()
    }

    @Test func aNodeConfiguredForSmallerRecordsRefusesLargerOnesUnread() async throws {
        let ward = try await Ward(maxRecordBytes: 1 << 20)
        let collector = try ward.harness.identity("st-mary/collector")
        // A declared length over the node's limit (far under the default): refused before the body is read.
        let body = [UInt8](repeating: 1, count: (1 << 20) + 1)
        var request = URLRequest(url: ward.api.base.appendingPathComponent("v1/records"))
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue(Hash256.of(body).hex, forHTTPHeaderField: "MedLedger-Body-SHA256")
        request.setValue(ward.api.header(collector, method: "POST", target: "/v1/records", body: body), forHTTPHeaderField: "Authorization")
        let (answer, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 413, "\(String(decoding: answer, as: UTF8.self))")
        // Through the client: one byte under the limit is stored, one over is refused.
        let overhead = SealedRecord.overhead
        let (fits, status) = try await ward.client(collector).put([UInt8](repeating: 2, count: (1 << 20) - overhead), patient: ward.pseudonym, category: "report")
        try Self.expectCommitted(status)
        #expect(try ward.harness.node.anchor(fits)?.put.size == 1 << 20)
        #expect(await Self.code { _ = try await ward.client(collector).put([UInt8](repeating: 3, count: (1 << 20) - overhead + 1), patient: ward.pseudonym, category: "report") } == "payload_too_large")
        try await ward.stop()
    }

    @Test func uploadsNobodyAnchoredAreSweptAfterTheGracePeriodOnly() async throws {
        let ward = try await Ward()
        let store = try #require(ward.harness.node.records)
        let (kept, status) = try await ward.client("st-mary/collector").put(Array("anchored".utf8), patient: ward.pseudonym, category: "report")
        try Self.expectCommitted(status)
        let keptBlob = try #require(try ward.harness.node.anchor(kept)).put.id
        // An upload never anchored, and a rotation prepared but never signed.
        struct Stored: Decodable { var blob: Hash256 }
        let orphan: Stored = try await ward.client("st-mary/clinician").node.postSigned("v1/records", body: try SealedRecord.seal([7], key: SymmetricKey(size: .bits256)))
        struct Rotation: Decodable { var blob: Hash256 }
        let unsigned: Rotation = try await ward.client("st-mary/admin").node.postSigned("v1/records/\(kept.hex)/rotate", body: [])
        #expect(Set(store.held()) == [keptBlob, orphan.blob, unsigned.blob])
        // Young uploads stay (a client may be about to anchor them); past the grace period they go.
        #expect(ward.harness.node.sweepRecords() == 0)
        // (Age is measured up to the ledger's tip: the clock alone moving on removes nothing.)
        #expect(ward.harness.node.sweepRecords(now: Date() + store.orphanGrace * 2) == 0)
        for blob in [keptBlob, orphan.blob, unsigned.blob] { try UploadAttackTests.age(store, blob, by: store.orphanGrace - 60) }
        #expect(ward.harness.node.sweepRecords() == 0)
        // The unanchored upload goes; the pending rotation's copy stays while its record lives (an
        // admin may still sign it), and goes with the record; the anchored record stays, however old.
        for blob in [keptBlob, orphan.blob, unsigned.blob] { try UploadAttackTests.age(store, blob, by: store.orphanGrace + 60) }
        #expect(ward.harness.node.sweepRecords() == 1)
        #expect(Set(store.held()) == [keptBlob, unsigned.blob])
        #expect(try store.vaultKey(orphan.blob) == nil && store.blobFile(orphan.blob) == nil)
        // The anchored record, however old, is untouched and still opens.
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let decision = try await ward.consent(clinician, .request(record: kept, purpose: .treatment))
        #expect(try await ward.client(clinician).open(record: kept, decision: decision, encryptionKey: ward.keys["st-mary/clinician"]!) == Array("anchored".utf8))
        try await ward.stop()
    }

    @Test func keyRotationReEncryptsUnderANewDataKeyAndShredsTheOldOne() async throws {
        let ward = try await Ward()
        let plaintext = Array("ECG 72 bpm sinus rhythm".utf8)
        let (old, status) = try await ward.client("st-mary/collector").put(plaintext, patient: ward.pseudonym, category: "report")
        try Self.expectCommitted(status)
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"),
                                                                                                     purposes: [.treatment])))
        let clinician = try ward.harness.identity("st-mary/clinician")
        let oldDecision = try await ward.consent(clinician, .request(record: old, purpose: .treatment))
        let store = try #require(ward.harness.node.records)
        let oldAnchor = try #require(try ward.harness.node.anchor(old))
        let oldBlob = try SecureFile.read(store.path + "/blobs/" + oldAnchor.put.id.hex)
        let oldVault = try #require(try store.vaultKey(oldAnchor.put.id))
        let oldDataKey = try #require(try store.dataKey(for: oldAnchor))

        // Only the holder's admins may ask their node to prepare a rotation.
        struct Rotation: Decodable { var rotated: Hash256 }
        for name in ["st-mary/collector", "st-mary/clinician", "north-general/admin", "medtech-research/researcher", "device-regulator/auditor"] {
            #expect(await Self.code { let _: Rotation = try await ward.client(name).node.postSigned("v1/records/\(old.hex)/rotate", body: []) } == "forbidden", "\(name)")
        }
        #expect(await Self.code { let _: Rotation = try await ward.client(ward.patient).node.postSigned("v1/records/\(old.hex)/rotate", body: []) } == "forbidden")
        #expect(await Self.code { let _: Rotation = try await ward.client("st-mary/admin").node.postSigned("v1/records/\(Hash256.of([7]).hex)/rotate", body: []) } == "unknown_record")

        let (new, rotated) = try await ward.client("st-mary/admin").rotate(record: old)
        try Self.expectCommitted(rotated)
        let newAnchor = try #require(try ward.harness.node.anchor(new))
        #expect(newAnchor.put.patient == oldAnchor.put.patient && newAnchor.put.category == oldAnchor.put.category)
        #expect(newAnchor.put.id != oldAnchor.put.id && newAnchor.put.holderKey != oldAnchor.put.holderKey)
        #expect(try ward.harness.node.anchor(old)?.erasedAt != nil)
        #expect(try ward.harness.node.rotation(of: old) == new)
        // A new data key: the old one does not open the new blob.
        let newBlob = try SecureFile.read(store.path + "/blobs/" + newAnchor.put.id.hex)
        #expect(throws: LedgerError.self) { try SealedRecord.open(newBlob, key: oldDataKey) }
        #expect(try SealedRecord.open(newBlob, key: #require(try store.dataKey(for: newAnchor))) == plaintext)
        // The old key and ciphertext are gone from every file; the old decision opens nothing.
        #expect(try Self.files(containing: Array(oldVault.rawRepresentation), under: ward.harness.directory).isEmpty)
        #expect(try Self.files(containing: oldBlob, under: ward.harness.directory).isEmpty)
        #expect(await Self.code { _ = try await ward.client(clinician).open(record: old, decision: oldDecision, encryptionKey: ward.keys["st-mary/clinician"]!) } == "record_erased")
        // The consent carries over: a new request for the new record is granted and decrypts.
        let newDecision = try await ward.consent(clinician, .request(record: new, purpose: .treatment))
        #expect(try await ward.client(clinician).open(record: new, decision: newDecision, encryptionKey: ward.keys["st-mary/clinician"]!) == plaintext)
        // The old anchor names its successor; it cannot be rotated again.
        struct View: Decodable { var rotated_to: Hash256?; var erased_at: Int64? }
        let view: View = try await ward.client("st-mary/admin").node.get("v1/records/\(old.hex)")
        #expect(view.rotated_to == new && view.erased_at != nil)
        #expect(await Self.code { _ = try await ward.client("st-mary/admin").rotate(record: old) } == "record_erased")
        try await ward.stop()
    }

    /// The disclosure log and the consent as FHIR R4B AuditEvent and Consent bundles, valid per the
    /// `fhir.resources` models (scripts/validate_fhir.py), naming no patient identifier.
    @Test func theDisclosureLogAndConsentExportAsValidFHIR() async throws {
        let ward = try await Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("MRN-42 ECG".utf8), patient: ward.pseudonym, category: "report")
        try Self.expectCommitted(status)
        let expires = Clock.nowMilliseconds() + 86_400_000
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(
            effect: .permit, grantee: .role(.researcher, organization: nil), categories: ["report"], purposes: [.research], expiresAt: expires)))
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(
            effect: .deny, grantee: .organization("north-general"), purposes: [.treatment])))
        _ = try await ward.consent(try ward.harness.identity("medtech-research/researcher"), .request(record: record, purpose: .research))
        _ = try await ward.consent(try ward.harness.identity("north-general/clinician"), .request(record: record, purpose: .treatment))
        _ = try await ward.consent(try ward.harness.identity("north-general/clinician"), .breakGlass(record: record, reason: "unconscious"))

        let patient = ward.client(ward.patient).node
        var files: [String] = []
        for target in ["/v1/patients/\(ward.pseudonym.hex)/disclosures?format=fhir", "/v1/patients/\(ward.pseudonym.hex)/consent?format=fhir"] {
            let (code, body) = try await patient.raw(target)
            #expect(code == 200, "\(target): \(String(decoding: body, as: UTF8.self).prefix(200))")
            #expect(body.range(of: Data("MRN-42".utf8)) == nil)
            let path = Fixtures.temporaryPath("fhir") + ".json"
            try body.write(to: URL(fileURLWithPath: path))
            files.append(path)
        }
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        let script = FuzzRegressionTests.repositoryRoot.appendingPathComponent("scripts/validate_fhir.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + files
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("\"AuditEvent\": 3") && output.contains("\"Consent\": 2"), "\(output)")
        #expect(try await patient.raw("/v1/patients/\(ward.pseudonym.hex)/consent?format=xml").status == 400)
        try await ward.stop()
    }

    /// Files under `directory` whose bytes contain `needle`.
    static func files(containing needle: [UInt8], under directory: String) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory)
        var found: [String] = []
        while let name = enumerator?.nextObject() as? String {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            if data.range(of: Data(needle)) != nil { found.append(name) }
        }
        return found
    }
}
