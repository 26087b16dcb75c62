import Testing
import Foundation
import Synchronization
import LedgerCore
import LedgerTesting

/// Load from clients of every node: each worker submits device registrations to one node, one at a
/// time, and records every transaction the node acknowledged (202). Refusals and errors are counted
/// per node; during a fault they are expected, a lost acknowledged transaction never is.
final class ProcessLoad: Sendable {
    struct Acknowledged: Sendable {
        var id: Hash256
        var node: String
        var at: ContinuousClock.Instant
    }

    let network: ProcessNetwork
    let acknowledged = Mutex<[Acknowledged]>([])
    let errors = Mutex<[String: (count: Int, last: String)]>([:])
    let stopping = Mutex(false)
    let workers = Mutex<Task<Void, Never>?>(nil)
    /// Each load gets its own serial range, so two loads in one test never collide on a UDI.
    let base: Int

    init(_ network: ProcessNetwork, base: Int = 0) {
        self.network = network
        self.base = base
    }

    var count: Int { acknowledged.withLock { $0.count } }
    var ids: [Hash256] { acknowledged.withLock { $0.map(\.id) } }

    /// Starts `perNode` workers for each of `targets` (every node by default); a worker whose node
    /// is down retries every 100 ms.
    func start(perNode: Int = 2, targets: [String]? = nil) {
        let targets = targets ?? network.names
        let task = Task { [self] in
            await withTaskGroup(of: Void.self) { group in
                for (index, target) in targets.flatMap({ target in Array(repeating: target, count: perNode) }).enumerated() {
                    group.addTask { await self.work(target, worker: index) }
                }
            }
        }
        workers.withLock { $0 = task }
        network.timeline.note("load started: \(perNode) clients on each of \(targets)")
    }

    private func work(_ target: String, worker: Int) async {
        var serial = base + worker * 1_000_000
        while !stopping.withLock({ $0 }) {
            serial += 1
            guard network.url(target) != nil, let (id, envelope) = try? network.transaction(target, serial: serial) else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            switch await network.submit(envelope, to: target) {
            case .success:
                acknowledged.withLock { $0.append(Acknowledged(id: id, node: target, at: .now)) }
            case .failure(let error):
                errors.withLock { $0[target] = (($0[target]?.count ?? 0) + 1, error.message) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Waits until `total` transactions have been acknowledged since the load started.
    func waitFor(_ total: Int, timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while count < total {
            guard ContinuousClock.now < deadline else {
                throw LedgerError(.unavailable, "only \(count) of \(total) transactions acknowledged within \(timeout); errors: \(errorSummary)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until `more` transactions beyond those acknowledged now are acknowledged.
    func waitForMore(_ more: Int, timeout: Duration = .seconds(120)) async throws {
        try await waitFor(count + more, timeout: timeout)
    }

    /// Acknowledgements per node after `instant`.
    func acknowledged(after instant: ContinuousClock.Instant) -> [String: Int] {
        acknowledged.withLock { list in
            var counts: [String: Int] = [:]
            for ack in list where ack.at > instant { counts[ack.node, default: 0] += 1 }
            return counts
        }
    }

    /// How many transactions `node` acknowledged between two instants.
    func acknowledged(by node: String, from: ContinuousClock.Instant, to: ContinuousClock.Instant) -> Int {
        acknowledged.withLock { list in list.filter { $0.node == node && $0.at > from && $0.at < to }.count }
    }

    var errorSummary: String {
        errors.withLock { errors in
            errors.keys.sorted().map { "\($0): \(errors[$0]!.count) (last: \(errors[$0]!.last.prefix(160)))" }.joined(separator: "; ")
        }
    }

    /// Stops every worker and waits for the requests in flight.
    func stop() async {
        stopping.withLock { $0 = true }
        await workers.withLock { $0 }?.value
        network.timeline.note("load stopped: \(count) acknowledged; refused or failed: \(errorSummary.isEmpty ? "none" : errorSummary)")
    }
}
