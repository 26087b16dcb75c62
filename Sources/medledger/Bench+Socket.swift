import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// The network benchmark's load generator: `POST /v1/transactions` over plain keep-alive HTTP/1.1
/// connections, one blocking socket per thread.
///
/// The bench runs on the machine it measures, so its own cost is taken from the network under
/// test; URLSession (libcurl on Linux) spent several times the CPU of the request itself. One
/// request is in flight per connection, as a client waiting for its 202 would have.
enum SocketSubmitter {
    final class Shared: Sendable {
        let next = Mutex(0)
        let running: Mutex<(count: Int, continuation: CheckedContinuation<Void, Never>?)>
        init(threads: Int) { running = Mutex((threads, nil)) }
    }

    /// Sends every envelope once (a failed one is retried once on a fresh connection), spreading
    /// connections over `ports`; calls `sent(index, acknowledged, seconds)` for each.
    /// With `rate`, envelope i is sent no earlier than `i / rate` seconds after the start (offered
    /// load); without, as fast as the connections go.
    /// With `batch` > 1, each request carries up to `batch` envelopes (`POST /v1/transactions/batch`).
    static func submit(_ envelopes: [[UInt8]], ports: [Int], connectionsPerPort: Int, rate: Double? = nil, batch: Int = 1,
                       began: @escaping @Sendable (Int) -> Void, sent: @escaping @Sendable (Int, Bool, Double) -> Void) async {
        let start = Date().timeIntervalSince1970
        let threads = ports.count * connectionsPerPort
        let shared = Shared(threads: threads)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shared.running.withLock { $0.continuation = continuation }
            for thread in 0..<threads {
                let port = ports[thread % ports.count]
                Thread.detachNewThread {
                    var connection = Connection(port: port)
                    while true {
                        let first = shared.next.withLock { value -> Int in
                            defer { value += batch }
                            return value
                        }
                        guard first < envelopes.count else { break }
                        let indices = first..<min(first + batch, envelopes.count)
                        if let rate {
                            let wait = start + Double(indices.last!) / rate - Date().timeIntervalSince1970
                            if wait > 0.0002 { usleep(UInt32(wait * 1_000_000)) }
                        }
                        for index in indices { began(index) }
                        let start = Date().timeIntervalSince1970
                        let post = { (connection: inout Connection?) -> (status: Int, accepted: [Bool]) in
                            guard batch > 1 else {
                                let status = connection?.post(envelopes[indices.lowerBound]) ?? 0
                                return (status, [status == 202 || status == 200])
                            }
                            let body = EnvelopeBatch(Array(envelopes[indices])).encoded
                            guard let (status, answer) = connection?.post(body, path: "/v1/transactions/batch", contentType: EnvelopeBatch.mediaType) else { return (0, []) }
                            return (status, Self.accepted(answer, count: indices.count))
                        }
                        var (status, accepted) = post(&connection)
                        if status == 0 || status == 503 {
                            // Closed, unreachable or overloaded: one more try on a new connection.
                            usleep(100_000)
                            connection = Connection(port: port)
                            (status, accepted) = post(&connection)
                        }
                        let seconds = Date().timeIntervalSince1970 - start
                        for (offset, index) in indices.enumerated() {
                            sent(index, offset < accepted.count && accepted[offset], seconds)
                        }
                    }
                    connection?.close()
                    let done = shared.running.withLock { state -> CheckedContinuation<Void, Never>? in
                        state.count -= 1
                        return state.count == 0 ? state.continuation : nil
                    }
                    done?.resume()
                }
            }
        }
    }

    /// Which envelopes of a batch the node holds for ordering (`"status":"pending"`), in order.
    static func accepted(_ body: [UInt8], count: Int) -> [Bool] {
        struct Answer: Decodable {
            struct Result: Decodable { var status: String }
            var results: [Result]
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)), answer.results.count == count else {
            return Array(repeating: false, count: count)
        }
        return answer.results.map { $0.status == "pending" }
    }

    /// One keep-alive connection to 127.0.0.1:`port`.
    struct Connection {
        let descriptor: Int32
        let port: Int
        var buffer: [UInt8] = []

        init?(port: Int) {
            self.port = port
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { return nil }
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            var timeout = timeval(tv_sec: 120, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else {
                Glibc.close(descriptor)
                return nil
            }
        }

        func close() { Glibc.close(descriptor) }

        /// Sends one envelope and returns the response status (0 when the connection failed).
        mutating func post(_ body: [UInt8]) -> Int {
            post(body, path: "/v1/transactions", contentType: "application/octet-stream")?.status ?? 0
        }

        /// Sends one POST and returns the response status and body (nil when the connection failed).
        mutating func post(_ body: [UInt8], path: String, contentType: String) -> (status: Int, body: [UInt8])? {
            let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\r\n"
            let request = Array(head.utf8) + body
            var offset = 0
            while offset < request.count {
                let written = request[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return nil }
                offset += written
            }
            // Read the head, then exactly Content-Length bytes of body.
            var headEnd: Int?
            while headEnd == nil {
                if let end = Self.find([13, 10, 13, 10], in: buffer) { headEnd = end; break }
                guard fill() else { return nil }
            }
            let headText = String(decoding: buffer[..<headEnd!], as: UTF8.self)
            let lines = headText.split(separator: "\r\n")
            guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
                  let status = Int(statusLine.split(separator: " ")[1]) else { return nil }
            var length = 0
            for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let total = headEnd! + 4 + length
            while buffer.count < total { guard fill() else { return nil } }
            let answer = Array(buffer[(headEnd! + 4)..<total])
            buffer.removeFirst(total)
            return (status, answer)
        }

        mutating func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 16_384)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }

        static func find(_ pattern: [UInt8], in bytes: [UInt8]) -> Int? {
            guard bytes.count >= pattern.count else { return nil }
            for start in 0...(bytes.count - pattern.count) where bytes[start] == pattern[0] {
                if Array(bytes[start..<(start + pattern.count)]) == pattern { return start }
            }
            return nil
        }
    }
}
