#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension EtcdClient {
    /// A key with its value and revisions, as etcd stores it.
    public struct KeyValue: Sendable, Hashable {
        public var key: [UInt8]
        public var value: [UInt8]
        /// The revision of the put that created the key (since its last deletion).
        public var createRevision: Int64
        /// The revision of the last change of the key.
        public var modRevision: Int64
        /// Number of changes since creation (1 after the first put, 0 for a deleted key).
        public var version: Int64
        /// The lease the key is attached to, 0 for none.
        public var lease: Int64

        init(_ kv: Mvccpb_KeyValue) {
            key = Array(kv.key)
            value = Array(kv.value)
            createRevision = kv.createRevision
            modRevision = kv.modRevision
            version = kv.version
            lease = kv.lease
        }
    }

    /// The answer to a range read.
    public struct RangeResult: Sendable, Hashable {
        /// The store's revision when the read was served.
        public var revision: Int64
        public var kvs: [KeyValue]
        /// Whether more keys matched than `limit` allowed.
        public var more: Bool
        /// How many keys matched in all.
        public var count: Int64

        init(_ response: Etcdserverpb_RangeResponse) {
            revision = response.header.revision
            kvs = response.kvs.map(KeyValue.init)
            more = response.more
            count = response.count
        }
    }

    public struct PutResult: Sendable, Hashable {
        /// The revision of this put: the new `modRevision` of the key.
        public var revision: Int64
        /// The key before the put, when asked for with `previous: true` and it existed.
        public var previous: KeyValue?

        init(_ response: Etcdserverpb_PutResponse) {
            revision = response.header.revision
            previous = response.hasPrevKv ? KeyValue(response.prevKv) : nil
        }
    }

    public struct DeleteResult: Sendable, Hashable {
        /// The store's revision after the delete (unchanged when nothing was deleted).
        public var revision: Int64
        public var deleted: Int64

        init(_ response: Etcdserverpb_DeleteRangeResponse) {
            revision = response.header.revision
            deleted = response.deleted
        }
    }
}

extension Array where Element == UInt8 {
    /// The smallest key after every key that starts with this prefix (etcd's `range_end` for a
    /// prefix): the prefix with its last byte below 0xff incremented; `[0]`, meaning "to the
    /// end", for an empty or all-0xff prefix.
    var prefixEnd: [UInt8] {
        var end = self
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}
