import Synchronization
import Foundation

/// Counters and a latency histogram, rendered in the Prometheus text format at `GET /metrics`.
public final class NodeMetrics: Sendable {
    struct State {
        var height: UInt64 = 0
        var blocks: UInt64 = 0
        var committed: UInt64 = 0
        var rejectedByCode: [String: UInt64] = [:]
        var refusedByCode: [String: UInt64] = [:]
        var pending = 0
        var latencyBuckets = [UInt64](repeating: 0, count: NodeMetrics.bucketBounds.count)
        var latencyCount: UInt64 = 0
        var latencySum: Double = 0
        /// (time in seconds, transactions) per committed block in the last window.
        var recent: [(Double, Int)] = []
        /// Replicated ordering: whether this node leads, the last epoch it saw, leader changes here, divergence.
        var leading = false
        var epoch: UInt64 = 0
        var leaderChanges: UInt64 = 0
        var diverged = false
        var blocksTimedAhead: UInt64 = 0
        /// The node certificate's notAfter (Unix seconds), once the node set it.
        var certificateNotAfter: Double?
        var checkpointsAgreeing = 0
        var checkpointsConflicting = 0
    }

    static let bucketBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    let state = Mutex(State())

    public init() {}

    func blockCommitted(height: UInt64, committed: Int, rejectedCodes: [String], latencies: [Double], pending: Int) {
        let now = Date().timeIntervalSince1970
        state.withLock { state in
            state.height = height
            state.blocks += 1
            state.committed += UInt64(committed)
            for code in rejectedCodes { state.rejectedByCode[code, default: 0] += 1 }
            for latency in latencies {
                state.latencyCount += 1
                state.latencySum += latency
                for (index, bound) in Self.bucketBounds.enumerated() where latency <= bound { state.latencyBuckets[index] += 1 }
            }
            state.pending = pending
            state.recent.append((now, committed + rejectedCodes.count))
            state.recent.removeAll { $0.0 < now - 10 }
        }
    }

    func leaderChanged(epoch: UInt64, leading: Bool) {
        state.withLock { state in
            state.epoch = max(state.epoch, epoch)
            if leading != state.leading { state.leaderChanges += 1 }
            state.leading = leading
        }
    }

    /// The node certificate's notAfter, exported as the seconds left until it
    /// (`medledger_certificate_expiry_seconds`; operators alert 30 days ahead).
    func certificate(notAfter: Double) {
        state.withLock { $0.certificateNotAfter = notAfter }
    }

    func checkpointPeers(agreeing: Int, conflicting: Int) {
        state.withLock { state in
            state.checkpointsAgreeing = agreeing
            state.checkpointsConflicting = conflicting
        }
    }

    func diverged() {
        state.withLock { $0.diverged = true }
    }

    func blockTimeAhead() {
        state.withLock { $0.blocksTimedAhead += 1 }
    }

    /// True once this node found that its state disagrees with the network's.
    public var hasDiverged: Bool { state.withLock { $0.diverged } }

    func refused(code: String) {
        state.withLock { $0.refusedByCode[code, default: 0] += 1 }
    }

    /// Transactions per second over the last 10 seconds.
    public var throughput: Double {
        let now = Date().timeIntervalSince1970
        return state.withLock { state in
            Double(state.recent.filter { $0.0 >= now - 10 }.reduce(0) { $0 + $1.1 }) / 10
        }
    }

    public func render() -> String {
        let tps = throughput
        return state.withLock { state in
            var out = ""
            func metric(_ name: String, _ type: String, _ help: String) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            }
            metric("medledger_committed_height", "gauge", "Height of the last committed block.")
            out += "medledger_committed_height \(state.height)\n"
            metric("medledger_blocks_committed_total", "counter", "Blocks committed since start.")
            out += "medledger_blocks_committed_total \(state.blocks)\n"
            metric("medledger_transactions_committed_total", "counter", "Transactions committed with status ok since start.")
            out += "medledger_transactions_committed_total \(state.committed)\n"
            metric("medledger_transactions_rejected_total", "counter", "Ordered transactions refused by execution, by code.")
            for (code, count) in state.rejectedByCode.sorted(by: { $0.key < $1.key }) {
                out += "medledger_transactions_rejected_total{code=\"\(code)\"} \(count)\n"
            }
            metric("medledger_submissions_refused_total", "counter", "Submissions refused at admission, by code.")
            for (code, count) in state.refusedByCode.sorted(by: { $0.key < $1.key }) {
                out += "medledger_submissions_refused_total{code=\"\(code)\"} \(count)\n"
            }
            metric("medledger_pending_transactions", "gauge", "Admitted transactions not yet committed.")
            out += "medledger_pending_transactions \(state.pending)\n"
            metric("medledger_transactions_per_second", "gauge", "Transactions ordered per second over the last 10 s.")
            out += "medledger_transactions_per_second \(String(format: "%.1f", tps))\n"
            metric("medledger_commit_latency_seconds", "histogram", "Submit-to-commit latency of admitted transactions.")
            for (index, bound) in Self.bucketBounds.enumerated() {
                out += "medledger_commit_latency_seconds_bucket{le=\"\(bound)\"} \(state.latencyBuckets[index])\n"
            }
            out += "medledger_commit_latency_seconds_bucket{le=\"+Inf\"} \(state.latencyCount)\n"
            out += "medledger_commit_latency_seconds_sum \(String(format: "%.6f", state.latencySum))\n"
            out += "medledger_commit_latency_seconds_count \(state.latencyCount)\n"
            metric("medledger_leader", "gauge", "1 while this node leads the replicated ordering.")
            out += "medledger_leader \(state.leading ? 1 : 0)\n"
            metric("medledger_leader_epoch", "gauge", "The highest leader epoch this node has led in.")
            out += "medledger_leader_epoch \(state.epoch)\n"
            metric("medledger_divergence_alarm", "gauge", "1 when this node's execution disagreed with a block of the network (it stops).")
            out += "medledger_divergence_alarm \(state.diverged ? 1 : 0)\n"
            metric("medledger_blocks_timed_ahead_total", "counter", "Blocks received whose time was ahead of this node's clock by more than the skew window (check the leader's clock, or its organisation).")
            out += "medledger_blocks_timed_ahead_total \(state.blocksTimedAhead)\n"
            if let notAfter = state.certificateNotAfter {
                metric("medledger_certificate_expiry_seconds", "gauge", "Seconds until this node's certificate expires (negative: expired). Renew before 30 days.")
                out += "medledger_certificate_expiry_seconds \(Int64((notAfter - Date().timeIntervalSince1970).rounded(.down)))\n"
            }
            metric("medledger_peer_checkpoints", "gauge", "Other nodes whose latest published checkpoint agrees or conflicts with this node's chain.")
            out += "medledger_peer_checkpoints{verdict=\"agrees\"} \(state.checkpointsAgreeing)\n"
            out += "medledger_peer_checkpoints{verdict=\"conflicts\"} \(state.checkpointsConflicting)\n"
            return out
        }
    }
}
