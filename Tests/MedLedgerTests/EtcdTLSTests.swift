import Testing
import Foundation
import Crypto
import X509
import SwiftASN1
import Etcd
import LedgerCore
import LedgerTesting
import Node

/// Mutual TLS between the etcd client and a real etcd started with `--client-cert-auth`, with
/// every certificate issued by an organisation's CA (`CertificateAuthority+TLS`).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct EtcdTLSTests {
    struct Material {
        let authority: CertificateAuthority
        let caPEM: String
        let clientChainPEM: String
        let clientKeyPEM: String
    }

    /// A CA, a member certificate (both EKUs, IP SAN 127.0.0.1) and a client certificate, the
    /// member's files written to `directory` for etcd.
    static func material(in directory: String) throws -> (Material, EtcdCluster.TLSFiles) {
        let authority = try CertificateAuthority.create(organization: "st-mary")
        let serverKey = P256.Signing.PrivateKey()
        let server = try authority.issueTLSServer(commonName: "etcd member", ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"], publicKey: serverKey.publicKey)
        let clientKey = P256.Signing.PrivateKey()
        let client = try authority.issueTLSClient(commonName: "st-mary node", publicKey: clientKey.publicKey)
        let caPEM = try authority.certificate.serializeAsPEM().pemString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try caPEM.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        try server.serializeAsPEM().pemString.write(toFile: directory + "/server.pem", atomically: true, encoding: .utf8)
        try serverKey.pemRepresentation.write(toFile: directory + "/server.key", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/server.key")
        let files = EtcdCluster.TLSFiles(certificate: directory + "/server.pem", privateKey: directory + "/server.key",
                                         clientCertificateAuthority: directory + "/ca.pem")
        return (Material(authority: authority, caPEM: caPEM, clientChainPEM: try client.serializeAsPEM().pemString,
                         clientKeyPEM: clientKey.pemRepresentation), files)
    }

    /// A read must fail as "no endpoint answered" (the handshake failure is in its message).
    static func expectRefused(_ etcd: EtcdClient, sourceLocation: SourceLocation = #_sourceLocation) async {
        await #expect(sourceLocation: sourceLocation) {
            _ = try await etcd.range(Array("tls".utf8))
        } throws: { error in
            guard case EtcdError.unavailable = error else { return false }
            return true
        }
    }

    @Test func aClientCertificateFromTheOrganisationCAConnectsAndNoCertificateIsRefused() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("medledger-etcd-tls-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (material, files) = try Self.material(in: directory)
        let cluster = try await EtcdCluster.start(members: 1, tls: files)
        do {
            let mutual = EtcdClient.TLS(trustRootsPEM: material.caPEM, certificateChainPEM: material.clientChainPEM, privateKeyPEM: material.clientKeyPEM)
            #expect(!"\(mutual)".contains("PRIVATE KEY"))
            // Generous deadlines: the whole suite runs in parallel on two cores, and etcd fsyncs.
            try await withEtcdClient(endpoints: cluster.endpoints, tls: mutual, requestTimeout: .seconds(15)) { etcd in
                // A read first: it is retried if the first connection is slow to come up.
                #expect(try await etcd.range(Array("tls".utf8)).kvs.isEmpty)
                let put = try await etcd.put(Array("tls".utf8), Array("yes".utf8))
                #expect(try await etcd.range(Array("tls".utf8)).kvs.first?.modRevision == put.revision)
            }

            // Server authentication only: etcd refuses the handshake.
            let serverOnly = EtcdClient.TLS(trustRootsPEM: material.caPEM)
            try await withEtcdClient(endpoints: cluster.endpoints, tls: serverOnly, requestTimeout: .seconds(1)) { etcd in
                await Self.expectRefused(etcd)
            }
            // A certificate from another organisation's CA: refused too.
            let stranger = try CertificateAuthority.create(organization: "elsewhere")
            let strangerKey = P256.Signing.PrivateKey()
            let strangerCertificate = try stranger.issueTLSClient(commonName: "intruder", publicKey: strangerKey.publicKey)
            let foreign = EtcdClient.TLS(trustRootsPEM: material.caPEM,
                                         certificateChainPEM: try strangerCertificate.serializeAsPEM().pemString,
                                         privateKeyPEM: strangerKey.pemRepresentation)
            try await withEtcdClient(endpoints: cluster.endpoints, tls: foreign, requestTimeout: .seconds(1)) { etcd in
                await Self.expectRefused(etcd)
            }
            // Plaintext to the TLS port: refused.
            try await withEtcdClient(endpoints: cluster.endpoints, requestTimeout: .seconds(1)) { etcd in
                await Self.expectRefused(etcd)
            }
            // And the client checks the server: a CA that did not issue the member's certificate.
            let wrongRoots = EtcdClient.TLS(trustRootsPEM: try stranger.certificate.serializeAsPEM().pemString,
                                            certificateChainPEM: material.clientChainPEM, privateKeyPEM: material.clientKeyPEM)
            try await withEtcdClient(endpoints: cluster.endpoints, tls: wrongRoots, requestTimeout: .seconds(1)) { etcd in
                await Self.expectRefused(etcd)
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test func serverCertificatesCarryBothUsagesAndAnIPAddress() throws {
        let authority = try CertificateAuthority.create(organization: "st-mary")
        let key = P256.Signing.PrivateKey()
        let certificate = try authority.issueTLSServer(commonName: "etcd", ipAddresses: ["127.0.0.1"], publicKey: key.publicKey)
        let usages = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        #expect(certificate.issuer == authority.certificate.subject)
        #expect(throws: LedgerError.self) {
            _ = try authority.issueTLSServer(commonName: "etcd", ipAddresses: ["localhost"], publicKey: key.publicKey)
        }
    }

    /// The operator's path (docs/operations.md): `org tls` issues an etcd member's certificate from
    /// one organisation's CA and a node's client certificate from another's; `org ca-bundle` prints
    /// the one trust bundle; etcd with `--client-cert-auth` accepts the other organisation's node.
    @Test func certificatesFromTheCommandLineWorkAcrossOrganisations() async throws {
        let root = Fixtures.temporaryPath("etcd-tls-cli")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let network = root + "/network"
        let created = try await ManagedProcess.medledger("init", "--out", network)
        #expect(created.status == 0, "\(created.stderr)")
        let server = try await ManagedProcess.medledger("org", "tls", "--org", network + "/orgs/st-mary", "--server", "--name", "etcd-1",
                                                        "--ip", "127.0.0.1", "--dns", "localhost", "--days", "30", "--out", root + "/etcd-1")
        #expect(server.status == 0, "\(server.stderr)")
        let client = try await ManagedProcess.medledger("org", "tls", "--org", network + "/orgs/north-general", "--client", "--name", "node",
                                                        "--out", root + "/north-client")
        #expect(client.status == 0, "\(client.stderr)")
        #expect(SecureFile.mode(of: root + "/etcd-1.key") == 0o600 && SecureFile.mode(of: root + "/north-client.key") == 0o600)
        let refused = try await ManagedProcess.medledger("org", "tls", "--org", network + "/orgs/st-mary", "--server", "--name", "x", "--out", root + "/x")
        #expect(refused.status != 0 && refused.stderr.contains("--ip or --dns"), "\(refused.stderr)")
        let bundle = try await ManagedProcess.medledger("org", "ca-bundle", "--data", network)
        #expect(bundle.status == 0 && bundle.stdout.components(separatedBy: "BEGIN CERTIFICATE").count == 6, "five roots: \(bundle.stderr)")
        try bundle.stdout.write(toFile: root + "/bundle.pem", atomically: true, encoding: .utf8)
        let files = EtcdCluster.TLSFiles(certificate: root + "/etcd-1.pem", privateKey: root + "/etcd-1.key", clientCertificateAuthority: root + "/bundle.pem")
        let cluster = try await EtcdCluster.start(members: 1, tls: files)
        do {
            let read = { (path: String) throws -> String in try String(contentsOfFile: path, encoding: .utf8) }
            let tls = EtcdClient.TLS(trustRootsPEM: try read(root + "/bundle.pem"), certificateChainPEM: try read(root + "/north-client.pem"),
                                     privateKeyPEM: try read(root + "/north-client.key"))
            try await withEtcdClient(endpoints: cluster.endpoints, tls: tls, requestTimeout: .seconds(15)) { etcd in
                _ = try await etcd.put(Array("cross-org".utf8), Array("ok".utf8))
                #expect(try await etcd.range(Array("cross-org".utf8)).kvs.first?.value == Array("ok".utf8))
            }
            // Without a client certificate the same member refuses.
            let anonymous = EtcdClient.TLS(trustRootsPEM: try read(root + "/bundle.pem"), certificateChainPEM: nil, privateKeyPEM: nil)
            try await withEtcdClient(endpoints: cluster.endpoints, tls: anonymous, requestTimeout: .seconds(1)) { etcd in
                await Self.expectRefused(etcd)
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
