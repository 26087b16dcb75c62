import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One member of an etcd cluster on this machine: how to run the system `etcd` binary for it.
///
/// Shared by the test clusters (`LedgerTesting.EtcdCluster`) and `medledger network up`, so both
/// start etcd with the same flags: fast elections for a loaded machine, a low `--snapshot-count`
/// (members holding blocks otherwise grew to gigabytes of memory), the request limit the ledger's
/// blocks are sized for.
public struct EtcdMember: Sendable, Codable, Equatable {
    public let name: String
    public let clientPort: Int
    public let peerPort: Int
    public let dataDirectory: String

    public init(name: String, clientPort: Int, peerPort: Int, dataDirectory: String) {
        self.name = name
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.dataDirectory = dataDirectory
    }

    /// `127.0.0.1:<client port>`, as ``EtcdClient`` takes it.
    public var endpoint: String { "127.0.0.1:\(clientPort)" }

    /// Server-side TLS for the client port: the member certificate (IP SAN 127.0.0.1) and key,
    /// and, with `clientCertificateAuthority`, `--client-cert-auth` against that CA bundle.
    public struct TLSFiles: Sendable {
        public var certificate: String
        public var privateKey: String
        public var clientCertificateAuthority: String?

        public init(certificate: String, privateKey: String, clientCertificateAuthority: String?) {
            self.certificate = certificate
            self.privateKey = privateKey
            self.clientCertificateAuthority = clientCertificateAuthority
        }
    }

    /// `count` members on free loopback ports, data directories `directory/m<i>`.
    public static func loopback(_ count: Int, directory: String) throws -> [EtcdMember] {
        let ports = try LoopbackPorts.free(2 * count)
        return (0..<count).map { index in
            EtcdMember(name: "m\(index)", clientPort: ports[2 * index], peerPort: ports[2 * index + 1],
                       dataDirectory: "\(directory)/m\(index)")
        }
    }

    /// The `etcd` command line for this member of `cluster`; `state` is "new" on first start and
    /// "existing" on a restart, `token` distinguishes clusters sharing the loopback interface.
    public func arguments(cluster: [EtcdMember], token: String, state: String, tls: TLSFiles? = nil) -> [String] {
        let scheme = tls == nil ? "http" : "https"
        var arguments = [
            "--name", name,
            "--data-dir", dataDirectory,
            "--listen-client-urls", "\(scheme)://127.0.0.1:\(clientPort)",
            "--advertise-client-urls", "\(scheme)://127.0.0.1:\(clientPort)",
            "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--initial-cluster", cluster.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ","),
            "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            // Fast but not twitchy on a loaded 2-core machine: a new leader within about 1-2 s.
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--snapshot-count", "1000",
            "--quota-backend-bytes", "\(256 * 1024 * 1024)",
            "--max-request-bytes", "\(1_572_864)",
            "--logger", "zap",
            "--log-outputs", "stdout",
        ]
        if let tls {
            arguments += ["--cert-file", tls.certificate, "--key-file", tls.privateKey]
            if let authority = tls.clientCertificateAuthority {
                arguments += ["--client-cert-auth", "--trusted-ca-file", authority]
            }
        }
        return arguments
    }

    /// The `etcd` executable on `path` (default: this process's `PATH`).
    public static func executable(path: String? = nil) throws -> String {
        let path = path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/etcd"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw EtcdNotInstalled()
    }
}

/// The system `etcd` binary is not on `PATH`.
public struct EtcdNotInstalled: Error, CustomStringConvertible {
    public var description: String {
        "etcd is not installed (no `etcd` on PATH): install the Debian package etcd-server (`apt-get install etcd-server`; scripts/test does this)"
    }
}

/// Free TCP ports on 127.0.0.1.
public enum LoopbackPorts {
    /// `count` ports, all bound at once so none repeats, then released for the caller's servers.
    /// Another process may take one in between: callers that cannot bind port 0 themselves
    /// (etcd) accept that small race.
    public static func free(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw PortError("socket: errno \(errno)") }
            sockets.append(descriptor)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
                }
            }
            guard bound else { throw PortError("bind: errno \(errno)") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }

    public struct PortError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
