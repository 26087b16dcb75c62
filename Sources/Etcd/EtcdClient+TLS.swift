import GRPCNIOTransportHTTP2Posix

extension EtcdClient {
    /// TLS towards etcd: the CA bundle that signs the members' server certificates and, for
    /// mutual TLS (`etcd --client-cert-auth`), the client's certificate chain and private key.
    ///
    /// The server certificate is fully verified, including its name: connecting to
    /// `127.0.0.1:2379` needs an IP SAN 127.0.0.1 in the member's certificate.
    ///
    /// Its `description` never shows the key.
    public struct TLS: Sendable, CustomStringConvertible {
        public var trustRootsPEM: [UInt8]
        public var certificateChainPEM: [UInt8]?
        public var privateKeyPEM: [UInt8]?

        public init(trustRootsPEM: String, certificateChainPEM: String? = nil, privateKeyPEM: String? = nil) {
            self.trustRootsPEM = Array(trustRootsPEM.utf8)
            self.certificateChainPEM = certificateChainPEM.map { Array($0.utf8) }
            self.privateKeyPEM = privateKeyPEM.map { Array($0.utf8) }
        }

        public var description: String {
            "EtcdClient.TLS(\(certificateChainPEM == nil ? "server authentication only" : "mutual"))"
        }

        var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
            get throws {
                switch (certificateChainPEM, privateKeyPEM) {
                case (nil, nil):
                    return .tls { config in
                        config.trustRoots = .certificates([.bytes(trustRootsPEM, format: .pem)])
                    }
                case (let chain?, let key?):
                    return .mTLS(certificateChain: [.bytes(chain, format: .pem)], privateKey: .bytes(key, format: .pem)) { config in
                        config.trustRoots = .certificates([.bytes(trustRootsPEM, format: .pem)])
                    }
                default:
                    throw EtcdError.invalidConfiguration("mutual TLS needs both a certificate chain and its private key")
                }
            }
        }
    }
}
