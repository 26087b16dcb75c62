import GRPCCore
import GRPCNIOTransportHTTP2Posix

extension EtcdClient {
    /// One endpoint's gRPC client and the generated service stubs over it.
    struct Connection: Sendable {
        typealias Transport = HTTP2ClientTransport.Posix

        let endpoint: String
        let grpc: GRPCClient<Transport>

        init(endpoint: String, security: Transport.TransportSecurity) throws {
            self.endpoint = endpoint
            let target = try Self.target(endpoint)
            let transport: Transport
            do {
                transport = try Self.transport(target, security)
            } catch {
                // In practice unusable TLS material (every target made here has a resolver);
                // NIOSSL's errors name the problem without quoting the material.
                throw EtcdError.invalidConfiguration("cannot set up \(endpoint): \(error)")
            }
            grpc = GRPCClient(transport: transport)
        }

        private static func transport(_ target: any ResolvableTarget, _ security: Transport.TransportSecurity) throws -> Transport {
            try Transport(
                target: target,
                transportSecurity: security,
                config: .defaults { config in
                    // Reconnect to a restarted member quickly.
                    config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
                    // etcd's server refuses pings more often than every 5 s, and any ping while
                    // no call is open (GOAWAY "too_many_pings").
                    config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: false)
                }
            )
        }

        var kv: Etcdserverpb_KV.Client<Transport> { .init(wrapping: grpc) }
        var watch: Etcdserverpb_Watch.Client<Transport> { .init(wrapping: grpc) }
        var lease: Etcdserverpb_Lease.Client<Transport> { .init(wrapping: grpc) }
        var cluster: Etcdserverpb_Cluster.Client<Transport> { .init(wrapping: grpc) }
        var maintenance: Etcdserverpb_Maintenance.Client<Transport> { .init(wrapping: grpc) }

        /// `host:port`, `[v6]:port`; an IPv4 literal connects directly, anything else through DNS.
        static func target(_ endpoint: String) throws -> any ResolvableTarget {
            var rest = Substring(endpoint)
            if rest.hasPrefix("http://") || rest.hasPrefix("https://") {
                throw EtcdError.invalidConfiguration("endpoint \(endpoint): give host:port, without a scheme (TLS is chosen by the tls parameter)")
            }
            let host: Substring
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw EtcdError.invalidConfiguration("endpoint \(endpoint) is not [host]:port") }
                host = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
            } else {
                guard let colon = rest.lastIndex(of: ":") else { throw EtcdError.invalidConfiguration("endpoint \(endpoint) is not host:port") }
                host = rest[..<colon]
                rest = rest[colon...]
            }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port), !host.isEmpty else {
                throw EtcdError.invalidConfiguration("endpoint \(endpoint) is not host:port")
            }
            if endpoint.hasPrefix("[") { return .ipv6(host: String(host), port: port) }
            let octets = host.split(separator: ".", omittingEmptySubsequences: false)
            if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) { return .ipv4(host: String(host), port: port) }
            return .dns(host: String(host), port: port)
        }
    }
}
