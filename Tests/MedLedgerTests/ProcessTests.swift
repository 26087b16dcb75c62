import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Node
import Collector
import Server
import LedgerTesting

final class Acknowledged: Sendable {
    let list = Mutex<[(Hash256, UInt64)]>([])
    let killed = Mutex(false)
    let errors = Mutex<[String]>([])
}

/// Tests that start real `medledger` processes on loopback and stop exactly the pids they started.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ProcessTests {
    static func startNode(_ directory: String) async throws -> (ManagedProcess, URL) {
        let node = try ManagedProcess(medledger: "node", "--data", directory, "--port", "0", "--log-level", "warning")
        guard let line = await node.line(containing: "listening on"),
              let address = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
              let url = URL(string: String(address))
        else {
            throw LedgerError(.io, "node did not start: \(node.errors.withLock { $0 })")
        }
        return (node, url)
    }

    /// SIGKILL under load: every transaction the node acknowledged as committed is still there after
    /// a restart, every block is intact, and the ledger verifies.
    @Test func killedNodeKeepsEveryAcknowledgedTransaction() async throws {
        let directory = Fixtures.temporaryPath("crash")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let initialized = try await ManagedProcess.medledger("init", "--out", directory, "--batch-size", "20", "--batch-timeout-ms", "5")
        #expect(initialized.status == 0, "\(initialized.stderr)")
        let definition = try NetworkDefinition.load(directory: directory)
        let signers = try ["st-mary", "north-general", "city-childrens"].map { try definition.identity(named: "\($0)/collector", directory: directory) }

        let (node, url) = try await Self.startNode(directory)
        let client = NodeClient(baseURL: url)
        let acknowledged = Acknowledged()
        let (enough, signal) = AsyncStream<Void>.makeStream()
        let network = definition.networkID
        let workers = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        var serial = 0
                        while !Task.isCancelled, !acknowledged.killed.withLock({ $0 }) {
                            serial += 1
                            let action = DeviceAction.register(udi: Fixtures.udi(worker * 1_000_000 + serial), attributes: Fixtures.attributes())
                            let (id, envelope) = signers[worker % 3].transaction(network: network, contract: "devices",
                                                                                 action: action.name, arguments: action.arguments)
                            do {
                                let status = try await client.submit(envelope.encoded, wait: 30)
                                guard status.status == "committed", let height = status.height else { continue }
                                let count = acknowledged.list.withLock { list in
                                    list.append((id, height))
                                    return list.count
                                }
                                if count == 150 { signal.yield() }
                            } catch {
                                // After the kill every request fails; before it, none should.
                                if !acknowledged.killed.withLock({ $0 }) { acknowledged.errors.withLock { $0.append("\(error)") } }
                                return
                            }
                        }
                    }
                }
                await group.waitForAll()
                signal.finish()
            }
        }
        // Kill while the workers are still submitting.
        for await _ in enough { break }
        acknowledged.killed.withLock { $0 = true }
        node.send(SIGKILL)
        let killedStatus = await node.waitForExit(timeout: .seconds(30))
        #expect(killedStatus != nil && node.terminatingSignal == SIGKILL)
        await workers.value
        #expect(acknowledged.errors.withLock { $0 }.isEmpty, "requests failed before the kill: \(acknowledged.errors.withLock { $0 })")
        let acked = acknowledged.list.withLock { $0 }
        #expect(acked.count >= 150)

        // Restart on the same database: everything acknowledged is committed where it was.
        let (restarted, url2) = try await Self.startNode(directory)
        // Status reads are signed; the regulator's auditor may read every organisation's transactions.
        let auditor = try definition.identity(named: "device-regulator/auditor", directory: directory)
        let client2 = NodeClient(baseURL: url2, signer: .init(identity: auditor, network: definition.networkID))
        for (id, height) in acked {
            let status = try await client2.status(id)
            #expect(status.status == "committed" && status.height == height, "transaction \(id.hex) lost after SIGKILL")
        }
        // And the node keeps working after the crash.
        let action = DeviceAction.register(udi: Fixtures.udi(42), attributes: Fixtures.attributes())
        let after = signers[0].transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
        #expect(try await client2.submit(after.envelope.encoded, wait: 30).status == "committed")
        restarted.send(SIGTERM)
        #expect(await restarted.waitForExit(timeout: .seconds(30)) == 0)

        let verified = try await ManagedProcess.medledger("verify", "--data", directory)
        #expect(verified.status == 0, "\(verified.stderr)")
    }

    /// The demo runs with no arguments but a directory, port and duration, exits 0, and leaves a
    /// ledger that verifies, exports, proves and passes an independent verifier written in Python.
    @Test func demoProducesAVerifiableLedger() async throws {
        let directory = Fixtures.temporaryPath("demo")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let demo = try await ManagedProcess.medledger("demo", "--data", directory, "--port", "0", "--duration", "4", "--devices", "5",
                                                       "--interval-ms", "100")
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("MedLedger demo"))
        #expect(demo.stdout.contains("curl http://127.0.0.1:"))
        for key in ["orgs/st-mary/ca.key", "orgs/st-mary/collector.key", "orgs/device-regulator/admin.key"] {
            #expect(SecureFile.mode(of: directory + "/" + key) == 0o600, "\(key) must be 0600")
        }

        // The research half through the CLI: a query, its JSON, the budget, the audit log, a refusal.
        let (node, url) = try await Self.startNode(directory)
        let researcher = ["--network", directory, "--identity", "medtech-research/researcher", "--node", url.absoluteString]
        let count = try await ManagedProcess.medledger(["query", "count", "--epsilon", "0.5", "--where", "device_type=infusion_pump,ventilator",
                                                        "--where", "battery_level=10..", "--json"] + researcher)
        #expect(count.status == 0, "\(count.stderr)")
        let answer = try JSONDecoder().decode(QueryView.self, from: Data(count.stdout.utf8))
        #expect(answer.kind == "count" && answer.epsilon == "0.5" && answer.cost.epsilon == "0.5" && !answer.cached)
        #expect(answer.noise["count"]?.scale == "2/1")
        #expect(answer.result?.interval_95?.count == 2)
        let grouped = try await ManagedProcess.medledger(["query", "grouped", "--by", "hospital", "--epsilon", "1"] + researcher)
        #expect(grouped.status == 0, "\(grouped.stderr)")
        #expect(grouped.stdout.contains("city-childrens") && grouped.stdout.contains("st-mary"))
        let budget = try await ManagedProcess.medledger(["query", "budget"] + researcher)
        #expect(budget.stdout.contains("ε 8.5 of 10"), "\(budget.stdout) \(budget.stderr)")
        let log = try await ManagedProcess.medledger(["query", "log"] + researcher)
        #expect(log.stdout.contains("medtech-research/researcher asked count by hospital ε 1"), "\(log.stdout)")
        let forbidden = try await ManagedProcess.medledger(["query", "count", "--network", directory, "--identity", "st-mary/collector",
                                                            "--node", url.absoluteString])
        #expect(forbidden.status == 1)
        #expect(forbidden.stderr.contains("[forbidden]"))
        let badFilter = try await ManagedProcess.medledger(["query", "count", "--where", "colour=red"] + researcher)
        #expect(badFilter.status != 0)
        #expect(badFilter.stderr.contains("unknown field colour"))
        // The patient-data half, as the demo banner prints it: a grant, the record read and
        // decrypted, a refusal, break-glass without a reason, the patient's disclosure log.
        let seeded = try JSONDecoder().decode(PatientDemoSeed.self, from: Data(try SecureFile.read(directory + "/demo-patients.json")))
        let (reportRecord, refusedRecord) = (seeded.patients[0].records[0].hex, seeded.patients[1].records[0].hex)
        let common = ["--network", directory, "--node", url.absoluteString]
        let access = try await ManagedProcess.medledger(["access", "request", "--identity", "st-mary/clinician", "--record", reportRecord, "--purpose", "TREAT"] + common)
        #expect(access.status == 0 && access.stdout.contains("GRANTED (consent)"), "\(access.stdout) \(access.stderr)")
        let decision = try #require(access.stdout.split(separator: "\n").first { $0.hasPrefix("GRANTED") }?.split(separator: " ").last)
        let out = directory + "/report.txt"
        let read = try await ManagedProcess.medledger(["records", "get", reportRecord, "--decision", String(decision), "--identity", "st-mary/clinician", "--out", out] + common)
        #expect(read.status == 0, "\(read.stdout) \(read.stderr)")
        #expect(String(decoding: try SecureFile.read(out), as: UTF8.self).hasPrefix("Synthetic discharge report for demo patient 1"))
        let refusedAccess = try await ManagedProcess.medledger(["access", "request", "--identity", "north-general/clinician", "--record", refusedRecord] + common)
        #expect(refusedAccess.status == 1 && refusedAccess.stdout.contains("DENIED (deny)"), "\(refusedAccess.stdout) \(refusedAccess.stderr)")
        let noReason = try await ManagedProcess.medledger(["access", "break-glass", "--identity", "north-general/clinician", "--record", refusedRecord] + common)
        #expect(noReason.status == 1 && noReason.stderr.contains("[missing_field]"), "\(noReason.stderr)")
        let disclosures = try await ManagedProcess.medledger(["consent", "log", "--identity", "st-mary/patient-1"] + common)
        #expect(disclosures.status == 0 && disclosures.stdout.contains("GRANTED  st-mary/clinician") && disclosures.stdout.contains("DENIED   north-general/clinician"),
                "\(disclosures.stdout) \(disclosures.stderr)")
        let stranger = try await ManagedProcess.medledger(["consent", "log", "--identity", "north-general/admin", "--pseudonym", seeded.patients[0].pseudonym.hex] + common)
        #expect(stranger.status != 0 && stranger.stderr.contains("[forbidden]"), "\(stranger.stderr)")
        // Key rotation through the CLI: the admin may, a clinician may not; the list names the successor.
        let rotatedRecord = seeded.patients[2].records[0].hex
        let notAdmin = try await ManagedProcess.medledger(["records", "rotate", rotatedRecord, "--identity", "st-mary/clinician"] + common)
        #expect(notAdmin.status != 0 && notAdmin.stderr.contains("[forbidden]"), "\(notAdmin.stdout) \(notAdmin.stderr)")
        let rotate = try await ManagedProcess.medledger(["records", "rotate", rotatedRecord, "--identity", "st-mary/admin"] + common)
        #expect(rotate.status == 0 && rotate.stdout.contains("committed: record \(rotatedRecord) rotated to "), "\(rotate.stdout) \(rotate.stderr)")
        let listed = try await ManagedProcess.medledger(["records", "list", "--identity", "st-mary/clinician", "--patient", "MRN-1003"] + common)
        #expect(listed.status == 0 && listed.stdout.contains("\(rotatedRecord)  report") && listed.stdout.contains("ROTATED to "), "\(listed.stdout) \(listed.stderr)")

        // Signed reads through the CLI, as the demo banner prints them, and through curl's header.
        let api = try await ManagedProcess.medledger(["api", "--network", directory, "--identity", "st-mary/admin", "--node", url.absoluteString,
                                                      "GET", "/v1/devices?owner=st-mary&limit=3"])
        #expect(api.status == 0 && api.stdout.contains("\"owner\" : \"st-mary\""), "\(api.stdout) \(api.stderr)")
        let refusedRead = try await ManagedProcess.medledger(["api", "--network", directory, "--identity", "medtech-research/researcher",
                                                              "--node", url.absoluteString, "GET", "/v1/devices"])
        #expect(refusedRead.status == 1 && refusedRead.stdout.contains("forbidden"))
        let header = try await ManagedProcess.medledger(["auth-header", "--network", directory, "--identity", "device-regulator/auditor",
                                                         "GET", "/v1/blocks/1"])
        let line = header.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("Authorization: MedLedger-Signature member="))
        var block = URLRequest(url: URL(string: "/v1/blocks/1", relativeTo: url)!.absoluteURL)
        block.setValue(String(line.dropFirst("Authorization: ".count)), forHTTPHeaderField: "Authorization")
        let (_, blockResponse) = try await URLSession.shared.data(for: block)
        #expect((blockResponse as? HTTPURLResponse)?.statusCode == 200)
        node.send(SIGTERM)
        #expect(await node.waitForExit(timeout: .seconds(30)) == 0)

        let verified = try await ManagedProcess.medledger("verify", "--data", directory, "--json")
        #expect(verified.status == 0, "\(verified.stderr)")
        let report = try JSONDecoder().decode(VerificationReport.self, from: Data(verified.stdout.utf8))
        #expect(report.ok)
        #expect(report.transactions >= 18)  // genesis + 15 registrations + 2 research answers at least

        let export = directory + "/chain.json"
        let exported = try await ManagedProcess.medledger("export", "--data", directory, "--out", export)
        #expect(exported.status == 0, "\(exported.stderr)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/verify_export.py").path
        let independent = try await ManagedProcess.run("/usr/bin/env", ["python3", script, export])
        #expect(independent.status == 0, "independent verifier: \(independent.stdout) \(independent.stderr)")
        #expect(independent.stdout.contains("\"ok\": true"))

        // Proofs round-trip through files, and a tampered proof is refused.
        let exportJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: export))) as! [String: Any]
        let blocks = exportJSON["blocks"] as! [[String: Any]]
        let transaction = ((blocks[1]["transactions"] as! [[String: Any]])[0]["id"] as! String)
        let proof = try await ManagedProcess.medledger("proof", "--data", directory, "--tx", transaction)
        #expect(proof.status == 0, "\(proof.stderr)")
        let proofFile = directory + "/proof.json"
        try Data(proof.stdout.utf8).write(to: URL(fileURLWithPath: proofFile))
        #expect(try await ManagedProcess.medledger("verify-proof", proofFile, "--network", directory).status == 0)
        let tampered = proof.stdout.replacingOccurrences(of: "\"tree_size\" : ", with: "\"tree_size\" : 1")
        #expect(tampered != proof.stdout)
        try Data(tampered.utf8).write(to: URL(fileURLWithPath: proofFile))
        let refused = try await ManagedProcess.medledger("verify-proof", proofFile, "--network", directory)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("REFUSED"))
    }

    /// The device CLI against a running node: a clear error for bad input, success otherwise.
    @Test func deviceCommandReportsClearErrors() async throws {
        let directory = Fixtures.temporaryPath("cli")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try await ManagedProcess.medledger("init", "--out", directory).status == 0)
        let (node, url) = try await Self.startNode(directory)
        let common = ["--network", directory, "--identity", "st-mary/collector", "--node", url.absoluteString]
        let fields = ["--set", "manufacturer=Helix", "--set", "model=HX-1", "--set", "device_type=ventilator", "--set", "category=life_support",
                      "--set", "speciality=intensive_care", "--set", "production_date=2023-05-01"]
        let bad = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["device", "register"] + common + ["--udi", "(01)00844588003289(21)A"] + fields)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("invalid_udi"))
        let good = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["device", "register"] + common + ["--udi", "(01)00844588003288(21)A"] + fields)
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.hasPrefix("committed"))
        let unknown = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["device", "update"] + common + ["--udi", "(01)00844588003288(21)B", "--event", "power", "--set", "active=false"])
        #expect(unknown.status != 0)
        #expect(unknown.stdout.contains("unknown_device"))
        node.send(SIGTERM)
        #expect(await node.waitForExit(timeout: .seconds(30)) == 0)
    }
}

extension ProcessTests {
    /// Membership through the CLI: issue a certificate, propose it, approvals reach the majority,
    /// and only then can the new collector write.
    @Test func governanceThroughTheCommandLine() async throws {
        let directory = Fixtures.temporaryPath("governance")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try await ManagedProcess.medledger("init", "--out", directory).status == 0)
        let (node, url) = try await Self.startNode(directory)
        let issued = try await ManagedProcess.medledger("issue", "--network", directory, "--org", "st-mary", "--name", "collector-2", "--role", "collector")
        #expect(issued.status == 0, "\(issued.stderr)")
        #expect(SecureFile.mode(of: directory + "/orgs/st-mary/collector-2.key") == 0o600)
        let register = ["device", "register", "--network", directory, "--identity", "st-mary/collector-2", "--node", url.absoluteString,
                        "--udi", "(01)00844588003288(21)G1", "--set", "manufacturer=Helix", "--set", "model=HX-1",
                        "--set", "device_type=ventilator", "--set", "category=life_support", "--set", "speciality=intensive_care",
                        "--set", "production_date=2023-05-01"]
        let early = try await ManagedProcess.run(ManagedProcess.medledgerPath, register)
        #expect(early.status != 0)
        #expect(early.stderr.contains("unknown_member"))

        let common = ["--network", directory, "--node", url.absoluteString]
        let proposed = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["governance", "propose-member", "--identity", "st-mary/admin",
                                                    "--certificate", directory + "/orgs/st-mary/collector-2.pem"] + common)
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let id = try #require(proposed.stdout.split(separator: " ").first { $0.count == 64 }.map(String.init))
        // Five organisations: a majority is three. Two approvals so far after this one.
        for admin in ["north-general/admin", "medtech-research/admin"] {
            let approved = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["governance", "approve", "--identity", admin, "--proposal", id] + common)
            #expect(approved.status == 0, "\(approved.stderr)")
        }
        let notAdmin = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["governance", "approve", "--identity", "city-childrens/collector", "--proposal", id] + common)
        #expect(notAdmin.status != 0)
        #expect(notAdmin.stderr.contains("forbidden"))
        let late = try await ManagedProcess.run(ManagedProcess.medledgerPath, register)
        #expect(late.status == 0, "\(late.stderr) \(late.stdout)")
        node.send(SIGTERM)
        #expect(await node.waitForExit(timeout: .seconds(30)) == 0)
    }
}

/// Finding 1 of issue 7: raw device data was readable by anyone who could reach the port. A
/// researcher (whose only window on the data is differential privacy) signs a GET /v1/devices with
/// its own member key; the node must refuse it (403), and an unsigned request must get 401.
extension ProcessTests {
    @Test func researcherCannotReadRawDeviceRecords() async throws {
        let directory = Fixtures.temporaryPath("finding1")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try await ManagedProcess.medledger("init", "--out", directory).status == 0)
        let definition = try NetworkDefinition.load(directory: directory)
        let (node, url) = try await Self.startNode(directory)
        defer { node.send(SIGTERM) }
        let udi = Fixtures.udi(7)
        let action = DeviceAction.register(udi: udi, attributes: Fixtures.attributes())
        let collector = try definition.identity(named: "st-mary/collector", directory: directory)
        let registration = collector.transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
        #expect(try await NodeClient(baseURL: url).submit(registration.envelope.encoded, wait: 30).status == "committed")

        let researcher = try definition.identity(named: "medtech-research/researcher", directory: directory)
        let target = "/v1/devices?limit=3"
        let time = Clock.nowMilliseconds()
        let nonce = Hex.encode(SigningIdentity.randomNonce())
        // The signed text, written out here independently of the server's implementation.
        let text = ["MedLedger-Request-v1", definition.networkID.hex, "GET", target, Hash256.of([UInt8]()).hex, String(time), nonce]
            .joined(separator: "\n")
        let signature = Data(researcher.sign(Array(text.utf8))).base64EncodedString()
        var request = URLRequest(url: URL(string: target, relativeTo: url)!.absoluteURL)
        request.setValue("MedLedger-Signature member=\(researcher.fingerprint.hex),time=\(time),nonce=\(nonce),signature=\(signature)",
                         forHTTPHeaderField: "Authorization")
        let (body, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode
        #expect(status == 403, "a researcher read raw device records: HTTP \(status ?? 0) \(String(decoding: body, as: UTF8.self).prefix(200))")
        #expect(!String(decoding: body, as: UTF8.self).contains("S7"))

        let (_, unsigned) = try await URLSession.shared.data(from: URL(string: target, relativeTo: url)!.absoluteURL)
        #expect((unsigned as? HTTPURLResponse)?.statusCode == 401)
        node.send(SIGTERM)
        #expect(await node.waitForExit(timeout: .seconds(30)) == 0)
    }
}

/// What the demo writes to `demo-patients.json` (the fields the process test reads).
struct PatientDemoSeed: Decodable {
    struct Patient: Decodable {
        var pseudonym: Hash256
        var records: [Hash256]
    }
    var patients: [Patient]
}
