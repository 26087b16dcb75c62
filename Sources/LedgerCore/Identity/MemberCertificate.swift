import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The facts MedLedger reads from a member certificate, checked against its organisation's root.
public struct MemberCertificate: Sendable, Hashable {
    public var der: [UInt8]
    public var fingerprint: Hash256
    public var organization: String
    public var role: Role
    public var name: String
    /// Raw (x‖y, 64 bytes) P-256 public key.
    public var publicKey: [UInt8]
    /// Validity window in milliseconds since the Unix epoch.
    public var notBefore: Int64
    public var notAfter: Int64

    /// Parses `der` and checks it was issued by `root`: issuer name, signature, P-256 key,
    /// `O` naming the organisation and `OU` naming a known role.
    public init(der: [UInt8], root: Certificate?, organization expected: String?) throws(LedgerError) {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw LedgerError(.invalidCertificate, "certificate is not valid DER X.509")
        }
        guard let key = P256.Signing.PublicKey(certificate.publicKey) else {
            throw LedgerError(.invalidCertificate, "certificate key must be ECDSA P-256")
        }
        var organization: String?
        var unit: String?
        var commonName: String?
        for rdn in certificate.subject {
            for attribute in rdn {
                switch attribute.type {
                case .RDNAttributeType.organizationName: organization = String(describing: attribute.value)
                case .RDNAttributeType.organizationalUnitName: unit = String(describing: attribute.value)
                case .RDNAttributeType.commonName: commonName = String(describing: attribute.value)
                default: break
                }
            }
        }
        guard let organization, let commonName else {
            throw LedgerError(.invalidCertificate, "certificate subject must carry O (organisation) and CN (member name)")
        }
        guard let unit, let role = Role(rawValue: unit) else {
            throw LedgerError(.invalidCertificate, "certificate OU must name a role (\(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let expected, organization != expected {
            throw LedgerError(.invalidCertificate, "certificate names organisation \(organization), expected \(expected)")
        }
        if let root {
            guard certificate.issuer == root.subject, root.publicKey.isValidSignature(certificate.signature, for: certificate) else {
                throw LedgerError(.invalidCertificate, "certificate for \(commonName) was not issued by the \(organization) root CA")
            }
        }
        self.der = der
        self.fingerprint = Hash256.of(der)
        self.organization = organization
        self.role = role
        self.name = commonName
        self.publicKey = Array(key.rawRepresentation)
        self.notBefore = Int64(certificate.notValidBefore.timeIntervalSince1970 * 1000)
        self.notAfter = Int64(certificate.notValidAfter.timeIntervalSince1970 * 1000)
    }
}
