import Testing
import Foundation
import Synchronization
import Hummingbird
import Logging
import NIOCore
import LedgerCore
import Collector

/// A peer that may lie answers block requests during catch-up: its answers are bounded in size
/// (announced or streamed) and its redirects are handed back, not followed.
struct BoundedFetchTests {
    @Test func oversizedAnswersAreRefusedAndRedirectsAreNotFollowed() async throws {
        let followed = ManagedAtomicFlag()
        let router = Router()
        router.get("/small") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: [1, 2, 3]))) }
        router.get("/announced") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: 7, count: 300_000))) }
        router.get("/streamed") { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                for _ in 0..<64 { try await writer.write(ByteBuffer(repeating: 7, count: 16_384)) }
                try await writer.finish(nil)
            })
        }
        router.get("/elsewhere") { _, _ in
            Response(status: .found, headers: [.location: "/target"])
        }
        router.get("/target") { _, _ in
            followed.set()
            return Response(status: .ok)
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
                              logger: Logger(label: "peer") { _ in SwiftLogNoOpLogHandler() })
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let client = NodeClient(baseURL: URL(string: "http://127.0.0.1:\(port)")!)

        let small = try await client.raw("/small", limit: 100_000)
        #expect(small.status == 200 && [UInt8](small.body) == [1, 2, 3])
        for target in ["/announced", "/streamed"] {
            await #expect(throws: LedgerError.self, "\(target)") { _ = try await client.raw(target, limit: 100_000) }
            do { _ = try await client.raw(target, limit: 100_000) } catch let error as LedgerError {
                #expect(error.code == .payloadTooLarge, "\(target): \(error)")
            }
        }
        // Within the limit, a streamed answer arrives whole.
        #expect(try await client.raw("/streamed", limit: 2 << 20).body.count == 64 * 16_384)
        let redirected = try await client.raw("/elsewhere", limit: 100_000)
        #expect(redirected.status == 302)
        #expect(!followed.isSet, "the redirect was followed")
    }
}

/// A flag set from a request handler.
final class ManagedAtomicFlag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}
