import Foundation
import X509
public import LedgerCore

/// The public material of one organisation, `public/organization.json` in its directory (format
/// `medledger-organization/1`): its root CA certificate and its founding members' certificates.
/// It is all that leaves the organisation before genesis; no private key is in it.
public struct OrganizationBundle: Codable, Sendable, Hashable {
    public struct Member: Codable, Sendable, Hashable {
        /// File name in the organisation directory; the certificate's CN is `<org id>/<name>`.
        public var name: String
        public var role: Role
        public var fingerprint: Hash256
        /// PEM certificate issued by the organisation's root.
        public var certificate: String

        public init(name: String, role: Role, fingerprint: Hash256, certificate: String) {
            self.name = name
            self.role = role
            self.fingerprint = fingerprint
            self.certificate = certificate
        }
    }

    public static let formatName = "medledger-organization/1"
    /// Path of the bundle inside an organisation directory.
    public static let path = "public/organization.json"

    public var format: String
    public var id: String
    public var name: String
    public var kind: OrganizationKind
    /// PEM root CA certificate.
    public var rootCertificate: String
    /// SHA-256 of the root's DER: what the other organisations compare out of band.
    public var rootFingerprint: Hash256
    public var members: [Member]

    enum CodingKeys: String, CodingKey {
        case format, id, name, kind, members
        case rootCertificate = "root_certificate"
        case rootFingerprint = "root_fingerprint"
    }

    public init(id: String, name: String, kind: OrganizationKind, root: Certificate, members: [Member]) {
        format = Self.formatName
        self.id = id
        self.name = name
        self.kind = kind
        rootCertificate = root.pemText
        rootFingerprint = root.fingerprint
        self.members = members
    }

    /// The bundle in ledger form, after every check a draft needs: the format; a valid id and a
    /// name; a self-signed root whose fingerprint is the stated one; member names valid and
    /// distinct; every member certificate issued by the root for this organisation, with the stated
    /// role and fingerprint and CN `<id>/<name>`; no device keys (those are bound to a UDI by a
    /// proposal); at least one admin.
    public func validated() throws(LedgerError) -> (organization: Organization, members: [MemberRegistration], certificates: [MemberCertificate]) {
        guard format == Self.formatName else {
            throw LedgerError(.invalidConfiguration, "organisation bundle format is \"\(format)\", expected \"\(Self.formatName)\"")
        }
        guard Organization.isValidID(id) else {
            throw LedgerError(.invalidConfiguration, "organisation id \"\(id)\" must be 1...64 of a-z, 0-9 and -")
        }
        guard !name.isEmpty, name.utf8.count <= 256 else {
            throw LedgerError(.invalidConfiguration, "organisation \(id): the name must be 1...256 bytes")
        }
        let root = try Certificate.parse(pem: rootCertificate, "the root certificate of \(id)")
        let organization = Organization(id: id, name: name, kind: kind, rootCertificate: root.derBytes)
        let parsedRoot = try organization.parsedRootCertificate()
        guard root.fingerprint == rootFingerprint else {
            throw LedgerError(.invalidCertificate, "organisation \(id): the root certificate's fingerprint is not the stated \(rootFingerprint.hex.prefix(16))…")
        }
        var names = Set<String>()
        var registrations: [MemberRegistration] = []
        var certificates: [MemberCertificate] = []
        for member in members {
            guard Organization.isValidID(member.name), names.insert(member.name).inserted else {
                throw LedgerError(.invalidConfiguration, "organisation \(id): member name \"\(member.name)\" is not a-z, 0-9 and -, or is used twice")
            }
            let der = try Certificate.parse(pem: member.certificate, "the certificate of \(id)/\(member.name)").derBytes
            let certificate = try MemberCertificate(der: der, root: parsedRoot, organization: id)
            guard certificate.role == member.role, certificate.fingerprint == member.fingerprint, certificate.name == "\(id)/\(member.name)" else {
                throw LedgerError(.invalidCertificate, "organisation \(id): the certificate of \(member.name) does not carry the stated role, fingerprint or name \(id)/\(member.name)")
            }
            guard certificate.role != .device else {
                throw LedgerError(.invalidConfiguration, "organisation \(id): device keys are registered by a proposal that binds them to their UDI, not at genesis")
            }
            registrations.append(MemberRegistration(certificate: der))
            certificates.append(certificate)
        }
        guard certificates.contains(where: { $0.role == .admin }) else {
            throw LedgerError(.missingField, "organisation \(id) has no admin, so it could never approve")
        }
        return (organization, registrations, certificates)
    }

    public static func load(_ path: String) throws(LedgerError) -> OrganizationBundle {
        try JSONFiles.load(path, "an organisation bundle (\(formatName))")
    }

    /// Pretty-printed JSON with sorted keys.
    public var json: [UInt8] { JSONFiles.encode(self) }
}

/// How MedLedger writes its JSON files: pretty-printed, sorted keys, slashes unescaped (PEM text
/// stays readable).
enum JSONFiles {
    /// Decodes the JSON file at `path`; `what` names the expected content in the error.
    static func load<T: Decodable>(_ path: String, _ what: String) throws(LedgerError) -> T {
        let bytes = try SecureFile.read(path)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw LedgerError(.invalidConfiguration, "\(path) is not \(what): \(error)")
        }
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding these plain structs cannot fail.
        return [UInt8](try! encoder.encode(value)) + [0x0A]
    }
}
