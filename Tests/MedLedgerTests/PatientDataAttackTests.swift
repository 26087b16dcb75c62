import Testing
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import Hummingbird
import HTTPTypes
import NIOCore
import LedgerCore
import Contracts
import Collector
import Node
import Server
import LedgerTesting

/// Red-team tests of patient records, consent, key release and erasure. Every test here describes an
/// attack that works at commit 2d7ef39 and asserts the safe behaviour: each FAILS until fixed.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct PatientDataAttackTests {
    typealias Clinic = ConsentContractTests.Clinic
    typealias Ward = PatientRecordAPITests.Ward

    // MARK: 1. An organisation grant reaches that organisation's patients and delegates

    /// Attack: St Mary's patient consents to "North General, for treatment" (grantee
    /// `.organization("north-general")`), meaning North General's clinical staff. North General's
    /// *patients* and *delegates* are members of that organisation too — registered by its admin
    /// without any vote — and `consent.request` admits the `patient`/`delegate` roles as readers, so
    /// any North General patient (a stranger) reads St Mary's patient's record, with basis
    /// "consent". Safe: a patient or delegate reads only the records of patients it speaks for;
    /// organisation (and organisation-less role) grantees never match the `patient`/`delegate` roles.
    @Test func anOrganisationGrantDoesNotLetThatOrganisationsPatientsRead() throws {
        var clinic = try Clinic()
        _ = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("north-general"), purposes: [.treatment]))
        try ConsentContractTests.expectCommitted(clinic.net.apply(
            clinic.records("north-general/patient", .registerKey(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)))))
        let decision = try clinic.request("north-general/patient", clinic.report, .treatment)
        #expect(!decision.granted, "another hospital's patient was granted \(decision.basis.rawValue) access to St Mary's patient's report")

        // The everyday grant "my hospital, for treatment" hands the record to every other patient
        // (and every delegate) of that hospital.
        _ = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))
        let now = Date(timeIntervalSince1970: Double(clinic.net.time) / 1000)
        let neighbour = try TestNetwork.issue(clinic.net.authorities["st-mary"]!, name: "st-mary/bed-12", role: .patient, now: now)
        try ConsentContractTests.expectCommitted(clinic.net.apply(clinic.consent("st-mary/admin", .register(certificate: neighbour.certificate.derBytes))))
        func signed(_ contract: String, _ action: String, _ arguments: [UInt8]) -> Envelope {
            neighbour.transaction(network: clinic.net.network, contract: contract, action: action, arguments: arguments, timestamp: clinic.net.time).envelope
        }
        let key = RecordAction.registerKey(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation))
        try ConsentContractTests.expectCommitted(clinic.net.apply(signed(RecordsContract.name, key.name, key.arguments)))
        let request = ConsentAction.request(record: clinic.report, purpose: .treatment)
        let envelope = signed(ConsentContract.name, request.name, request.arguments)
        try ConsentContractTests.expectCommitted(clinic.net.apply(envelope))
        let neighbours = try #require(clinic.decision(envelope.id))
        #expect(!neighbours.granted, "another St Mary's patient was granted \(neighbours.basis.rawValue) access to this patient's report")
    }

    // MARK: 2. A hospital admin makes itself a "delegate" of any patient: consent bypass

    /// Attack: St Mary's admin mints a `delegate` certificate (consent.register, no vote), adds it
    /// as a delegate of a patient who never asked (consent.delegate by the admin), and reads every
    /// record of that patient with basis "patient" — no consent, no break-glass, nothing in the
    /// review queue, and the disclosure log shows it as the patient's own side reading. Safe: adding
    /// a delegate needs the patient (a transaction signed by the patient); the admin may only remove.
    @Test func aHospitalAdminCannotMakeItselfAPatientsDelegate() throws {
        var clinic = try Clinic()
        let now = Date(timeIntervalSince1970: Double(clinic.net.time) / 1000)
        let stooge = try TestNetwork.issue(clinic.net.authorities["st-mary"]!, name: "st-mary/stooge", role: .delegate, now: now)
        try ConsentContractTests.expectCommitted(clinic.net.apply(clinic.consent("st-mary/admin", .register(certificate: stooge.certificate.derBytes))))
        let add = clinic.net.apply(clinic.consent("st-mary/admin", .delegate(patient: clinic.pseudonym, member: stooge.fingerprint, add: true)))
        #expect(add.first??.code == .forbidden, "the admin added its own delegate to a patient without the patient: \(add)")
        // What the stooge then gets, when the add commits:
        func signed(_ contract: String, _ action: String, _ arguments: [UInt8]) -> Envelope {
            stooge.transaction(network: clinic.net.network, contract: contract, action: action, arguments: arguments, timestamp: clinic.net.time).envelope
        }
        if add == [nil] {
            let key = RecordAction.registerKey(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation))
            try ConsentContractTests.expectCommitted(clinic.net.apply(signed(RecordsContract.name, key.name, key.arguments)))
            let request = ConsentAction.request(record: clinic.report, purpose: .patientRequest)
            let envelope = signed(ConsentContract.name, request.name, request.arguments)
            try ConsentContractTests.expectCommitted(clinic.net.apply(envelope))
            let decision = try #require(clinic.decision(envelope.id))
            #expect(!decision.granted, "admin-minted delegate read the record without consent (basis \(decision.basis.rawValue))")
        }
    }

    // MARK: 3. Revocation does not stop key release under an earlier grant

    /// Attack: North General's clinician is granted (rule R), the patient revokes R at once
    /// ("revoke: the patient or a delegate removes a rule at once"), and the clinician still fetches
    /// the key and blob for up to 15 minutes: `grantedAccess` checks only the decision's window.
    /// Safe: key/blob release re-checks that the deciding rule is still in force (consent basis)
    /// or that the reader still speaks for the patient (patient basis), else 403.
    @Test func aRuleRevokedAfterTheGrantReleasesNoKey() async throws {
        let ward = try await Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("HIV-1 RNA detected".utf8), patient: ward.pseudonym, category: "report")
        try PatientRecordAPITests.expectCommitted(status)
        let rule = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(
            effect: .permit, grantee: .organization("north-general"), purposes: [.treatment])))
        let clinician = try ward.harness.identity("north-general/clinician")
        let decision = try await ward.consent(clinician, .request(record: record, purpose: .treatment))
        _ = try await ward.consent(ward.patient, .revoke(patient: ward.pseudonym, rule: rule))
        let code = await PatientRecordAPITests.code {
            _ = try await ward.client(clinician).open(record: record, decision: decision, encryptionKey: ward.keys["north-general/clinician"]!)
        }
        #expect(code == "forbidden", "after the revocation committed the clinician still opened the record (error: \(code ?? "none"))")
        try await ward.stop()
    }

    /// Attack: a delegate (an ex-partner) asks for the record (basis "patient"), the patient removes
    /// the delegate, and the ex-delegate still fetches key and blob within the window. Safe: 403.
    @Test func aRemovedDelegateGetsNoKeyFromAnEarlierDecision() async throws {
        let ward = try await Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("psychiatric note".utf8), patient: ward.pseudonym, category: "report")
        try PatientRecordAPITests.expectCommitted(status)
        let authority = try OrganizationDirectory.authority(in: NetworkDefinition.organizationPath("st-mary", in: ward.harness.directory),
                                                             organization: "st-mary")
        let signingKey = P256.Signing.PrivateKey()
        let delegate = SigningIdentity(privateKey: signingKey, certificate: try authority.issue(name: "st-mary/ex-partner", role: .delegate,
                                                                                                publicKey: signingKey.publicKey))
        _ = try await ward.consent(try ward.harness.identity("st-mary/admin"), .register(certificate: delegate.certificate.derBytes))
        _ = try await ward.consent(ward.patient, .delegate(patient: ward.pseudonym, member: delegate.fingerprint, add: true))
        let encryption = P256.KeyAgreement.PrivateKey()
        try PatientRecordAPITests.expectCommitted(try await ward.client(delegate).submit(
            contract: "records", action: "register_key", arguments: RecordAction.registerKey(Array(encryption.publicKey.x963Representation)).arguments))
        let decision = try await ward.consent(delegate, .request(record: record, purpose: .patientRequest))
        _ = try await ward.consent(ward.patient, .delegate(patient: ward.pseudonym, member: delegate.fingerprint, add: false))
        let code = await PatientRecordAPITests.code { _ = try await ward.client(delegate).open(record: record, decision: decision, encryptionKey: encryption) }
        #expect(code == "forbidden", "the removed delegate still opened the record (error: \(code ?? "none"))")
        try await ward.stop()
    }

    // MARK: 4. Pre-authentication buffering of upload bodies

    /// Attack (outsider, no key): name a *real* member's fingerprint (public: in blocks, disclosure
    /// logs, `reader` fields) in the Authorization header with a junk signature, and POST a large
    /// body to /v1/records. The large-body pre-check only asks whether the claimed fingerprint is a
    /// current member, so the node reads and hashes up to 64 MiB per connection before the
    /// signature fails. Safe: an unproven identity never makes the node read more than the small
    /// limit (e.g. sign a declared body hash/length header and verify the signature before reading,
    /// and check role/organisation of the route up front).
    @Test func aForgedClaimToARealMembersIdentityDoesNotMakeTheNodeReadALargeBody() async throws {
        let harness = try NodeHarness()
        let authenticator = RequestAuthenticator(node: harness.node)
        let victim = try harness.identity("st-mary/collector").fingerprint
        let pulled = PulledBytes()
        let credentials = RequestSignature.Credentials(member: victim, time: Clock.nowMilliseconds(), nonce: [UInt8](repeating: 7, count: 16),
                                                       signature: [UInt8](repeating: 0, count: 64))
        var fields = HTTPFields()
        fields[.authorization] = credentials.headerValue
        var request = Request(head: HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: "/v1/records", headerFields: fields),
                              body: RequestBody(asyncSequence: CountingBody(chunks: 32, chunkSize: 64 * 1024, pulled: pulled)))
        var refused: LedgerError?
        do { _ = try await authenticator.authenticate(&request, bodyLimit: APIRoute.storeRecord.bodyLimit) } catch { refused = error }
        #expect(refused != nil)
        #expect(pulled.count <= RequestAuthenticator.maxBodyBytes,
                "an unauthenticated caller made the node read \(pulled.count) bytes before refusing with \(refused?.code.rawValue ?? "-")")
        try await harness.stop()
    }

    // MARK: 5. Hiding a granted access from the patient's disclosure log

    /// Attack: North General's clinician is granted once (decision D), then floods the patient's
    /// disclosure log with 1,000 cheap *denied* requests (purpose research, no consent), grinding the
    /// nonce so that every flood id sorts before D (D's id is ground to start with `f`). The log
    /// (`LedgerNode.disclosures`, `GET /v1/patients/{p}/disclosures`, at most 1,000, no cursor) is
    /// the first 1,000 keys in *transaction-id* order, so D is never shown to the patient or the
    /// admin. (Without any attacker, a long-lived patient's log also stops showing new accesses
    /// once it has 1,000 entries; `patientRecords` and the break-glass queue cut off the same way.)
    /// Safe: the log answers every decision (newest first, paginated), whatever the ids.
    @Test func aFloodOfDeniedRequestsDoesNotHideAGrantFromTheDisclosureLog() async throws {
        let ward = try await Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("oncology report".utf8), patient: ward.pseudonym, category: "report")
        try PatientRecordAPITests.expectCommitted(status)
        _ = try await ward.consent(ward.patient, .grant(patient: ward.pseudonym, terms: ConsentTerms(
            effect: .permit, grantee: .organization("north-general"), purposes: [.treatment])))
        let clinician = try ward.harness.identity("north-general/clinician")
        let network = ward.harness.node.network
        func ground(_ action: ConsentAction, _ accept: (Character) -> Bool) -> (Hash256, Envelope) {
            while true {
                let (id, envelope) = clinician.transaction(network: network, contract: ConsentContract.name, action: action.name, arguments: action.arguments)
                if accept(id.hex.first!) { return (id, envelope) }
            }
        }
        let (granted, grantEnvelope) = ground(.request(record: record, purpose: .treatment)) { $0 == "f" }
        let grantStatus = try await ward.harness.commit(grantEnvelope)
        guard case .committed = grantStatus else { Issue.record("grant request not committed: \(grantStatus)"); return }
        var last = granted
        for _ in 0..<1_000 {
            let (id, envelope) = ground(.request(record: record, purpose: .research)) { $0 != "f" }
            _ = try ward.harness.node.submit(envelope.encoded)
            last = id
        }
        _ = try await ward.harness.node.waitForCommit(last, timeout: .seconds(120))
        #expect(try ward.harness.node.decision(ward.pseudonym, granted)?.granted == true)

        struct Entry: Decodable { var id: Hash256; var granted: Bool }
        let log: [Entry] = try await ward.client(ward.patient).node.get("v1/patients/\(ward.pseudonym.hex)/disclosures")
        #expect(log.contains { $0.id == granted }, "the patient's disclosure log (\(log.count) entries) does not show the granted access")
        #expect(try ward.harness.node.disclosures(ward.pseudonym).contains { $0.id == granted })
        try await ward.stop()
    }

    // MARK: 6. Record-existence oracle for outsiders

    /// Attack: another hospital's clinician (or any patient: patient standing passes the `.route`
    /// check too) probes `GET /v1/records/{id}`: an anchored id answers 403, any other 404
    /// `unknown_record`, because the handler looks the anchor up before the resource check. (A
    /// researcher is stopped by the router's `.route` check: held.) Safe: the same 403 for both.
    @Test func anOutsiderCannotTellAnchoredRecordIdsFromOthers() async throws {
        let ward = try await Ward()
        let (record, status) = try await ward.client("st-mary/collector").put(Array("x".utf8), patient: ward.pseudonym, category: "report")
        try PatientRecordAPITests.expectCommitted(status)
        let researcher = try ward.client("north-general/clinician").node
        let anchored = try await researcher.raw("/v1/records/\(record.hex)").status
        let unknown = try await researcher.raw("/v1/records/\(Hash256.of([0xAB]).hex)").status
        #expect(anchored == 403)
        #expect(unknown == anchored, "an outsider tells anchored record ids apart: \(anchored) vs \(unknown)")
        try await ward.stop()
    }

    // MARK: 8. Another hospital squats a record id

    /// Attack: anchors live at the global key `rec/<id>`. North General's node operator sees St
    /// Mary's pending `records.put` (the etcd queue and every proposal are replicated) and has its
    /// collector anchor the same id first, for one of North General's own patients, with junk
    /// keys. St Mary's genuine record can then never be anchored (`record_exists`): the collector's
    /// upload is lost for good (it must re-seal), and the squatted anchor sits in the wrong
    /// hospital's and patient's name. Safe: the holder's own anchor of the blob it stores still
    /// commits (anchor key per holder, or the id bound to the holder's vault key), and the other
    /// hospital's anchor does not block it.
    @Test func anotherHospitalCannotSquatARecordIdBeforeItsHolderAnchorsIt() throws {
        var clinic = try Clinic()
        let theirs = PatientPseudonym.derive(identifier: "NG-1", hospital: "north-general", secret: SymmetricKey(size: .bits256))
        try ConsentContractTests.expectCommitted(clinic.net.apply(
            clinic.consent("north-general/admin", .enrol(patient: theirs, member: clinic.fingerprint("north-general/patient")))))
        // St Mary's collector sealed and uploaded a record; its put is pending.
        let key = SymmetricKey(size: .bits256)
        let blob = try SealedRecord.seal(Array("ECG of MRN-7".utf8), key: key)
        let id = Hash256.of(blob)
        let vault = P256.KeyAgreement.PrivateKey()
        let genuine = RecordPut(id: id, size: UInt64(blob.count), category: "report", device: nil, patient: clinic.pseudonym,
                                holderKey: Array(vault.publicKey.x963Representation),
                                wrappedKey: try KeyWrap.wrap(key, for: vault.publicKey, info: KeyWrap.holderInfo(record: id)))
        // North General copies the id (and, why not, the keys) under its own patient, and gets ordered first.
        var squat = genuine
        squat.patient = theirs
        try ConsentContractTests.expectCommitted(clinic.net.apply(clinic.records("north-general/collector", .put(squat))))
        let result = clinic.net.apply(clinic.records("st-mary/collector", .put(genuine)))
        #expect(result == [nil], "St Mary's own record could not be anchored after North General squatted its id: \(result)")
    }

    // MARK: 9. Consent state write amplification

    /// Attack (any patient or delegate — identities a hospital admin registers without a vote):
    /// a patient's whole consent (up to 256 rules of 32 categories and 32 devices each) is ONE
    /// state value, rewritten by every grant and revoke, and the store keeps every earlier version
    /// in its history. With the rules filled, each ~3 KB grant (or revoke) writes ~700 KB into every
    /// node's state and history, forever; cycling grant/revoke grows every node's database by
    /// hundreds of times the bytes submitted. Safe: a grant or revoke writes O(size of one rule)
    /// (e.g. one key per rule, `cns/<pseudonym>/<rule id>`, plus a small version record).
    ///
    /// Mitigation (not O(one rule): contracts read single keys, so the rules stay one value): the
    /// encoded state is capped at ``ConsentState/maxEncodedBytes``; the grant that would pass it is
    /// refused and writes nothing, so no grant or revoke rewrites more than that.
    @Test func aGrantWritesAboutOneRuleNotThePatientsWholeConsent() throws {
        var clinic = try Clinic()
        let categories = (0..<ConsentTerms.maxScope).map { i in String(format: "c%02d", i) + String(repeating: "x", count: 61) }.sorted()
        let devices = (0..<ConsentTerms.maxScope).map { Fixtures.udi(10_000_000_000_000_000 + $0) }
        func terms(_ n: Int) -> ConsentTerms {
            ConsentTerms(effect: .deny, grantee: .member(Hash256.of(Array("nobody \(n)".utf8))), categories: categories, devices: devices,
                         purposes: [.operations])
        }
        var refusal: LedgerError?
        var granted = 0
        for n in 0..<ConsentState.maxRules {
            let before = clinic.net.ledger.state
            if let error = clinic.net.apply(clinic.consent("st-mary/patient", .grant(patient: clinic.pseudonym, terms: terms(n)))).first ?? nil {
                refusal = error
                #expect(clinic.net.ledger.state == before, "a refused grant wrote state")
                break
            }
            granted += 1
        }
        #expect(refusal?.code == .invalidArgument, "filling the consent state was never refused")
        #expect(granted >= 2)
        let written = try #require(try clinic.net.ledger.value(forKey: StateKey.consent(clinic.pseudonym))).count
        #expect(written <= ConsentState.maxEncodedBytes, "the consent state grew to \(written) bytes")
    }

    // MARK: 7. Erased ciphertext comes back

    /// Careless operator / collector: after an erasure commits and the node shreds vault key and blob,
    /// a re-sent upload of the same sealed blob (a collector's outbox retrying) is accepted again
    /// (201): the blob is back on the holder's disk, and a fresh vault key is minted for an erased
    /// record, until the next restart shreds it. Safe: the node refuses to store the blob of an erased
    /// record (`record_erased`) and leaves nothing on disk.
    @Test func theBlobOfAnErasedRecordIsNotStoredAgain() async throws {
        let ward = try await Ward()
        let blob = try SealedRecord.seal(Array("glucose 9.1".utf8), key: SymmetricKey(size: .bits256))
        let collector = try ward.client("st-mary/collector")
        struct Stored: Decodable { var blob: Hash256; var record: Hash256; var holder_key: String }
        let stored: Stored = try await collector.node.postSigned("v1/records", body: blob)
        let holderKey = try #require(Hex.decode(stored.holder_key))
        let put = RecordPut(id: stored.blob, size: UInt64(blob.count), category: "device_readings", device: nil, patient: ward.pseudonym,
                            holderKey: holderKey, wrappedKey: try KeyWrap.wrap(SymmetricKey(size: .bits256),
                                                                               for: try P256.KeyAgreement.PublicKey(x963Representation: holderKey),
                                                                               info: KeyWrap.holderInfo(record: stored.blob)))
        try PatientRecordAPITests.expectCommitted(try await collector.submit(contract: "records", action: "put", arguments: RecordAction.put(put).arguments))
        try PatientRecordAPITests.expectCommitted(try await ward.client(ward.patient).submit(
            contract: "records", action: "erase", arguments: RecordAction.erase(record: stored.record, reason: "GDPR art. 17").arguments))
        let store = try #require(ward.harness.node.records)
        #expect(!FileManager.default.fileExists(atPath: store.path + "/blobs/" + stored.blob.hex))

        let again = await PatientRecordAPITests.code { let _: Stored = try await collector.node.postSigned("v1/records", body: blob) }
        #expect(again == "record_erased", "the erased record's blob was accepted again (\(again ?? "201"))")
        #expect(!FileManager.default.fileExists(atPath: store.path + "/blobs/" + stored.blob.hex), "the erased ciphertext is back on disk")
        #expect(try store.vaultKey(stored.blob) == nil, "a vault key exists again for an erased record")
        try await ward.stop()
    }
}

/// How many body bytes the server pulled from the client.
final class PulledBytes: Sendable {
    let total = Mutex(0)
    var count: Int { total.withLock { $0 } }
    func add(_ n: Int) { total.withLock { $0 += n } }
}

/// A request body of `chunks` × `chunkSize` zero bytes that counts what is read of it.
struct CountingBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: Int
    let chunkSize: Int
    let pulled: PulledBytes

    struct AsyncIterator: AsyncIteratorProtocol {
        var remaining: Int
        let chunkSize: Int
        let pulled: PulledBytes
        mutating func next() async -> ByteBuffer? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            pulled.add(chunkSize)
            return ByteBuffer(repeating: 0, count: chunkSize)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: chunks, chunkSize: chunkSize, pulled: pulled) }
}
