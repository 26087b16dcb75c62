import Testing
import Foundation
import Synchronization
import Logging
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Node
import LedgerStore
import LedgerTesting

/// Sends malformed, huge and boundary requests to a real node process: it must answer each with
/// a 4xx (or 503 for overload), never another 5xx, and never stop.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct HTTPRobustnessTests {
    /// Reads are signed (as the regulator's auditor, who may read every route), so the limits are
    /// reached past authentication.
    static func auditor(_ directory: String) throws -> (SigningIdentity, Hash256) {
        let definition = try NetworkDefinition.load(directory: directory)
        return (try definition.identity(named: "device-regulator/auditor", directory: directory), definition.networkID)
    }

    static func signed(_ directory: String, _ method: String, _ target: String, body: [UInt8] = []) -> [String] {
        guard let (identity, network) = try? auditor(directory) else { return [] }
        return ["Authorization: " + RequestSignature.authorization(identity: identity, network: network, method: method, target: target, body: body)]
    }

    static func startNode(_ arguments: [String] = []) async throws -> (ManagedProcess, Int, String) {
        let directory = Fixtures.temporaryPath("robust")
        let initialized = try await ManagedProcess.medledger("init", "--out", directory)
        #expect(initialized.status == 0, "\(initialized.stderr)")
        let node = try ManagedProcess(ManagedProcess.medledgerPath,
                                      ["node", "--data", directory, "--port", "0", "--log-level", "warning"] + arguments)
        guard let line = await node.line(containing: "listening on"),
              let address = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
              let port = address.split(separator: ":").last.flatMap({ Int($0) })
        else {
            throw LedgerError(.io, "node did not start: \(node.errors.withLock { $0 })")
        }
        return (node, port, directory)
    }

    static func status(_ port: Int, _ method: String, _ target: String, headers: [String] = [], body: [UInt8] = []) -> Int? {
        guard let connection = RawConnection(port: port) else { return nil }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for header in headers { head += header + "\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        guard connection.send(head), body.isEmpty || connection.send(body) else { return nil }
        return connection.status()
    }

    static func stop(_ node: ManagedProcess, _ directory: String) async {
        node.send(SIGTERM)
        _ = await node.waitForExit(timeout: .seconds(30))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Finding 3 (one GET with a height ≥ 2^63 trapped in `Int64(height)` and the process died)
    /// and every other numeric parameter at and beyond its bounds.
    @Test func boundaryNumbersGetFourHundredsAndTheNodeStaysUp() async throws {
        let (node, port, directory) = try await Self.startNode()
        defer { node.send(SIGKILL) }
        let huge = ["9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
                    "99999999999999999999999", "-1", "-9223372036854775809", "1e3", "0x10", "+5", "%20", "abc", ""]
        var targets: [String] = []
        for value in huge {
            targets += [
                "/v1/blocks/\(value)", "/v1/devices?limit=\(value)", "/v1/devices?offset=\(value)",
                "/v1/proofs/consistency?from=\(value)", "/v1/proofs/consistency?from=0&to=\(value)",
                "/v1/refusals?limit=\(value)", "/v1/research/log?limit=\(value)", "/v1/research/log?before=\(value)",
                "/v1/chain/height-at?time=\(value)", "/v1/transactions/\(String(repeating: "0", count: 64))?wait=\(value)",
                "/v1/events?from=\(value)&limit=1",
            ]
        }
        targets += ["/v1/devices?limit=1&limit=2", "/v1/blocks/0?x=\(String(repeating: "y", count: 8000))",
                    "/v1/devices?owner=st-mary%00zzz", "/v1/devices?owner=st-mary&owner=north-general", "/v1/device?udi=x%00y",
                    "/v1/blocks/-0", "/v1/devices?offset=-0"]
        var served: [String: Int] = [:]
        for target in targets {
            // /v1/events with a valid start streams: read only its status line.
            let status = Self.status(port, "GET", target, headers: Self.signed(directory, "GET", target))
            served[target] = status ?? -1
            if let status { #expect(status < 500 || status == 503, "\(target) answered \(status)") }
        }
        // The ones that must be refused as bad input, not served or "not found".
        for value in ["9223372036854775808", "18446744073709551616", "-1", "abc"] {
            #expect(served["/v1/blocks/\(value)"] == 400, "/v1/blocks/\(value): \(served["/v1/blocks/\(value)"] ?? -1)")
            #expect(served["/v1/devices?limit=\(value)"] == 400)
        }
        // Red-team findings: a NUL cut a bound string short (st-mary%00zzz listed st-mary's devices),
        // a repeated text parameter took its first value, and "-0" passed as a height.
        for target in ["/v1/devices?owner=st-mary%00zzz", "/v1/devices?owner=st-mary&owner=north-general", "/v1/device?udi=x%00y",
                       "/v1/blocks/-0", "/v1/devices?offset=-0"] {
            #expect(served[target] == 400, "\(target): \(served[target] ?? -1)")
        }
        #expect(served["/v1/blocks/0"] == nil)
        #expect(Self.status(port, "GET", "/v1/blocks/0", headers: Self.signed(directory, "GET", "/v1/blocks/0")) == 200)
        #expect(Self.status(port, "GET", "/v1/blocks/0") == 401)
        #expect(Self.status(port, "GET", "/health") == 200)
        #expect(node.terminatingSignal == nil)
        await Self.stop(node, directory)
    }

    /// Malformed requests, oversized heads and bodies. Finding 9: a 200 KB body answered 500, and
    /// size and encoding refusals never reached the refusal audit.
    @Test func malformedAndOversizedRequestsAreRefusedAndAudited() async throws {
        let (node, port, directory) = try await Self.startNode()
        defer { node.send(SIGKILL) }
        let raw: [[UInt8]] = [
            Array("GARBAGE\r\n\r\n".utf8),
            Array("GET / HTTP/9.9\r\n\r\n".utf8),
            Array("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 64 * 1024))\r\n\r\n".utf8),
            Array(("GET /health HTTP/1.1\r\n" + (0..<300).map { "X-H\($0): v\r\n" }.joined() + "\r\n").utf8),
            Array("GET /\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
            [0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a],
            Array("POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".utf8),
            Array("POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n".utf8),
            Array("POST /v1/transactions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8),
        ]
        for request in raw {
            guard let connection = RawConnection(port: port, receiveTimeout: 5) else {
                Issue.record("cannot connect")
                continue
            }
            connection.send(request)
            if let status = connection.status() { #expect(status < 500 || status == 503, "answered \(status)") }
        }
        let tooLarge = Self.status(port, "POST", "/v1/transactions", headers: ["Content-Type: application/octet-stream"],
                                   body: [UInt8](repeating: 7, count: 200_000))
        #expect(tooLarge == 413)
        // A declared length over the limit is refused at once, before any body byte is sent.
        if let connection = RawConnection(port: port, receiveTimeout: 5) {
            connection.send("POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000000\r\n\r\n")
            #expect(connection.status() == 413)
        }
        let badJSON = Self.status(port, "POST", "/v1/transactions", headers: ["Content-Type: application/json"],
                                  body: Array("{\"envelope\": 12".utf8))
        #expect(badJSON == 400)
        let badQuery = Self.status(port, "POST", "/v1/queries", headers: ["Content-Type: application/json"], body: Array("[]".utf8))
        #expect(badQuery == 400)
        #expect(Self.status(port, "GET", "/health") == 200)
        #expect(node.terminatingSignal == nil)
        // The refusals reach the node's audit table (flushed within 0.5 s when idle, and at shutdown).
        node.send(SIGTERM)
        #expect(await node.waitForExit(timeout: .seconds(30)) == 0)
        let store = try LedgerStore(readOnlyPath: directory + "/" + NetworkDefinition.databaseFileName)
        let codes = try store.recentRefusals(limit: 100).map(\.code)
        #expect(codes.filter { $0 == .payloadTooLarge }.count >= 2, "\(codes)")
        #expect(codes.filter { $0 == .malformedEncoding }.count >= 2, "\(codes)")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Finding 7: ~300 `/v1/events` clients that never read made `/health` unreachable, and
    /// thousands of half-sent requests exhausted file descriptors. With limits, the node keeps
    /// answering and refuses surplus event streams with 503.
    @Test func stalledClientsCannotStarveTheNode() async throws {
        let (node, port, directory) = try await Self.startNode(["--max-connections", "64", "--idle-timeout", "1"])
        defer { node.send(SIGKILL) }
        // Half-sent requests: the head never completes.
        var halfSent: [RawConnection] = []
        for _ in 0..<400 {
            guard let connection = RawConnection(port: port, receiveTimeout: 1) else { break }
            connection.send("GET /v1/chain HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            halfSent.append(connection)
        }
        // Event streams that are never read, all by one member.
        var stalled: [RawConnection] = []
        for _ in 0..<300 {
            guard let connection = RawConnection(port: port, receiveTimeout: 1) else { break }
            let head = Self.signed(directory, "GET", "/v1/events?from=0").map { $0 + "\r\n" }.joined()
            connection.send("GET /v1/events?from=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\(head)\r\n")
            stalled.append(connection)
        }
        // The node must still answer /health within a bounded time (idle connections are closed
        // after 1 s; the listen backlog then drains).
        let deadline = ContinuousClock.now + .seconds(30)
        var healthy = false
        while ContinuousClock.now < deadline, !healthy {
            healthy = Self.status(port, "GET", "/health") == 200
        }
        #expect(healthy, "/health never answered while stalled clients were connected")
        // Surplus event streams were refused as overload, not served without bound.
        var statuses: [Int] = []
        for connection in stalled.prefix(40) {
            if let status = connection.status() { statuses.append(status) }
        }
        #expect(statuses.contains(503), "\(statuses)")
        #expect(!statuses.contains { $0 >= 500 && $0 != 503 })
        #expect(node.terminatingSignal == nil)
        halfSent.removeAll()
        stalled.removeAll()
        #expect(Self.status(port, "GET", "/health") == 200)
        // Red-team finding: on a quiet chain, streams whose clients had gone kept their slots. Once
        // the clients close, the member can open its full share of streams again.
        var reopened: [RawConnection] = []
        var statusesAfter: [Int] = []
        let reopenDeadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < reopenDeadline, reopened.count < LedgerNode.maxSubscribersPerClient {
            guard let connection = RawConnection(port: port, receiveTimeout: 5) else { break }
            let head = Self.signed(directory, "GET", "/v1/events").map { $0 + "\r\n" }.joined()
            connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\(head)\r\n")
            let status = connection.status() ?? -1
            statusesAfter.append(status)
            if status == 200 { reopened.append(connection) }
        }
        #expect(reopened.count == LedgerNode.maxSubscribersPerClient, "\(statusesAfter)")
        await Self.stop(node, directory)
    }

    /// Finding 9: the database was created 0644 when the data directory already existed.
    @Test func dataDirectoryAndDatabaseAreOwnerOnlyWhateverExistedBefore() async throws {
        let directory = Fixtures.temporaryPath("perm")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let initialized = try await ManagedProcess.medledger("init", "--out", directory)
        #expect(initialized.status == 0, "\(initialized.stderr)")
        chmod(directory, 0o755)
        let database = directory + "/" + NetworkDefinition.databaseFileName
        try? FileManager.default.removeItem(atPath: database)
        #expect(FileManager.default.createFile(atPath: database, contents: nil, attributes: [.posixPermissions: 0o644]))
        let node = try LedgerNode(directory: directory, logger: .init(label: "test"))
        #expect(node.tip.height == 0)
        #expect(SecureFile.mode(of: directory) == 0o700)
        #expect(SecureFile.mode(of: database) == 0o600)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: database + suffix) {
            #expect(SecureFile.mode(of: database + suffix) == 0o600)
        }
    }
}
