import Crypto
import Foundation
import X509
public import LedgerCore

/// One organisation's own directory, written by `medledger org init`: its root CA and its members'
/// keys and certificates, and the public bundle that is all that leaves it.
///
/// ```
/// DIR/ca.pem  ca.key                 root CA (certificate 0644, key 0600)
/// DIR/<member>.pem  <member>.key     founding members (NetworkSpec.defaultMembers)
/// DIR/public/organization.json       OrganizationBundle: certificates only
/// ```
///
/// In a node directory the organisation's directory is `orgs/<id>/`.
public struct OrganizationDirectory: Sendable {
    public let path: String
    public let bundle: OrganizationBundle

    public var id: String { bundle.id }

    /// Creates a root CA valid for ten years and the kind's founding members (certificates valid
    /// for two years) in `path`, which must not exist or be empty. Keys are created 0600 with
    /// `O_EXCL`, directories 0700.
    public static func create(id: String, name: String, kind: OrganizationKind, at path: String, now: Date = Date()) throws -> OrganizationDirectory {
        guard Organization.isValidID(id) else {
            throw LedgerError(.invalidConfiguration, "organisation id \"\(id)\" must be 1...64 of a-z, 0-9 and -")
        }
        guard !name.isEmpty, name.utf8.count <= 256 else { throw LedgerError(.invalidConfiguration, "the organisation name must be 1...256 bytes") }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: path), !entries.isEmpty {
            throw LedgerError(.invalidConfiguration, "\(path) is not empty; an organisation directory is created in a new or empty directory")
        }
        try SecureFile.makeDirectory(path)
        try SecureFile.makeDirectory(path + "/public")
        let authority = try CertificateAuthority.create(organization: id, now: now)
        try SecureFile.create(path + "/ca.pem", text: authority.certificate.pemText, mode: 0o644)
        try SecureFile.create(path + "/ca.key", text: authority.privateKey.pemRepresentation)
        var members: [OrganizationBundle.Member] = []
        for (member, role) in NetworkSpec.defaultMembers(kind) {
            let key = P256.Signing.PrivateKey()
            let certificate = try authority.issue(name: "\(id)/\(member)", role: role, publicKey: key.publicKey, now: now)
            try SecureFile.create(path + "/\(member).pem", text: certificate.pemText, mode: 0o644)
            try SecureFile.create(path + "/\(member).key", text: key.pemRepresentation)
            members.append(.init(name: member, role: role, fingerprint: certificate.fingerprint, certificate: certificate.pemText))
        }
        let bundle = OrganizationBundle(id: id, name: name, kind: kind, root: authority.certificate, members: members)
        try SecureFile.create(path + "/" + OrganizationBundle.path, contents: bundle.json, mode: 0o644)
        return OrganizationDirectory(path: path, bundle: bundle)
    }

    /// Opens an organisation directory by its public bundle (nothing private is read).
    public static func load(_ path: String) throws(LedgerError) -> OrganizationDirectory {
        OrganizationDirectory(path: path, bundle: try OrganizationBundle.load(path + "/" + OrganizationBundle.path))
    }

    init(path: String, bundle: OrganizationBundle) {
        self.path = path
        self.bundle = bundle
    }

    /// The organisation's CA from `folder` (`ca.key`, `ca.pem`), checked to be one key pair.
    public static func authority(in folder: String, organization: String) throws -> CertificateAuthority {
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(decoding: try SecureFile.read(folder + "/ca.key"), as: UTF8.self))
        let certificate = try Certificate.parse(pem: String(decoding: try SecureFile.read(folder + "/ca.pem"), as: UTF8.self), "\(folder)/ca.pem")
        guard P256.Signing.PublicKey(certificate.publicKey)?.rawRepresentation == key.publicKey.rawRepresentation else {
            throw LedgerError(.invalidCertificate, "\(folder)/ca.key is not the key of \(folder)/ca.pem")
        }
        return CertificateAuthority(organization: organization, privateKey: key, certificate: certificate)
    }

    /// The first founding member with `role`.
    public func member(role: Role) -> OrganizationBundle.Member? {
        bundle.members.first { $0.role == role }
    }

    /// Loads member `name`'s key and certificate (`name.key`, `name.pem`) from this directory.
    public func identity(_ name: String) throws(LedgerError) -> SigningIdentity {
        try Self.identity(in: path, name: name)
    }

    /// The key and certificate `name.key` / `name.pem` in `directory`; the certificate must be
    /// the key's.
    static func identity(in directory: String, name: String) throws(LedgerError) -> SigningIdentity {
        guard Organization.isValidID(name) else {
            throw LedgerError(.invalidArgument, "member name \"\(name)\" must be 1...64 of a-z, 0-9 and -")
        }
        let certificatePath = directory + "/\(name).pem"
        let identity: SigningIdentity
        do {
            identity = try SigningIdentity(
                keyPEM: String(decoding: try SecureFile.read(directory + "/\(name).key"), as: UTF8.self),
                certificatePEM: String(decoding: try SecureFile.read(certificatePath), as: UTF8.self)
            )
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.invalidCertificate, "cannot load identity \(name) from \(directory): \(error)")
        }
        guard P256.Signing.PublicKey(identity.certificate.publicKey)?.rawRepresentation == identity.privateKey.publicKey.rawRepresentation else {
            throw LedgerError(.invalidCertificate, "\(certificatePath) is not the certificate of \(name).key")
        }
        return identity
    }
}
