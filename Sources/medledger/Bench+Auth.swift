import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import LedgerCore
import Node
import Server
import Collector

extension Bench {
    struct AuthResult: Encodable {
        var requests: Int
        /// Client: build the signed text and sign it (one P-256 signature), per request.
        var sign_us: Double
        /// Node: parse the header, look the member up, verify the signature, record the nonce.
        var verify_us: Double
        /// Baseline, same run and client: unauthenticated GET /health (open route, no checks).
        var health_unauthenticated_p50_us: Double
        var health_unauthenticated_p99_us: Double
        /// Unsigned GET /v1/chain: refused with 401 at the first check (the guard's own overhead).
        var chain_unauthenticated_401_p50_us: Double
        /// Signed GET of a route whose handler answers at once (the budget of an unknown member: 403
        /// after authentication): like /health plus sign and verify, so the difference is the cost
        /// of authentication end to end.
        var signed_minimal_p50_us: Double
        var signed_minimal_p99_us: Double
        /// Signed GET /v1/chain as an auditor: sign + HTTP + verify + handler (a larger JSON answer).
        var chain_authenticated_p50_us: Double
        var chain_authenticated_p99_us: Double
        var cores: Int
    }

    /// `bench --auth`: what authenticating a read costs, against unauthenticated requests of the
    /// same server, client and connection in the same run.
    func runAuth() async throws {
        let (directory, definition, node, runner) = try startNetwork(NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs))
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }
        let auditor = try definition.identity(named: "device-regulator/auditor", directory: directory)
        let count = max(repetitions, 100)

        // Microbenchmarks on one core: sign, then verify what was signed.
        let target = "/v1/devices?owner=st-mary&limit=3"
        var credentials: [RequestSignature.Credentials] = []
        credentials.reserveCapacity(count)
        let signStart = ContinuousClock.now
        for _ in 0..<count {
            credentials.append(RequestSignature.sign(identity: auditor, network: node.network, method: "GET", target: target))
        }
        let signSeconds = Self.seconds(ContinuousClock.now - signStart)
        let authenticator = RequestAuthenticator(node: node)
        let empty = Hash256.of([UInt8]())
        let verifyStart = ContinuousClock.now
        for credential in credentials {
            _ = try authenticator.verify(credential, method: "GET", target: target, bodyHash: empty, now: Clock.nowMilliseconds())
        }
        let verifySeconds = Self.seconds(ContinuousClock.now - verifyStart)

        // The real server on loopback, one client, sequential requests on one connection.
        let server = try await APIUnderTest.start(node)
        let base = server.base
        let open = NodeClient(baseURL: base)
        let signed = NodeClient(baseURL: base, signer: .init(identity: auditor, network: node.network))
        func latencies(_ client: NodeClient, _ target: String, expect status: Int) async throws -> [Double] {
            for _ in 0..<20 { _ = try await client.raw(target) }  // warm up
            var samples: [Double] = []
            for _ in 0..<count {
                let start = ContinuousClock.now
                let answer = try await client.raw(target)
                samples.append(Self.seconds(ContinuousClock.now - start) * 1e6)
                guard answer.status == status else { throw UserError("\(target): HTTP \(answer.status), expected \(status)") }
            }
            return samples.sorted()
        }
        let health = try await latencies(open, "/health", expect: 200)
        let refused = try await latencies(open, "/v1/chain", expect: 401)
        let minimal = try await latencies(signed, "/v1/research/budget/" + String(repeating: "0", count: 64), expect: 403)
        let chain = try await latencies(signed, "/v1/chain", expect: 200)
        await server.stop()
        node.shutdown()
        try await runner.value

        let percentile = Self.percentile
        let result = AuthResult(
            requests: count, sign_us: signSeconds / Double(count) * 1e6, verify_us: verifySeconds / Double(count) * 1e6,
            health_unauthenticated_p50_us: percentile(health, 0.5), health_unauthenticated_p99_us: percentile(health, 0.99),
            chain_unauthenticated_401_p50_us: percentile(refused, 0.5),
            signed_minimal_p50_us: percentile(minimal, 0.5), signed_minimal_p99_us: percentile(minimal, 0.99),
            chain_authenticated_p50_us: percentile(chain, 0.5), chain_authenticated_p99_us: percentile(chain, 0.99),
            cores: ProcessInfo.processInfo.activeProcessorCount
        )
        if json { return Output.json(result) }
        say(String(format: "sign %.1f µs, verify %.1f µs per request; p50: GET /health %.0f µs, signed minimal route %.0f µs, signed /v1/chain %.0f µs",
                   result.sign_us, result.verify_us, result.health_unauthenticated_p50_us, result.signed_minimal_p50_us,
                   result.chain_authenticated_p50_us))
        Output.json(result)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The node's HTTP API served in this process on a free loopback port, for the benchmarks that
/// measure through it.
struct APIUnderTest {
    let base: URL
    let group: ServiceGroup
    let task: Task<Void, any Error>

    static func start(_ node: LedgerNode) async throws -> APIUnderTest {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = APIServer.application(node: node, port: 0, logger: Logger(label: "medledger.bench")) { continuation.yield($0) }
        let group = ServiceGroup(services: [app], logger: Logger(label: "medledger.bench"))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw UserError("the API server did not start") }
        return APIUnderTest(base: URL(string: "http://127.0.0.1:\(port)")!, group: group, task: task)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}
