import Foundation
import Synchronization
import Ordering
import X509
public import LedgerCore

extension LedgerNode {
    /// "solo", or the replicated log's name ("etcd").
    public var orderingName: String { replication.map { $0.log.orderingName } ?? "solo" }

    /// The node certificate's notAfter, Unix seconds.
    public var certificateNotAfter: Int64 { Int64(identity.certificate.notValidAfter.timeIntervalSince1970) }

    /// The log's height, asked at most once a second and by one request at a time (others get the
    /// last answer): `GET /v1/node` is open to every organisation's admin, and a flood of it must not
    /// become a flood of etcd reads.
    func logHeight(_ replication: Replication, timeout: Duration) async -> UInt64? {
        let now = ContinuousClock.now
        let (cached, ask) = replication.logHeight.withLock { state -> (UInt64?, Bool) in
            if state.asking || state.at.map({ now - $0 < .seconds(1) }) == true { return (state.height, false) }
            state.asking = true
            return (state.height, true)
        }
        guard ask else { return cached }
        let log = replication.log
        let fresh = (try? await withTimeout(timeout) { try await log.latestHeight() }) ?? nil
        replication.logHeight.withLock { $0 = (fresh, .now, false) }
        return fresh
    }

    /// This node's status for `GET /v1/node`. Asks the replicated log for its height, waiting at
    /// most `logTimeout` (an unreachable etcd leaves `logHeight` nil rather than holding the answer).
    public func status(logTimeout: Duration = .seconds(1)) async -> NodeStatus {
        let tip = self.tip
        var logHeight: UInt64?
        if let replication { logHeight = await self.logHeight(replication, timeout: logTimeout) }
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
