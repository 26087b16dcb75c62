import Testing
import Foundation
import Synchronization
import Logging
import LedgerCore
import Contracts
import LedgerStore
import Node
import Ordering
import LedgerTesting

/// Several nodes of one network, each with its own database, ordering through one replicated log.
final class ReplicatedHarness: Sendable {
    let directory: String
    let definition: NetworkDefinition
    /// Each node's own connection to the log (the same log for an in-memory one).
    let makeLog: @Sendable (_ node: String, _ network: Hash256) -> any ReplicatedLog
    let names: [String]
    let nodes: Mutex<[String: (node: LedgerNode, runner: Task<Void, any Error>)]>

    convenience init(log: any ReplicatedLog, nodes names: [String] = ReplicatedHarness.defaultNodes, batchSize: UInt32 = 50,
                     research: ResearchPolicy = ResearchPolicy()) throws {
        try self.init(nodes: names, batchSize: batchSize, research: research) { _, _ in log }
    }

    init(nodes names: [String] = ReplicatedHarness.defaultNodes, batchSize: UInt32 = 50, research: ResearchPolicy = ResearchPolicy(),
         makeLog: @escaping @Sendable (_ node: String, _ network: Hash256) -> any ReplicatedLog) throws {
        directory = Fixtures.temporaryPath("replicated")
        var spec = NetworkSpec.demo
        spec.config = NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: 20, research: research)
        definition = try NetworkBuilder.build(spec, directory: directory)
        self.makeLog = makeLog
        self.names = names
        nodes = Mutex([:])
        for name in names { try start(name) }
    }

    static let defaultNodes = ["st-mary/node", "north-general/node", "city-childrens/node"]

    func start(_ name: String) throws {
        let database = directory + "/" + name.replacingOccurrences(of: "/", with: "-") + ".sqlite"
        let node = try LedgerNode(directory: directory, identity: name, databasePath: database,
                                  ordering: .replicated(makeLog(name, definition.networkID)), logger: ReplicatedHarness.logger(name))
        let runner = Task { try await node.run() }
        nodes.withLock { $0[name] = (node, runner) }
    }

    static func logger(_ name: String) -> Logger {
        var logger = Logger(label: name) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["MEDLEDGER_TEST_LOG"] == nil ? .critical : .debug
        return logger
    }

    func node(_ name: String) -> LedgerNode { nodes.withLock { $0[name]!.node } }

    /// Stops one node as a graceful shutdown would; returns its run loop's error, if any.
    @discardableResult
    func stop(_ name: String) async -> (any Error)? {
        guard let (node, runner) = nodes.withLock({ $0.removeValue(forKey: name) }) else { return nil }
        node.shutdown()
        do { try await runner.value } catch { return error }
        return nil
    }

    func stopAll() async {
        for name in nodes.withLock({ Array($0.keys) }) { await stop(name) }
    }

    func sign(_ name: String, _ action: DeviceAction) throws -> Envelope {
        let network = nodes.withLock { $0.values.first!.node.network }
        return try definition.identity(named: name, directory: directory)
            .transaction(network: network, contract: "devices", action: action.name, arguments: action.arguments).envelope
    }

    /// The highest tip among running nodes: after the last submission committed, the height every node reaches
    /// (one node's tip may lag the node that committed the last submission).
    var highestHeight: UInt64 { nodes.withLock { $0.values.map(\.node.tip.height).max() ?? 0 } }

    /// Waits until every running node has committed `height`.
    func waitForHeight(_ height: UInt64, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while nodes.withLock({ $0.values.contains { $0.node.tip.height < height } }) {
            guard ContinuousClock.now < deadline else {
                let heights = nodes.withLock { $0.mapValues { $0.node.tip.height } }
                throw LedgerError(.internal, "nodes did not reach height \(height) within \(timeout): \(heights)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Every running node at the same tip: same block hashes at every height, same state root.
    func expectConverged(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let running = nodes.withLock { Array($0.values.map(\.node)) }
        guard let first = running.first else { return }
        for node in running.dropFirst() {
            #expect(node.tip == first.tip, "tips differ", sourceLocation: sourceLocation)
        }
        for height in 0...first.tip.height {
            let hashes = Set(try running.map { try #require(try $0.store.block(at: height)).header.hash })
            #expect(hashes.count == 1, "block \(height) differs between nodes", sourceLocation: sourceLocation)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

struct ReplicationTests {
    /// Red team: every `GET /v1/node` read the log's height from etcd (the route is open to every
    /// organisation's admin): now at most once a second, one request at a time.
    @Test func aFloodOfStatusRequestsReadsTheLogHeightRarely() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        try await CheckpointExchangeTests.registerSome(harness, count: 3)
        let node = harness.node(harness.names[0])
        let before = log.latestHeightReads.withLock { $0 }
        let heights = await withTaskGroup(of: UInt64?.self) { group in
            for _ in 0..<200 { group.addTask { await node.status().logHeight } }
            return await group.reduce(into: [UInt64?]()) { $0.append($1) }
        }
        let reads = log.latestHeightReads.withLock { $0 } - before
        #expect(reads >= 1 && reads <= 3, "\(reads) log reads for 200 status answers")
        #expect(heights.compactMap { $0 }.max() == (try await log.latestHeight()))
        await harness.stopAll()
    }

    @Test func transactionsSubmittedAtEveryNodeCommitOnEveryNodeInOneOrder() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        var ids: [(String, Hash256)] = []
        for index in 0..<60 {
            let name = harness.names[index % harness.names.count]
            let collector = name.replacingOccurrences(of: "/node", with: "/collector")
            let envelope = try harness.sign(collector, .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
            let id = try harness.node(name).submit(envelope.encoded)
            try await harness.node(name).acknowledgement(of: id)
            ids.append((name, id))
        }
        // Every node answers for every transaction, wherever it was submitted.
        for name in harness.names {
            for (_, id) in ids {
                let status = try await harness.node(name).waitForCommit(id, timeout: .seconds(60))
                guard case .committed = status else {
                    Issue.record("\(id.hex.prefix(8)) on \(name): \(status)")
                    return
                }
            }
        }
        try await harness.waitForHeight(harness.highestHeight)
        try harness.expectConverged()
        #expect(log.queuedEntries == 0, "every acknowledged entry left the queue in the block that holds it")
        let devices = try harness.node("north-general/node").store.deviceUDIs(owner: nil, limit: 1000, offset: 0)
        #expect(devices.count == 60)
        await harness.stopAll()
        // Each node verifies its own database.
        for name in harness.names {
            let database = harness.directory + "/" + name.replacingOccurrences(of: "/", with: "-") + ".sqlite"
            let report = ChainVerifier.verify(store: try LedgerStore(path: database))
            #expect(report.ok, "\(name): \(report.failure ?? "")")
        }
    }

    @Test func aNewLeaderTakesOverAndLosesNoAcknowledgedTransaction() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        let first = try #require(await Self.leader(harness))
        let firstEpoch = try #require(harness.node(first).leaderEpoch)
        // Queue transactions at a follower, then depose the leader before they are cut.
        let follower = try #require(harness.names.first { $0 != first })
        var ids: [Hash256] = []
        for index in 0..<20 {
            let collector = follower.replacingOccurrences(of: "/node", with: "/collector")
            let id = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(100 + index), attributes: Fixtures.attributes())).encoded)
            try await harness.node(follower).acknowledgement(of: id)
            ids.append(id)
        }
        // The leader's lease expires (its process froze), then it is gone.
        log.expireLeader()
        await harness.stop(first)
        let second = try #require(await Self.leader(harness))
        #expect(second != first)
        for id in ids {
            guard case .committed = try await harness.node(follower).waitForCommit(id, timeout: .seconds(60)) else {
                Issue.record("acknowledged \(id.hex.prefix(8)) was not committed after failover")
                return
            }
        }
        // A transaction after the failover is sealed by the new leader, with its higher epoch.
        let collector = follower.replacingOccurrences(of: "/node", with: "/collector")
        let after = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(199), attributes: Fixtures.attributes())).encoded)
        guard case .committed = try await harness.node(follower).waitForCommit(after, timeout: .seconds(60)) else {
            Issue.record("a transaction after the failover did not commit")
            return
        }
        // Epochs in headers never decrease.
        let node = harness.node(second)
        var epoch: UInt64 = 0
        for height in 1...node.tip.height {
            let header = try #require(try node.store.block(at: height)).header
            #expect(header.epoch >= epoch)
            epoch = header.epoch
        }
        #expect(node.tip.epoch > firstEpoch)
        // The stopped node catches up from its height when it comes back.
        try harness.start(first)
        try await harness.waitForHeight(node.tip.height)
        try harness.expectConverged()
        await harness.stopAll()
    }

    @Test func aDeposedLeadersAppendIsRefused() async throws {
        let log = MemoryReplicatedLog()
        let old = try await log.campaign(candidate: Hash256.of([1]))
        log.expireLeader()
        let new = try await log.campaign(candidate: Hash256.of([2]))
        #expect(new.epoch > old.epoch)
        let header = BlockHeader(height: 1, previousHash: .zero, timestamp: 0, transactionCount: 0, transactionRoot: .zero,
                                 logSize: 0, logRoot: .zero, stateRoot: .zero, proposer: Hash256.of([1]), epoch: old.epoch)
        let block = Block(header: header, signature: [UInt8](repeating: 0, count: 64), envelopes: [])
        #expect(try await log.append(block, encoded: block.encoded, leadership: old, consumed: []) == .superseded)
        var current = header
        current.epoch = new.epoch
        let next = Block(header: current, signature: block.signature, envelopes: [])
        #expect(try await log.append(next, encoded: next.encoded, leadership: new, consumed: []) == .appended)
        // The height is taken: a second append at it fails even for the current leader.
        #expect(try await log.append(next, encoded: next.encoded, leadership: new, consumed: []) == .superseded)
    }

    static func leader(_ harness: ReplicatedHarness, timeout: Duration = .seconds(60)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let name = harness.nodes.withLock({ $0.first { $0.value.node.leaderEpoch != nil }?.key }) { return name }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}

/// Research through several nodes of one network: one budget, debited in the ledger's order
/// whichever node a researcher asks, and every node checks every recorded answer by executing it.
struct ReplicatedResearchTests {
    @Test func queriesThroughEveryNodeShareOneBudgetAndNeverOverspend() async throws {
        var policy = ResearchPolicy()
        policy.budget = PrivacyBudget(epsilonMicros: 1_000_000, deltaPicos: 0)
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log, research: policy)
        let researcher = try harness.definition.identity(named: "medtech-research/researcher", directory: harness.directory)
        var last = Hash256.zero
        for index in 0..<6 {
            let envelope = try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
            last = try harness.node("st-mary/node").submit(envelope.encoded)
        }
        _ = try await harness.node("st-mary/node").waitForCommit(last, timeout: .seconds(60))
        try await harness.waitForHeight(harness.node("st-mary/node").tip.height)
        // Eight different questions of ε 0.3, asked concurrently through all three nodes.
        let network = harness.node(harness.names[0]).network
        let asks = try (0..<8).map { index in
            let request = QueryRequest(spec: QuerySpec(kind: .count, filters: [.range(.usageHours, lower: Int64(index), upper: nil)]).canonical,
                                       mechanism: .laplace, epsilonMicros: 300_000, asOfHeight: nil)
            return (harness.names[index % 3], try researcher.transaction(network: network, contract: "research", action: "ask",
                                                                          arguments: request.encoded).envelope.encoded)
        }
        let outcomes = await withTaskGroup(of: LedgerError.Code?.self) { group in
            for (name, ask) in asks {
                let node = harness.node(name)
                group.addTask {
                    do throws(LedgerError) {
                        _ = try await node.answerQuery(ask, timeout: .seconds(60))
                        return nil
                    } catch { return error.code }
                }
            }
            return await group.reduce(into: [LedgerError.Code?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 3, "\(outcomes)")
        #expect(outcomes.compactMap { $0 } == Array(repeating: .budgetExhausted, count: 5), "\(outcomes)")
        let height = harness.names.map { harness.node($0).tip.height }.max() ?? 0
        try await harness.waitForHeight(height)
        try harness.expectConverged()
        for name in harness.names {
            let node = harness.node(name)
            let (limit, usage) = try node.budget(of: researcher.fingerprint)
            #expect(usage.spent.epsilonMicros == 900_000 && limit.epsilonMicros == 1_000_000, "\(name)")
            // Every node executed (and so checked) the same three answers and five refused charges.
            let research = try node.store.researchTransactions(limit: 100)
            #expect(research.filter { $0.action == "answer" && $0.result.isCommitted }.count == 3, "\(name)")
            #expect(research.filter { $0.action == "charge" && !$0.result.isCommitted }.count == 5, "\(name)")
        }
        await harness.stopAll()
    }
}

/// An organisation admitted by governance after genesis runs a node that starts from genesis. Until
/// the admission takes effect its node follows and never campaigns (its blocks would be refused by
/// every node, and the network would stop on them); afterwards its checkpoints count like any node's.
struct AdmittedOrganizationTests {
    @Test func anAdmittedOrganisationsNodeStartsFromGenesisAndOnlyLeadsOnceAdmitted() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        let directory = try OrganizationDirectory.create(id: "east-clinic", name: "East Clinic", kind: .hospital,
                                                         at: NetworkDefinition.organizationPath("east-clinic", in: harness.directory))
        try await CheckpointExchangeTests.registerSome(harness, count: 3)
        // Started before it is admitted: it follows from genesis, and leadership changes pass it by.
        let newcomer = "east-clinic/node"
        try harness.start(newcomer)
        let fingerprint = harness.node(newcomer).identity.fingerprint
        for round in 0..<3 {
            log.expireLeader()
            try await CheckpointExchangeTests.registerSome(harness, count: 1, offset: 20 + round, through: Array(harness.names))
        }
        try await harness.waitForHeight(harness.highestHeight)
        // Admission: st-mary proposes, two more of the five organisations approve.
        let (organization, members, _) = try directory.bundle.validated()
        let network = harness.node(harness.names[0]).network
        let admin = { (name: String) in try harness.definition.identity(named: name, directory: harness.directory) }
        let propose = try admin("st-mary/admin").transaction(network: network, contract: "governance", action: "propose",
                                                              arguments: ProposalAction.addOrganization(organization, members: members).encoded).envelope
        var last = try harness.node("st-mary/node").submit(propose.encoded)
        _ = try await harness.node("st-mary/node").waitForCommit(last, timeout: .seconds(60))
        for name in ["north-general/admin", "city-childrens/admin"] {
            let approve = try admin(name).transaction(network: network, contract: "governance", action: "approve", arguments: propose.id.bytes).envelope
            last = try harness.node("north-general/node").submit(approve.encoded)
            guard case .committed = try await harness.node("north-general/node").waitForCommit(last, timeout: .seconds(60)) else {
                Issue.record("approval by \(name) did not commit")
                return
            }
        }
        let admittedAt = harness.node("north-general/node").tip.height
        try await harness.waitForHeight(admittedAt)
        // No block before the admission was sealed by the newcomer; every node agrees on everything.
        for height in 1...admittedAt {
            #expect(try harness.node(newcomer).store.header(at: height)?.proposer != fingerprint, "block \(height)")
        }
        try harness.expectConverged()
        // Now a node like the others: give it leadership until it has sealed a block.
        let deadline = ContinuousClock.now + .seconds(60)
        var sealed = false
        var round = 0
        while !sealed, ContinuousClock.now < deadline {
            log.expireLeader()
            round += 1
            try await CheckpointExchangeTests.registerSome(harness, count: 1, offset: 40 + round, through: Array(harness.names))
            let tip = harness.node(newcomer).tip
            sealed = tip.proposer == fingerprint
        }
        #expect(sealed, "the admitted node never sealed a block after \(round) leader changes")
        try await harness.waitForHeight(harness.node(newcomer).tip.height)
        try harness.expectConverged()
        try await CheckpointExchangeTests.eventually("the founders judge the newcomer's checkpoint") {
            harness.node("st-mary/node").peerCheckpoints.contains { $0.node == fingerprint && $0.verdict == .agrees }
        }
        await harness.stopAll()
    }
}
