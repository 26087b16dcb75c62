import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of one port, that a test can cut: a network partition of
/// one process without network namespaces (which would need addresses other than loopback).
///
/// While cut, connections stay open and nothing moves in either direction: what is sent waits,
/// as it would behind a partition where packets are dropped and retransmitted. New connections
/// are accepted but not connected through. ``heal()`` lets everything waiting through, so a
/// request sent before the cut can arrive late (a deposed leader's append, for instance).
/// Blocking sockets, a thread per direction: small, and independent of the code under test.
public final class LoopbackProxy: Sendable {
    public let port: Int
    let target: Int
    let listener: Int32
    private struct State {
        var cut = false
        var closed = false
        var sockets: Set<Int32> = []
    }

    private let state = Mutex(State())

    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:target`.
    public init(to target: Int) throws {
        self.target = target
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw EtcdClusterError("socket: errno \(errno)") }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && listen(descriptor, 64) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(descriptor)
            throw EtcdClusterError("bind: errno \(errno)")
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    public var endpoint: String { "127.0.0.1:\(port)" }

    /// Stops every byte in both directions (connections stay open).
    public func cut() { state.withLock { $0.cut = true } }

    /// Lets everything through again, what waited first.
    public func heal() { state.withLock { $0.cut = false } }

    /// Closes the listener and every connection.
    public func close() {
        let sockets = state.withLock { state in
            state.closed = true
            return state.sockets
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
    }

    deinit { close() }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private var isCut: Bool { state.withLock { $0.cut && !$0.closed } }
    private var isClosed: Bool { state.withLock { $0.closed } }

    private func waitWhileCut() {
        while isCut { usleep(5_000) }
    }

    private func acceptLoop() {
        while !isClosed {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                break
            }
            Thread.detachNewThread { [self] in connect(client) }
        }
        Glibc.close(listener)
    }

    private func connect(_ client: Int32) {
        guard track(client) else { return }
        waitWhileCut()
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: UInt16(target))
        let connected = upstream >= 0 && withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            if upstream >= 0 { Glibc.close(upstream) }
            untrack(client)
            return
        }
        guard track(upstream) else {
            untrack(client)
            return
        }
        let remaining = Mutex(2)
        let finished: @Sendable () -> Void = { [self] in
            guard remaining.withLock({ $0 -= 1; return $0 }) == 0 else { return }
            untrack(client)
            untrack(upstream)
        }
        Thread.detachNewThread { [self] in pump(from: client, to: upstream); finished() }
        Thread.detachNewThread { [self] in pump(from: upstream, to: client); finished() }
    }

    /// Copies until either side closes; then shuts both down so the other direction ends too.
    private func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        outer: while true {
            waitWhileCut()
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            // Data read just before a cut waits too.
            waitWhileCut()
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { break outer }
                sent += written
            }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
    }

    private func track(_ socket: Int32) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.sockets.insert(socket)
            return true
        }
        if !accepted { Glibc.close(socket) }
        return accepted
    }

    private func untrack(_ socket: Int32) {
        state.withLock { _ = $0.sockets.remove(socket) }
        Glibc.close(socket)
    }
}
