import Testing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerStore
import Node
import Etcd
import LedgerTesting

extension ProcessNetwork {
    /// The checker, once every fault has healed and the load has stopped: waits for every node to
    /// hold the same chain, stops the nodes cleanly, then reads their databases and requires
    ///
    /// * every acknowledged transaction committed (not refused) on every node,
    /// * the same block hash and the same state root at every height on every node, and the same tip,
    /// * epochs that never go backwards along the chain, block times that never go backwards,
    /// * every database passing `medledger verify` (``ChainVerifier``).
    ///
    /// Returns the common height.
    @discardableResult
    func checkConverged(acknowledged: [Hash256], timeout: Duration = .seconds(90)) async throws -> UInt64 {
        let deadline = ContinuousClock.now + timeout
        #expect(Set(runningNames) == Set(names), "not every node runs at the check: \(runningNames)")
        // A probe through every node, queued after every acknowledged transaction: once it is
        // committed everywhere, so is everything acknowledged before it (the leader cuts the queue in
        // etcd revision order).
        try await progress(since: .now, what: "final probe before the check", timeout: timeout)
        // Quiescent: nothing left in etcd's queue and every node at etcd's tip.
        let queuePrefix = Array("/medledger/\(definition.networkID.hex)/queue/".utf8)
        let tipKey = Array("/medledger/\(definition.networkID.hex)/tip".utf8)
        var heights: [String: UInt64] = [:]
        while true {
            let (queued, tip) = try await withEtcd { client in
                (try await client.range(prefix: queuePrefix).kvs.count,
                 try await client.range(tipKey).kvs.first.flatMap { UInt64(String(decoding: $0.value, as: UTF8.self)) })
            }
            heights = [:]
            for name in runningNames { heights[name] = await height(name) }
            if queued == 0, let tip, heights.values.allSatisfy({ $0 == tip }), heights.count == runningNames.count { break }
            guard ContinuousClock.now < deadline else {
                Issue.record("no convergence within \(timeout): \(queued) queue entries, etcd tip \(String(describing: tip)), nodes \(heights)")
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        for name in runningNames {
            guard let process = process(name) else { continue }
            process.send(SIGTERM)
            let code = await process.waitForExit(timeout: .seconds(30))
            #expect(code == 0, "\(name) exited with \(String(describing: code)): \(process.errors.withLock { $0 }.suffix(2000))")
            _ = running.withLock { $0.removeValue(forKey: name) }
        }
        timeline.note("nodes stopped at heights \(heights); checking \(acknowledged.count) acknowledged transactions in \(names.count) databases")

        let stores = try names.map { try LedgerStore(path: database($0)) }
        let tips = try stores.map { try #require(try $0.tip()) }
        #expect(Set(tips.map(\.hash)).count == 1, "tips differ: \(zip(names, tips.map(\.height)).map { "\($0)=\($1)" })")
        let common = tips.map(\.height).min() ?? 0
        var previous: BlockHeader?
        for height in 0...common {
            let headers = try stores.map { try #require(try $0.block(at: height)).header }
            #expect(Set(headers.map(\.hash)).count == 1, "block \(height) differs between nodes")
            #expect(Set(headers.map(\.stateRoot)).count == 1, "the state root at \(height) differs between nodes")
            if let previous {
                #expect(headers[0].epoch >= previous.epoch, "epoch goes backwards at \(height): \(previous.epoch) → \(headers[0].epoch)")
                #expect(headers[0].timestamp >= previous.timestamp, "block time goes backwards at \(height)")
            }
            previous = headers[0]
        }
        for (name, store) in zip(names, stores) {
            var missing: [Hash256] = []
            var refused: [(Hash256, UInt16)] = []
            for id in acknowledged {
                guard let stored = try store.transaction(id: id) else { missing.append(id); continue }
                if !stored.result.isCommitted { refused.append((id, stored.result.status)) }
            }
            #expect(missing.isEmpty, "\(name): \(missing.count) of \(acknowledged.count) acknowledged transactions are not in the chain, e.g. \(missing.prefix(3).map { $0.hex.prefix(12) })")
            #expect(refused.isEmpty, "\(name): \(refused.count) acknowledged transactions were refused in execution, e.g. status \(refused.prefix(3).map(\.1))")
            let report = ChainVerifier.verify(store: store)
            #expect(report.ok, "\(name): verify failed: \(report.failure ?? "")")
        }
        let epochs = Set(try (0...common).map { try #require(try stores[0].block(at: $0)).header.epoch })
        timeline.note("check done: height \(common) on every node, \(epochs.count) leader epochs, \(acknowledged.count) acknowledged transactions looked up in every database, every database verified")
        return common
    }
}
