import GRPCCore
import Logging
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension EtcdClient {
    /// A change of one key.
    public struct WatchEvent: Sendable, Hashable {
        public enum Kind: Sendable, Hashable { case put, delete }
        public var kind: Kind
        /// The key after a put; for a delete, the key with `modRevision` the revision of the delete
        /// and an empty value.
        public var kv: KeyValue
        /// The key before the change, when the watch asked for it and it was not compacted.
        public var previous: KeyValue?

        /// The revision of the change.
        public var revision: Int64 { kv.modRevision }
    }

    /// Watches one key: every change from `revision` on (inclusive; 0 for changes after now), in
    /// revision order, without gaps or repeats.
    ///
    /// See ``watch(prefix:from:previous:)``.
    public func watch(key: [UInt8], from revision: Int64 = 0, previous: Bool = false) -> AsyncThrowingStream<WatchEvent, any Error> {
        var request = Etcdserverpb_WatchCreateRequest()
        request.key = Data(key)
        return watch(request, from: revision, previous: previous)
    }

    /// Watches every key that starts with `prefix`: every change from `revision` on (inclusive;
    /// 0 for changes after now), in revision order, without gaps or repeats. The changes of one
    /// transaction share a revision and arrive together.
    ///
    /// If the stream breaks (the member fails, stops answering, or loses its leader), the watch
    /// is re-created on the next endpoint from the revision after the last one delivered; it keeps
    /// trying (pausing up to a second after each round of endpoints) until it is cancelled. etcd
    /// splits a large batch of events into fragments (`fragment = true` is asked for, so a batch
    /// may exceed `--max-request-bytes`); they are put together before being delivered, so a
    /// revision is never half-delivered.
    ///
    /// The stream throws ``EtcdError/compacted(requested:compactRevision:)`` when the revision to
    /// watch from is compacted: read the prefix again (``range(prefix:from:limit:revision:)``) and
    /// watch from the revision after that read. It ends when the consumer stops iterating.
    ///
    /// - Parameter previous: deliver each key's value before the change as well.
    public func watch(prefix: [UInt8], from revision: Int64 = 0, previous: Bool = false) -> AsyncThrowingStream<WatchEvent, any Error> {
        var request = Etcdserverpb_WatchCreateRequest()
        request.key = Data(prefix)
        request.rangeEnd = Data(prefix.prefixEnd)
        return watch(request, from: revision, previous: previous)
    }

    private func watch(_ create: Etcdserverpb_WatchCreateRequest, from revision: Int64, previous: Bool) -> AsyncThrowingStream<WatchEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let task = startTask { [self] in
            // The next revision to deliver (0: whatever is next once the watch exists).
            let next = Locked(revision)
            var failures = 0
            while !Task.isCancelled {
                var request = create
                request.startRevision = next.value
                request.prevKv = previous
                request.fragment = true
                request.progressNotify = true
                let index: Int, connection: Connection
                do {
                    (index, connection) = try currentConnection()
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
                do {
                    // Returns only by throwing: a stream that ends is a failure too.
                    try await runWatch(request, on: connection, next: next, continuation: continuation)
                } catch is CancellationError {
                    break
                } catch let error as EtcdError {
                    continuation.finish(throwing: error)
                    return
                } catch let error as RPCError where error.code == .cancelled {
                    break
                } catch let error as RPCError where Self.isEndpointFailure(error) || error.code == .unknown {
                    failedOver(from: index, error)
                    // Back off only while nothing gets through.
                    failures = next.value == request.startRevision ? failures + 1 : 1
                    logger.info("etcd watch stream failed, resuming on the next endpoint", metadata: [
                        "endpoint": "\(connection.endpoint)", "code": "\(error.code)", "from": "\(next.value)",
                    ])
                    if failures % connections.count == 0 {
                        try? await Task.sleep(for: .milliseconds(min(100 << (failures / connections.count), 1000)))
                    }
                } catch let error as RPCError {
                    continuation.finish(throwing: Self.map(error, "watch"))
                    return
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// One watch stream on one endpoint, until it fails. Events are yielded per complete response
    /// (fragments joined), and `next` moves past each delivered response.
    ///
    /// A stream that stops answering is abandoned: a progress request is sent every
    /// `requestTimeout`, and if nothing at all arrives for two of them the stream fails as
    /// `unavailable`.
    private func runWatch(
        _ create: Etcdserverpb_WatchCreateRequest,
        on connection: Connection,
        next: Locked<Int64>,
        continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
    ) async throws {
        var options = options
        options.timeout = nil
        // Ask the member to cancel the watch when it loses its leader, rather than serve a
        // partitioned, stale view (etcd's clientv3 `WithRequireLeader`).
        let metadata: Metadata = ["hasleader": "true"]
        let period = requestTimeout
        let lastHeard = Locked(ContinuousClock.now)
        try await connection.watch.watch(metadata: metadata, options: options) { writer in
            try await writer.write(.with { $0.createRequest = create })
            while true {
                try await Task.sleep(for: period)
                try await writer.write(.with { $0.progressRequest = Etcdserverpb_WatchProgressRequest() })
            }
        } onResponse: { response in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var pending: [Mvccpb_Event] = []
                    for try await message in response.messages {
                        lastHeard.value = .now
                        if message.compactRevision != 0 {
                            throw EtcdError.compacted(requested: create.startRevision, compactRevision: message.compactRevision)
                        }
                        if message.canceled {
                            throw EtcdError.watchCanceled(reason: message.cancelReason.isEmpty ? "no reason given" : message.cancelReason)
                        }
                        if message.created, next.value == 0 {
                            next.value = message.header.revision + 1
                        }
                        pending += message.events
                        guard !message.fragment, let last = pending.last else { continue }
                        for event in pending { continuation.yield(WatchEvent(event)) }
                        next.value = last.kv.modRevision + 1
                        pending = []
                    }
                    throw RPCError(code: .unavailable, message: "watch stream ended")
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: period)
                        if ContinuousClock.now - lastHeard.value > period * 2 {
                            throw RPCError(code: .unavailable, message: "watch stream silent for \(period * 2)")
                        }
                    }
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        }
    }
}

extension EtcdClient.WatchEvent {
    init(_ event: Mvccpb_Event) {
        kind = event.type == .delete ? .delete : .put
        kv = EtcdClient.KeyValue(event.kv)
        previous = event.hasPrevKv ? EtcdClient.KeyValue(event.prevKv) : nil
    }
}
