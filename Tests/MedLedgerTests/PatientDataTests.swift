import Testing
import Crypto
import Foundation
@testable import LedgerCore
@testable import medledger
import Contracts
import LedgerTesting

/// The record envelope's cryptography, with known answers computed by an independent implementation
/// (Python `cryptography` 48 for AES-GCM and HMAC; RFC 9180's vectors for HPKE).
struct RecordCryptoTests {
    static let key = SymmetricKey(data: (0..<32).map { UInt8($0) })
    static let nonce = try! AES.GCM.Nonce(data: (0xA0..<0xAC).map { UInt8($0) })

    @Test func sealedRecordKnownAnswer() throws {
        let blob = try SealedRecord.seal(Array("heart rate 72 bpm".utf8), key: Self.key, nonce: Self.nonce)
        #expect(Hex.encode(blob) == "4d4c5231a0a1a2a3a4a5a6a7a8a9aaab8e7d1d5f31eb70de1600a7e4355aa2ae1d72988b19b62ef15e632ecb481272bc6f")
        #expect(Hash256.of(blob).hex == "066d275995d75226ee86755d25934ae9f9e164fd81d585e3049eb58692829b84")
        #expect(String(decoding: try SealedRecord.open(blob, key: Self.key), as: UTF8.self) == "heart rate 72 bpm")
    }

    @Test func aTamperedSealedRecordOrAWrongKeyNeverOpens() throws {
        let blob = try SealedRecord.seal(Array("heart rate 72 bpm".utf8), key: Self.key, nonce: Self.nonce)
        // Every byte position: header, nonce, ciphertext, tag.
        for index in blob.indices {
            var tampered = blob
            tampered[index] ^= 0x01
            #expect(throws: LedgerError.self) { try SealedRecord.open(tampered, key: Self.key) }
        }
        #expect((try? SealedRecord.open(blob, key: SymmetricKey(size: .bits256))) == nil)
        #expect(throws: LedgerError(.malformedEncoding, "a sealed record starts with MLR1 and holds at least 32 bytes")) {
            try SealedRecord.open(Array(blob.prefix(31)), key: Self.key)
        }
        #expect(throws: LedgerError.self) { try SealedRecord.seal([1], key: SymmetricKey(size: .bits128)) }
    }

    /// RFC 9180 test vector, base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM:
    /// the ciphersuite of every key wrap.
    @Test func hpkeKnownAnswerForTheWrapCiphersuite() throws {
        let secret = try P256.KeyAgreement.PrivateKey(rawRepresentation: Hex.decode("317f915db7bc629c48fe765587897e01e282d3e8445f79f27f65d031a88082b2")!)
        #expect(Hex.encode(secret.publicKey.x963Representation) == "04abc7e49a4c6b3566d77d0304addc6ed0e98512ffccf505e6a8e3eb25c685136f853148544876de76c0f2ef99cdc3a05ccf5ded7860c7c021238f9e2073d2356c")
        var recipient = try HPKE.Recipient(
            privateKey: secret, ciphersuite: KeyWrap.ciphersuite, info: Data(Hex.decode("4f6465206f6e2061204772656369616e2055726e")!),
            encapsulatedKey: Data(Hex.decode("04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0")!))
        let plaintext = try recipient.open(Data(Hex.decode("58c61a45059d0c5704560e9d88b564a8b63f1364b8d1fcb3c4c6ddc1d291742465e902cd216f8908da49f8f96f")!),
                                           authenticating: Data("Count-0".utf8))
        #expect(String(decoding: plaintext, as: UTF8.self) == "Beauty is truth, truth beauty")
    }

    /// Our DHKEM encapsulation (``P256Encapsulation``, a cheaper ephemeral key than swift-crypto's)
    /// against the CFRG vector for this ciphersuite (mode 0, KEM 0x0010, KDF 0x0001, AEAD 0x0002):
    /// with the vector's ephemeral key it produces the vector's enc, shared secret and first
    /// ciphertext; it decapsulates the vector's enc; and swift-crypto's own DHKEM opens its wraps.
    @Test func ourDHKEMMatchesTheVectorAndSwiftCryptosOwn() throws {
        let recipient = try P256.KeyAgreement.PrivateKey(rawRepresentation: Hex.decode("317f915db7bc629c48fe765587897e01e282d3e8445f79f27f65d031a88082b2")!)
        let ephemeral = try P256.KeyAgreement.PrivateKey(rawRepresentation: Hex.decode("90345e3a1d116c1dd39ae76d95ab858c142223a63e44f8f85318cfa91a84858e")!)
        let enc = "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0"
        let shared = "48893fecd82f7c3456af6a42d8f56325d21e08c10fa81299986aaff54cde7b49"
        let info = Data(Hex.decode("4f6465206f6e2061204772656369616e2055726e")!)
        let encapsulation = P256Encapsulation(recipient.publicKey, ephemeral: ephemeral)
        let result = try encapsulation.encapsulate()
        #expect(Hex.encode(result.encapsulated) == enc)
        #expect(result.sharedSecret.withUnsafeBytes { Hex.encode(Array($0)) } == shared)
        var sender = try HPKE.Sender(recipientKey: encapsulation, ciphersuite: KeyWrap.ciphersuite, info: info)
        #expect(Hex.encode(sender.encapsulatedKey) == enc)
        let sealed = try sender.seal(Data("Beauty is truth, truth beauty".utf8), authenticating: Data("Count-0".utf8))
        #expect(Hex.encode(sealed) == "58c61a45059d0c5704560e9d88b564a8b63f1364b8d1fcb3c4c6ddc1d291742465e902cd216f8908da49f8f96f")
        let decapsulated = try P256Encapsulation.Decapsulation(recipient).decapsulate(Data(Hex.decode(enc)!))
        #expect(decapsulated.withUnsafeBytes { Hex.encode(Array($0)) } == shared)
        // Fresh ephemerals each time; swift-crypto's recipient (its own DHKEM) opens every wrap.
        let key = SymmetricKey(size: .bits256)
        let first = try KeyWrap.wrap(key, for: recipient.publicKey, info: KeyWrap.holderInfo(record: .of([3])))
        let second = try KeyWrap.wrap(key, for: recipient.publicKey, info: KeyWrap.holderInfo(record: .of([3])))
        #expect(first.prefix(65) != second.prefix(65))
        var opener = try HPKE.Recipient(privateKey: recipient, ciphersuite: KeyWrap.ciphersuite, info: Data(KeyWrap.holderInfo(record: .of([3]))),
                                        encapsulatedKey: Data(first.prefix(65)))
        #expect(SymmetricKey(data: try opener.open(Data(first.dropFirst(65)))) == key)
        // And our recipient opens swift-crypto's sender.
        var theirs = try HPKE.Sender(recipientKey: recipient.publicKey, ciphersuite: KeyWrap.ciphersuite, info: info)
        let theirSealed = try theirs.seal(Data([1, 2, 3]))
        var ours = try HPKE.Recipient(privateKey: P256Encapsulation.Decapsulation(recipient), ciphersuite: KeyWrap.ciphersuite, info: info,
                                      encapsulatedKey: theirs.encapsulatedKey)
        #expect(try ours.open(theirSealed) == Data([1, 2, 3]))
        // Fresh keys are valid, distinct points.
        let keys = (0..<64).map { _ in KeyWrap.newPrivateKey().publicKey.x963Representation }
        #expect(Set(keys).count == 64 && keys.allSatisfy { KeyWrap.isValidPublicKey(Array($0)) })
    }

    /// The malloc settings `medledger` applies at start (without them, sealing MiB records spent
    /// more time in page faults than in AES). A first version silently did nothing: the C file
    /// tested `__GLIBC__` before any libc header had defined it.
    @Test func theAllocatorTuningAppliesOnGlibc() {
        MedLedger.tuneAllocator()
        #if os(Linux)
        #expect(MedLedger.allocatorTuned)
        #endif
    }

    @Test func aWrapOpensOnlyWithItsKeyForItsPurpose() throws {
        let holder = P256.KeyAgreement.PrivateKey()
        let record = Hash256.of([1])
        let wrapped = try KeyWrap.wrap(Self.key, for: holder.publicKey, info: KeyWrap.holderInfo(record: record))
        #expect(wrapped.count == RecordPut.wrappedKeyLength)
        let opened = try KeyWrap.unwrap(wrapped, with: holder, info: KeyWrap.holderInfo(record: record))
        #expect(opened == Self.key)
        // Another record's wrap, a reader's wrap, another key, a flipped bit: none opens.
        #expect((try? KeyWrap.unwrap(wrapped, with: holder, info: KeyWrap.holderInfo(record: Hash256.of([2])))) == nil)
        #expect((try? KeyWrap.unwrap(wrapped, with: holder, info: KeyWrap.readerInfo(record: record, decision: record))) == nil)
        #expect((try? KeyWrap.unwrap(wrapped, with: P256.KeyAgreement.PrivateKey(), info: KeyWrap.holderInfo(record: record))) == nil)
        var flipped = wrapped
        flipped[100] ^= 1
        #expect((try? KeyWrap.unwrap(flipped, with: holder, info: KeyWrap.holderInfo(record: record))) == nil)
        #expect(throws: LedgerError.self) { try KeyWrap.unwrap(Array(wrapped.dropLast()), with: holder, info: KeyWrap.holderInfo(record: record)) }
        #expect(KeyWrap.isValidPublicKey(Array(holder.publicKey.x963Representation)))
        #expect(!KeyWrap.isValidPublicKey([4] + [UInt8](repeating: 7, count: 64)))
    }

    @Test func pseudonymKnownAnswer() {
        let secret = SymmetricKey(data: (0x40..<0x60).map { UInt8($0) })
        let pseudonym = PatientPseudonym.derive(identifier: "MRN-000123", hospital: "st-mary", secret: secret)
        #expect(pseudonym.hex == "ff0b07e908a218174fe4d32cbaad0aca0bdaa5dd06c527828bc3135f8f440977")
        #expect(PatientPseudonym.derive(identifier: "MRN-000123", hospital: "north-general", secret: secret) != pseudonym)
        #expect(PatientPseudonym.derive(identifier: "MRN-000124", hospital: "st-mary", secret: secret) != pseudonym)
    }

    @Test func timeKeysSortAsTimes() {
        #expect(StateKey.timeKey(0) == "8000000000000000")
        #expect(StateKey.timeKey(1_760_000_000_000) == "80000199c82cc000")
        #expect(StateKey.timeKey(-1) == "7fffffffffffffff")
        let times: [Int64] = [.min, -5, -1, 0, 1, 255, 256, 1_760_000_000_000, .max]
        #expect(times.map(StateKey.timeKey) == times.map(StateKey.timeKey).sorted())
    }

    @Test func patientDataEncodingsRoundTripAndRejectGarbage() throws {
        let terms = ConsentTerms(effect: .deny, grantee: .role(.clinician, organization: "st-mary"), categories: ["report"],
                                 devices: ["GS1/00844588003288/S1"], purposes: [.research, .treatment], expiresAt: 5)
        #expect(try ConsentTerms(decoding: terms.encoded) == terms)
        for grantee in [Grantee.organization("x"), .role(.auditor, organization: nil), .member(Hash256.of([3]))] {
            #expect(try Grantee(decoding: grantee.encoded) == grantee)
        }
        #expect(throws: LedgerError.self) { try Grantee(decoding: [9]) }
        var unknownPurpose = terms.encoded
        let at = unknownPurpose.count - 1 - 8 - 5   // "TREAT" is the last purpose, before the expiry
        unknownPurpose[at] = UInt8(ascii: "X")
        #expect(throws: LedgerError.self) { try ConsentTerms(decoding: unknownPurpose) }
        let decision = ConsentDecision(id: .of([1]), record: .of([2]), patient: .of([3]), holder: "st-mary", reader: .of([4]),
                                       readerOrganization: "research", readerRole: .researcher, purpose: .research, granted: false,
                                       basis: .deny, rule: .of([5]), reason: nil, decidedAt: 7, expiresAt: nil)
        #expect(try ConsentDecision(decoding: decision.encoded) == decision)
        #expect(throws: LedgerError.self) { try ConsentDecision(decoding: decision.encoded + [0]) }
        for action in [ConsentAction.breakGlass(record: .of([1]), reason: "arrest"), .review(patient: .of([1]), decision: .of([2]), note: "ok"),
                       .delegate(patient: .of([1]), member: .of([2]), add: true), .grant(patient: .of([1]), terms: terms)] {
            #expect(try ConsentAction(action: action.name, arguments: action.arguments) == action)
        }
        #expect(throws: LedgerError.self) { try RecordAction(action: "put", arguments: [1, 2, 3]) }
    }
}

/// The consent and records contracts, executed by the real executor over in-memory state.
struct ConsentContractTests {
    /// A network with a patient at St Mary's, a delegate, clinicians at both hospitals, and a record
    /// of a St Mary's device and a report, both anchored.
    struct Clinic {
        var net: TestNetwork
        let pseudonym = PatientPseudonym.derive(identifier: "MRN-7", hospital: "st-mary", secret: SymmetricKey(data: [UInt8](repeating: 9, count: 32)))
        var readings = Hash256.zero
        var report = Hash256.zero
        var readingsDevice = ""

        init() throws {
            net = try TestNetwork(extraMembers: [
                "st-mary/patient": .patient, "st-mary/delegate": .delegate,
                "st-mary/clinician2": .clinician, "north-general/patient": .patient,
            ])
            readingsDevice = Fixtures.udi(1)
            try expectCommitted(net.apply(net.device("st-mary/collector", .register(udi: readingsDevice, attributes: Fixtures.attributes()))))
            try expectCommitted(net.apply(consent("st-mary/admin", .enrol(patient: pseudonym, member: fingerprint("st-mary/patient")))))
            try expectCommitted(net.apply(consent("st-mary/patient", .delegate(patient: pseudonym, member: fingerprint("st-mary/delegate"), add: true))))
            for reader in ["st-mary/clinician", "st-mary/clinician2", "north-general/clinician", "north-general/admin", "research/researcher",
                           "regulator/auditor", "st-mary/patient", "st-mary/delegate"] {
                try expectCommitted(net.apply(records(reader, .registerKey(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)))))
            }
            (readings, _) = try store("device_readings", device: readingsDevice)
            (report, _) = try store("report", device: nil)
        }

        func fingerprint(_ name: String) -> Hash256 { net.identity(name).fingerprint }

        func consent(_ signer: String, _ action: ConsentAction, timestamp: Int64? = nil) -> Envelope {
            net.transaction(signer, contract: ConsentContract.name, action: action.name, arguments: action.arguments, timestamp: timestamp)
        }

        func records(_ signer: String, _ action: RecordAction) -> Envelope {
            net.transaction(signer, contract: RecordsContract.name, action: action.name, arguments: action.arguments)
        }

        /// A sealed record for the patient, anchored by St Mary's collector: its id and data key.
        mutating func store(_ category: String, device: String?, signer: String = "st-mary/collector") throws -> (Hash256, SymmetricKey) {
            let key = SymmetricKey(size: .bits256)
            let blob = try SealedRecord.seal(Array("\(category) of MRN-7".utf8), key: key)
            let id = Hash256.of(blob)
            let vault = P256.KeyAgreement.PrivateKey()
            let put = RecordPut(id: id, size: UInt64(blob.count), category: category, device: device, patient: pseudonym,
                                holderKey: Array(vault.publicKey.x963Representation),
                                wrappedKey: try KeyWrap.wrap(key, for: vault.publicKey, info: KeyWrap.holderInfo(record: id)))
            try expectCommitted(net.apply(records(signer, .put(put))))
            return (RecordAnchor.recordID(holder: String(signer.split(separator: "/")[0]), blob: id), key)
        }

        func anchor(_ id: Hash256) -> RecordAnchor? {
            (try? net.ledger.value(forKey: StateKey.record(id))).flatMap { $0 }.flatMap { try? RecordAnchor(decoding: $0) }
        }

        func decision(_ id: Hash256) -> ConsentDecision? {
            guard let decision = (try? net.ledger.value(forKey: StateKey.decision(id))).flatMap({ $0 }).flatMap({ try? ConsentDecision(decoding: $0) }),
                  (try? net.ledger.value(forKey: StateKey.disclosure(pseudonym, decision.decidedAt, id))).flatMap({ $0 }) != nil else { return nil }
            return decision
        }

        func rules() -> [ConsentRule] {
            ((try? net.ledger.value(forKey: StateKey.consent(pseudonym))).flatMap { $0 }.flatMap { try? ConsentState(decoding: $0) })?.rules ?? []
        }

        /// Grants `terms` as `signer` and returns the rule's id.
        mutating func grant(_ signer: String, _ terms: ConsentTerms) throws -> Hash256 {
            let envelope = consent(signer, .grant(patient: pseudonym, terms: terms))
            try expectCommitted(net.apply(envelope))
            return envelope.id
        }

        /// Submits a request and returns the recorded decision.
        mutating func request(_ reader: String, _ record: Hash256, _ purpose: PurposeOfUse) throws -> ConsentDecision {
            let envelope = consent(reader, .request(record: record, purpose: purpose))
            try expectCommitted(net.apply(envelope))
            return try #require(decision(envelope.id))
        }
    }

    static func expectCommitted(_ results: [LedgerError?], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(results == [nil], sourceLocation: sourceLocation)
        if results != [nil] { throw LedgerError(.internal, "not committed: \(results)") }
    }

    @Test func theConsentScenarioTable() throws {
        var clinic = try Clinic()
        let (readings, report) = (clinic.readings, clinic.report)
        let stMaryTreats = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))
        let research = try clinic.grant("st-mary/delegate", ConsentTerms(effect: .permit, grantee: .role(.researcher, organization: nil),
                                                                         categories: ["device_readings"], purposes: [.research],
                                                                         expiresAt: clinic.net.time + 3_600_000))
        let denyOne = try clinic.grant("st-mary/patient", ConsentTerms(effect: .deny, grantee: .member(clinic.fingerprint("north-general/clinician")),
                                                                       purposes: [.treatment]))
        let northTreats = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("north-general"),
                                                                           purposes: [.continuityOfCare, .treatment]))
        let auditors = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .role(.auditor, organization: "regulator"),
                                                                        purposes: [.publicHealth]))
        let deviceOnly = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .member(clinic.fingerprint("st-mary/clinician2")),
                                                                          devices: [clinic.readingsDevice], purposes: [.continuityOfCare]))
        #expect(clinic.rules().count == 6)

        let table: [(reader: String, record: Hash256, purpose: PurposeOfUse, granted: Bool, basis: ConsentDecision.Basis, rule: Hash256?, case: String)] = [
            ("st-mary/clinician", readings, .treatment, true, .consent, stMaryTreats, "grant to an organisation"),
            ("st-mary/clinician", readings, .research, false, .noConsent, nil, "wrong purpose"),
            ("research/researcher", readings, .research, true, .consent, research, "delegate's grant to a role"),
            ("research/researcher", report, .research, false, .noConsent, nil, "wrong scope: category"),
            ("north-general/clinician", readings, .treatment, false, .deny, denyOne, "deny overrides permit"),
            ("north-general/admin", readings, .treatment, true, .consent, northTreats, "the permit the deny does not cover"),
            ("regulator/auditor", report, .publicHealth, true, .consent, auditors, "grant to a role of one organisation"),
            ("st-mary/clinician2", readings, .continuityOfCare, true, .consent, deviceOnly, "device scope, named member"),
            ("st-mary/clinician2", report, .continuityOfCare, false, .noConsent, nil, "wrong scope: device"),
            ("st-mary/patient", report, .patientRequest, true, .patient, nil, "the patient"),
            ("st-mary/delegate", readings, .patientRequest, true, .patient, nil, "a delegate"),
        ]
        for row in table {
            let decision = try clinic.request(row.reader, row.record, row.purpose)
            #expect(decision.granted == row.granted, "\(row.case)")
            #expect(decision.basis == row.basis, "\(row.case)")
            #expect(decision.rule == row.rule, "\(row.case)")
            #expect(decision.reader == clinic.fingerprint(row.reader))
            #expect(decision.purpose == row.purpose)
            #expect(decision.record == row.record)
            #expect(decision.decidedAt == clinic.net.time)
            #expect(decision.expiresAt == (row.granted ? clinic.net.time + ConsentContract.accessWindow : nil), "\(row.case)")
        }

        // Expiry: an hour later the researcher's rule no longer applies (and the key window of a
        // grant never outlasts its rule).
        clinic.net.time += 3_600_000 - 60_000
        let lastMinute = try clinic.request("research/researcher", readings, .research)
        #expect(lastMinute.granted && lastMinute.expiresAt == clinic.net.time + 60_000)
        clinic.net.time += 60_000
        let expired = try clinic.request("research/researcher", readings, .research)
        #expect(!expired.granted && expired.basis == .noConsent)

        // Revocation takes effect in the next block.
        try Self.expectCommitted(clinic.net.apply(clinic.consent("st-mary/patient", .revoke(patient: clinic.pseudonym, rule: stMaryTreats))))
        let revoked = try clinic.request("st-mary/clinician", readings, .treatment)
        #expect(!revoked.granted && revoked.basis == .noConsent)

        // Break-glass: granted despite the deny rule, for an hour, with the reason, queued for review.
        let emergency = clinic.consent("north-general/clinician", .breakGlass(record: readings, reason: "cardiac arrest, patient unconscious"))
        try Self.expectCommitted(clinic.net.apply(emergency))
        let glass = try #require(clinic.decision(emergency.id))
        #expect(glass.granted && glass.basis == .breakGlass && glass.purpose == .emergencyTreatment)
        #expect(glass.reason == "cardiac arrest, patient unconscious")
        #expect(glass.expiresAt == clinic.net.time + ConsentContract.breakGlassWindow)
        #expect(try clinic.net.ledger.value(forKey: StateKey.breakGlassQueue("st-mary", glass.decidedAt, emergency.id)) == [])

        // Break-glass without a reason, or by someone who is not a clinician, is refused and writes nothing.
        let before = clinic.net.ledger.state
        #expect(clinic.net.apply(clinic.consent("north-general/clinician", .breakGlass(record: readings, reason: "  "))).first??.code == .missingField)
        #expect(clinic.net.apply(clinic.consent("research/researcher", .breakGlass(record: readings, reason: "curious"))).first??.code == .forbidden)
        #expect(clinic.net.ledger.state == before)

        // A revoked reader certificate: the request itself is refused.
        try Self.expectCommitted(clinic.net.apply(clinic.net.governance("st-mary/admin", "revoke", clinic.fingerprint("st-mary/clinician2").bytes)))
        #expect(clinic.net.apply(clinic.consent("st-mary/clinician2", .request(record: readings, purpose: .continuityOfCare))).first??.code == .certificateRevoked)

        // The review: by the holder's admin only, once.
        #expect(clinic.net.apply(clinic.consent("north-general/admin", .review(patient: clinic.pseudonym, decision: emergency.id, note: "ok"))).first??.code == .forbidden)
        try Self.expectCommitted(clinic.net.apply(clinic.consent("st-mary/admin", .review(patient: clinic.pseudonym, decision: emergency.id, note: "justified: arrest in ER"))))
        #expect(try clinic.net.ledger.value(forKey: StateKey.breakGlassQueue("st-mary", glass.decidedAt, emergency.id)) == nil)
        let review = try #require(try clinic.net.ledger.value(forKey: StateKey.breakGlassReview(emergency.id)).map { try BreakGlassReview(decoding: $0) })
        #expect(review.reviewer == clinic.fingerprint("st-mary/admin") && review.note == "justified: arrest in ER")
        #expect(clinic.net.apply(clinic.consent("st-mary/admin", .review(patient: clinic.pseudonym, decision: emergency.id, note: "again"))).first??.code == .invalidArgument)
    }

    @Test func badInputGetsASpecificCodeAndWritesNothing() throws {
        var clinic = try Clinic()
        let stranger = PatientPseudonym.derive(identifier: "nobody", hospital: "st-mary", secret: SymmetricKey(size: .bits256))
        let vault = P256.KeyAgreement.PrivateKey()
        let key = SymmetricKey(size: .bits256)
        func put(id: Hash256 = .of([42]), size: UInt64 = 100, category: String = "report", device: String? = nil,
                 patient: Hash256? = nil, holderKey: [UInt8]? = nil) throws -> RecordAction {
            .put(RecordPut(id: id, size: size, category: category, device: device, patient: patient ?? clinic.pseudonym,
                           holderKey: holderKey ?? Array(vault.publicKey.x963Representation),
                           wrappedKey: try KeyWrap.wrap(key, for: vault.publicKey, info: KeyWrap.holderInfo(record: id))))
        }
        let anchored = clinic.readings
        func rotate(_ record: Hash256, _ put: RecordAction) -> RecordAction {
            guard case .put(let put) = put else { fatalError("a put") }
            return .rotate(record: record, put: put)
        }
        let cases: [(Envelope, LedgerError.Code, String)] = [
            (clinic.records("st-mary/collector", try put(patient: stranger)), .unknownPatient, "unknown patient"),
            (clinic.records("north-general/collector", try put()), .forbidden, "another hospital's patient"),
            (clinic.records("st-mary/collector", try put(size: RecordPut.maxSize + 1)), .invalidArgument, "oversized"),
            (clinic.records("st-mary/collector", try put(size: 3)), .invalidArgument, "smaller than any sealed record"),
            (clinic.records("st-mary/collector", try put(category: "Report!")), .invalidArgument, "bad category"),
            (clinic.records("st-mary/collector", try put(device: Fixtures.udi(99))), .unknownDevice, "unknown device"),
            (clinic.records("st-mary/collector", try put(holderKey: [4] + [UInt8](repeating: 1, count: 64))), .invalidArgument, "holder key off the curve"),
            (clinic.records("st-mary/collector", try put(id: try #require(clinic.anchor(anchored)).put.id)), .recordExists, "record exists"),
            (clinic.records("research/researcher", try put()), .forbidden, "a researcher stores nothing"),
            (clinic.net.transaction("st-mary/collector", contract: "records", action: "put", arguments: Array(try put().arguments.dropLast())),
             .malformedEncoding, "malformed put"),
            (clinic.records("st-mary/collector", .registerKey([UInt8](repeating: 0, count: 65))), .invalidArgument, "not a point"),
            (clinic.consent("st-mary/clinician", .request(record: .of([7]), purpose: .treatment)), .unknownRecord, "unknown record"),
            (clinic.consent("st-mary/collector", .request(record: anchored, purpose: .treatment)), .forbidden, "a collector reads nothing"),
            (clinic.consent("st-mary/clinician", .request(record: anchored, purpose: .emergencyTreatment)), .invalidArgument, "ETREAT without break-glass"),
            (clinic.consent("st-mary/admin", .request(record: anchored, purpose: .treatment)), .missingField, "no encryption key"),
            (clinic.consent("st-mary/patient", .grant(patient: clinic.pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment], expiresAt: clinic.net.time - 1))), .invalidArgument, "expired grant"),
            (clinic.consent("st-mary/patient", .grant(patient: clinic.pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment, .research]))), .invalidArgument, "unsorted purposes"),
            (clinic.consent("st-mary/patient", .grant(patient: clinic.pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .organization("st-mary"), purposes: [.emergencyTreatment]))), .invalidArgument, "consent to ETREAT"),
            (clinic.consent("st-mary/clinician", .grant(patient: clinic.pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))), .forbidden, "a clinician grants nothing"),
            (clinic.consent("north-general/patient", .grant(patient: clinic.pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .organization("north-general"), purposes: [.treatment]))), .forbidden, "another patient's consent"),
            (clinic.consent("st-mary/patient", .grant(patient: stranger, terms: ConsentTerms(
                effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))), .unknownPatient, "grant for an unknown patient"),
            (clinic.consent("st-mary/patient", .revoke(patient: clinic.pseudonym, rule: .of([1]))), .notFound, "revoke an unknown rule"),
            (clinic.consent("st-mary/admin", .enrol(patient: stranger, member: clinic.fingerprint("st-mary/clinician"))), .invalidArgument, "enrol a clinician as a patient"),
            (clinic.consent("st-mary/admin", .enrol(patient: stranger, member: clinic.fingerprint("north-general/patient"))), .invalidArgument, "enrol another hospital's patient"),
            (clinic.consent("st-mary/admin", .enrol(patient: clinic.pseudonym, member: clinic.fingerprint("st-mary/patient"))), .invalidArgument, "enrol twice"),
            (clinic.consent("research/admin", .enrol(patient: stranger, member: clinic.fingerprint("st-mary/patient"))), .forbidden, "a research admin enrols nobody"),
            (clinic.consent("st-mary/delegate", .delegate(patient: clinic.pseudonym, member: clinic.fingerprint("st-mary/clinician"), add: true)), .forbidden, "a delegate names delegates"),
            (clinic.consent("st-mary/patient", .delegate(patient: clinic.pseudonym, member: clinic.fingerprint("st-mary/clinician"), add: true)), .invalidArgument, "a clinician as delegate"),
            (clinic.records("north-general/admin", .erase(record: anchored, reason: "cleanup")), .forbidden, "another hospital erases"),
            (clinic.records("st-mary/patient", .erase(record: anchored, reason: "")), .missingField, "erasure without a reason"),
            (clinic.records("st-mary/collector", rotate(anchored, try put())), .forbidden, "a collector rotates nothing"),
            (clinic.records("north-general/admin", rotate(anchored, try put())), .forbidden, "another hospital rotates"),
            (clinic.records("st-mary/admin", rotate(.of([7]), try put())), .unknownRecord, "rotate an unknown record"),
            (clinic.records("st-mary/admin", rotate(anchored, try put(category: "report"))), .invalidArgument, "rotation changes the category"),
            (clinic.records("st-mary/admin", rotate(anchored, try put(category: "device_readings"))), .invalidArgument, "rotation drops the device"),
            (clinic.records("st-mary/admin", rotate(anchored, try put(id: try #require(clinic.anchor(clinic.report)).put.id, category: "device_readings",
                                                                      device: clinic.readingsDevice))), .recordExists, "rotation onto an existing record"),
        ]
        let before = clinic.net.ledger.state
        for (envelope, code, label) in cases {
            let result = clinic.net.apply(envelope)
            #expect(result.first??.code == code, "\(label): expected \(code), got \(String(describing: result.first ?? nil))")
        }
        #expect(clinic.net.ledger.state == before)
    }

    @Test func aHospitalRegistersItsOwnPatientsAndDelegatesWithoutAVote() throws {
        var clinic = try Clinic()
        let now = Date(timeIntervalSince1970: Double(clinic.net.time) / 1000)
        let patient = try TestNetwork.issue(clinic.net.authorities["st-mary"]!, name: "st-mary/p2", role: .patient, now: now)
        let clinician = try TestNetwork.issue(clinic.net.authorities["st-mary"]!, name: "st-mary/c2", role: .clinician, now: now)
        let register = ConsentAction.register(certificate: patient.certificate.derBytes)
        #expect(clinic.net.apply(clinic.consent("north-general/admin", register)).first??.code == .forbidden)
        #expect(clinic.net.apply(clinic.consent("st-mary/collector", register)).first??.code == .forbidden)
        #expect(clinic.net.apply(clinic.consent("st-mary/admin", .register(certificate: clinician.certificate.derBytes))).first??.code == .forbidden)
        #expect(clinic.net.apply(clinic.consent("st-mary/admin", .register(certificate: [1, 2, 3]))).first??.code == .invalidCertificate)
        try Self.expectCommitted(clinic.net.apply(clinic.consent("st-mary/admin", register)))
        let member = try #require(try clinic.net.ledger.value(forKey: StateKey.member(patient.fingerprint)).map { try Member(decoding: $0) })
        #expect(member.role == .patient && member.organization == "st-mary")
        #expect(clinic.net.apply(clinic.consent("st-mary/admin", register)).first??.code == .invalidArgument)

        // Enrolled under a pseudonym, the new patient controls its own consent.
        let pseudonym = PatientPseudonym.derive(identifier: "MRN-8", hospital: "st-mary", secret: SymmetricKey(size: .bits256))
        try Self.expectCommitted(clinic.net.apply(clinic.consent("st-mary/admin", .enrol(patient: pseudonym, member: patient.fingerprint))))
        let action = ConsentAction.grant(patient: pseudonym, terms: ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))
        let grant = patient.transaction(network: clinic.net.network, contract: ConsentContract.name, action: action.name,
                                        arguments: action.arguments, timestamp: clinic.net.time).envelope
        try Self.expectCommitted(clinic.net.apply(grant))
    }

    @Test func anErasedRecordIsDecidedNoMoreButItsAnchorStays() throws {
        var clinic = try Clinic()
        _ = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))
        #expect(try clinic.request("st-mary/clinician", clinic.report, .treatment).granted)
        try Self.expectCommitted(clinic.net.apply(clinic.records("st-mary/patient", .erase(record: clinic.report, reason: "GDPR art. 17 request"))))
        let anchor = try #require(clinic.anchor(clinic.report))
        #expect(anchor.erasedAt == clinic.net.time)
        #expect(clinic.net.apply(clinic.consent("st-mary/clinician", .request(record: clinic.report, purpose: .treatment))).first??.code == .recordErased)
        #expect(clinic.net.apply(clinic.consent("st-mary/clinician", .breakGlass(record: clinic.report, reason: "arrest"))).first??.code == .recordErased)
        #expect(clinic.net.apply(clinic.records("st-mary/admin", .erase(record: clinic.report, reason: "again"))).first??.code == .recordErased)
        // The holder's admin may erase too; the other record is untouched.
        #expect(try clinic.request("st-mary/clinician", clinic.readings, .treatment).granted)
        try Self.expectCommitted(clinic.net.apply(clinic.records("st-mary/admin", .erase(record: clinic.readings, reason: "retention period over"))))
    }

    @Test func aRotationAnchorsTheNewRecordAndErasesTheOldInOneTransaction() throws {
        var clinic = try Clinic()
        let old = try #require(clinic.anchor(clinic.readings))
        let vault = P256.KeyAgreement.PrivateKey()
        let blob = Hash256.of([5])
        let put = RecordPut(id: blob, size: 100, category: old.put.category, device: Fixtures.udi(1), patient: clinic.pseudonym,
                            holderKey: Array(vault.publicKey.x963Representation),
                            wrappedKey: try KeyWrap.wrap(SymmetricKey(size: .bits256), for: vault.publicKey, info: KeyWrap.holderInfo(record: blob)))
        let action = RecordAction.rotate(record: clinic.readings, put: put)
        #expect(try RecordAction(action: "rotate", arguments: action.arguments) == action)
        try Self.expectCommitted(clinic.net.apply(clinic.records("st-mary/admin", action)))
        let new = RecordAnchor.recordID(holder: "st-mary", blob: blob)
        #expect(clinic.anchor(clinic.readings)?.erasedAt == clinic.net.time)
        #expect(clinic.anchor(new)?.put.device == old.put.device)
        #expect(try clinic.net.ledger.value(forKey: StateKey.rotation(clinic.readings)) == new.bytes)
        #expect(try clinic.net.ledger.value(forKey: StateKey.patientRecord(clinic.pseudonym, clinic.net.time, new)) == [])
        // The old record is decided no more and cannot be rotated again; the new one is.
        #expect(clinic.net.apply(clinic.consent("st-mary/clinician", .request(record: clinic.readings, purpose: .treatment))).first??.code == .recordErased)
        #expect(clinic.net.apply(clinic.records("st-mary/admin", action)).first??.code == .recordErased)
        _ = try clinic.grant("st-mary/patient", ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment]))
        #expect(try clinic.request("st-mary/clinician", new, .treatment).granted)
    }

    @Test func theDecisionIsAPureFunctionOfTheRules() throws {
        // The same rules in any order decide the same (the contract keeps them sorted by id; the
        // function must not depend on that for deny precedence).
        let clinic = try Clinic()
        let reader = try #require(clinic.net.member("north-general/clinician"))
        let patient = PatientEntry(pseudonym: clinic.pseudonym, hospital: "st-mary", patient: clinic.fingerprint("st-mary/patient"), enrolledAt: 0)
        let anchor = try #require(clinic.anchor(clinic.readings))
        let permit = ConsentRule(id: .of([1]), terms: ConsentTerms(effect: .permit, grantee: .organization("north-general"), purposes: [.treatment]),
                                 grantedBy: patient.patient, grantedAt: 0)
        let deny = ConsentRule(id: .of([2]), terms: ConsentTerms(effect: .deny, grantee: .role(.clinician, organization: nil), purposes: [.treatment]),
                               grantedBy: patient.patient, grantedAt: 0)
        for rules in [[permit, deny], [deny, permit]] {
            let outcome = ConsentContract.decide(rules: rules, patient: patient, anchor: anchor, reader: reader, purpose: .treatment, at: 10)
            #expect(!outcome.granted && outcome.basis == .deny && outcome.rule == deny.id)
        }
        let alone = ConsentContract.decide(rules: [permit], patient: patient, anchor: anchor, reader: reader, purpose: .treatment, at: 10)
        #expect(alone.granted && alone.rule == permit.id && alone.expiresAt == 10 + ConsentContract.accessWindow)
        // The longest-lasting permit decides.
        var short = permit
        short.id = .of([0])
        short.terms.expiresAt = 20
        let both = ConsentContract.decide(rules: [short, permit], patient: patient, anchor: anchor, reader: reader, purpose: .treatment, at: 10)
        #expect(both.rule == permit.id)
        let onlyShort = ConsentContract.decide(rules: [short], patient: patient, anchor: anchor, reader: reader, purpose: .treatment, at: 10)
        #expect(onlyShort.expiresAt == 20)
        #expect(!ConsentContract.decide(rules: [short], patient: patient, anchor: anchor, reader: reader, purpose: .treatment, at: 20).granted)
    }
}
