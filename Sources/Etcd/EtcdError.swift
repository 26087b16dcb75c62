/// What can go wrong talking to etcd.
///
/// An enum rather than the project's usual error struct with a code: callers switch on these
/// cases to decide what to do (re-read after ``outcomeUnknown(operation:endpoint:message:)``,
/// re-sync after ``compacted(requested:compactRevision:)``, re-acquire after ``leaseLost(_:)``),
/// and two of them carry the values that decision needs.
///
/// The descriptions name operations, endpoints and etcd's own messages; never keys, values or
/// TLS material.
public enum EtcdError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No endpoint answered an idempotent request (every one was unavailable or missed the
    /// deadline, after retrying each).
    case unavailable(operation: String, message: String)
    /// A request that changes state (put, delete, txn, revoke) failed in a way that does not tell
    /// whether etcd applied it: the endpoint became unavailable or the deadline passed after it
    /// may have been sent. It is **not** retried. Read the key back (its `modRevision`, or the
    /// value a txn would have written) and decide; the next call already goes to another endpoint.
    case outcomeUnknown(operation: String, endpoint: String, message: String)
    /// The requested revision has been compacted away (a watch or read from before the
    /// compaction). Re-sync with a range read at the current revision, then watch from there.
    /// `compactRevision` is the oldest revision still available, when etcd says so (a watch does,
    /// a range does not).
    case compacted(requested: Int64, compactRevision: Int64?)
    /// The lease does not exist any more: it expired, was revoked, or was never granted; or the
    /// keep-alive could not reach any member before its time to live ran out.
    case leaseLost(Int64)
    /// etcd cancelled a watch for a reason other than compaction (for example the member lost
    /// its leader).
    case watchCanceled(reason: String)
    /// The request is larger than the cluster's `--max-request-bytes`.
    case requestTooLarge(operation: String)
    /// Any other error status from etcd, with its gRPC code and message.
    case server(operation: String, code: String, message: String)
    /// The client was configured wrongly (no endpoints, an endpoint that is not host:port,
    /// unreadable TLS material).
    case invalidConfiguration(String)
    /// The client was shut down.
    case shutDown

    public var description: String {
        switch self {
        case .unavailable(let operation, let message):
            "etcd \(operation): no endpoint answered (\(message))"
        case .outcomeUnknown(let operation, let endpoint, let message):
            "etcd \(operation) via \(endpoint): outcome unknown (\(message)); read back before retrying"
        case .compacted(let requested, let compactRevision?):
            "etcd: revision \(requested) is compacted; the oldest available is \(compactRevision)"
        case .compacted(let requested, nil):
            "etcd: revision \(requested) is compacted"
        case .leaseLost(let id):
            "etcd: lease \(String(id, radix: 16)) is lost (expired, revoked or unreachable past its TTL)"
        case .watchCanceled(let reason):
            "etcd: watch cancelled (\(reason))"
        case .requestTooLarge(let operation):
            "etcd \(operation): request exceeds the cluster's --max-request-bytes"
        case .server(let operation, let code, let message):
            "etcd \(operation): \(code): \(message)"
        case .invalidConfiguration(let message):
            "etcd client configuration: \(message)"
        case .shutDown:
            "etcd client is shut down"
        }
    }
}
