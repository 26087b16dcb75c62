import Foundation
import X509
import SwiftASN1
public import LedgerCore

/// The public description of a network written by `medledger init` as `network.json`.
public struct NetworkDefinition: Codable, Sendable, Hashable {
    public struct MemberEntry: Codable, Sendable, Hashable {
        public var name: String
        public var role: Role
        /// Relative path of the PEM certificate.
        public var certificate: String
        public var fingerprint: Hash256
    }

    public struct OrganizationEntry: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        public var kind: OrganizationKind
        /// Relative path of the root CA's PEM certificate.
        public var rootCertificate: String
        public var members: [MemberEntry]

        enum CodingKeys: String, CodingKey {
            case id, name, kind, members
            case rootCertificate = "root_certificate"
        }
    }

    public var name: String
    /// The network id: hash of the genesis block header.
    public var networkID: Hash256
    public var organizations: [OrganizationEntry]
    public var config: NetworkConfig

    enum CodingKeys: String, CodingKey {
        case name, organizations, config
        case networkID = "network_id"
    }

    public static let fileName = "network.json"
    public static let genesisFileName = "genesis.block"
    public static let databaseFileName = "ledger.sqlite"

    public static func load(directory: String) throws(LedgerError) -> NetworkDefinition {
        let path = directory + "/" + fileName
        let bytes = try SecureFile.read(path)
        do {
            return try JSONDecoder().decode(NetworkDefinition.self, from: Data(bytes))
        } catch {
            throw LedgerError(.invalidConfiguration, "\(path) is not a valid network definition: \(error)")
        }
    }

    public static func loadGenesis(directory: String) throws(LedgerError) -> Block {
        try Block(decoding: try SecureFile.read(directory + "/" + genesisFileName))
    }

    /// Root certificates by organisation id.
    public func rootCertificates(directory: String) throws(LedgerError) -> [String: Certificate] {
        var roots: [String: Certificate] = [:]
        for organization in organizations {
            let path = directory + "/" + organization.rootCertificate
            let pem = String(decoding: try SecureFile.read(path), as: UTF8.self)
            guard let certificate = try? Certificate(pemEncoded: pem) else {
                throw LedgerError(.invalidCertificate, "\(path) is not a PEM certificate")
            }
            roots[organization.id] = certificate
        }
        return roots
    }

    /// Loads a member's signing identity, named `org/name` or just `name`.
    public func identity(named reference: String, directory: String) throws(LedgerError) -> SigningIdentity {
        let parts = reference.split(separator: "/").map(String.init)
        for organization in organizations where parts.count == 1 || organization.id == parts[0] {
            for member in organization.members where member.name == parts.last {
                return try loadIdentity(member, directory: directory)
            }
        }
        // Members issued after `init` (`medledger issue`) are found by their files.
        if parts.count == 2, FileManager.default.fileExists(atPath: "\(directory)/orgs/\(parts[0])/\(parts[1]).pem") {
            return try Self.loadIdentity(certificate: "orgs/\(parts[0])/\(parts[1]).pem", directory: directory)
        }
        throw LedgerError(.notFound, "no member \(reference) in \(directory); members: \(allMemberNames.joined(separator: ", "))")
    }

    /// The first member with `role` (optionally of one organisation).
    public func firstMember(role: Role, organization: String? = nil) -> (organization: OrganizationEntry, member: MemberEntry)? {
        for entry in organizations where organization == nil || entry.id == organization {
            if let member = entry.members.first(where: { $0.role == role }) { return (entry, member) }
        }
        return nil
    }

    public func loadIdentity(_ member: MemberEntry, directory: String) throws(LedgerError) -> SigningIdentity {
        try Self.loadIdentity(certificate: member.certificate, directory: directory)
    }

    /// The key beside a PEM certificate (`NAME.pem` → `NAME.key`), relative to `directory`.
    static func loadIdentity(certificate: String, directory: String) throws(LedgerError) -> SigningIdentity {
        let certificatePath = directory + "/" + certificate
        let keyPath = String(certificatePath.dropLast(4)) + ".key"
        do {
            return try SigningIdentity(
                keyPEM: String(decoding: try SecureFile.read(keyPath), as: UTF8.self),
                certificatePEM: String(decoding: try SecureFile.read(certificatePath), as: UTF8.self)
            )
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.invalidCertificate, "cannot load identity \(certificate): \(error)")
        }
    }

    public var allMemberNames: [String] {
        organizations.flatMap { org in org.members.map { "\(org.id)/\($0.name)" } }
    }
}
