import Foundation
import Ordering
import X509
public import LedgerCore

extension LedgerNode {
    /// "solo", or the replicated log's name ("etcd").
    public var orderingName: String { replication.map { $0.log.orderingName } ?? "solo" }

    /// The node certificate's notAfter, Unix seconds.
    public var certificateNotAfter: Int64 { Int64(identity.certificate.notValidAfter.timeIntervalSince1970) }

    /// This node's status for `GET /v1/node`. Asks the replicated log for its height, waiting at
    /// most `logTimeout` (an unreachable etcd leaves `logHeight` nil rather than holding the answer).
    public func status(logTimeout: Duration = .seconds(1)) async -> NodeStatus {
        let tip = self.tip
        var logHeight: UInt64?
        if let log = replication?.log {
            logHeight = await withTaskGroup(of: UInt64?.self) { group in
                group.addTask { try? await log.latestHeight() }
                group.addTask {
                    try? await Task.sleep(for: logTimeout)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
        var status = NodeStatus(
            fingerprint: identity.fingerprint, organization: member(identity.fingerprint)?.organization ?? "",
            networkID: network, ordering: orderingName, height: tip.height, blockHash: tip.hash, stateRoot: tip.stateRoot,
            logRoot: tip.logRoot, logSize: tip.logSize, tipEpoch: tip.epoch, leaderEpoch: leaderEpoch, logHeight: logHeight,
            certificateNotAfter: certificateNotAfter, divergence: divergence
        )
        status.peers = peerCheckpoints
        return status
    }
}
