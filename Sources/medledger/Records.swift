import ArgumentParser
import Crypto
import Foundation
import LedgerCore
import Node
import Server
import Collector
import X509

/// Where a member's patient-data secrets live: beside its signing key in its organisation's directory.
///
/// - `<name>.enc.key`: the member's key-agreement private key (raw P-256, 0600), registered with
///   `records register-key`; granted data keys are wrapped for it.
/// - `pseudonym.key`: the hospital's pseudonym secret (32 bytes, 0600): HMAC key turning a patient
///   identifier into the pseudonym the ledger knows (never leaves the hospital).
/// - `<name>.pseudonym`: a patient's own pseudonym (hex), written when the hospital enrols it.
struct PatientFiles {
    let options: SubmitOptions
    let definition: NetworkDefinition
    let identity: SigningIdentity
    let organization: String
    let name: String

    init(_ options: SubmitOptions) throws {
        self.options = options
        definition = try NetworkDefinition.load(directory: options.network)
        identity = try definition.identity(named: options.identity, directory: options.network)
        organization = try MemberCertificate(der: identity.certificate.derBytes, root: nil, organization: nil).organization
        name = String(options.identity.split(separator: "/").last ?? "")
    }

    var folder: String { NetworkDefinition.organizationPath(organization, in: options.network) }

    var client: RecordClient {
        get throws { RecordClient(node: try options.client(), identity: identity, network: definition.networkID) }
    }

    func encryptionKey(create: Bool) throws -> P256.KeyAgreement.PrivateKey {
        try Self.encryptionKey(folder: folder, name: name, create: create)
    }

    func pseudonymSecret() throws -> SymmetricKey { try Self.pseudonymSecret(folder: folder) }

    /// A member's encryption key in its organisation's directory, created (0600) at first use.
    static func encryptionKey(folder: String, name: String, create: Bool) throws -> P256.KeyAgreement.PrivateKey {
        let path = folder + "/\(name).enc.key"
        if FileManager.default.fileExists(atPath: path) {
            return try P256.KeyAgreement.PrivateKey(rawRepresentation: try SecureFile.read(path))
        }
        guard create else { throw UserError("no encryption key at \(path): run `medledger records register-key` first") }
        let key = P256.KeyAgreement.PrivateKey()
        try SecureFile.create(path, contents: Array(key.rawRepresentation))
        return key
    }

    /// The hospital's pseudonym secret, created (0600) at first use.
    static func pseudonymSecret(folder: String) throws -> SymmetricKey {
        let path = folder + "/pseudonym.key"
        if !FileManager.default.fileExists(atPath: path) {
            try SecureFile.create(path, contents: Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }))
        }
        return SymmetricKey(data: try SecureFile.read(path))
    }

    /// `--pseudonym HEX`, else `--patient ID` through the hospital's secret, else the signer's own.
    func pseudonym(patient: String?, pseudonym: String?) throws -> Hash256 {
        if let pseudonym {
            guard let hash = Hash256(hex: pseudonym) else { throw ValidationError("--pseudonym must be 64 hex digits") }
            return hash
        }
        if let patient { return PatientPseudonym.derive(identifier: patient, hospital: organization, secret: try pseudonymSecret()) }
        let own = folder + "/\(name).pseudonym"
        guard let text = try? SecureFile.read(own), let hash = Hash256(hex: String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ValidationError("give --patient ID (hospital staff) or --pseudonym HEX")
        }
        return hash
    }

    /// Submits, prints the outcome, and fails unless it committed.
    func submit(contract: String, action: String, arguments: [UInt8]) async throws -> NodeClient.Status {
        let status = try await options.submit(contract: contract, action: action, arguments: arguments)
        guard status.status == "committed" else { throw ExitCode(1) }
        return status
    }
}

struct RecordsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records",
        abstract: "Store and read encrypted patient records (docs/patient-data.md).",
        discussion: """
            A record is encrypted on this machine under a fresh data key (AES-256-GCM); the node of the \
            hospital keeps the ciphertext, the ledger keeps its hash, size, category, device, the patient's \
            pseudonym and the data key wrapped for the hospital's vault. Reading needs a granted access \
            decision (`medledger access request`).

            Examples:
              medledger records register-key --network ./net --identity st-mary/clinician
              medledger records put --network ./net --identity st-mary/collector --patient MRN-1001 --category report --file report.pdf
              medledger records list --network ./net --identity st-mary/clinician --patient MRN-1001
              medledger records get RECORD --decision DECISION --network ./net --identity st-mary/clinician --out report.pdf
              medledger records rotate RECORD --network ./net --identity st-mary/admin

            `rotate` (an admin of the holder) re-encrypts a record under a new data key: the hospital's \
            node re-seals it, the ledger anchors the new record in place of the old one, and the old \
            key and ciphertext are destroyed.
            """
    )

    @Argument(help: "register-key, put, get, list or rotate.")
    var verb: String

    @Argument(help: "The record id (get, rotate).")
    var record: String?

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "The patient's identifier at this hospital (turned into its pseudonym here).")
    var patient: String?

    @Option(name: .long, help: "The patient's pseudonym (64 hex digits).")
    var pseudonym: String?

    @Option(name: .long, help: "Record category (put): 1–64 of a-z, 0-9, _.")
    var category = "report"

    @Option(name: .long, help: "The device the record came from (put).")
    var device: String?

    @Option(name: .long, help: "File to store (put); - for standard input.")
    var file: String?

    @Option(name: .long, help: "The granted access decision (get).")
    var decision: String?

    @Option(name: .long, help: "Where to write the decrypted record (get); standard output if absent.")
    var out: String?

    func run() async throws {
        let files = try PatientFiles(options)
        do {
            switch verb {
            case "register-key":
                let key = try files.encryptionKey(create: true)
                _ = try await files.submit(contract: "records", action: "register_key",
                                           arguments: RecordAction.registerKey(Array(key.publicKey.x963Representation)).arguments)
            case "put":
                guard let file else { throw ValidationError("--file is required") }
                let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
                let (id, status) = try await files.client.put([UInt8](data), patient: try files.pseudonym(patient: patient, pseudonym: pseudonym),
                                                              category: category, device: device)
                print("\(status.status): record \(id.hex)\(status.height.map { " in block \($0)" } ?? "")\(status.code.map { " (\($0): \(status.message ?? ""))" } ?? "")")
                if status.status != "committed" { throw ExitCode(1) }
            case "get":
                guard let record = record.flatMap(Hash256.init(hex:)), let decision = decision.flatMap(Hash256.init(hex:)) else {
                    throw ValidationError("give the record id and --decision (64 hex digits each)")
                }
                let plaintext = try await files.client.open(record: record, decision: decision, encryptionKey: try files.encryptionKey(create: false))
                if let out {
                    try SecureFile.create(out, contents: plaintext)
                    print("decrypted record \(record.hex) (\(plaintext.count) bytes, hash checked) into \(out)")
                } else {
                    FileHandle.standardOutput.write(Data(plaintext))
                }
            case "rotate":
                guard let record = record.flatMap(Hash256.init(hex:)) else { throw ValidationError("give the record id (64 hex digits)") }
                let (rotated, status) = try await files.client.rotate(record: record)
                print("\(status.status): record \(record.hex) rotated to \(rotated.hex)\(status.height.map { " in block \($0)" } ?? "")\(status.code.map { " (\($0): \(status.message ?? ""))" } ?? "")")
                if status.status != "committed" { throw ExitCode(1) }
            case "list":
                let pseudonym = try files.pseudonym(patient: patient, pseudonym: pseudonym)
                let records: [RecordView] = try await files.client.node.get("v1/patients/\(pseudonym.hex)/records")
                for record in records {
                    print("\(record.id.hex)  \(record.category)  \(record.size) bytes  held by \(record.holder)\(record.device.map { "  device \($0)" } ?? "")\(record.rotated_to.map { "  ROTATED to \($0.hex)" } ?? (record.erased_at == nil ? "" : "  ERASED"))")
                }
                if records.isEmpty { print("no records for pseudonym \(pseudonym.hex.prefix(16))…") }
            default:
                throw ValidationError("verb must be register-key, put, get, list or rotate")
            }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}


struct ConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent",
        abstract: "Patients' consent: register and enrol patients, grant, revoke, list rules, read the disclosure log.",
        discussion: """
            Hospital admins register a patient's or delegate's certificate (issued with `medledger issue \
            --role patient|delegate`) and enrol the patient under its pseudonym. The patient (or a \
            delegate) grants and revokes; deny rules override permits.

            Grantees (--to): org:ID, role:ROLE or role:ROLE@ORG, member:NAME (org/name) or member:FINGERPRINT.
            Purposes (--purpose, comma-separated): \(PurposeOfUse.allCases.filter { $0 != .emergencyTreatment }.map(\.rawValue).joined(separator: ", ")).

            Examples:
              medledger consent register --network ./net --identity st-mary/admin --member patient-1
              medledger consent enrol --network ./net --identity st-mary/admin --member patient-1 --patient MRN-1001
              medledger consent grant --network ./net --identity st-mary/patient-1 --to org:st-mary --purpose TREAT
              medledger consent grant --network ./net --identity st-mary/patient-1 --to role:researcher --purpose HRESCH --category device_readings --expires 30d
              medledger consent grant --network ./net --identity st-mary/patient-1 --to member:north-general/clinician --purpose TREAT --deny
              medledger consent revoke --network ./net --identity st-mary/patient-1 --rule RULE
              medledger consent log --network ./net --identity st-mary/patient-1
            """
    )

    @Argument(help: "register, enrol, delegate, grant, revoke, list or log.")
    var verb: String

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "A member of your organisation by name (register, enrol, delegate).")
    var member: String?

    @Option(name: .long, help: "The patient's identifier at this hospital.")
    var patient: String?

    @Option(name: .long, help: "The patient's pseudonym (64 hex digits).")
    var pseudonym: String?

    @Option(name: .long, help: "Grantee (grant): org:ID, role:ROLE[@ORG], member:NAME|FINGERPRINT.")
    var to: String?

    @Option(name: .long, help: "Purposes of use, comma-separated (grant).")
    var purpose: String?

    @Option(name: .long, help: "Record categories, comma-separated (grant; default every category).")
    var category: String?

    @Option(name: .long, help: "Device UDIs, comma-separated (grant; default every device).")
    var device: String?

    @Option(name: .long, help: "Expiry (grant): ISO 8601 time, or a duration like 90m, 12h, 30d.")
    var expires: String?

    @Flag(name: .long, help: "A deny rule (grant): overrides every permit it overlaps.")
    var deny = false

    @Flag(name: .long, help: "Remove the delegate instead of adding it (delegate).")
    var remove = false

    @Option(name: .long, help: "The rule to revoke (revoke).")
    var rule: String?

    @Flag(name: .long, help: "Print FHIR R4B JSON (list: a Bundle of Consent; log: a Bundle of AuditEvent).")
    var fhir = false

    func run() async throws {
        let files = try PatientFiles(options)
        do {
            switch verb {
            case "register":
                let pem = try SecureFile.read(files.folder + "/\(try required(member, "--member")).pem")
                let certificate = try Certificate.parse(pem: String(decoding: pem, as: UTF8.self), "\(member ?? "").pem")
                _ = try await files.submit(contract: "consent", action: "register",
                                           arguments: ConsentAction.register(certificate: certificate.derBytes).arguments)
            case "enrol":
                let name = try required(member, "--member")
                let identity = try files.definition.identity(named: "\(files.organization)/\(name)", directory: options.network)
                let pseudonym = try files.pseudonym(patient: try required(patient, "--patient"), pseudonym: nil)
                _ = try await files.submit(contract: "consent", action: "enrol",
                                           arguments: ConsentAction.enrol(patient: pseudonym, member: identity.fingerprint).arguments)
                let path = files.folder + "/\(name).pseudonym"
                if !FileManager.default.fileExists(atPath: path) { try SecureFile.create(path, text: pseudonym.hex + "\n") }
                print("patient \(files.organization)/\(name) enrolled under pseudonym \(pseudonym.hex) (written to \(path) for the patient)")
            case "delegate":
                let identity = try files.definition.identity(named: "\(files.organization)/\(try required(member, "--member"))", directory: options.network)
                _ = try await files.submit(contract: "consent", action: "delegate",
                                           arguments: ConsentAction.delegate(patient: try files.pseudonym(patient: patient, pseudonym: pseudonym),
                                                                             member: identity.fingerprint, add: !remove).arguments)
            case "grant":
                let terms = ConsentTerms(effect: deny ? .deny : .permit, grantee: try grantee(files), categories: list(category).sorted(),
                                         devices: list(device), purposes: try purposes(), expiresAt: try expiry())
                let status = try await files.submit(contract: "consent", action: "grant",
                                                    arguments: ConsentAction.grant(patient: try files.pseudonym(patient: patient, pseudonym: pseudonym),
                                                                                   terms: terms).arguments)
                print("rule \(status.id.hex) in force")
            case "revoke":
                guard let rule = rule.flatMap(Hash256.init(hex:)) else { throw ValidationError("--rule must be 64 hex digits") }
                _ = try await files.submit(contract: "consent", action: "revoke",
                                           arguments: ConsentAction.revoke(patient: try files.pseudonym(patient: patient, pseudonym: pseudonym), rule: rule).arguments)
            case "list" where fhir, "log" where fhir:
                let pseudonym = try files.pseudonym(patient: patient, pseudonym: pseudonym)
                let (status, body) = try await files.client.node.raw("/v1/patients/\(pseudonym.hex)/\(verb == "list" ? "consent" : "disclosures")?format=fhir")
                guard status == 200 else { throw UserError("HTTP \(status): \(String(decoding: body, as: UTF8.self))") }
                FileHandle.standardOutput.write(body)
                print()
            case "list":
                let pseudonym = try files.pseudonym(patient: patient, pseudonym: pseudonym)
                let view: ConsentView = try await files.client.node.get("v1/patients/\(pseudonym.hex)/consent")
                print("consent version \(view.version): \(view.rules.count) rule(s)")
                for rule in view.rules {
                    let scope = (rule.categories.isEmpty ? "every category" : rule.categories.joined(separator: ",")) + (rule.devices.isEmpty ? "" : " of " + rule.devices.joined(separator: ","))
                    print("\(rule.id.hex)  \(rule.effect) \(Self.describe(rule.grantee)) for \(rule.purposes.joined(separator: ",")) on \(scope)\(rule.expires_at.map { " until \(Self.time($0))" } ?? "")")
                }
            case "log":
                let pseudonym = try files.pseudonym(patient: patient, pseudonym: pseudonym)
                let log: [DecisionView] = try await files.client.node.get("v1/patients/\(pseudonym.hex)/disclosures")
                for entry in log {
                    print("\(Self.time(entry.decided_at))  \(entry.granted ? "GRANTED" : "DENIED ")  \(entry.reader_name ?? entry.reader.hex.prefix(16) + "…") (\(entry.reader_role), \(entry.reader_organization)) for \(entry.purpose) on record \(entry.record.hex.prefix(16))…  [\(entry.basis)\(entry.reason.map { ": \($0)" } ?? "")]  decision \(entry.id.hex)")
                }
                if log.isEmpty { print("no access decisions yet") }
            default:
                throw ValidationError("verb must be register, enrol, delegate, grant, revoke, list or log")
            }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }

    func required(_ value: String?, _ option: String) throws -> String {
        guard let value else { throw ValidationError("\(option) is required") }
        return value
    }

    func list(_ value: String?) -> [String] {
        value.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? []
    }

    func purposes() throws -> [PurposeOfUse] {
        let values = try list(try required(purpose, "--purpose")).map { raw in
            guard let purpose = PurposeOfUse(rawValue: raw.uppercased()) else { throw ValidationError("unknown purpose of use \(raw)") }
            return purpose
        }
        return Array(Set(values)).sorted()
    }

    func grantee(_ files: PatientFiles) throws -> Grantee {
        let text = try required(to, "--to")
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--to is org:ID, role:ROLE[@ORG] or member:NAME|FINGERPRINT") }
        switch parts[0] {
        case "org": return .organization(parts[1])
        case "role":
            let pieces = parts[1].split(separator: "@", maxSplits: 1).map(String.init)
            guard let role = Role(rawValue: pieces[0]) else { throw ValidationError("unknown role \(pieces[0])") }
            return .role(role, organization: pieces.count == 2 ? pieces[1] : nil)
        case "member":
            if let fingerprint = Hash256(hex: parts[1]) { return .member(fingerprint) }
            return .member(try files.definition.identity(named: parts[1], directory: options.network).fingerprint)
        default: throw ValidationError("--to is org:ID, role:ROLE[@ORG] or member:NAME|FINGERPRINT")
        }
    }

    func expiry() throws -> Int64? {
        guard let expires else { return nil }
        if let last = expires.last, let amount = Int64(expires.dropLast()), amount > 0 {
            let unit: Int64? = switch last { case "m": 60_000; case "h": 3_600_000; case "d": 86_400_000; default: nil }
            if let unit { return Clock.nowMilliseconds() + amount * unit }
        }
        guard let date = ISO8601DateFormatter().date(from: expires) else { throw ValidationError("--expires is an ISO 8601 time or 90m, 12h, 30d") }
        return Int64(date.timeIntervalSince1970 * 1000)
    }

    static func describe(_ grantee: GranteeView) -> String {
        switch grantee.kind {
        case "organization": "org:\(grantee.organization ?? "")"
        case "role": "role:\(grantee.role ?? "")" + (grantee.organization.map { "@\($0)" } ?? "")
        default: "member:\(grantee.member?.hex.prefix(16) ?? "")…"
        }
    }

    static func time(_ milliseconds: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
}



struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access",
        abstract: "Ask to read a patient record (decided by the patient's consent), or break the glass in an emergency.",
        discussion: """
            The decision is an ordered transaction recorded in the patient's disclosure log, granted or \
            denied. A grant opens a short window in which `medledger records get` fetches the record. \
            Break-glass (clinicians only) needs a reason, lasts an hour, and is queued for the holding \
            hospital's review.

            Examples:
              medledger access request --network ./net --identity st-mary/clinician --record RECORD --purpose TREAT
              medledger access break-glass --network ./net --identity north-general/clinician --record RECORD --reason "unconscious, anticoagulants?"
            """
    )

    @Argument(help: "request or break-glass.")
    var verb: String

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "The record id.")
    var record: String

    @Option(name: .long, help: "Purpose of use (request).")
    var purpose = "TREAT"

    @Option(name: .long, help: "Why (break-glass; mandatory).")
    var reason: String?

    func run() async throws {
        let files = try PatientFiles(options)
        guard let id = Hash256(hex: record) else { throw ValidationError("--record must be 64 hex digits") }
        do {
            let action: ConsentAction
            switch verb {
            case "request":
                guard let purpose = PurposeOfUse(rawValue: purpose.uppercased()) else { throw ValidationError("unknown purpose of use \(purpose)") }
                action = .request(record: id, purpose: purpose)
            case "break-glass":
                action = .breakGlass(record: id, reason: reason ?? "")
            default:
                throw ValidationError("verb must be request or break-glass")
            }
            let status = try await files.submit(contract: "consent", action: action.name, arguments: action.arguments)
            let decision: DecisionView = try await files.client.node.get("v1/records/\(id.hex)/decision",
                                                                              query: [URLQueryItem(name: "decision", value: status.id.hex)])
            guard decision.granted else {
                print("DENIED (\(decision.basis)): decision \(status.id.hex) is in the patient's disclosure log")
                throw ExitCode(1)
            }
            print("GRANTED (\(decision.basis)) until \(decision.expires_at.map(ConsentCommand.time) ?? "?"): decision \(status.id.hex)")
            print("read it with: medledger records get \(id.hex) --decision \(status.id.hex) --network \(options.network) --node \(options.node) --identity \(options.identity) --out FILE")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}
