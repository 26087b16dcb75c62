#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension EtcdClient {
    /// Reads one key (linearizable). Retried on another endpoint when one fails.
    ///
    /// - Parameter revision: read the key as of this revision; 0 for the latest.
    /// - Throws: ``EtcdError/compacted(requested:compactRevision:)`` when `revision` is compacted.
    public func range(_ key: [UInt8], revision: Int64 = 0) async throws -> RangeResult {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key)
        request.revision = revision
        return try await range(request)
    }

    /// Whether `key` exists, without transferring its value (`keys_only`).
    public func exists(_ key: [UInt8]) async throws -> Bool {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key)
        request.keysOnly = true
        return try await !range(request).kvs.isEmpty
    }

    /// Reads the keys that start with `prefix` in key order (linearizable). Retried on another
    /// endpoint when one fails.
    ///
    /// - Parameters:
    ///   - from: start at this key (inclusive) instead of the prefix itself, to page through a
    ///     large prefix: pass the last key of the previous page plus a 0 byte.
    ///   - limit: at most this many keys (0: all); ``RangeResult/more`` tells whether there are more.
    ///   - revision: read as of this revision (0: latest). Page with the revision of the first page
    ///     to get one consistent view.
    public func range(prefix: [UInt8], from: [UInt8]? = nil, limit: Int64 = 0, revision: Int64 = 0) async throws -> RangeResult {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(from ?? prefix)
        request.rangeEnd = Data(prefix.prefixEnd)
        request.limit = limit
        request.revision = revision
        request.sortOrder = .ascend
        request.sortTarget = .key
        return try await range(request)
    }

    private func range(_ request: Etcdserverpb_RangeRequest) async throws -> RangeResult {
        do {
            let response = try await call("range", idempotent: true) { connection, options in
                try await connection.kv.range(request, options: options)
            }
            return RangeResult(response)
        } catch EtcdError.compacted {
            throw EtcdError.compacted(requested: request.revision, compactRevision: nil)
        }
    }

    /// Writes a key. **Not retried**: on a failed or timed-out endpoint it throws
    /// ``EtcdError/outcomeUnknown(operation:endpoint:message:)``; read the key back to see whether
    /// it was written.
    ///
    /// - Parameters:
    ///   - lease: attach the key to this lease (0: none); the key is deleted when the lease ends.
    ///   - previous: return the key as it was before.
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0, previous: Bool = false) async throws -> PutResult {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key)
        request.value = Data(value)
        request.lease = lease
        request.prevKv = previous
        let response = try await call("put", idempotent: false) { connection, options in
            try await connection.kv.put(request, options: options)
        }
        return PutResult(response)
    }

    /// Deletes one key. **Not retried** (see ``put(_:_:lease:previous:)``).
    public func delete(_ key: [UInt8]) async throws -> DeleteResult {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Data(key)
        return try await delete(request)
    }

    /// Deletes every key that starts with `prefix`. **Not retried** (see ``put(_:_:lease:previous:)``).
    public func delete(prefix: [UInt8]) async throws -> DeleteResult {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Data(prefix)
        request.rangeEnd = Data(prefix.prefixEnd)
        return try await delete(request)
    }

    /// Deletes every key in `[key, end)`. **Not retried** (see ``put(_:_:lease:previous:)``).
    public func delete(from key: [UInt8], to end: [UInt8]) async throws -> DeleteResult {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Data(key)
        request.rangeEnd = Data(end)
        return try await delete(request)
    }

    private func delete(_ request: Etcdserverpb_DeleteRangeRequest) async throws -> DeleteResult {
        let response = try await call("delete", idempotent: false) { connection, options in
            try await connection.kv.deleteRange(request, options: options)
        }
        return DeleteResult(response)
    }

    /// Discards the history before `revision`: reads and watches from earlier revisions fail with
    /// ``EtcdError/compacted(requested:compactRevision:)``. Retried on another endpoint (a repeat
    /// of an applied compaction answers `compacted`, which means it is done).
    ///
    /// - Parameter physical: return only once the compaction is applied to the backend.
    public func compact(_ revision: Int64, physical: Bool = false) async throws {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        request.physical = physical
        _ = try await call("compact", idempotent: true) { connection, options in
            try await connection.kv.compact(request, options: options)
        }
    }
}
