import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension EtcdClient {
    /// One condition of a transaction: a key's version, create or mod revision, or value
    /// compared with a given one. A missing key has version, create and mod revision 0.
    ///
    /// ```swift
    /// .modRevision(key, .equal, seen.modRevision)   // nobody wrote it since I read it
    /// .createRevision(key, .equal, 0)               // the key does not exist
    /// ```
    public struct Compare: Sendable, Hashable {
        public enum Relation: Sendable, Hashable { case equal, notEqual, greater, less }
        public enum Target: Sendable, Hashable {
            case version(Int64)
            case createRevision(Int64)
            case modRevision(Int64)
            case value([UInt8])
        }

        public var key: [UInt8]
        public var relation: Relation
        public var target: Target

        public init(_ key: [UInt8], _ relation: Relation, _ target: Target) {
            self.key = key
            self.relation = relation
            self.target = target
        }

        public static func version(_ key: [UInt8], _ relation: Relation, _ version: Int64) -> Compare {
            Compare(key, relation, .version(version))
        }

        public static func createRevision(_ key: [UInt8], _ relation: Relation, _ revision: Int64) -> Compare {
            Compare(key, relation, .createRevision(revision))
        }

        public static func modRevision(_ key: [UInt8], _ relation: Relation, _ revision: Int64) -> Compare {
            Compare(key, relation, .modRevision(revision))
        }

        public static func value(_ key: [UInt8], _ relation: Relation, _ value: [UInt8]) -> Compare {
            Compare(key, relation, .value(value))
        }

        var message: Etcdserverpb_Compare {
            var compare = Etcdserverpb_Compare()
            compare.key = Data(key)
            compare.result = switch relation {
            case .equal: .equal
            case .notEqual: .notEqual
            case .greater: .greater
            case .less: .less
            }
            switch target {
            case .version(let version):
                compare.target = .version
                compare.version = version
            case .createRevision(let revision):
                compare.target = .create
                compare.createRevision = revision
            case .modRevision(let revision):
                compare.target = .mod
                compare.modRevision = revision
            case .value(let value):
                compare.target = .value
                compare.value = Data(value)
            }
            return compare
        }
    }

    /// One request inside a transaction.
    public struct Operation: Sendable {
        let message: Etcdserverpb_RequestOp

        public static func range(_ key: [UInt8]) -> Operation {
            var request = Etcdserverpb_RangeRequest()
            request.key = Data(key)
            return Operation(message: .with { $0.requestRange = request })
        }

        public static func range(prefix: [UInt8]) -> Operation {
            var request = Etcdserverpb_RangeRequest()
            request.key = Data(prefix)
            request.rangeEnd = Data(prefix.prefixEnd)
            return Operation(message: .with { $0.requestRange = request })
        }

        public static func put(_ key: [UInt8], _ value: [UInt8], lease: Int64 = 0) -> Operation {
            var request = Etcdserverpb_PutRequest()
            request.key = Data(key)
            request.value = Data(value)
            request.lease = lease
            return Operation(message: .with { $0.requestPut = request })
        }

        public static func delete(_ key: [UInt8]) -> Operation {
            var request = Etcdserverpb_DeleteRangeRequest()
            request.key = Data(key)
            return Operation(message: .with { $0.requestDeleteRange = request })
        }

        public static func delete(prefix: [UInt8]) -> Operation {
            var request = Etcdserverpb_DeleteRangeRequest()
            request.key = Data(prefix)
            request.rangeEnd = Data(prefix.prefixEnd)
            return Operation(message: .with { $0.requestDeleteRange = request })
        }
    }

    /// The result of one ``Operation``, in the order they were given.
    public enum OperationResult: Sendable, Hashable {
        case range(RangeResult)
        case put(PutResult)
        case delete(DeleteResult)
    }

    public struct TxnResult: Sendable, Hashable {
        /// Whether every compare held, so the `success` operations ran (else `failure`).
        public var succeeded: Bool
        /// The store's revision after the transaction: the `modRevision` of everything it wrote.
        public var revision: Int64
        public var results: [OperationResult]
    }

    /// Runs `success` if every one of `compares` holds, else `failure`, atomically, at one
    /// revision. **Not retried**: on a failed or timed-out endpoint it throws
    /// ``EtcdError/outcomeUnknown(operation:endpoint:message:)``. A txn guarded by a compare on
    /// what it writes (`.modRevision(key, .equal, seen)`) is safe to send again: if the first one
    /// was applied, the second fails its compare, and a read of the key shows whose write won.
    ///
    /// A key may be written at most once per transaction.
    public func txn(_ compares: [Compare], success: [Operation], failure: [Operation] = []) async throws -> TxnResult {
        var request = Etcdserverpb_TxnRequest()
        request.compare = compares.map(\.message)
        request.success = success.map(\.message)
        request.failure = failure.map(\.message)
        let response = try await call("txn", idempotent: false) { connection, options in
            try await connection.kv.txn(request, options: options)
        }
        return TxnResult(
            succeeded: response.succeeded,
            revision: response.header.revision,
            results: response.responses.compactMap { response in
                switch response.response {
                case .responseRange(let range): .range(RangeResult(range))
                case .responsePut(let put): .put(PutResult(put))
                case .responseDeleteRange(let delete): .delete(DeleteResult(delete))
                case .responseTxn, nil: nil
                }
            }
        )
    }
}
