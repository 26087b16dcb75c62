import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import LedgerCore
import Node
import Collector

/// The demo's patient data: three simulated patients at St Mary's with records, consents, one
/// granted and one denied access, so that a new user can try each step at once (docs/patient-data.md).
///
/// The patients' identifiers (`MRN-1001`…) stay in St Mary's directory, turned into pseudonyms with
/// its secret (`orgs/st-mary/pseudonym.key`); the ledger and the node hold only pseudonyms,
/// ciphertext hashes and wrapped keys. Their keys are written like any member's
/// (`orgs/st-mary/patient-N.key`, 0600).
struct PatientDemo {
    static let hospital = "st-mary"
    static let fileName = "demo-patients.json"

    struct Seeded: Codable {
        struct Patient: Codable {
            var name: String
            var identifier: String
            var pseudonym: Hash256
            var records: [Hash256]
        }
        var patients: [Patient]
        var granted: Hash256?
        var denied: Hash256?
    }

    let data: String
    let definition: NetworkDefinition
    let base: URL

    func member(_ name: String) throws -> SigningIdentity { try definition.identity(named: name, directory: data) }

    func submit(_ identity: SigningIdentity, _ contract: String, _ action: String, _ arguments: [UInt8]) async throws -> Hash256 {
        let status = try await records(identity).submit(contract: contract, action: action, arguments: arguments)
        guard status.status == "committed" else {
            throw UserError("demo patient data: \(contract).\(action) was \(status.status) (\(status.code ?? ""): \(status.message ?? ""))")
        }
        return status.id
    }

    func records(_ identity: SigningIdentity) -> RecordClient {
        RecordClient(node: NodeClient(baseURL: base, signer: .init(identity: identity, network: definition.networkID)),
                     identity: identity, network: definition.networkID)
    }

    /// An encryption key for `name` (`<name>.enc.key`, 0600), registered on the ledger.
    func registerEncryptionKey(_ name: String) async throws {
        let folder = NetworkDefinition.organizationPath(String(name.split(separator: "/")[0]), in: data)
        let key = try PatientFiles.encryptionKey(folder: folder, name: String(name.split(separator: "/")[1]), create: true)
        _ = try await submit(try member(name), "records", "register_key", RecordAction.registerKey(Array(key.publicKey.x963Representation)).arguments)
    }

    func seed() async throws -> Seeded {
        let folder = NetworkDefinition.organizationPath(Self.hospital, in: data)
        let secret = try PatientFiles.pseudonymSecret(folder: folder)
        let authority = try OrganizationDirectory.authority(in: folder, organization: Self.hospital)
        let admin = try member("\(Self.hospital)/admin")
        for name in ["st-mary/clinician", "north-general/clinician"] { try await registerEncryptionKey(name) }

        var patients: [Seeded.Patient] = []
        let collector = records(try member("\(Self.hospital)/collector"))
        for index in 1...3 {
            let name = "patient-\(index)"
            let key = P256.Signing.PrivateKey()
            let certificate = try authority.issue(name: "\(Self.hospital)/\(name)", role: .patient, publicKey: key.publicKey)
            try SecureFile.create(folder + "/\(name).key", text: key.pemRepresentation)
            try SecureFile.create(folder + "/\(name).pem", text: certificate.pemText, mode: 0o644)
            let identifier = "MRN-\(1000 + index)"
            let pseudonym = PatientPseudonym.derive(identifier: identifier, hospital: Self.hospital, secret: secret)
            try SecureFile.create(folder + "/\(name).pseudonym", text: pseudonym.hex + "\n")
            _ = try await submit(admin, "consent", "register", ConsentAction.register(certificate: certificate.derBytes).arguments)
            _ = try await submit(admin, "consent", "enrol", ConsentAction.enrol(patient: pseudonym, member: certificate.fingerprint).arguments)
            try await registerEncryptionKey("\(Self.hospital)/\(name)")
            var ids: [Hash256] = []
            let documents = [
                ("report", "Synthetic discharge report for demo patient \(index): stable, follow-up in 6 weeks."),
                ("device_readings", "{\"series\":\"spo2\",\"values\":[97,96,98,95],\"unit\":\"%\",\"patient\":\"demo-\(index)\"}"),
            ]
            for (category, text) in documents {
                let (id, status) = try await collector.put(Array(text.utf8), patient: pseudonym, category: category)
                guard status.status == "committed" else { throw UserError("demo patient data: record not anchored (\(status.code ?? ""))") }
                ids.append(id)
            }
            if index == 3 {
                // Key rotation: the hospital re-encrypts patient-3's readings under a new data key.
                let (rotated, status) = try await records(admin).rotate(record: ids[1])
                guard status.status == "committed" else { throw UserError("demo patient data: rotation not committed (\(status.code ?? ""))") }
                ids[1] = rotated
            }
            patients.append(.init(name: name, identifier: identifier, pseudonym: pseudonym, records: ids))
        }

        // Consent: patient-1 lets St Mary's treat; patient-2 lets any clinician treat except North
        // General's; patient-3 has consented to nothing.
        let treat = ConsentTerms(effect: .permit, grantee: .organization(Self.hospital), purposes: [.treatment])
        _ = try await submit(try member("\(Self.hospital)/patient-1"), "consent", "grant",
                             ConsentAction.grant(patient: patients[0].pseudonym, terms: treat).arguments)
        let clinicians = ConsentTerms(effect: .permit, grantee: .role(.clinician, organization: nil), purposes: [.treatment])
        let notNorth = ConsentTerms(effect: .deny, grantee: .organization("north-general"), purposes: [.treatment])
        for terms in [clinicians, notNorth] {
            _ = try await submit(try member("\(Self.hospital)/patient-2"), "consent", "grant",
                                 ConsentAction.grant(patient: patients[1].pseudonym, terms: terms).arguments)
        }
        // One access granted (St Mary's clinician, patient-1's report) and one denied (North General's).
        let request = ConsentAction.request(record: patients[0].records[0], purpose: .treatment)
        let granted = try await submit(try member("st-mary/clinician"), "consent", request.name, request.arguments)
        let denied = try await submit(try member("north-general/clinician"), "consent", request.name, request.arguments)
        let seeded = Seeded(patients: patients, granted: granted, denied: denied)
        try SecureFile.create(data + "/" + Self.fileName, contents: Array(try JSONEncoder().encode(seeded)), mode: 0o644)
        return seeded
    }

    static func load(_ data: String) -> Seeded? {
        (try? SecureFile.read(data + "/" + fileName)).flatMap { try? JSONDecoder().decode(Seeded.self, from: Data($0)) }
    }

    /// The lines to try, with the seeded record ids.
    static func banner(_ seeded: Seeded, data: String, base: String) -> String {
        let common = "--network \(data) --node \(base)"
        let report = seeded.patients[0].records[0].hex
        let denied = seeded.patients[1].records[0].hex
        return """
            Patient data: 3 simulated patients at st-mary (identifiers MRN-1001…1003 stay in orgs/st-mary; the ledger sees pseudonyms)
              medledger records list \(common) --identity st-mary/clinician --patient MRN-1001
              medledger access request \(common) --identity st-mary/clinician --record \(report) --purpose TREAT
              medledger records get \(report) --decision <the decision it printed> \(common) --identity st-mary/clinician
              medledger access request \(common) --identity north-general/clinician --record \(denied) --purpose TREAT   # denied: patient-2 refused North General
              medledger access break-glass \(common) --identity north-general/clinician --record \(denied) --reason "unconscious in ER"
              medledger consent log \(common) --identity st-mary/patient-1
              medledger consent list \(common) --identity st-mary/patient-2
              medledger records rotate \(seeded.patients[2].records[0].hex) \(common) --identity st-mary/admin   # re-encrypt under a new data key
            """
    }
}

/// Seeds the demo's patient data once the server listens (first run only), then prints what to try.
struct PatientDemoService: Service {
    let data: String
    let definition: NetworkDefinition
    let port: PortBox
    let seed: Bool
    let logger: Logger

    func run() async throws {
        while port.value.withLock({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let base = "http://127.0.0.1:\(port.value.withLock { $0 })"
        do {
            let seeded: PatientDemo.Seeded?
            if seed {
                seeded = try await PatientDemo(data: data, definition: definition, base: URL(string: base)!).seed()
            } else {
                seeded = PatientDemo.load(data)
            }
            if let seeded { Output.line(PatientDemo.banner(seeded, data: data, base: base)) }
        } catch is CancellationError {
        } catch {
            logger.error("demo patient data could not be seeded", metadata: ["error": "\(error)"])
        }
    }
}
