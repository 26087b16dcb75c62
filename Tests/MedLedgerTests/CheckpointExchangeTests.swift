import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Crypto
import Hummingbird
import Synchronization
import LedgerCore
import LedgerStore
import Node
import Ordering
import Server
import LedgerTesting

/// Nodes publish their signed checkpoints through the log and judge each other's: agreement is
/// recorded, a forged or non-node statement is ignored, one dissenting node raises the alarm
/// without stopping the majority, and a node the others outvote halts and says why.
struct CheckpointExchangeTests {
    static func registerSome(_ harness: ReplicatedHarness, count: Int, offset: Int = 0, through names: [String]? = nil) async throws {
        let names = names ?? harness.names
        for index in offset..<(offset + count) {
            let name = names[index % names.count]
            let envelope = try harness.sign(name.replacingOccurrences(of: "/node", with: "/collector"),
                                            .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
            let id = try harness.node(name).submit(envelope.encoded)
            guard case .committed = try await harness.node(name).waitForCommit(id, timeout: .seconds(60)) else {
                throw LedgerError(.internal, "registration \(index) through \(name) did not commit within 60 s")
            }
        }
    }

    static func eventually(_ what: String, timeout: Duration = .seconds(90), _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            guard ContinuousClock.now < deadline else { throw LedgerError(.internal, "timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A checkpoint `signer` signs for `header`, with its fields changed by `change`.
    static func statement(by signer: SigningIdentity, of header: BlockHeader, change: (inout Hash256) -> Void = { _ in }) -> PublishedCheckpoint {
        var blockHash = header.hash
        change(&blockHash)
        let body = Checkpoint.body(height: header.height, blockHash: blockHash, stateRoot: header.stateRoot,
                                   logSize: header.logSize, logRoot: header.logRoot)
        return PublishedCheckpoint(signer: signer.fingerprint, body: body, signature: signer.sign(body))
    }

    static func other(_ hash: inout Hash256) { hash = Hash256.of(hash.bytes) }

    /// An empty block 1 on the harness's genesis, signed by the registered node that is not running
    /// (`city-childrens/node`), with `change` applied to its header.
    static func emptyBlock(after harness: ReplicatedHarness, epoch: UInt64, change: (inout BlockHeader) -> Void = { _ in }) throws -> Block {
        let genesis = harness.node(harness.names[0]).tip
        let proposer = try harness.definition.identity(named: ReplicatedHarness.defaultNodes[2], directory: harness.directory)
        var header = genesis
        header.height = 1
        header.previousHash = genesis.hash
        header.proposer = proposer.fingerprint
        header.epoch = epoch
        header.transactionCount = 0
        change(&header)
        return Block(header: header, signature: proposer.sign(header.encoded), envelopes: [])
    }

    @Test func everyNodeJudgesTheOthersCheckpointsAsAgreeing() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await Self.registerSome(harness, count: 12)
        let height = harness.highestHeight
        try await harness.waitForHeight(height)
        try await Self.eventually("every node published its checkpoint at height \(height) and judged the others' as agreeing") {
            let published = log.publishedCheckpoints.values.compactMap { try? $0.statement().height }
            return published.count == 3 && published.allSatisfy { $0 == height }
                && harness.names.allSatisfy { name in
                    let peers = harness.node(name).peerCheckpoints
                    return peers.count == 2 && peers.allSatisfy { $0.verdict == .agrees && $0.height == height }
                }
        }
        let metrics = harness.node(harness.names[1]).metrics.render()
        #expect(metrics.contains("medledger_peer_checkpoints{verdict=\"agrees\"} 2\n"))
        #expect(metrics.contains("medledger_peer_checkpoints{verdict=\"conflicts\"} 0\n"))
        // What a node published is its signature over its own committed header.
        for (signer, published) in log.publishedCheckpoints {
            let statement = try published.statement()
            let header = try #require(try harness.node(harness.names[0]).store.header(at: statement.height))
            #expect(statement.blockHash == header.hash && statement.stateRoot == header.stateRoot)
            let identity = try #require(try harness.names.map { try harness.definition.identity(named: $0, directory: harness.directory) }
                .first { $0.fingerprint == signer })
            #expect(SignatureCheck.isValid(signature: published.signature, message: published.body, publicKey: identity.privateKey.publicKey))
        }
        await harness.stopAll()
    }

    /// Statements that a node did not sign, or that no node signed, are not evidence of anything.
    @Test func forgedAndNonNodeCheckpointsAreIgnored() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await Self.registerSome(harness, count: 3)
        let first = harness.node(harness.names[0])
        try await harness.waitForHeight(first.tip.height)
        await harness.stop(harness.names[2])
        await harness.stop(harness.names[1])
        let tip = first.tip
        let nodeB = try harness.definition.identity(named: harness.names[1], directory: harness.directory)
        let admin = try harness.definition.identity(named: "north-general/admin", directory: harness.directory)
        // B's fingerprint, signed by another key.
        var forged = Self.statement(by: admin, of: tip, change: Self.other)
        forged.signer = nodeB.fingerprint
        try await log.publish(forged)
        // Validly signed, by a member that is not a node.
        try await log.publish(Self.statement(by: admin, of: tip, change: Self.other))
        // Garbage body under C's name, validly signed.
        let nodeC = try harness.definition.identity(named: harness.names[2], directory: harness.directory)
        try await log.publish(PublishedCheckpoint(signer: nodeC.fingerprint, body: [1, 2, 3], signature: nodeC.sign([1, 2, 3])))
        try await Task.sleep(for: .milliseconds(300))
        #expect(first.divergence == nil)
        #expect(!first.peerCheckpoints.contains { $0.verdict == .conflicts }, "\(first.peerCheckpoints)")
        #expect(!first.peerCheckpoints.contains { $0.node == admin.fingerprint })
        #expect(first.metrics.render().contains("medledger_peer_checkpoints{verdict=\"conflicts\"} 0\n"))
        await harness.stopAll()
    }

    /// One node that signs a different chain cannot stop the others: they raise the alarm and go on.
    @Test func oneDissentingNodeRaisesTheAlarmAndTheMajorityGoesOn() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await Self.registerSome(harness, count: 3)
        try await harness.waitForHeight(harness.highestHeight)
        let dissenter = harness.names[2]
        await harness.stop(dissenter)
        let tip = harness.node(harness.names[0]).tip
        let nodeC = try harness.definition.identity(named: dissenter, directory: harness.directory)
        try await log.publish(Self.statement(by: nodeC, of: tip, change: Self.other))
        for name in harness.names.prefix(2) {
            try await Self.eventually("\(name) judged \(dissenter)'s checkpoint as conflicting") {
                harness.node(name).peerCheckpoints.contains { $0.node == nodeC.fingerprint && $0.verdict == .conflicts }
            }
            #expect(harness.node(name).divergence == nil)
            #expect(harness.node(name).metrics.render().contains("medledger_peer_checkpoints{verdict=\"conflicts\"} 1\n"))
        }
        // The majority still orders and commits.
        try await Self.registerSome(harness, count: 2, offset: 10, through: Array(harness.names.prefix(2)))
        #expect(harness.node(harness.names[0]).tip.height > tip.height)
        await harness.stopAll()
    }

    /// A node that every other node contradicts stops: it refuses submissions, its API answers
    /// 503 `diverged` with the reason, `/health` says so, and it stays up until it is shut down.
    @Test func aNodeTheOthersContradictHaltsAndSaysWhy() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await Self.registerSome(harness, count: 3)
        try await harness.waitForHeight(harness.highestHeight)
        let alone = harness.node(harness.names[0])
        let (node, runner) = try #require(harness.nodes.withLock { $0[harness.names[0]] })
        await harness.stop(harness.names[2])
        await harness.stop(harness.names[1])
        let tip = alone.tip
        let finished = Mutex(false)
        let watcher = Task { _ = await runner.result; finished.withLock { $0 = true } }
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = APIServer.application(node: node, port: 0, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }) {
            portContinuation.yield($0)
        }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var portIterator = ports.makeAsyncIterator()
        let port = try #require(await portIterator.next())
        for name in harness.names.dropFirst() {
            let identity = try harness.definition.identity(named: name, directory: harness.directory)
            try await log.publish(Self.statement(by: identity, of: tip, change: Self.other))
        }
        try await Self.eventually("the outvoted node halted") { alone.divergence != nil }
        let divergence = try #require(alone.divergence)
        #expect(divergence.height == tip.height)
        #expect(divergence.reason.contains("2 of the 2 other nodes"), "\(divergence.reason)")
        #expect(alone.metrics.render().contains("medledger_divergence_alarm 1\n"))
        let envelope = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(99), attributes: Fixtures.attributes()))
        #expect(throws: LedgerError.self) { try alone.submit(envelope.encoded) }
        do { _ = try alone.submit(envelope.encoded) } catch { #expect(error.code == .diverged) }
        // Over HTTP: health says diverged; ledger routes refuse, before authentication, without the
        // reason (hashes and fingerprints are for members: GET /v1/node, signed, gives it).
        func get(_ path: String) async throws -> (Int, String) {
            let (body, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: body, as: UTF8.self))
        }
        let (healthStatus, health) = try await get("/health")
        #expect(healthStatus == 503 && health.contains("\"status\":\"diverged\"") && !health.contains("signed a different chain"), "\(health)")
        let (chainStatus, chain) = try await get("/v1/chain")
        #expect(chainStatus == 503 && chain.contains("\"code\":\"diverged\"") && chain.contains("signed by a member"), "\(chain)")
        #expect(!chain.contains("signed a different chain"), "an unauthenticated caller learns why: \(chain)")
        let answer = await alone.status()
        #expect(answer.divergence?.reason.contains("signed a different chain") == true, "GET /v1/node says why")
        try await Task.sleep(for: .milliseconds(200))
        #expect(!finished.withLock { $0 }, "a halted node stays up (to say why) until it is shut down")
        alone.shutdown()
        try await runner.value
        _ = await watcher.value
        server.cancel()
        _ = await server.result
        await harness.stopAll()
    }

    /// A leader's block that the followers' execution contradicts: each follower halts, saying why,
    /// and publishes the checkpoint it computed instead, signed, for the others to judge.
    @Test func followersThatContradictTheLeadersBlockPublishWhatTheyComputed() async throws {
        let log = MemoryReplicatedLog()
        // The test holds leadership: the two running nodes follow and wait to campaign.
        let leadership = try await log.campaign(candidate: .zero)
        let harness = try ReplicatedHarness(log: log, nodes: Array(ReplicatedHarness.defaultNodes.prefix(2)))
        let block = try Self.emptyBlock(after: harness, epoch: leadership.epoch) { $0.stateRoot = Hash256.of(Array("not what executing this block gives".utf8)) }
        let header = block.header
        #expect(try await log.append(block, encoded: block.encoded, leadership: leadership, consumed: []) == .appended)
        for name in harness.names {
            try await Self.eventually("\(name) halted on the leader's block") { harness.node(name).divergence != nil }
            let divergence = try #require(harness.node(name).divergence)
            #expect(divergence.height == 1 && divergence.reason.contains("different header"), "\(divergence)")
            #expect(harness.node(name).tip.height == 0, "the contradicted block is not committed")
        }
        try await Self.eventually("both followers published what they computed for height 1") {
            harness.names.allSatisfy { name in
                let fingerprint = harness.node(name).identity.fingerprint
                guard let published = log.publishedCheckpoints[fingerprint], let statement = try? published.statement() else { return false }
                return statement.height == 1 && statement.blockHash != header.hash
            }
        }
        await harness.stopAll()
    }

    /// The fuzz seeds of the two ordering-store records reach their decoders' accepting paths, and
    /// pin the byte layout (docs/formats.md §13a).
    @Test func orderingRecordFuzzSeedsDecode() throws {
        let corpus = FuzzRegressionTests.repositoryRoot.appendingPathComponent("FuzzTesting/Corpus")
        let queued = [UInt8](try Data(contentsOf: corpus.appendingPathComponent("51-queue-entry")))
        #expect(FuzzHarness.targetName(of: queued) == "queueEntry")
        let entry = try QueueEntry(position: QueuePosition(node: .zero, sequence: 1), decoding: Array(queued.dropFirst()))
        #expect(entry.envelopes == [[1, 2, 3], []])
        let published = [UInt8](try Data(contentsOf: corpus.appendingPathComponent("52-published-checkpoint")))
        #expect(FuzzHarness.targetName(of: published) == "publishedCheckpoint")
        let checkpoint = try PublishedCheckpoint(decoding: Array(published.dropFirst()))
        #expect(checkpoint.signer == Hash256.of(Array("signer".utf8)))
        let statement = try checkpoint.statement()
        #expect(statement.height == 7 && statement.logSize == 12 && statement.blockHash == Hash256.of(Array("block".utf8)))
        #expect(checkpoint.encoded == Array(published.dropFirst()))
        #expect(Hash256.of(checkpoint.encoded).hex == "6062662364c16cf47931026c63eaec808380416ec08173718286bcb0669d25df")
    }

    /// A sealer cannot pick its epoch: one block with epoch 2⁶⁴−1 once made every later honest
    /// block "older" (refused), and the followers' processes exited. Now the epoch must be below
    /// the revision that wrote the block, and a refused block halts the node, which stays up.
    @Test func aBlockWithAnEpochAboveItsRevisionIsRefused() async throws {
        let log = MemoryReplicatedLog()
        let leadership = try await log.campaign(candidate: .zero)
        let harness = try ReplicatedHarness(log: log, nodes: Array(ReplicatedHarness.defaultNodes.prefix(2)))
        let block = try Self.emptyBlock(after: harness, epoch: .max)
        #expect(try await log.append(block, encoded: block.encoded, leadership: leadership, consumed: []) == .appended)
        for name in harness.names {
            try await Self.eventually("\(name) refused the block") { harness.node(name).divergence != nil }
            let reason = harness.node(name).divergence?.reason ?? ""
            #expect(reason.contains("claims epoch"), "\(reason)")
            #expect(harness.node(name).tip.height == 0)
        }
        await harness.stopAll()
    }

    /// A node that lags (its honest peers' checkpoints are ahead of it) is not outvoted by one
    /// dissenter: peers ahead count as presumed agreeing.
    @Test func aLaggingNodeIsNotHaltedByOneDissenter() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await Self.registerSome(harness, count: 3)
        try await harness.waitForHeight(harness.highestHeight)
        await harness.stop(harness.names[2])
        await harness.stop(harness.names[1])
        let node = harness.node(harness.names[0])
        let tip = node.tip
        let dissenter = try harness.definition.identity(named: harness.names[2], directory: harness.directory)
        let ahead = try harness.definition.identity(named: harness.names[1], directory: harness.directory)
        var future = tip
        future.height += 5
        try await log.publish(Self.statement(by: ahead, of: future))
        try await log.publish(Self.statement(by: dissenter, of: tip, change: Self.other))
        try await Self.eventually("the dissent was judged") { node.peerCheckpoints.contains { $0.verdict == .conflicts } }
        try await Task.sleep(for: .milliseconds(200))
        #expect(node.divergence == nil, "\(String(describing: node.divergence))")
        #expect(node.peerCheckpoints.map(\.verdict).sorted { $0.rawValue < $1.rawValue } == [.ahead, .conflicts])
        await harness.stopAll()
    }
}
