import Testing
import Foundation
import Synchronization
import LedgerCore
import LedgerTesting
@testable import Node

/// Event streams: every block once, in order, whether read back from the store or delivered live;
/// limits per client and in total; closing frees the slot; readers catching up take turns.
struct BlockSubscriptionTests {
    @Test func streamsDeliverEveryBlockOnceInOrderFromTheStoreThenLive() async throws {
        let harness = try NodeHarness(batchSize: 1)
        let node = harness.node
        for serial in 0..<20 {
            _ = try await harness.commit(try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())))
        }
        let tip = node.tip.height
        let fromStart = try node.events(from: 0, client: "a")
        let live = try node.events(from: nil, client: "a")
        // Two more blocks while the first stream has read nothing yet.
        for serial in 20..<22 {
            _ = try await harness.commit(try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())))
        }
        var heights: [UInt64] = []
        for await event in fromStart {
            heights.append(event.height)
            if event.height == tip + 2 { break }
        }
        #expect(heights == Array(0...(tip + 2)))
        var liveHeights: [UInt64] = []
        for await event in live {
            liveHeights.append(event.height)
            if event.height == tip + 2 { break }
        }
        #expect(liveHeights == [tip + 1, tip + 2])
        fromStart.close()
        live.close()
        try await harness.stop()
    }

    @Test func limitsPerClientAndClosingFreesTheSlot() async throws {
        let harness = try NodeHarness()
        let node = harness.node
        var open: [BlockSubscription] = []
        for _ in 0..<LedgerNode.maxSubscribersPerClient { open.append(try node.events(from: nil, client: "reader")) }
        #expect(throws: LedgerError.self) { try node.events(from: nil, client: "reader") }
        // Another client is not affected.
        let other = try node.events(from: nil, client: "someone-else")
        open.removeLast().close()
        open.append(try node.events(from: nil, client: "reader"))
        // A closed stream ends its consumer at once, even while it waits for a block.
        let waiting = open[0]
        let consumer = Task { () -> Int in
            var count = 0
            for await _ in waiting { count += 1 }
            return count
        }
        waiting.close()
        #expect(await consumer.value == 0)
        for subscription in open { subscription.close() }
        other.close()
        var again: [BlockSubscription] = []
        for _ in 0..<LedgerNode.maxSubscribersPerClient { again.append(try node.events(from: nil, client: "reader")) }
        for subscription in again { subscription.close() }
        try await harness.stop()
    }

    @Test func aCancelledConsumerStopsWaiting() async throws {
        let harness = try NodeHarness()
        let subscription = try harness.node.events(from: nil, client: "c")
        let consumer = Task { () -> Int in
            var count = 0
            for await _ in subscription { count += 1 }
            return count
        }
        consumer.cancel()
        #expect(await consumer.value == 0)
        subscription.close()
        try await harness.stop()
    }

    /// Readers catching up on old blocks hold the gate one at a time, in arrival order.
    @Test func turnGateGrantsOnePermitAtATimeInOrder() async throws {
        let gate = TurnGate(permits: 1)
        await gate.acquire()
        let log = GateLog()
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    await gate.acquire()
                    log.enter(index)
                    await Task.yield()
                    log.leave()
                    gate.release()
                }
            }
            // Everyone is queued behind the permit this test holds.
            while gate.state.withLock({ $0.waiters.count }) < 8 { await Task.yield() }
            #expect(log.state.withLock { $0.order }.isEmpty)
            gate.release()
            await group.waitForAll()
        }
        #expect(log.state.withLock { $0.maxInside } == 1)
        #expect(log.state.withLock { $0.order }.count == 8)
        #expect(gate.state.withLock { $0.available } == 1)
    }
}

final class GateLog: Sendable {
    struct State {
        var order: [Int] = []
        var inside = 0
        var maxInside = 0
    }

    let state = Mutex(State())

    func enter(_ index: Int) {
        state.withLock { state in
            state.inside += 1
            state.maxInside = max(state.maxInside, state.inside)
            state.order.append(index)
        }
    }

    func leave() {
        state.withLock { $0.inside -= 1 }
    }
}
