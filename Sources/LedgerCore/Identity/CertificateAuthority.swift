import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An organisation's root certificate authority (ECDSA P-256), which issues member certificates
/// whose subject carries `O=<organisation id>`, `OU=<role>`, `CN=<member name>`.
public struct CertificateAuthority: Sendable {
    public let organization: String
    public let privateKey: P256.Signing.PrivateKey
    public let certificate: Certificate

    public init(organization: String, privateKey: P256.Signing.PrivateKey, certificate: Certificate) {
        self.organization = organization
        self.privateKey = privateKey
        self.certificate = certificate
    }

    /// Creates a new self-signed root for `organization`, valid for `years` from `now`.
    public static func create(organization: String, now: Date = Date(), years: Int = 10) throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName(organization)
            CommonName("\(organization) Root CA")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return CertificateAuthority(organization: organization, privateKey: key, certificate: certificate)
    }

    /// Issues a certificate for a new member key.
    public func issue(name: String, role: Role, publicKey: P256.Signing.PublicKey, now: Date = Date(), years: Int = 2) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName(organization)
            OrganizationalUnitName(role.rawValue)
            CommonName(name)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
        }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86400),
            issuer: certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(privateKey)
        )
    }
}

extension Certificate {
    /// DER bytes.
    public var derBytes: [UInt8] {
        var serializer = DER.Serializer()
        // Serializing a certificate we hold in memory cannot fail.
        try! serializer.serialize(self)
        return serializer.serializedBytes
    }

    /// SHA-256 of the DER encoding: how transactions name their creator.
    public var fingerprint: Hash256 { Hash256.of(derBytes) }

    /// PEM text (`-----BEGIN CERTIFICATE-----`…).
    public var pemText: String {
        // Serializing a certificate we hold in memory cannot fail.
        try! serializeAsPEM().pemString
    }

    /// Parses PEM text; `what` names it in the error.
    public static func parse(pem: String, _ what: String) throws(LedgerError) -> Certificate {
        guard let certificate = try? Certificate(pemEncoded: pem) else {
            throw LedgerError(.invalidCertificate, "\(what) is not a PEM certificate")
        }
        return certificate
    }
}
