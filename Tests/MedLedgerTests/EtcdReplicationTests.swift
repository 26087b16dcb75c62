import Testing
import Crypto
import Foundation
import Synchronization
import Logging
import LedgerCore
import Contracts
import LedgerStore
import Node
import Ordering
import Etcd
import LedgerTesting
import Server
import Hummingbird

/// Nodes in this process ordering through a real 3-member etcd cluster, each node with its own
/// etcd client (as separate machines would have).
final class EtcdNetwork: Sendable {
    let cluster: EtcdCluster
    let clients = Mutex<[String: (EtcdClient, Task<Void, any Error>)]>([:])

    init(cluster: EtcdCluster) { self.cluster = cluster }

    static func start() async throws -> EtcdNetwork { EtcdNetwork(cluster: try await EtcdCluster.start(members: 3)) }

    /// Runs `body` with a started network and stops it afterwards, whether `body` returns or throws.
    static func run(_ body: (EtcdNetwork) async throws -> Void) async throws {
        let etcd = try await start()
        do {
            try await body(etcd)
        } catch {
            await etcd.stop()
            throw error
        }
        await etcd.stop()
    }

    func client(for node: String) -> EtcdClient {
        // A node restarted in a test gets a new client, like a restarted process.
        let client = try! EtcdClient(endpoints: cluster.endpoints, requestTimeout: .seconds(2), logger: ReplicatedHarness.logger("\(node)/etcd"))
        let runner = Task { try await client.run() }
        clients.withLock { $0[node] = (client, runner) }
        return client
    }

    func log(for node: String, network: Hash256, leaseTTL: Int64 = 2, retention: RetentionPolicy? = nil) -> EtcdReplicatedLog {
        EtcdReplicatedLog(client: client(for: node), network: network, leaseTTL: leaseTTL, retention: retention,
                          logger: ReplicatedHarness.logger("\(node)/log"))
    }

    /// Cuts one node off etcd at once (its client stops; its lease then expires).
    func disconnect(_ node: String) {
        guard let (client, _) = clients.withLock({ $0.removeValue(forKey: node) }) else { return }
        client.shutdown()
    }

    func stop() async {
        for (client, runner) in clients.withLock({ clients in defer { clients = [:] }; return Array(clients.values) }) {
            client.shutdown()
            _ = try? await runner.value
        }
        await cluster.stop()
    }
}

@Suite(.serialized, .timeLimit(.minutes(5)))
struct EtcdReplicationTests {
    @Test func threeNodesOnRealEtcdCommitEverySubmissionInOneOrder() async throws {
        try await EtcdNetwork.run { etcd in
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network) }
            var ids: [Hash256] = []
            for index in 0..<90 {
                let name = harness.names[index % harness.names.count]
                let collector = name.replacingOccurrences(of: "/node", with: "/collector")
                let envelope = try harness.sign(collector, .register(udi: Fixtures.udi(index), attributes: Fixtures.attributes()))
                let id = try harness.node(name).submit(envelope.encoded)
                try await harness.node(name).acknowledgement(of: id)
                ids.append(id)
            }
            for name in harness.names {
                for id in ids {
                    guard case .committed = try await harness.node(name).waitForCommit(id, timeout: .seconds(60)) else {
                        Issue.record("\(id.hex.prefix(8)) is not committed on \(name)")
                        return
                    }
                }
            }
            try await harness.waitForHeight(harness.highestHeight)
            try harness.expectConverged()
            // Every consumed queue entry left etcd in the append that holds it.
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let queued = try await client.range(prefix: Array("/medledger/\(harness.definition.networkID.hex)/queue/".utf8))
                #expect(queued.kvs.isEmpty, "\(queued.kvs.count) queue entries left in etcd")
            }
            // Each node published its signed checkpoint through etcd and judges the others' as agreeing.
            let height = harness.highestHeight
            let deadline = ContinuousClock.now + .seconds(20)
            while harness.names.contains(where: { name in
                let peers = harness.node(name).peerCheckpoints
                return peers.count != 2 || peers.contains { $0.verdict != .agrees || $0.height != height }
            }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            for name in harness.names {
                #expect(harness.node(name).peerCheckpoints.map(\.verdict) == [.agrees, .agrees], "\(name): \(harness.node(name).peerCheckpoints)")
                // GET /v1/node says the same, for `network status`.
                #expect(await harness.node(name).status().peers.map(\.verdict) == [.agrees, .agrees])
            }
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let published = try await client.range(prefix: Array("/medledger/\(harness.definition.networkID.hex)/checkpoints/".utf8))
                #expect(published.kvs.count == 3)
                for kv in published.kvs {
                    let checkpoint = try PublishedCheckpoint(decoding: kv.value)
                    #expect(String(decoding: kv.key, as: UTF8.self).hasSuffix("/checkpoints/" + checkpoint.signer.hex))
                    #expect(try checkpoint.statement().height == height)
                }
            }
            await harness.stopAll()
            for name in harness.names {
                let database = harness.directory + "/" + name.replacingOccurrences(of: "/", with: "-") + ".sqlite"
                let report = ChainVerifier.verify(store: try LedgerStore(path: database))
                #expect(report.ok, "\(name): \(report.failure ?? "")")
            }
        }
    }

    /// Patient data across organisations on real etcd: every node replicates the anchor, the consent
    /// and the decision, but only the holder's node can release the record's key; no file of another
    /// organisation's node holds the vault key, the data key, the ciphertext or the plaintext.
    @Test func otherOrganisationsNodesReplicateAnchorsButHoldNoKeyToAnyRecord() async throws {
        try await EtcdNetwork.run { etcd in
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network) }
            let network = harness.definition.networkID
            let holder = harness.node("st-mary/node")
            func identity(_ name: String) throws -> SigningIdentity { try harness.definition.identity(named: name, directory: harness.directory) }
            /// Submits at `node` and waits until every node has committed it.
            @discardableResult
            func commit(_ signer: SigningIdentity, at node: String, _ contract: String, _ action: String, _ arguments: [UInt8]) async throws -> Hash256 {
                let id = try harness.node(node).submit(signer.transaction(network: network, contract: contract, action: action, arguments: arguments).envelope.encoded)
                for name in harness.names {
                    let status = try await harness.node(name).waitForCommit(id, timeout: .seconds(60))
                    guard case .committed = status else { throw LedgerError(.internal, "\(contract).\(action) on \(name): \(status)") }
                }
                return id
            }
            let authority = try OrganizationDirectory.authority(in: NetworkDefinition.organizationPath("st-mary", in: harness.directory), organization: "st-mary")
            let patientKey = P256.Signing.PrivateKey()
            let patient = SigningIdentity(privateKey: patientKey, certificate: try authority.issue(name: "st-mary/patient-9", role: .patient, publicKey: patientKey.publicKey))
            let pseudonym = PatientPseudonym.derive(identifier: "MRN-9", hospital: "st-mary", secret: SymmetricKey(size: .bits256))
            let admin = try identity("st-mary/admin")
            try await commit(admin, at: "st-mary/node", "consent", "register", ConsentAction.register(certificate: patient.certificate.derBytes).arguments)
            try await commit(admin, at: "st-mary/node", "consent", "enrol", ConsentAction.enrol(patient: pseudonym, member: patient.fingerprint).arguments)
            let reader = try identity("north-general/clinician")
            let readerKey = P256.KeyAgreement.PrivateKey()
            try await commit(reader, at: "north-general/node", "records", "register_key", RecordAction.registerKey(Array(readerKey.publicKey.x963Representation)).arguments)

            // St Mary's stores a record at its own node and anchors it.
            let plaintext = Array("troponin 0.04 ng/mL for MRN-9".utf8)
            let dataKey = SymmetricKey(size: .bits256)
            let blob = try SealedRecord.seal(plaintext, key: dataKey)
            let (hash, record, holderKey) = try holder.acceptRecord(blob)
            let vault = try #require(try holder.records?.vaultKey(hash))
            let put = RecordPut(id: hash, size: UInt64(blob.count), category: "lab_result", device: nil, patient: pseudonym, holderKey: holderKey,
                                wrappedKey: try KeyWrap.wrap(dataKey, for: P256.KeyAgreement.PublicKey(x963Representation: holderKey),
                                                             info: KeyWrap.holderInfo(record: hash)))
            try await commit(try identity("st-mary/collector"), at: "st-mary/node", "records", "put", RecordAction.put(put).arguments)
            try await commit(patient, at: "st-mary/node", "consent", "grant", ConsentAction.grant(patient: pseudonym, terms: ConsentTerms(
                effect: .permit, grantee: .role(.clinician, organization: nil), purposes: [.treatment])).arguments)
            // North General's clinician asks at its own node; the decision is on every node.
            let decision = try await commit(reader, at: "north-general/node", "consent", "request", ConsentAction.request(record: record, purpose: .treatment).arguments)
            for name in harness.names {
                #expect(try harness.node(name).anchor(record)?.put == put, "\(name)")
                #expect(try harness.node(name).decision(pseudonym, decision)?.granted == true, "\(name)")
            }

            // Only the holder releases: the other nodes hold neither vault key nor blob.
            let now = Clock.nowMilliseconds()
            for name in ["north-general/node", "city-childrens/node"] {
                let node = harness.node(name)
                #expect(node.records?.held() == [], "\(name) holds record files")
                #expect(try node.records?.dataKey(for: try #require(try node.anchor(record))) == nil)
                #expect(throws: LedgerError.self, "\(name) released a key") {
                    try node.releaseKey(record: record, decision: decision, reader: reader.fingerprint, now: now)
                }
                #expect(throws: LedgerError.self, "\(name) released a blob") {
                    try node.releaseBlob(record: record, decision: decision, reader: reader.fingerprint, now: now)
                }
            }
            let released = try holder.releaseKey(record: record, decision: decision, reader: reader.fingerprint, now: now)
            let opened = try KeyWrap.unwrap(released.wrapped, with: readerKey, info: KeyWrap.readerInfo(record: record, decision: decision))
            #expect(try SealedRecord.open(SecureFile.read(holder.releaseBlob(record: record, decision: decision, reader: reader.fingerprint, now: now).path), key: opened) == plaintext)

            await harness.stopAll()
            // Byte for byte: nothing that opens the record is in any file of the other organisations' nodes.
            let secrets: [(String, [UInt8])] = [("vault key", Array(vault.rawRepresentation)), ("data key", dataKey.withUnsafeBytes { Array($0) }),
                                                ("ciphertext", Array(blob[16..<48])), ("plaintext", Array("troponin".utf8))]
            let others = try FileManager.default.contentsOfDirectory(atPath: harness.directory)
                .filter { $0.hasPrefix("north-general-node.sqlite") || $0.hasPrefix("city-childrens-node.sqlite") }
            #expect(others.contains("north-general-node.sqlite") && others.contains("north-general-node.sqlite.records"), "\(others)")
            for file in others {
                for (what, bytes) in secrets {
                    #expect(try PatientRecordAPITests.files(containing: bytes, under: harness.directory).allSatisfy { !$0.hasPrefix(file + "/") && $0 != file },
                            "\(what) found in \(file)")
                }
            }
            // The holder's own node does hold them (the check above can find what it looks for).
            #expect(try PatientRecordAPITests.files(containing: Array(vault.rawRepresentation), under: harness.directory).contains { $0.hasPrefix("st-mary-node.sqlite.records/") })
        }
    }

    /// The leader is cut off from etcd (as a killed or stopped process would be): another node
    /// takes over after the lease runs out, acknowledged transactions commit, the old node catches
    /// up when it returns.
    @Test func leaderCutOffIsReplacedWithinTheLeaseAndNothingAcknowledgedIsLost() async throws {
        try await EtcdNetwork.run { etcd in
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network) }
            let first = try #require(await ReplicationTests.leader(harness))
            let firstEpoch = try #require(harness.node(first).leaderEpoch)
            let follower = try #require(harness.names.first { $0 != first })
            let collector = follower.replacingOccurrences(of: "/node", with: "/collector")
            var ids: [Hash256] = []
            for index in 0..<10 {
                let id = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(300 + index), attributes: Fixtures.attributes())).encoded)
                try await harness.node(follower).acknowledgement(of: id)
                ids.append(id)
            }
            let cut = ContinuousClock.now
            etcd.disconnect(first)
            await harness.stop(first)
            // Submissions keep coming at the follower while there is no leader.
            for index in 10..<20 {
                let id = try harness.node(follower).submit(try harness.sign(collector, .register(udi: Fixtures.udi(300 + index), attributes: Fixtures.attributes())).encoded)
                try await harness.node(follower).acknowledgement(of: id)
                ids.append(id)
            }
            for id in ids {
                guard case .committed = try await harness.node(follower).waitForCommit(id, timeout: .seconds(60)) else {
                    Issue.record("acknowledged \(id.hex.prefix(8)) was not committed after the leader was cut off")
                    return
                }
            }
            let failover = ContinuousClock.now - cut
            let node = harness.node(follower)
            #expect(node.tip.epoch > firstEpoch, "the last block is sealed in a later epoch")
            // Lease TTL 2 s; a new leader commits within 5 s of the lease expiring.
            #expect(failover < .seconds(7), "failover took \(failover)")
            try harness.start(first)
            try await harness.waitForHeight(node.tip.height)
            try harness.expectConverged()
            await harness.stopAll()
        }
    }

    /// Anyone who can write to etcd could put garbage in the queue: it must not stop ordering (a
    /// leader that refused it would step down, and so would the next, forever).
    @Test func aMalformedQueueEntryIsDroppedAndOrderingGoesOn() async throws {
        try await EtcdNetwork.run { etcd in
            let harness = try ReplicatedHarness(nodes: ["st-mary/node", "north-general/node"]) { name, network in etcd.log(for: name, network: network) }
            _ = try #require(await ReplicationTests.leader(harness))
            let prefix = "/medledger/\(harness.definition.networkID.hex)/queue/"
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                _ = try await client.put(Array((prefix + "\(Hash256.of([9]).hex)/00000000000000000001").utf8), Array("not an entry".utf8))
                _ = try await client.put(Array((prefix + "\(Hash256.of([9]).hex)/00000000000000000002").utf8), Array("MLQE\u{0}\u{0}\u{0}\u{9}".utf8))
            }
            let name = "north-general/node"
            let envelope = try harness.sign("north-general/collector", .register(udi: Fixtures.udi(500), attributes: Fixtures.attributes()))
            let id = try harness.node(name).submit(envelope.encoded)
            try await harness.node(name).acknowledgement(of: id)
            guard case .committed = try await harness.node(name).waitForCommit(id, timeout: .seconds(60)) else {
                Issue.record("a transaction queued after malformed entries did not commit")
                return
            }
            try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                let left = try await client.range(prefix: Array(prefix.utf8))
                #expect(left.kvs.isEmpty, "\(left.kvs.count) queue entries left")
            }
            try await harness.waitForHeight(harness.node(name).tip.height)
            try harness.expectConverged()
            await harness.stopAll()
        }
    }

    /// Fencing on real etcd: an append under an epoch that is no longer the leader key's creation
    /// revision fails, whoever sends it.
    @Test func anAppendUnderAnOldEpochIsRefusedByEtcd() async throws {
        try await EtcdNetwork.run { etcd in
            let network = Hash256.of([7])
            let a = etcd.log(for: "a", network: network)
            let b = etcd.log(for: "b", network: network)
            let old = try await a.campaign(candidate: Hash256.of([1]))
            await old.resign()
            let new = try await b.campaign(candidate: Hash256.of([2]))
            #expect(new.epoch > old.epoch)
            let header = BlockHeader(height: 1, previousHash: .zero, timestamp: 0, transactionCount: 0, transactionRoot: .zero,
                                     logSize: 0, logRoot: .zero, stateRoot: .zero, proposer: Hash256.of([1]), epoch: old.epoch)
            let stale = Block(header: header, signature: [UInt8](repeating: 0, count: 64), envelopes: [])
            #expect(try await a.append(stale, encoded: stale.encoded, leadership: old, consumed: []) == .superseded)
            var current = header
            current.epoch = new.epoch
            let block = Block(header: current, signature: stale.signature, envelopes: [])
            #expect(try await b.append(block, encoded: block.encoded, leadership: new, consumed: []) == .appended)
            #expect(try await b.append(block, encoded: block.encoded, leadership: new, consumed: []) == .superseded)
            #expect(try await a.latestHeight() == 1)
            await new.resign()
        }
    }

    /// Retention: the leader trims etcd to a window (below every node's checkpoint, at most `most`
    /// blocks) and compacts; a node that was down longer catches up on the trimmed blocks from
    /// another node's API (checked against the log's hash chain, then executed) and then from etcd.
    @Test func aNodeBehindTheTrimmedLogCatchesUpFromAnotherNodesAPI() async throws {
        let etcd = try await EtcdNetwork.start()
        var servers: [Task<Void, any Error>] = []
        do {
            let retention = RetentionPolicy(keep: 3, most: 6, interval: .milliseconds(300))
            let harness = try ReplicatedHarness { name, network in etcd.log(for: name, network: network, retention: retention) }
            for name in harness.names.prefix(2) {
                let node = harness.node(name)
                let (ports, continuation) = AsyncStream<Int>.makeStream()
                let app = APIServer.application(node: node, port: 0, logger: Logger(label: "api") { _ in SwiftLogNoOpLogHandler() }) {
                    continuation.yield($0)
                }
                servers.append(Task { try await app.runService(gracefulShutdownSignals: []) })
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                await node.advertise(endpoint: "http://127.0.0.1:\(port)")
            }
            try await CheckpointExchangeTests.registerSome(harness, count: 3)
            let behind = harness.names[2]
            try await harness.waitForHeight(harness.highestHeight)
            // The stopped node's own height: it may have committed a block a lagging peer has not yet.
            let stopped = harness.node(behind)
            await harness.stop(behind)
            let left = stopped.tip.height
            try await CheckpointExchangeTests.registerSome(harness, count: 16, offset: 100, through: Array(harness.names.prefix(2)))
            let tip = harness.names.prefix(2).map { harness.node($0).tip.height }.max() ?? 0
            try await harness.waitForHeight(tip)
            #expect(tip >= left + 10)
            // The leader trims below the window: the stopped node's next block is gone from etcd.
            let blocks = Array("/medledger/\(harness.definition.networkID.hex)/blocks/".utf8)
            var oldest: UInt64 = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                oldest = try await withEtcdClient(endpoints: etcd.cluster.endpoints) { client in
                    let first = try await client.range(prefix: blocks, limit: 1).kvs.first
                    return first.flatMap { UInt64(String(decoding: $0.key.dropFirst(blocks.count), as: UTF8.self)) } ?? 0
                }
                if oldest > left + 1, oldest >= tip - 5 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(oldest > left + 1 && oldest >= tip - 5, "etcd still holds block \(oldest) (the stopped node is at \(left), tip \(tip))")
            // First only a lying peer is advertised: it serves the next block for every height asked.
            let honest = harness.node(harness.names[0])
            let router = Router()
            router.get("/v1/blocks/:height") { _, context -> Response in
                let height = (context.parameters.get("height").flatMap { UInt64($0) } ?? 0) + 1
                guard let stored = try honest.store.block(at: height) else { return Response(status: .notFound) }
                let block = Block(header: stored.header, signature: stored.signature, envelopes: stored.transactions.map(\.envelope))
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: block.encoded)))
            }
            let (liarPorts, liarContinuation) = AsyncStream<Int>.makeStream()
            let liar = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                   onServerRunning: { liarContinuation.yield($0.localAddress?.port ?? 0) },
                                   logger: Logger(label: "liar") { _ in SwiftLogNoOpLogHandler() })
            servers.append(Task { try await liar.runService(gracefulShutdownSignals: []) })
            var liarIterator = liarPorts.makeAsyncIterator()
            let liarPort = try #require(await liarIterator.next())
            let advertised = try await etcd.log(for: "test", network: harness.definition.networkID).endpoints()
            for name in harness.names.prefix(2) {
                await harness.node(name).advertise(endpoint: "http://127.0.0.1:\(liarPort)")
            }
            try harness.start(behind)
            try await Task.sleep(for: .seconds(3))
            #expect(harness.node(behind).tip.height == left, "no block from the lying peer was committed")
            #expect(harness.node(behind).divergence == nil)
            for name in harness.names.prefix(2) {
                await harness.node(name).advertise(endpoint: try #require(advertised[harness.node(name).identity.fingerprint]))
            }
            try await harness.waitForHeight(tip, timeout: .seconds(90))
            try harness.expectConverged()
            // Every block after the stop was sealed under one leader: trimming and compaction did not depose it.
            let epochs = try Set(((left + 1)...tip).map { try #require(try harness.node(behind).store.header(at: $0)).epoch })
            #expect(epochs.count == 1, "epochs \(epochs)")
            await harness.stopAll()
            let database = harness.directory + "/" + behind.replacingOccurrences(of: "/", with: "-") + ".sqlite"
            let report = ChainVerifier.verify(store: try LedgerStore(path: database))
            #expect(report.ok, "\(report.failure ?? "")")
        } catch {
            for server in servers { server.cancel() }
            await etcd.stop()
            throw error
        }
        for server in servers {
            server.cancel()
            _ = await server.result
        }
        await etcd.stop()
    }
}
