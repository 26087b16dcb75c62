import Synchronization
import LedgerCore

/// The nonces of signed requests seen within the time window, so each is accepted once.
///
/// An entry is kept until the request's own time plus the window has passed: after that the time
/// check alone refuses a replay. The cache is bounded; when it is full of unexpired entries a new
/// request is refused with `overloaded` (HTTP 503) rather than forgetting a nonce that could still
/// be replayed.
final class ReplayCache: Sendable {
    struct Key: Hashable {
        var member: Hash256
        var nonce: [UInt8]
    }

    enum Outcome: Equatable {
        case fresh, replayed, full
    }

    struct State {
        var expiries: [Key: Int64] = [:]
        var lastSweep: Int64 = 0
    }

    let capacity: Int
    let state = Mutex(State())

    init(capacity: Int = 500_000) {
        self.capacity = capacity
    }

    /// Records the nonce of a verified request signed at `time`, valid until `expiry`.
    func insert(member: Hash256, nonce: [UInt8], expiry: Int64, now: Int64) -> Outcome {
        let key = Key(member: member, nonce: nonce)
        return state.withLock { state in
            if let seen = state.expiries[key], seen >= now { return .replayed }
            // Sweep expired entries every 10 s, or every second while full (O(n), never per request).
            let sinceSweep = now - state.lastSweep
            if sinceSweep > 10_000 || (state.expiries.count >= capacity && sinceSweep > 1_000) {
                state.expiries = state.expiries.filter { $0.value >= now }
                state.lastSweep = now
            }
            guard state.expiries.count < capacity else { return .full }
            state.expiries[key] = expiry
            return .fresh
        }
    }

    var count: Int { state.withLock { $0.expiries.count } }
}
