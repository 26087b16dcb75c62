import Testing
import Ordering

struct BlockCutterTests {
    @Test func cutsWhenFull() {
        var cutter = BlockCutter<Int>(batchSize: 3)
        #expect(cutter.enqueue(1).count == 1)  // arms the timer
        #expect(cutter.enqueue(2).isEmpty)
        let directives = cutter.enqueue(3)
        guard case .cut(let batch)? = directives.first else {
            Issue.record("expected a cut, got \(directives)")
            return
        }
        #expect(batch == [1, 2, 3])
        #expect(cutter.pending.isEmpty)
    }

    @Test func cutsOnTimerAndIgnoresStaleTimers() {
        var cutter = BlockCutter<Int>(batchSize: 2)
        guard case .armTimer(let first)? = cutter.enqueue(1).first else {
            Issue.record("first item must arm a timer")
            return
        }
        _ = cutter.enqueue(2)  // full: cut by size, so the first timer is stale
        #expect(cutter.timerFired(generation: first).isEmpty)
        guard case .armTimer(let second)? = cutter.enqueue(3).first else {
            Issue.record("a new batch must arm a new timer")
            return
        }
        guard case .cut(let batch)? = cutter.timerFired(generation: second).first else {
            Issue.record("the live timer must cut")
            return
        }
        #expect(batch == [3])
        #expect(cutter.timerFired(generation: second).isEmpty)
    }

    @Test func flushCutsWhatIsPending() {
        var cutter = BlockCutter<Int>(batchSize: 10)
        _ = cutter.enqueue(1)
        _ = cutter.enqueue(2)
        guard case .cut(let batch)? = cutter.flush().first else {
            Issue.record("flush must cut")
            return
        }
        #expect(batch == [1, 2])
        #expect(cutter.flush().isEmpty)
    }

    @Test func preservesOrderAcrossManyBatches() {
        var cutter = BlockCutter<Int>(batchSize: 7)
        var delivered: [Int] = []
        for item in 0..<100 {
            for case .cut(let batch) in cutter.enqueue(item) { delivered += batch }
        }
        for case .cut(let batch) in cutter.flush() { delivered += batch }
        #expect(delivered == Array(0..<100))
    }
}
