import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension CertificateAuthority {
    /// A TLS certificate for a server such as an etcd member, issued by this organisation's CA.
    ///
    /// It carries both the serverAuth and the clientAuth extended key usage, because an etcd
    /// member uses its certificate in both directions (towards clients and towards its peers),
    /// and the names it answers for as subject alternative names: IP addresses as IP SANs (a
    /// client connecting to `127.0.0.1` checks an IP SAN, never the common name), host names as
    /// DNS SANs.
    public func issueTLSServer(
        commonName: String,
        ipAddresses: [String],
        dnsNames: [String] = [],
        publicKey: P256.Signing.PublicKey,
        now: Date = Date(),
        days: Int = 30
    ) throws -> Certificate {
        var names = try ipAddresses.map { address in
            guard let octets = Self.ipv4Octets(address) else {
                throw LedgerError(.invalidArgument, "\(address) is not an IPv4 address")
            }
            return GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets)))
        }
        names += dnsNames.map { GeneralName.dnsName($0) }
        return try issueTLS(commonName: commonName, usages: [.serverAuth, .clientAuth], names: names,
                            publicKey: publicKey, now: now, days: days)
    }

    /// A TLS client certificate (clientAuth extended key usage), for mutual TLS towards a server
    /// that trusts this organisation's CA, such as etcd with `--client-cert-auth`.
    public func issueTLSClient(
        commonName: String,
        publicKey: P256.Signing.PublicKey,
        now: Date = Date(),
        days: Int = 30
    ) throws -> Certificate {
        try issueTLS(commonName: commonName, usages: [.clientAuth], names: [], publicKey: publicKey, now: now, days: days)
    }

    private func issueTLS(
        commonName: String,
        usages: [ExtendedKeyUsage.Usage],
        names: [GeneralName],
        publicKey: P256.Signing.PublicKey,
        now: Date,
        days: Int
    ) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName(organization)
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage(usages)
            AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            if !names.isEmpty {
                SubjectAlternativeNames(names)
            }
        }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(Double(days) * 86400),
            issuer: certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(privateKey)
        )
    }

    private static func ipv4Octets(_ address: String) -> [UInt8]? {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false)
        let octets = parts.compactMap { UInt8($0) }
        return parts.count == 4 && octets.count == 4 ? octets : nil
    }
}
