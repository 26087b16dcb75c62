import Testing
import LedgerCore
import Foundation
import Synchronization
import Contracts
import LedgerTesting
@testable import Node

/// Block time: the sealing node's clock, kept within half the skew window of the median time of the
/// batch's signed transactions, never before the previous block (see ClockSkewTests for the faults).
struct BlockTimeTests {
    static let identity = try! TestNetwork.issue(try! CertificateAuthority.create(organization: "st-mary"), name: "st-mary/collector",
                                                 role: .collector, now: Date())

    static func batch(_ times: [Int64], verified: Bool = true) -> [PreparedTransaction] {
        times.map { time in
            let (_, envelope) = identity.transaction(network: .zero, contract: "devices", action: "register", arguments: [], timestamp: time)
            let bytes = envelope.encoded
            return PreparedTransaction(envelope: envelope, bytes: bytes, payload: try! envelope.payload(), signatureVerified: verified)
        }
    }

    @Test func aRightClockIsUsedAsItIs() {
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 0, batch: Self.batch([999_000, 1_000_500, 1_001_000]), skew: 10_000) == 1_000_000)
    }

    /// Red team: with no verified signed time a block had no bound, and a leader could set it near
    /// `Int64.max` (every later transaction refused as skewed, for good). It now stands still.
    @Test func withoutAVerifiedSignedTimeBlockTimeStandsStill() {
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 990_000, batch: [], skew: 10_000) == 990_000)
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 990_000, batch: Self.batch([1_000_000], verified: false), skew: 10_000) == 990_000)
        #expect(LedgerNode.latestBlockTime(previous: 990_000, batch: [], skew: 10_000) == 990_000)
        #expect(LedgerNode.latestBlockTime(previous: 990_000, batch: Self.batch([.max]), skew: 10_000) == 990_000)
    }

    @Test func aClockAheadIsHeldBackByTheTransactions() {
        let batch = Self.batch([1_000_000, 1_000_100, 1_000_200])
        #expect(LedgerNode.blockTime(now: 1_120_000, previous: 0, batch: batch, skew: 10_000) == 1_005_100)
        // A clock behind is not moved forward by the transactions (a leader runs on from its floor).
        #expect(LedgerNode.blockTime(now: 880_000, previous: 0, batch: batch, skew: 10_000) == 880_000)
        #expect(LedgerNode.blockTime(now: 880_000, previous: 990_000, batch: batch, skew: 10_000) == 990_000)
    }

    @Test func aLeadersFloorMovesABehindClockOnButNotPastTheTransactions() {
        let batch = Self.batch([1_000_000, 1_000_100, 1_000_200])
        #expect(LedgerNode.blockTime(now: 880_000, floor: 1_000_050, previous: 990_000, batch: batch, skew: 10_000) == 1_000_050)
        // A chain already ahead (previous) waits for real time; a floor from it does not keep it ahead.
        #expect(LedgerNode.blockTime(now: 1_000_000, floor: 1_020_000, previous: 1_010_000, batch: batch, skew: 10_000) == 1_010_000)
    }

    @Test func neverBeforeThePreviousBlock() {
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 1_003_000, batch: Self.batch([1_000_000]), skew: 10_000) == 1_003_000)
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 1_003_000, batch: Self.batch([900_000]), skew: 10_000) == 1_003_000)
    }

    @Test func futureTimesOrAMinorityOrUnverifiedTransactionsDoNotMoveIt() {
        let batch = Self.batch([.max, 1_000_000, 1_000_001]) + Self.batch([.min, .min, .min], verified: false)
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 0, batch: batch, skew: 10_000) == 1_000_000)
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 0, batch: Self.batch([.max]), skew: 10_000) == 0, "no usable signed time")
        #expect(LedgerNode.blockTime(now: 1_000_000, previous: 0, batch: Self.batch([2_000_000, 3_000_000]), skew: 10_000) == 1_000_000)
    }
}

/// A follower refuses a block whose time a leader pushed past its transactions' signed times
/// (the bound every honest leader keeps), and accepts one at the bound.
struct FollowerBlockTimeTests {
    @Test func aBlockTimeAheadOfTheSignedTimesHaltsTheFollowerAndOneAtTheBoundIsAccepted() throws {
        let pair = try PipelinedSealingTests.Pair()
        let now = Clock.nowMilliseconds()
        let batch = try (0..<3).map { index in
            try pair.envelope("st-mary/collector", .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
        }
        let prepared = pair.leader.prepared(batch)
        let skew = pair.leader.chain.withLock { $0.config.clockSkewMilliseconds }
        let latest = try #require(LedgerNode.latestBlockTime(batch: prepared, skew: skew))
        #expect(latest >= now && latest <= Clock.nowMilliseconds() + Int64(skew / 2))
        func sealed(at time: Int64) throws -> LedgerNode.ExecutedBlock {
            let tip = pair.leader.tip
            let assembled = try pair.leader.execute(prepared, previous: tip, frontier: pair.leader.chain.withLock { $0.frontier },
                                                    blockTime: time, proposer: pair.leader.identity.fingerprint, epoch: 0)
            let headerBytes = assembled.header.encoded
            return LedgerNode.ExecutedBlock(transactions: prepared, assembled: assembled, headerBytes: headerBytes,
                                            signature: pair.leader.identity.sign(headerBytes), started: .now)
        }
        #expect(throws: LedgerError.self) { try pair.receive(try sealed(at: latest + 1)) }
        #expect(pair.follower.tip.height == 0)
        let atBound = try sealed(at: latest)
        try pair.receive(atBound)
        #expect(pair.follower.tip.hash == atBound.header.hash)
    }
}
