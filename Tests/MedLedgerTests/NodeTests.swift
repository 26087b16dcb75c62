import Testing
import Foundation
import GRDB
import Logging
import LedgerCore
import Contracts
import LedgerStore
import Node
import LedgerTesting

/// A node in this process over a real SQLite database in a temporary directory.
final class NodeHarness: Sendable {
    let directory: String
    let definition: NetworkDefinition
    let node: LedgerNode
    let runner: Task<Void, any Error>

    init(batchSize: UInt32 = 50, research: ResearchPolicy = ResearchPolicy(), maxRecordBytes: Int = RecordStore.defaultMaxRecordBytes) throws {
        directory = Fixtures.temporaryPath("node")
        var spec = NetworkSpec.demo
        spec.config = NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: 5, research: research)
        definition = try NetworkBuilder.build(spec, directory: directory)
        node = try LedgerNode(directory: directory, maxRecordBytes: maxRecordBytes, logger: Logger.quiet)
        let node = self.node
        runner = Task { try await node.run() }
    }

    func identity(_ name: String) throws -> SigningIdentity { try definition.identity(named: name, directory: directory) }

    func sign(_ name: String, _ action: DeviceAction, timestamp: Int64 = Clock.nowMilliseconds()) throws -> Envelope {
        try identity(name).transaction(network: node.network, contract: "devices", action: action.name, arguments: action.arguments,
                                       timestamp: timestamp).envelope
    }

    /// Submits and waits for the outcome.
    func commit(_ envelope: Envelope) async throws -> TransactionStatus {
        let id = try node.submit(envelope.encoded)
        return try await node.waitForCommit(id, timeout: .seconds(30))
    }

    func stop() async throws {
        node.shutdown()
        try await runner.value
    }

    var databasePath: String { directory + "/" + NetworkDefinition.databaseFileName }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

struct NodeTests {
    @Test func submittedTransactionsCommitWithHistoryAndEvents() async throws {
        let harness = try NodeHarness()
        let node = harness.node
        let events = try node.events(from: 0)
        let udi = Fixtures.udi(1)
        let status = try await harness.commit(try harness.sign("st-mary/collector", .register(udi: udi, attributes: Fixtures.attributes())))
        guard case .committed(let height, _, _) = status else {
            Issue.record("expected committed, got \(status)")
            return
        }
        #expect(height >= 1)
        var changes = DeviceAttributes()
        changes.firmwareVersion = "3.1.4"
        let update = try harness.sign("st-mary/collector", .update(udi: udi, event: "firmware_update", changes: changes))
        guard case .committed = try await harness.commit(update) else {
            Issue.record("update did not commit")
            return
        }
        let history = try node.store.history(key: StateKey.device(udi))
        #expect(history.count == 2)
        #expect(history.last?.transaction.id == update.id)
        #expect(history.last?.transaction.creator == (try harness.identity("st-mary/collector")).fingerprint)
        let record = try DeviceRecord(decoding: try #require(history.last?.value))
        #expect(record.version == 2)
        #expect(record.attributes.firmwareVersion == "3.1.4")

        // The event stream replays from genesis and includes both transactions.
        var seen = Set<Hash256>()
        for await event in events {
            for transaction in event.transactions { seen.insert(transaction.id) }
            if seen.contains(update.id) { break }
        }
        #expect(seen.contains(update.id))
        try await harness.stop()
        #expect(ChainVerifier.verify(store: try LedgerStore(readOnlyPath: harness.databasePath)).ok)
    }

    @Test func admissionRefusesWithSpecificCodesAuditsAndWritesNothing() async throws {
        let harness = try NodeHarness()
        let node = harness.node
        let register = DeviceAction.register(udi: Fixtures.udi(2), attributes: Fixtures.attributes())
        var forged = try harness.sign("st-mary/collector", register)
        forged.signature[5] ^= 1
        var missing = Fixtures.attributes()
        missing.speciality = nil
        let stranger = try TestNetwork.issue(
            CertificateAuthority.create(organization: "st-mary"), name: "st-mary/collector", role: .collector, now: Date())
        let good = try harness.sign("st-mary/collector", register)
        let cases: [([UInt8], LedgerError.Code)] = [
            ([0x01, 0x02], .malformedEncoding),
            (forged.encoded, .badSignature),
            (try harness.sign("st-mary/collector", .register(udi: "not-a-udi", attributes: Fixtures.attributes())).encoded, .invalidUDI),
            (try harness.sign("st-mary/collector", .register(udi: Fixtures.udi(2), attributes: missing)).encoded, .missingField),
            (try harness.sign("medtech-research/researcher", register).encoded, .forbidden),
            (try harness.sign("st-mary/collector", register, timestamp: Clock.nowMilliseconds() + 3_600_000).encoded, .timestampSkew),
            (stranger.transaction(network: node.network, contract: "devices", action: "register", arguments: register.arguments).envelope.encoded, .unknownMember),
            (try harness.identity("st-mary/collector").transaction(network: .zero, contract: "devices", action: "register",
                                                                   arguments: register.arguments).envelope.encoded, .wrongNetwork),
            ([UInt8](repeating: 0, count: 70_000), .payloadTooLarge),
        ]
        let heightBefore = node.tip.height
        for (bytes, code) in cases {
            #expect(throws: LedgerError.self) { try node.submit(bytes) }
            do { try node.submit(bytes) } catch { #expect(error.code == code) }
        }
        // Accepted once, refused as a duplicate while pending and after commit.
        let id = try node.submit(good.encoded)
        do { try node.submit(good.encoded) } catch { #expect(error.code == .duplicateTransaction) }
        _ = try await node.waitForCommit(id, timeout: .seconds(30))
        do { try node.submit(good.encoded) } catch { #expect(error.code == .duplicateTransaction) }
        try await harness.stop()

        // Refused submissions were never ordered: exactly one block, with exactly the good transaction.
        #expect(node.tip.height == heightBefore + 1)
        #expect(node.tip.transactionCount == 1)
        let refusals = try node.store.recentRefusals(limit: 100)
        #expect(refusals.count == cases.count * 2 + 2)
        #expect(Set(refusals.map(\.code)).isSuperset(of: [.badSignature, .unknownMember, .duplicateTransaction]))
        #expect(node.metrics.render().contains("medledger_submissions_refused_total{code=\"bad_signature\"} 2"))
    }

    @Test func stateDependentRefusalsAreRecordedInTheBlockWithTheirCode() async throws {
        let harness = try NodeHarness()
        var changes = DeviceAttributes()
        changes.batteryLevel = 5
        let status = try await harness.commit(try harness.sign("st-mary/collector", .update(udi: Fixtures.udi(3), event: "battery", changes: changes)))
        guard case .rejected(_, _, _, let code, let message) = status else {
            Issue.record("expected a rejection, got \(status)")
            return
        }
        #expect(code == .unknownDevice)
        #expect(message?.contains("register it first") == true)
        #expect(try harness.node.store.value(forKey: StateKey.device(Fixtures.udi(3))) == nil)
        try await harness.stop()
    }

    @Test func reopeningKeepsTheChainAndRefusesAnotherNetworksDatabase() async throws {
        let harness = try NodeHarness()
        for serial in 0..<20 {
            _ = try harness.node.submit(try harness.sign("north-general/collector", .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())).encoded)
        }
        let last = try harness.sign("north-general/collector", .register(udi: Fixtures.udi(99), attributes: Fixtures.attributes()))
        _ = try await harness.commit(last)
        try await harness.stop()
        let tip = harness.node.tip
        let reopened = try LedgerNode(directory: harness.directory, logger: Logger.quiet)
        #expect(reopened.tip == tip)
        #expect(try reopened.status(of: last.id) != .unknown)

        let other = Fixtures.temporaryPath("other")
        defer { try? FileManager.default.removeItem(atPath: other) }
        _ = try NetworkBuilder.build(.demo, directory: other)
        #expect(throws: LedgerError.self) {
            try LedgerNode(directory: other, databasePath: harness.databasePath, logger: Logger.quiet)
        }
    }
}

/// `medledger verify` must catch every kind of tampering with the stored ledger.
struct TamperDetectionTests {
    /// A committed ledger of a few blocks, then closed.
    static func ledger() async throws -> NodeHarness {
        let harness = try NodeHarness(batchSize: 4)
        // Two refusals for the local audit table.
        for _ in 0..<2 { _ = try? harness.node.submit([0x01, 0x02]) }
        var ids: [Hash256] = []
        for serial in 0..<12 {
            ids.append(try harness.node.submit(try harness.sign(serial % 2 == 0 ? "st-mary/collector" : "north-general/collector",
                                                                .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())).encoded))
        }
        for id in ids { _ = try await harness.node.waitForCommit(id, timeout: .seconds(30)) }
        try await harness.stop()
        #expect(ChainVerifier.verify(store: try LedgerStore(readOnlyPath: harness.databasePath)).ok)
        return harness
    }

    static func tamper(_ harness: NodeHarness, _ sql: String) throws -> VerificationReport {
        let queue = try DatabaseQueue(path: harness.databasePath)
        try queue.write { db in try db.execute(sql: sql) }
        try queue.close()
        return ChainVerifier.verify(store: try LedgerStore(readOnlyPath: harness.databasePath))
    }

    @Test func changedByteInAStoredTransaction() async throws {
        let harness = try await Self.ledger()
        // Change one byte inside the payload of the transaction at log position 3 (to a value it
        // does not already have: byte 61 can be part of a random nonce, and writing 0xFF over an
        // 0xFF changed nothing in 1 run of 256).
        let report = try Self.tamper(harness, """
            UPDATE transactions SET envelope = CAST(substr(envelope, 1, 60)
                || CASE WHEN substr(envelope, 61, 1) = X'FF' THEN X'00' ELSE X'FF' END || substr(envelope, 62) AS BLOB) WHERE seq = 3
            """)
        #expect(!report.ok)
        #expect(report.failure?.contains("transaction") == true)
    }

    @Test func changedSignatureByte() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, "UPDATE transactions SET envelope = CAST(substr(envelope, 1, length(envelope) - 1) || CASE WHEN substr(envelope, -1) = X'00' THEN X'01' ELSE X'00' END AS BLOB) WHERE seq = 5")
        #expect(!report.ok)
        #expect(report.failure?.contains("bad_signature") == true || report.failure?.contains("transaction") == true)
    }

    @Test func deletedBlock() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, "DELETE FROM blocks WHERE height = 2")
        #expect(!report.ok)
        #expect(report.failure?.contains("block 2") == true)
    }

    @Test func deletedTransaction() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, "DELETE FROM transactions WHERE seq = 6")
        #expect(!report.ok)
    }

    @Test func reorderedTransactions() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, """
            UPDATE transactions SET idx = CASE idx WHEN 0 THEN 1 ELSE 0 END
            WHERE height = (SELECT height FROM transactions WHERE seq = 5) AND idx IN (0, 1)
            """)
        #expect(!report.ok)
    }

    @Test func changedStateValue() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, "UPDATE state SET value = CAST(value || X'00' AS BLOB) WHERE key = (SELECT min(key) FROM state WHERE key LIKE 'dev/%')")
        #expect(!report.ok)
        #expect(report.failure?.contains("state key dev/") == true)
    }

    @Test func deletedAndInsertedStateKeys() async throws {
        let harness = try await Self.ledger()
        #expect(try Self.tamper(harness, "INSERT INTO state (key, value, seq) VALUES ('dev/forged', X'00', 1)").failure?.contains("dev/forged") == true)
        #expect(try Self.tamper(harness, "DELETE FROM state WHERE key = 'dev/forged'").ok)
        #expect(try Self.tamper(harness, "DELETE FROM state WHERE key = 'cfg'").failure?.contains("cfg") == true)
    }

    @Test func changedMerkleNodeThatProofsAreServedFrom() async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, "UPDATE merkle SET hash = zeroblob(32) WHERE level = 1 AND idx = 2")
        #expect(!report.ok)
        #expect(report.failure?.contains("Merkle node") == true)
    }
}

/// One edit of a copy of a real ledger, and the words `verify` must name it with.
struct Tampering: Sendable, CustomTestStringConvertible {
    var name: String
    var sql: String
    var expected: String
    var testDescription: String { name }
}

extension TamperDetectionTests {
    /// Every table and column an API route or query reads (Sources/Server, LedgerNode+Research,
    /// LedgerStore reads), edited, inserted and deleted. Log position 3 is a st-mary transaction,
    /// 4 a north-general one.
    static let tamperings: [Tampering] = [
        .init(name: "history: value edited", sql: "UPDATE history SET value = CAST(value || X'00' AS BLOB) WHERE seq = 3", expected: "history"),
        .init(name: "history: version moved to another writer", sql: "UPDATE history SET seq = 4 WHERE seq = 3", expected: "history"),
        .init(name: "history: version deleted", sql: "DELETE FROM history WHERE seq = 5", expected: "history"),
        .init(name: "history: forged version", sql: "INSERT INTO history (key, seq, value) SELECT 'dev/forged', seq, value FROM history WHERE seq = 3",
              expected: "history"),
        .init(name: "history: fake devices for as-of-height queries",
              sql: "INSERT INTO history (key, seq, value) SELECT key || 'X', seq, value FROM history WHERE key LIKE 'dev/%'", expected: "history"),
        .init(name: "history: version at a log position that does not exist",
              sql: "INSERT INTO history (key, seq, value) VALUES ('dev/late', 100000, NULL)", expected: "history"),
        .init(name: "devices: owner edited", sql: "UPDATE devices SET owner = 'north-general' WHERE owner = 'st-mary'", expected: "devices"),
        .init(name: "devices: attribute edited", sql: "UPDATE devices SET model = 'forged' WHERE udi = (SELECT min(udi) FROM devices)", expected: "devices"),
        .init(name: "devices: row inserted",
              sql: "INSERT INTO devices (udi, owner, status, version, registered_at, updated_at) VALUES ('FAKE-1', 'st-mary', 0, 1, 0, 0)",
              expected: "devices"),
        .init(name: "devices: row deleted", sql: "DELETE FROM devices WHERE udi = (SELECT max(udi) FROM devices)", expected: "devices"),
        .init(name: "checkpoints: signature edited", sql: "UPDATE checkpoints SET signature = zeroblob(64) WHERE height = 1", expected: "checkpoint"),
        .init(name: "checkpoints: body edited", sql: "UPDATE checkpoints SET body = CAST(substr(body, 1, 20) || CASE WHEN substr(body, 21, 1) = X'FF' THEN X'00' ELSE X'FF' END || substr(body, 22) AS BLOB) WHERE height = 1",
              expected: "checkpoint"),
        .init(name: "checkpoints: row deleted", sql: "DELETE FROM checkpoints WHERE height = 2", expected: "checkpoint"),
        .init(name: "checkpoints: row inserted",
              sql: "INSERT INTO checkpoints (height, signer, body, signature) SELECT height + 1000, signer, body, signature FROM checkpoints WHERE height = 1",
              expected: "checkpoint"),
        // Red-team findings: damaged indexes and schema passed verify; an out-of-range integer trapped.
        .init(name: "index: rebuilt without a row, definition restored",
              sql: """
                DROP INDEX transactions_id; CREATE INDEX transactions_id ON transactions(tx_id) WHERE seq != 3;
                PRAGMA writable_schema = ON;
                UPDATE sqlite_master SET sql = 'CREATE INDEX transactions_id ON transactions(tx_id)' WHERE name = 'transactions_id';
                PRAGMA writable_schema = OFF;
                """, expected: "integrity"),
        .init(name: "schema: trigger added", sql: "CREATE TRIGGER quiet AFTER INSERT ON refusals BEGIN DELETE FROM refusals; END", expected: "schema"),
        .init(name: "schema: index dropped", sql: "DROP INDEX transactions_id", expected: "schema"),
        .init(name: "schema: migration record deleted", sql: "DELETE FROM grdb_migrations WHERE rowid = (SELECT max(rowid) FROM grdb_migrations)",
              expected: "schema"),
        .init(name: "transactions.status out of range", sql: "UPDATE transactions SET status = 70000 WHERE seq = 3", expected: "out of range"),
        .init(name: "transactions.idx negative", sql: "UPDATE transactions SET idx = -1 WHERE seq = 3", expected: "out of range"),
        .init(name: "refusals: code edited", sql: "UPDATE refusals SET code = 'all_fine' WHERE id = 2", expected: "refusals"),
        .init(name: "refusals: row deleted", sql: "DELETE FROM refusals WHERE id = 1", expected: "refusals"),
        .init(name: "refusals: malformed id", sql: "UPDATE refusals SET tx_id = X'0102' WHERE id = 1", expected: "refusals"),
        .init(name: "refusals: row inserted in the middle",
              sql: "INSERT INTO refusals (id, time, code, message) VALUES (-7, 1, 'forbidden', 'x')", expected: "refusals"),
        .init(name: "blocks.timestamp edited", sql: "UPDATE blocks SET timestamp = 1 WHERE height = 1", expected: "blocks.timestamp"),
        .init(name: "blocks.hash edited", sql: "UPDATE blocks SET hash = zeroblob(32) WHERE height = 1", expected: "blocks.hash"),
        .init(name: "blocks.tx_count edited", sql: "UPDATE blocks SET tx_count = tx_count + 1 WHERE height = 1", expected: "blocks.tx_count"),
        .init(name: "blocks: row outside the chain",
              sql: "INSERT INTO blocks (height, hash, header, signature, tx_count, timestamp) SELECT -1, zeroblob(32), header, signature, tx_count, timestamp FROM blocks WHERE height = 1",
              expected: "blocks"),
        .init(name: "transactions.creator edited", sql: "UPDATE transactions SET creator = (SELECT creator FROM transactions WHERE seq = 4) WHERE seq = 3",
              expected: "transactions.creator"),
        .init(name: "transactions.action edited", sql: "UPDATE transactions SET action = 'decommission' WHERE seq = 3", expected: "transactions.action"),
        .init(name: "transactions.contract edited", sql: "UPDATE transactions SET contract = 'research' WHERE seq = 3", expected: "transactions.contract"),
        .init(name: "transactions.timestamp edited", sql: "UPDATE transactions SET timestamp = timestamp + 1 WHERE seq = 3", expected: "transactions.timestamp"),
        .init(name: "transactions: row outside the chain", sql: """
            INSERT INTO transactions (seq, tx_id, height, idx, envelope, status, write_set_hash, creator, contract, action, timestamp)
            SELECT seq + 1000, tx_id, height + 1000, idx, envelope, status, write_set_hash, creator, contract, action, timestamp FROM transactions WHERE seq = 3
            """, expected: "transactions"),
        .init(name: "state.seq edited", sql: "UPDATE state SET seq = seq + 1 WHERE key = (SELECT min(key) FROM state WHERE key LIKE 'dev/%')",
              expected: "seq"),
        .init(name: "transactions.timestamp of the wrong type", sql: "UPDATE transactions SET timestamp = 'noon' WHERE seq = 3",
              expected: "transactions.timestamp"),
        .init(name: "blocks.header of the wrong type", sql: "UPDATE blocks SET header = 'text' WHERE height = 2", expected: "blocks.header"),
        .init(name: "state.value of the wrong type", sql: "UPDATE state SET value = value || X'00' WHERE key = 'cfg'", expected: "state.value"),
        .init(name: "history.value of the wrong type", sql: "UPDATE history SET value = 7 WHERE seq = 3", expected: "history.value"),
        .init(name: "merkle: extra node", sql: "INSERT INTO merkle (level, idx, hash) VALUES (0, 100000, zeroblob(32))", expected: "merkle"),
    ]

    @Test(arguments: TamperDetectionTests.tamperings)
    func everyTableAndColumnTheAPIReads(_ tampering: Tampering) async throws {
        let harness = try await Self.ledger()
        let report = try Self.tamper(harness, tampering.sql)
        #expect(!report.ok, "verify passed after: \(tampering.sql)")
        #expect(report.failure?.contains(tampering.expected) == true, "\(report.failure ?? "no failure")")
    }

    /// `verify` on a running node must read one snapshot: blocks committed while it runs must not
    /// look like tampering (it used to say "block N exists beyond the tip").
    @Test func verifyPassesWhileTheNodeKeepsCommitting() async throws {
        let harness = try NodeHarness(batchSize: 2)
        let path = harness.databasePath
        let writer = Task {
            var serial = 0
            while !Task.isCancelled {
                var last: Hash256?
                for _ in 0..<3 {
                    last = try harness.node.submit(try harness.sign(serial % 2 == 0 ? "st-mary/collector" : "north-general/collector",
                                                                   .register(udi: Fixtures.udi(serial), attributes: Fixtures.attributes())).encoded)
                    serial += 1
                }
                if let last { _ = try await harness.node.waitForCommit(last, timeout: .seconds(30)) }
            }
        }
        var heights: [UInt64] = []
        for _ in 0..<8 {
            let report = ChainVerifier.verify(store: try LedgerStore(readOnlyPath: path))
            #expect(report.ok, "\(report.failure ?? "")")
            heights.append(report.blocks)
            // Wait for at least one more block before the next run.
            let target = harness.node.tip.height + 1
            let events = try harness.node.events(from: target)
            for await event in events where event.height >= target { break }
            events.close()
        }
        writer.cancel()
        _ = try? await writer.value
        try await harness.stop()
        #expect(heights.last! > heights.first!)
    }
}

extension Logger {
    /// Tests assert on behaviour, not on log lines; keep the test output readable.
    static var quiet: Logger { Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }) }
}
