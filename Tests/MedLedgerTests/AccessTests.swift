import Testing
import Foundation
import Crypto
import LedgerCore
import Contracts
import Node
@testable import Server
import LedgerTesting
import Hummingbird
import NIOCore
import Synchronization

/// Signed API requests and the role × route table, against the real HTTP server in this process.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct AccessTests {
    /// The demo network with two hospitals' devices, one research query, and the server running.
    final class World: Sendable {
        let harness: NodeHarness
        let api: APIHarness
        let deviceA = Fixtures.udi(101)  // st-mary
        let deviceB = Fixtures.udi(202)  // north-general
        let transactionA: Hash256
        let transactionB: Hash256
        /// A St Mary's patient's pseudonym, one record of theirs, and a (denied) decision about it
        /// taken for St Mary's clinician.
        let pseudonym = Hash256.of(Array("patient".utf8))
        let record: Hash256
        let decision: Hash256

        init() async throws {
            harness = try NodeHarness()
            let a = try harness.sign("st-mary/collector", .register(udi: deviceA, attributes: Fixtures.attributes()))
            let b = try harness.sign("north-general/collector", .register(udi: deviceB, attributes: Fixtures.attributes()))
            transactionA = a.id
            transactionB = b.id
            for envelope in [a, b] {
                guard case .committed = try await harness.commit(envelope) else { throw LedgerError(.internal, "setup did not commit") }
            }
            _ = try await harness.node.answerQuery(try ResearchNodeTests.ask(harness, .count, epsilon: 100_000).encoded)
            let authority = try OrganizationDirectory.authority(in: NetworkDefinition.organizationPath("st-mary", in: harness.directory), organization: "st-mary")
            let patientKey = P256.Signing.PrivateKey()
            let patient = try authority.issue(name: "st-mary/patient-1", role: .patient, publicKey: patientKey.publicKey)
            let blob = try SealedRecord.seal([1, 2, 3], key: SymmetricKey(size: .bits256))
            let (blobHash, record, holderKey) = try harness.node.acceptRecord(blob)
            self.record = record
            let put = RecordAction.put(RecordPut(id: blobHash, size: UInt64(blob.count), category: "report", device: nil, patient: pseudonym,
                                                 holderKey: holderKey, wrappedKey: try KeyWrap.wrap(SymmetricKey(size: .bits256),
                                                                                                    for: .init(x963Representation: holderKey),
                                                                                                    info: KeyWrap.holderInfo(record: blobHash))))
            let request = ConsentAction.request(record: record, purpose: .treatment)
            let steps: [(String, String, String, [UInt8])] = [
                ("st-mary/admin", "consent", "register", ConsentAction.register(certificate: patient.derBytes).arguments),
                ("st-mary/admin", "consent", "enrol", ConsentAction.enrol(patient: pseudonym, member: patient.fingerprint).arguments),
                ("st-mary/collector", "records", put.name, put.arguments),
                ("st-mary/clinician", "records", "register_key", RecordAction.registerKey(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)).arguments),
                ("st-mary/clinician", "consent", request.name, request.arguments),
            ]
            var last = Hash256.zero
            for (signer, contract, action, arguments) in steps {
                let envelope = try harness.identity(signer).transaction(network: harness.node.network, contract: contract, action: action, arguments: arguments).envelope
                guard case .committed = try await harness.commit(envelope) else { throw LedgerError(.internal, "setup \(contract).\(action) did not commit") }
                last = envelope.id
            }
            decision = last
            api = try await APIHarness(harness)
        }

        func identity(_ name: String) throws -> SigningIdentity { try harness.identity(name) }

        func stop() async throws {
            await api.stop()
            try await harness.stop()
        }
    }

    static let hospitalA = ["st-mary/admin", "st-mary/collector"]
    static let hospitalB = ["north-general/collector"]
    static let oversight = ["device-regulator/auditor", "device-regulator/admin", "st-mary/node"]
    static let researcher = "medtech-research/researcher"
    static let coordinator = "medtech-research/admin"
    static let admins = ["st-mary/admin", "medtech-research/admin", "device-regulator/admin"]
    static let everyone = hospitalA + hospitalB + oversight + [researcher, coordinator]

    /// Every route, every role, and unauthenticated: the answer is exactly what the table in
    /// docs/threat_model.md says. Written out here by hand, not derived from ``AccessPolicy``.
    @Test func everyRouteForEveryRoleFollowsTheTable() async throws {
        let world = try await World()
        let researcherID = try world.identity(Self.researcher).fingerprint
        let auditorID = try world.identity("device-regulator/auditor").fingerprint
        let now = Clock.nowMilliseconds()
        let udiA = world.deviceA.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let udiB = world.deviceB.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        // (target, who may read it); nil means open to anyone.
        let table: [(String, [String]?)] = [
            ("/health", nil),
            ("/metrics", Self.oversight + Self.admins),
            ("/v1/node", Self.oversight + Self.admins),
            ("/v1/chain", Self.everyone),
            ("/v1/chain/height-at?time=\(now + 60_000)", Self.everyone),
            ("/v1/proofs/consistency?from=1", Self.hospitalA + Self.hospitalB + Self.oversight + [Self.coordinator]),
            ("/v1/refusals", Self.oversight + Self.admins),
            ("/v1/devices", Self.oversight + Self.hospitalA + Self.hospitalB),
            ("/v1/devices?owner=st-mary", Self.oversight + Self.hospitalA),
            ("/v1/devices?owner=north-general&limit=5", Self.oversight + Self.hospitalB),
            ("/v1/device?udi=\(udiA)", Self.oversight + Self.hospitalA),
            ("/v1/device?udi=\(udiB)", Self.oversight + Self.hospitalB),
            ("/v1/device/history?udi=\(udiA)", Self.oversight + Self.hospitalA),
            ("/v1/device/history?udi=\(udiB)", Self.oversight + Self.hospitalB),
            ("/v1/blocks/1", Self.oversight),
            ("/v1/events?from=0", Self.oversight),
            ("/v1/transactions/\(world.transactionA.hex)", Self.oversight + Self.hospitalA),
            ("/v1/transactions/\(world.transactionB.hex)", Self.oversight + Self.hospitalB),
            ("/v1/proofs/inclusion/\(world.transactionA.hex)", Self.oversight + Self.hospitalA),
            ("/v1/proofs/inclusion/\(world.transactionB.hex)", Self.oversight + Self.hospitalB),
            ("/v1/research/budget/\(researcherID.hex)", Self.oversight + [Self.researcher, Self.coordinator]),
            ("/v1/research/budget/\(auditorID.hex)", Self.oversight + [Self.coordinator]),
            ("/v1/research/log", Self.oversight + [Self.researcher, Self.coordinator]),
            ("/v1/records/\(world.record.hex)", Self.oversight + Self.hospitalA),
            // Only the decision's reader (St Mary's clinician, not in this list) passes, and only with a grant.
            ("/v1/records/\(world.record.hex)/key?decision=\(world.decision.hex)", []),
            ("/v1/records/\(world.record.hex)/blob?decision=\(world.decision.hex)", []),
            ("/v1/records/\(world.record.hex)/decision?decision=\(world.decision.hex)", Self.oversight + ["st-mary/admin"]),
            ("/v1/patients/\(world.pseudonym.hex)/records", Self.oversight + Self.hospitalA),
            ("/v1/patients/\(world.pseudonym.hex)/consent", Self.oversight + ["st-mary/admin"]),
            ("/v1/patients/\(world.pseudonym.hex)/disclosures", Self.oversight + ["st-mary/admin"]),
            ("/v1/break-glass", Self.oversight + ["st-mary/admin"]),
        ]
        // Every signed-request route of the API appears in the walk.
        let walked = Set(table.map { target, _ in String(target.split(separator: "?")[0]) })
        for route in APIRoute.allCases where route.authentication == .signedRequest {
            let prefix = route.template.split(separator: " ")[1].split(separator: "{")[0]
            #expect(walked.contains { $0.hasPrefix(prefix) }, "route \(route.template) is not walked")
        }
        var requests = 0
        var wronglyAllowed: [String] = []
        var wronglyDenied: [String] = []
        for (target, allowed) in table {
            for name in [nil] + Self.everyone.map(Optional.some) {
                let answer = try await world.api.get(target, as: try name.map(world.identity))
                requests += 1
                let mayRead = allowed.map { list in name.map(list.contains) ?? false } ?? true
                let expected = mayRead ? 200 : name == nil ? 401 : 403
                if answer.status != expected {
                    let line = "\(name ?? "unauthenticated") GET \(target): HTTP \(answer.status), expected \(expected) \(answer.text.prefix(160))"
                    if mayRead { wronglyDenied.append(line) } else { wronglyAllowed.append(line) }
                }
                if !mayRead, !target.hasPrefix("/v1/events") {  // (the events stream's status is read without its body)
                    #expect(answer.code == (name == nil ? "unauthenticated" : "forbidden"), "\(target) \(name ?? "-")")
                }
            }
        }
        #expect(requests == table.count * (Self.everyone.count + 1))
        #expect(wronglyAllowed.isEmpty, "unauthorised requests that succeeded: \(wronglyAllowed)")
        #expect(wronglyDenied.isEmpty, "authorised requests that were refused: \(wronglyDenied)")
        try await world.stop()
    }

    /// What each caller sees is limited to its scope, not only whether it may call the route.
    @Test func scopedAnswersShowOnlyTheCallersOwnData() async throws {
        let world = try await World()
        struct Device: Decodable { var udi: String; var owner: String }
        let own = try await world.api.get("/v1/devices?limit=1000", as: try world.identity("north-general/collector"))
        let devices = try JSONDecoder().decode([Device].self, from: own.body)
        #expect(devices.map(\.udi) == [world.deviceB] && devices.allSatisfy { $0.owner == "north-general" })
        let all = try JSONDecoder().decode([Device].self, from: try await world.api.get("/v1/devices", as: try world.identity("device-regulator/auditor")).body)
        #expect(Set(all.map(\.udi)) == [world.deviceA, world.deviceB])
        // A repeated owner parameter is refused rather than read one way by the policy and another by the store.
        let doubled = try await world.api.get("/v1/devices?owner=north-general&owner=st-mary", as: try world.identity("north-general/collector"))
        #expect(doubled.status == 400)

        // A researcher's log holds its own asks and the answers to them, nobody else's.
        let researcher = try world.identity(Self.researcher)
        let log = try JSONDecoder().decode([ResearchLogEntry].self, from: try await world.api.get("/v1/research/log", as: researcher).body)
        let full = try JSONDecoder().decode([ResearchLogEntry].self,
                                            from: try await world.api.get("/v1/research/log", as: try world.identity(Self.coordinator)).body)
        #expect(!log.isEmpty && log.count == full.count)
        #expect(log.allSatisfy { $0.asker == researcher.fingerprint || ($0.asker == nil && $0.question != nil) })

        // Device history pages (a busy device has thousands of versions): limit and offset.
        var changes = DeviceAttributes()
        for level in [10, 20, 30] {
            changes.batteryLevel = Int64(level)
            _ = try await world.harness.commit(try world.harness.sign("st-mary/collector", .update(udi: world.deviceA, event: "battery", changes: changes)))
        }
        struct Version: Decodable { var version: UInt64? }
        let admin = try world.identity("st-mary/admin")
        let udi = world.deviceA.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        func versions(_ query: String) async throws -> [UInt64?] {
            try JSONDecoder().decode([Version].self, from: try await world.api.get("/v1/device/history?udi=\(udi)\(query)", as: admin).body).map(\.version)
        }
        #expect(try await versions("") == [1, 2, 3, 4])
        #expect(try await versions("&limit=2") == [1, 2])
        #expect(try await versions("&limit=2&offset=2") == [3, 4])
        #expect(try await versions("&offset=9").isEmpty)
        #expect(try await world.api.get("/v1/device/history?udi=\(udi)&limit=0", as: admin).status == 400)

        // Red-team finding: every admin read every organisation's refusals, whose messages quote
        // what was submitted. An admin now sees those of its own organisation's members.
        let foreign = try world.harness.sign("north-general/collector", .register(udi: "NOT-A-UDI-north-general", attributes: Fixtures.attributes()))
        #expect(throws: LedgerError.self) { try world.harness.node.submit(foreign.encoded) }
        struct RefusalView: Decodable { var creator: Hash256?; var message: String }
        func refusals(_ name: String) async throws -> [RefusalView] {
            try JSONDecoder().decode([RefusalView].self, from: try await world.api.get("/v1/refusals?limit=1000", as: try world.identity(name)).body)
        }
        // Refusals reach the table within 0.5 s when the ledger is idle.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await refusals("device-regulator/auditor").allSatisfy({ !$0.message.contains("NOT-A-UDI") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let northGeneral = try world.identity("north-general/collector").fingerprint
        #expect(try await refusals("device-regulator/auditor").contains { $0.creator == northGeneral && $0.message.contains("NOT-A-UDI") })
        #expect(try await refusals("st-mary/admin").allSatisfy { !$0.message.contains("NOT-A-UDI") })
        try await world.stop()
    }

    /// Submissions are authenticated by the envelope's own signature: no request header needed,
    /// and an envelope from a certificate that is not a registered member is refused by admission.
    @Test func submissionsAreAuthenticatedByTheirEnvelope() async throws {
        let world = try await World()
        let registration = try world.harness.sign("st-mary/collector", .register(udi: Fixtures.udi(303), attributes: Fixtures.attributes()))
        let submitted = try await world.api.send("/v1/transactions?wait=30", method: "POST", body: Data(registration.encoded),
                                                 contentType: "application/octet-stream")
        #expect(submitted.status == 200, "\(submitted.text)")
        let ask = try ResearchNodeTests.ask(world.harness, .count, epsilon: 200_000)
        let query = try await world.api.send("/v1/queries", method: "POST", body: Data(ask.encoded), contentType: "application/octet-stream")
        #expect(query.status == 200, "\(query.text)")
        let stranger = try await Self.unregistered(world, role: .collector)
        let action = DeviceAction.register(udi: Fixtures.udi(304), attributes: Fixtures.attributes())
        let forged = stranger.transaction(network: world.harness.node.network, contract: "devices", action: action.name, arguments: action.arguments)
        let refused = try await world.api.send("/v1/transactions", method: "POST", body: Data(forged.envelope.encoded), contentType: "application/octet-stream")
        #expect(refused.status == 403 && refused.code == "unknown_member")
        try await world.stop()
    }

    /// A batch is only the transport: each envelope is admitted on its own (one refusal does not
    /// refuse the others, each refusal has its code), the answer is in body order, and a body that
    /// is not a batch admits nothing.
    @Test func aBatchAdmitsEachEnvelopeOnItsOwn() async throws {
        let world = try await World()
        let node = world.harness.node
        let first = try world.harness.sign("st-mary/collector", .register(udi: Fixtures.udi(311), attributes: Fixtures.attributes()))
        let second = try world.harness.sign("north-general/collector", .register(udi: Fixtures.udi(312), attributes: Fixtures.attributes()))
        let stranger = try await Self.unregistered(world, role: .collector)
        let action = DeviceAction.register(udi: Fixtures.udi(313), attributes: Fixtures.attributes())
        let forged = stranger.transaction(network: node.network, contract: "devices", action: action.name, arguments: action.arguments).envelope
        let garbage: [UInt8] = [0xde, 0xad, 0xbe, 0xef]
        let body = EnvelopeBatch([first.encoded, second.encoded, first.encoded, forged.encoded, garbage]).encoded

        struct Answer: Decodable {
            struct Result: Decodable { var id: Hash256; var status: String; var code: String? }
            var results: [Result]
        }
        let answer = try await world.api.send("/v1/transactions/batch", method: "POST", body: Data(body), contentType: EnvelopeBatch.mediaType)
        #expect(answer.status == 200, "\(answer.text)")
        let results = try JSONDecoder().decode(Answer.self, from: answer.body).results
        #expect(results.map(\.id) == [first.id, second.id, first.id, forged.id, Hash256.of(garbage)])
        #expect(results.map(\.status) == ["pending", "pending", "refused", "refused", "refused"])
        #expect(results.map(\.code) == [nil, nil, "duplicate_transaction", "unknown_member", "malformed_encoding"])
        for envelope in [first, second] {
            guard case .committed = try await node.waitForCommit(envelope.id, timeout: .seconds(30)) else {
                Issue.record("an admitted envelope of the batch did not commit")
                continue
            }
        }

        // Not a batch, or too many: 4xx with a code, and nothing of it admitted.
        let third = try world.harness.sign("st-mary/collector", .register(udi: Fixtures.udi(314), attributes: Fixtures.attributes()))
        let valid = EnvelopeBatch([third.encoded]).encoded
        let malformed: [[UInt8]] = [valid + [0], Array(valid.dropLast()), Array("MLTB".utf8) + [0, 0, 0, 0], third.encoded,
                                    Array("MLTB".utf8) + [0, 0, 0x03, 0xE9] + [UInt8](repeating: 0, count: 4004)]
        for bytes in malformed {
            let refused = try await world.api.send("/v1/transactions/batch", method: "POST", body: Data(bytes), contentType: EnvelopeBatch.mediaType)
            #expect(refused.status == 400 && refused.code == "malformed_encoding", "\(refused.status) \(refused.text)")
        }
        // A declared length over the limit is refused before any body byte is sent.
        let connection = try #require(RawConnection(port: world.api.port, receiveTimeout: 5))
        connection.send("POST /v1/transactions/batch HTTP/1.1\r\nHost: x\r\nContent-Type: \(EnvelopeBatch.mediaType)\r\nContent-Length: \(APIServer.maxBatchBytes + 1)\r\n\r\n")
        #expect(connection.status() == 413)
        #expect(try node.status(of: third.id) == .unknown)
        #expect(node.pendingCount == 0)
        try await world.stop()
    }

    /// A certificate the st-mary CA issued but the ledger never registered, made by `medledger issue`.
    static func unregistered(_ world: World, role: Role) async throws -> SigningIdentity {
        let name = "unregistered-\(role.rawValue)"
        let issued = try await ManagedProcess.medledger("issue", "--network", world.harness.directory, "--org", "st-mary", "--name", name,
                                                        "--role", role.rawValue)
        guard issued.status == 0 else { throw LedgerError(.io, "medledger issue failed: \(issued.stderr)") }
        let folder = world.harness.directory + "/orgs/st-mary/"
        return try SigningIdentity(keyPEM: String(decoding: try SecureFile.read(folder + name + ".key"), as: UTF8.self),
                                   certificatePEM: String(contentsOfFile: folder + name + ".pem", encoding: .utf8))
    }

    /// Captured, altered, replayed, stale, foreign and malformed credentials are all refused with 401.
    @Test func forgedReplayedAndStaleRequestsAreRefused() async throws {
        let world = try await World()
        let api = world.api
        let auditor = try world.identity("device-regulator/auditor")
        let target = "/v1/devices?owner=st-mary&limit=3"

        func expect(_ answer: APIHarness.Answer, _ code: String, _ what: String, status: Int = 401, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(answer.status == status && answer.code == code, "\(what): HTTP \(answer.status) \(answer.text.prefix(200))",
                    sourceLocation: sourceLocation)
        }

        // The genuine request works once; the same header again is a replay.
        let captured = api.header(auditor, target: target)
        #expect(try await api.send(target, authorization: [captured]).status == 200)
        expect(try await api.send(target, authorization: [captured]), "replayed_request", "replayed nonce")
        // A captured signature does not carry over to another target, query, method or body. Sent
        // byte for byte (URLSession would normalise some of these targets before sending them).
        let fresh = api.header(auditor, target: target)
        for other in ["/v1/devices?owner=north-general&limit=3", "/v1/devices?limit=3&owner=st-mary", "/v1/devices?owner=st-mary&limit=30",
                      "/v1/devices", "/v1/refusals", "/v1/../v1/devices?owner=st-mary&limit=3", "/v1/devices/?owner=st-mary&limit=3",
                      "/v1/%64evices?owner=st-mary&limit=3", "/v1/devices?owner=st-mary&limit=3&", "/v1/devices?owner=st%2Dmary&limit=3",
                      "//v1/devices?owner=st-mary&limit=3", "/V1/DEVICES?owner=st-mary&limit=3"] {
            let status = await api.rawGet(other, authorization: fresh)
            #expect(status != 200, "\(other) accepted a signature made for \(target): HTTP \(status)")
        }
        // The same bytes as signed are accepted over the raw connection (so the refusals above are real).
        #expect(await api.rawGet(target, authorization: fresh) == 200)
        #expect(await api.rawGet(target, authorization: fresh) == 401)
        let posted = try await api.send("/v1/research/log", method: "POST", authorization: [api.header(auditor, target: "/v1/research/log")])
        #expect(posted.status != 200)
        let head = await api.rawStatus("HEAD /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: \(api.header(auditor, target: "/v1/devices"))\r\nConnection: close\r\n\r\n")
        #expect(head != 200)
        // A GET carries no body (the authenticator never reads one, so the event stream can watch the
        // connection): one with a body is refused whatever was signed. The body hash is in the signed
        // bytes for routes with bodies (known-answer vector in RequestSignatureTests).
        func withBody(_ authorization: String) -> String {
            "GET /v1/chain HTTP/1.1\r\nHost: x\r\nAuthorization: \(authorization)\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo"
        }
        #expect(await api.rawStatus(withBody(api.header(auditor, target: "/v1/chain", body: Array("one".utf8)))) == 400, "body swap")
        #expect(await api.rawStatus(withBody(api.header(auditor, target: "/v1/chain", body: Array("two".utf8)))) == 400)
        // Another network's signature, a tampered signature, a stale or future time.
        expect(try await api.send(target, authorization: [api.header(auditor, target: target, network: Hash256.of(Array("other".utf8)))]),
               "bad_signature", "other network")
        var tampered = RequestSignature.sign(identity: auditor, network: world.harness.node.network, method: "GET", target: target)
        tampered.signature[10] ^= 1
        expect(try await api.send(target, authorization: [tampered.headerValue]), "bad_signature", "tampered signature")
        let skew = Int64(RequestAuthenticator.maxWindowMilliseconds)
        expect(try await api.send(target, authorization: [api.header(auditor, target: target, time: Clock.nowMilliseconds() - skew - 5_000)]),
               "timestamp_skew", "expired time")
        expect(try await api.send(target, authorization: [api.header(auditor, target: target, time: Clock.nowMilliseconds() + skew + 5_000)]),
               "timestamp_skew", "future time")
        // Certificates the ledger does not know: CA-issued but never registered, and from a foreign CA.
        expect(try await api.get(target, as: try await Self.unregistered(world, role: .auditor)), "unknown_member", "unregistered certificate")
        let foreign = try CertificateAuthority.create(organization: "st-mary")
        expect(try await api.get(target, as: try TestNetwork.issue(foreign, name: "st-mary/admin", role: .auditor, now: Date())),
               "unknown_member", "foreign CA")
        // Malformed credentials.
        let genuine = api.header(auditor, target: target)
        for bad in ["", "Bearer abc", "MedLedger-Signature", genuine.replacingOccurrences(of: "nonce=", with: "nonce=0"),
                    genuine + ",member=\(auditor.fingerprint.hex)", genuine.uppercased(), genuine.replacingOccurrences(of: ",", with: ", "),
                    genuine + String(repeating: "A", count: 600)] {
            expect(try await api.send(target, authorization: [bad]), "unauthenticated", "malformed \(bad.prefix(40))")
        }
        expect(try await api.send(target, authorization: [api.header(auditor, target: target), api.header(auditor, target: target)]),
               "unauthenticated", "two Authorization headers")
        // A huge header is refused by the server or by us, never honoured.
        #expect(await api.rawGet(target, authorization: genuine + String(repeating: "x", count: 200_000)) != 200)
        #expect(await api.rawGet(target, authorization: api.header(auditor, target: target) + String(repeating: "x", count: 2_000)) == 401)
        try await world.stop()
    }

    static func batteryChange(_ level: Int) -> DeviceAttributes {
        var changes = DeviceAttributes()
        changes.batteryLevel = Int64(level)
        return changes
    }

    /// A member whose certificate governance revoked cannot read, even with a valid signature.
    @Test func revokedMemberIsRefused() async throws {
        let world = try await World()
        let collector = try world.identity("st-mary/collector")
        #expect(try await world.api.get("/v1/chain", as: collector).status == 200)
        let revoke = try world.identity("st-mary/admin").transaction(network: world.harness.node.network, contract: "governance",
                                                                     action: "revoke", arguments: collector.fingerprint.bytes).envelope
        guard case .committed = try await world.harness.commit(revoke) else { throw LedgerError(.internal, "revocation did not commit") }
        let answer = try await world.api.get("/v1/chain", as: collector)
        #expect(answer.status == 401 && answer.code == "certificate_revoked", "\(answer.text)")

        // An event stream opened before the revocation ends at the next block after it.
        let auditor = try world.identity("device-regulator/auditor")
        let target = "/v1/events"
        let stream = world.api.rawStream("GET \(target) HTTP/1.1\r\nHost: x\r\nAuthorization: \(world.api.header(auditor, target: target))\r\nConnection: close\r\n\r\n")
        let update = try world.harness.sign("north-general/collector", .update(udi: world.deviceB, event: "power", changes: Self.batteryChange(70)))
        guard case .committed = try await world.harness.commit(update) else { throw LedgerError(.internal, "update did not commit") }
        let revokeAuditor = try world.identity("device-regulator/admin").transaction(
            network: world.harness.node.network, contract: "governance", action: "revoke", arguments: auditor.fingerprint.bytes).envelope
        guard case .committed = try await world.harness.commit(revokeAuditor) else { throw LedgerError(.internal, "revocation did not commit") }
        let after = try world.harness.sign("north-general/collector", .update(udi: world.deviceB, event: "power", changes: Self.batteryChange(60)))
        guard case .committed = try await world.harness.commit(after) else { throw LedgerError(.internal, "update did not commit") }
        let (received, closed) = await stream.value
        #expect(received > 0 && closed, "the stream of a revoked auditor stayed open (\(received) bytes)")
        try await world.stop()
    }
}

/// The signed bytes and header, checked against a vector made by scripts/request_signature.py
/// (Python `cryptography`), independently of the Swift implementation.
struct RequestSignatureTests {
    struct Vector: Decodable {
        var private_key_scalar: String
        var public_key_raw: String
        var network_id: Hash256
        var member: Hash256
        var method: String
        var target: String
        var time: Int64
        var nonce: String
        var signed_text_hex: String
        var signature_base64: String
        var authorization: String
    }

    static func vector() throws -> Vector {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try JSONDecoder().decode(Vector.self, from: Data(contentsOf: url.appendingPathComponent("request-signature/vector.json")))
    }

    @Test func signedTextAndSignatureMatchTheIndependentVector() throws {
        let vector = try Self.vector()
        let nonce = try #require(Hex.decode(vector.nonce))
        let text = RequestSignature.message(network: vector.network_id, method: vector.method, target: vector.target,
                                            bodyHash: Hash256.of([UInt8]()), time: vector.time, nonce: nonce)
        #expect(Hex.encode(text) == vector.signed_text_hex)
        let key = try P256.Signing.PrivateKey(rawRepresentation: try #require(Hex.decode(vector.private_key_scalar)))
        #expect(Hex.encode(key.publicKey.rawRepresentation) == vector.public_key_raw)
        let parsed = try RequestSignature.parse(vector.authorization)
        #expect(parsed.member == vector.member && parsed.time == vector.time && parsed.nonce == nonce)
        #expect(Data(parsed.signature).base64EncodedString() == vector.signature_base64)
        #expect(SignatureCheck.isValid(signature: parsed.signature, message: text, publicKey: key.publicKey))
        #expect(parsed.headerValue == vector.authorization)
        // And a signature made here verifies over the same text.
        let signature = Array(try key.signature(for: text).rawRepresentation)
        #expect(SignatureCheck.isValid(signature: signature, message: text, publicKey: key.publicKey))
    }

    /// The fuzz seed for the `Authorization` target reaches the parser's accepting path (a seed that
    /// every check refuses would leave the round-trip property unexercised).
    @Test func authorizationFuzzSeedParses() throws {
        let seed = try Data(contentsOf: FuzzRegressionTests.repositoryRoot.appendingPathComponent("FuzzTesting/Corpus/48-authorization"))
        #expect(FuzzHarness.targetName(of: [UInt8](seed)) == "authorization", "seed must select the authorization target")
        let text = try #require(String(data: seed.dropFirst(), encoding: .utf8))
        let parsed = try RequestSignature.parse(text)
        #expect(parsed.headerValue == text)
        FuzzHarness.checkAuthorization(text)
        // Reordered parameters are accepted and canonicalise to the same credentials.
        let fields = text.dropFirst(RequestSignature.scheme.count + 1).split(separator: ",")
        #expect(try RequestSignature.parse(RequestSignature.scheme + " " + fields.reversed().joined(separator: ",")) == parsed)
    }

    @Test func replayCacheRefusesWhenFullOfUnexpiredNonces() {
        let cache = ReplayCache(capacity: 2)
        let member = Hash256.of([1])
        #expect(cache.insert(member: member, nonce: [1], expiry: 1_000, now: 0) == .fresh)
        #expect(cache.insert(member: member, nonce: [1], expiry: 1_000, now: 10) == .replayed)
        #expect(cache.insert(member: member, nonce: [2], expiry: 1_000, now: 10) == .fresh)
        #expect(cache.insert(member: member, nonce: [3], expiry: 1_000, now: 20) == .full)
        // Once expired (and after the sweep interval), entries make room again.
        #expect(cache.insert(member: member, nonce: [3], expiry: 30_000, now: 20_000) == .fresh)
        #expect(cache.count == 1)
    }
}

/// The policy for standings the demo network has no member for.
struct AccessPolicyTests {
    static func principal(_ role: Role, _ kind: OrganizationKind, organization: String = "org") -> Principal {
        Principal(member: Hash256.of(Array("\(role)\(kind)".utf8)), organization: organization, organizationKind: kind, role: role,
                  name: "\(organization)/\(role.rawValue)")
    }

    @Test(arguments: [
        (Role.clinician, OrganizationKind.hospital, AccessPolicy.Standing.hospitalStaff),
        (.device, .hospital, .hospitalStaff),
        (.patient, .hospital, .patient),
        (.admin, .manufacturer, .member),
        (.researcher, .hospital, .researcher),
        (.auditor, .research, .oversight),
        (.collector, .regulator, .oversight),
        (.admin, .research, .coordinator),
    ])
    func standings(role: Role, kind: OrganizationKind, standing: AccessPolicy.Standing) {
        #expect(AccessPolicy.standing(of: Self.principal(role, kind)) == standing)
    }

    @Test func patientsAndManufacturersSeeNoDeviceRecordsOrBlocks() {
        for principal in [Self.principal(.patient, .hospital), Self.principal(.admin, .manufacturer)] {
            for route in [APIRoute.devices, .device, .deviceHistory, .block, .events, .researchLog, .researchBudget] {
                guard case .forbidden = AccessPolicy.decide(principal, route) else {
                    Issue.record("\(principal) may use \(route)")
                    continue
                }
            }
            #expect(AccessPolicy.decide(principal, .chain) == .allow(.everything))
        }
        let manufacturer = Self.principal(.admin, .manufacturer, organization: "helix")
        #expect(AccessPolicy.decide(manufacturer, .transactionStatus, .transactionCreatedBy(organization: "helix")) == .allow(.organization("helix")))
        #expect(AccessPolicy.decide(manufacturer, .metrics) == .allow(.everything))
        let patient = Self.principal(.patient, .hospital)
        guard case .forbidden = AccessPolicy.decide(patient, .transactionStatus, .transactionCreatedBy(organization: "org")) else {
            Issue.record("a patient may read transaction statuses")
            return
        }
    }

    @Test func everySignedRouteNeedsAPrincipal() {
        for route in APIRoute.allCases {
            let decision = AccessPolicy.decide(nil, route)
            switch route.authentication {
            case .signedRequest:
                guard case .unauthenticated = decision else { Issue.record("\(route) open without a principal"); continue }
            case .none, .envelope:
                #expect(decision == .allow(.everything))
            }
        }
        #expect(APIRoute.allCases.filter { $0.authentication == .none } == [.health, .openAPI])
    }
}

extension RequestSignatureTests {
    /// The header has exactly one spelling: whatever parses re-encodes to the same bytes, so two
    /// different headers never carry the same credentials.
    @Test func parsedHeadersReencodeExactly() throws {
        let vector = try Self.vector()
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("MedLgr-Sinatu mbo=,0123456789abcdefABCDEF+/ \t".utf8)
        var accepted = 0
        for _ in 0..<5_000 {
            var bytes = Array(vector.authorization.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: index)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: index)
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let parsed = try? RequestSignature.parse(text) {
                accepted += 1
                #expect(parsed.headerValue == text, "\(text) parsed but re-encodes differently")
            }
        }
        #expect(accepted < 5_000)
    }
}

/// The hand-written 202 of a submission is byte for byte what the JSON encoder gives.
struct PendingResponseTests {
    @Test func theWrittenPendingAnswerEqualsTheEncodedOne() async throws {
        let id = Hash256.of([4, 2])
        func bytes(_ body: ResponseBody) async throws -> [UInt8] {
            let collector = BodyCollector()
            try await body.write(collector)
            return collector.bytes.withLock { $0 }
        }
        let written = try await bytes(APIServer.pendingResponse(id).body)
        #expect(written == (try await bytes(APIServer.json(StatusView(id: id, status: .pending), status: .accepted).body)))
        #expect(String(decoding: written, as: UTF8.self).contains(id.hex))
        #expect(APIServer.pendingResponse(id).status == .accepted)
    }

    final class BodyCollector: ResponseBodyWriter, Sendable {
        let bytes = Mutex<[UInt8]>([])
        func write(_ buffer: ByteBuffer) async throws { bytes.withLock { $0 += buffer.readableBytesView } }
        func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
