import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import LedgerCore
import Node
import Server

/// The real HTTP API of a ``NodeHarness`` node, served in this process on 127.0.0.1 (port 0).
final class APIHarness: Sendable {
    let node: NodeHarness
    let base: URL
    let server: Task<Void, any Error>
    let session: URLSession
    let port: Int

    struct Answer: Sendable {
        var status: Int
        var body: Data
        var code: String? {
            struct ErrorBody: Decodable {
                struct Detail: Decodable { var code: String }
                var error: Detail
            }
            return (try? JSONDecoder().decode(ErrorBody.self, from: body))?.error.code
        }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    init(_ node: NodeHarness) async throws {
        self.node = node
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = APIServer.application(node: node.node, port: 0, logger: Logger.quiet) { continuation.yield($0) }
        server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw LedgerError(.io, "server did not start") }
        base = URL(string: "http://127.0.0.1:\(port)")!
        self.port = port
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration)
    }

    func stop() async {
        server.cancel()
        _ = await server.result
    }

    /// The header a client would send: signed by `identity` for `target` now, or as modified.
    func header(_ identity: SigningIdentity, method: String = "GET", target: String, body: [UInt8] = [],
                time: Int64 = Clock.nowMilliseconds(), nonce: [UInt8] = SigningIdentity.randomNonce(),
                network: Hash256? = nil) -> String {
        RequestSignature.sign(identity: identity, network: network ?? node.node.network, method: method, target: target,
                              body: body, time: time, nonce: nonce).headerValue
    }

    /// Sends `method target` with the given raw Authorization values (none: unauthenticated).
    func send(_ target: String, method: String = "GET", authorization: [String] = [], body: Data? = nil,
              contentType: String? = nil) async throws -> Answer {
        var request = URLRequest(url: URL(string: base.absoluteString + target)!)
        request.httpMethod = method
        for value in authorization { request.addValue(value, forHTTPHeaderField: "Authorization") }
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        request.httpBody = body
        if target.hasPrefix("/v1/events") { return Answer(status: try await HeadOnly.status(of: request, session: session), body: Data()) }
        let (data, response) = try await session.data(for: request)
        return Answer(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
    }

    /// A GET signed by `identity` (nil: unsigned).
    func get(_ target: String, as identity: SigningIdentity?) async throws -> Answer {
        try await send(target, authorization: identity.map { [header($0, target: target)] } ?? [])
    }
}

extension APIHarness {
    /// Sends `text` byte for byte over a fresh TCP connection and returns the response status
    /// (0 if the server closed the connection without one). For request targets and headers that
    /// URLSession would normalise or refuse to send.
    func rawStatus(_ text: String) async -> Int {
        let port = self.port
        return await Task.detached { () -> Int in
            guard let connection = RawConnection(port: port) else { return -1 }
            connection.send(text)
            return connection.status() ?? 0
        }.value
    }

    /// Opens a raw connection, sends `text`, and reads what arrives until the server closes it.
    /// Returns at once; `closed` finishes when the connection is closed (or after `timeout`).
    func rawStream(_ text: String, timeout: Int = 20) -> Task<(bytes: Int, closed: Bool), Never> {
        let port = self.port
        return Task.detached {
            guard let connection = RawConnection(port: port, receiveTimeout: timeout) else { return (0, false) }
            connection.send(text)
            return connection.drain()
        }
    }

    /// A raw GET of `target` with an `Authorization` header.
    func rawGet(_ target: String, authorization: String) async -> Int {
        await rawStatus("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: \(authorization)\r\nConnection: close\r\n\r\n")
    }
}

/// The status of a streaming response, without waiting for its (endless) body.
final class HeadOnly: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Int, any Error>?

    static func status(of request: URLRequest, session: URLSession) async throws -> Int {
        let delegate = HeadOnly()
        let session = URLSession(configuration: session.configuration, delegate: delegate, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        return try await withCheckedThrowingContinuation { continuation in
            delegate.lock.withLock { delegate.continuation = continuation }
            session.dataTask(with: request).resume()
        }
    }

    private func finish(_ result: Result<Int, any Error>) {
        let continuation = lock.withLock { () -> CheckedContinuation<Int, any Error>? in
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(with: result)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        finish(.success((response as? HTTPURLResponse)?.statusCode ?? 0))
        completionHandler(.cancel)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        finish(.failure(error ?? LedgerError(.io, "no response")))
    }
}

/// A raw TCP client for requests no HTTP library would send (half-sent, malformed, huge).
final class RawConnection {
    let fd: Int32

    init?(port: Int, receiveTimeout seconds: Int = 10) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until the peer closes or the status line and headers have arrived (bounded).
    func readHead() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < 1 << 20 {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received.append(contentsOf: buffer[0..<count])
            if received.count >= 4, String(decoding: received, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the peer closes (true) or the receive timeout passes (false); the byte count.
    func drain() -> (bytes: Int, closed: Bool) {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return (total, true) }
            if count < 0 { return (total, false) }
            total += count
        }
    }

    /// The status code of the response, nil if the server closed without one.
    func status() -> Int? {
        let head = readHead()
        guard head.hasPrefix("HTTP/1.1 ") else { return nil }
        return Int(head.dropFirst(9).prefix(3))
    }
}
