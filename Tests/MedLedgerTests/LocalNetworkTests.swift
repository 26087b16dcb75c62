import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Synchronization
import X509
@testable import Node
import Collector
import Launcher
import LedgerTesting

/// `medledger network up / status / down` with real processes on loopback, and `GET /v1/node`.
/// Each test stops exactly the processes it started: those recorded in the network's
/// processes.json (by pid and start time), or its own children.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct LocalNetworkTests {
    /// What `network status --json` prints, decoded independently of the types that wrote it.
    struct Report: Decodable {
        struct Entry: Decodable {
            struct Status: Decodable {
                var height: UInt64
                var block_hash: String
                var state_root: String
                var leader_epoch: UInt64?
                var ordering: String
                var certificate_not_after: Int64
            }
            var name: String
            var up: Bool
            var status: Status?
            var lag: UInt64?
            var certificate_days_left: Int64?
            var certificate_warning: Bool
            var common_block_hash: String?
        }
        var nodes: [Entry]
        var common_height: UInt64?
        var problems: [String]
        var ok: Bool
    }

    static func status(_ directory: String) async throws -> (code: Int32, report: Report?, stdout: String, stderr: String) {
        let result = try await ManagedProcess.medledger("network", "status", "--data", directory, "--json")
        return (result.status, try? JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8)), result.stdout, result.stderr)
    }

    /// Stops whatever the table still records (a failed test must not leave processes behind).
    static func cleanUp(_ directory: String) async {
        if let table = try? ProcessTable.load(directory: directory) {
            _ = await DetachedProcess.stop(table.processes, grace: .seconds(2))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// up (3 organisations, 3 etcd members) → status: one leader, every node at one height and
    /// hash → a transaction submitted to one node commits on every node → one node SIGKILLed:
    /// status exits 1 naming it → down: every recorded pid is gone, and a second down says so → up
    /// again starts the same processes on the same ledgers → down.
    @Test func upStatusSubmitDown() async throws {
        let directory = Fixtures.temporaryPath("network-up")
        do {
            let up = try await ManagedProcess.run(ManagedProcess.medledgerPath, [
                "network", "up", "--orgs", "3", "--etcd", "3", "--data", directory, "--no-collectors", "--lease-ttl", "2",
                "--batch-size", "50", "--batch-timeout-ms", "10",
            ], timeout: .seconds(300))
            #expect(up.status == 0, "network up: \(up.stderr)\n\(up.stdout)")
            let table = try #require(try ProcessTable.load(directory: directory))
            #expect(table.etcdMembers.count == 3)
            #expect(table.nodes.map(\.organization) == ["st-mary", "north-general", "medtech-research"])
            for record in table.processes {
                #expect(DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime), "\(record.name) is not running")
                #expect(record.endpoint?.hasPrefix("http://127.0.0.1:") == true, "\(record.name): \(record.endpoint ?? "no endpoint")")
                // Detached: its own session, not the test's.
                #expect(getsid(record.pid) == record.pid, "\(record.name) is not a session leader")
            }
            for record in table.nodes { #expect(up.stdout.contains(record.endpoint!), "up does not print \(record.name)'s endpoint") }
            #expect(up.stdout.contains("network status --data"))

            // Nodes follow the leader's genesis-height log; wait until all report the same tip.
            var report: Report?
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let answer = try await Self.status(directory)
                report = answer.report
                if answer.code == 0, let nodes = report?.nodes, Set(nodes.compactMap { $0.status?.block_hash }).count == 1 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let first = try #require(report)
            #expect(first.ok, "\(first.problems)")
            #expect(first.nodes.count == 3 && first.nodes.allSatisfy(\.up))
            #expect(Set(first.nodes.compactMap { $0.status?.height }).count == 1)
            #expect(Set(first.nodes.compactMap { $0.status?.block_hash }).count == 1)
            #expect(first.nodes.filter { $0.status?.leader_epoch != nil }.count == 1, "leaders: \(first.nodes.map { "\($0.name) \(String(describing: $0.status?.leader_epoch))" })")
            #expect(first.nodes.allSatisfy { $0.status?.ordering == "etcd" && $0.lag == 0 && $0.certificate_warning == false })
            #expect(first.nodes.allSatisfy { ($0.certificate_days_left ?? 0) > 300 })

            // Submit through the last node (usually not the leader); it commits on every node.
            let definition = try NetworkDefinition.load(directory: directory)
            let signer = try definition.identity(named: "north-general/collector", directory: directory)
            let reader = NodeClient.Signer(identity: try definition.identity(named: "st-mary/node", directory: directory), network: definition.networkID)
            let action = DeviceAction.register(udi: Fixtures.udi(808_001), attributes: Fixtures.attributes())
            let (id, envelope) = signer.transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
            _ = try await NodeClient(baseURL: URL(string: table.nodes.last!.endpoint!)!).submit(envelope.encoded)
            for record in table.nodes {
                let status = try await NodeClient(baseURL: URL(string: record.endpoint!)!, signer: reader).status(id, wait: 30)
                #expect(status.status == "committed", "\(id.hex.prefix(12)) is \(status.status) on \(record.name)")
            }
            let after = try #require(try await Self.status(directory).report)
            #expect(after.ok, "\(after.problems)")
            #expect((after.common_height ?? 0) >= 1)

            // A proof from one node carries the others' checkpoints: three organisations attest it.
            let proofFile = directory + "/proof.json"
            var verified: (status: Int32, stdout: String, stderr: String)?
            let deadline4 = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline4 {
                let (code, body) = try await NodeClient(baseURL: URL(string: table.nodes[0].endpoint!)!, signer: reader).raw("/v1/proofs/inclusion/\(id.hex)")
                #expect(code == 200, "\(String(decoding: body, as: UTF8.self))")
                try body.write(to: URL(fileURLWithPath: proofFile))
                verified = try await ManagedProcess.medledger("verify-proof", proofFile, "--network", directory, "--min-organisations", "3")
                if verified?.status == 0 { break }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(verified?.status == 0, "\(verified?.stderr ?? "")")
            #expect(verified?.stdout.contains("3 organisation(s): medtech-research, north-general, st-mary") == true, "\(verified?.stdout ?? "")")
            let four = try await ManagedProcess.medledger("verify-proof", proofFile, "--network", directory, "--min-organisations", "4")
            #expect(four.status != 0 && four.stderr.contains("at least 4 required"), "\(four.stderr)")

            // A node that is gone makes status fail and name it.
            let victim = table.nodes[2]
            #expect(DetachedProcess.isRunning(pid: victim.pid, startTime: victim.startTime))
            kill(victim.pid, SIGKILL)
            let deadline2 = ContinuousClock.now + .seconds(30)
            while DetachedProcess.isRunning(pid: victim.pid, startTime: victim.startTime), ContinuousClock.now < deadline2 {
                try await Task.sleep(for: .milliseconds(20))
            }
            let degraded = try await Self.status(directory)
            #expect(degraded.code != 0, "status exit \(degraded.code) with \(victim.name) killed")
            #expect(degraded.report?.nodes.first { $0.name == victim.name }?.up == false)
            #expect(degraded.report?.problems.contains { $0.contains("\(victim.name) is down") } == true, "\(degraded.report?.problems ?? [])")

            let down = try await ManagedProcess.medledger("network", "down", "--data", directory)
            #expect(down.status == 0, "\(down.stderr)")
            for record in table.processes {
                #expect(!DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime), "\(record.name) (pid \(record.pid)) still runs")
                if record == victim {
                    #expect(down.stdout.contains("\(record.name) (pid \(record.pid)) was already gone"), "\(down.stdout)")
                } else {
                    #expect(down.stdout.contains("stopped \(record.name)") || down.stdout.contains("killed \(record.name)"), "\(down.stdout)")
                }
            }
            #expect(try ProcessTable.load(directory: directory) == nil)
            let again = try await ManagedProcess.medledger("network", "down", "--data", directory)
            #expect(again.status == 0 && again.stdout.contains("already down"), "\(again.stdout)")
            // With the nodes gone there is nothing to report on: a clear error, exit 1.
            let gone = try await Self.status(directory)
            #expect(gone.code != 0 && gone.stderr.contains("network up"), "\(gone.stderr)")

            // `up` on the stopped network starts the same processes again, on the same ledgers.
            let restarted = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["network", "up", "--data", directory], timeout: .seconds(300))
            #expect(restarted.status == 0, "network up again: \(restarted.stderr)\n\(restarted.stdout)")
            #expect(restarted.stdout.contains("again"), "\(restarted.stdout)")
            let second = try #require(try ProcessTable.load(directory: directory))
            #expect(second.processes.map(\.name) == table.processes.map(\.name))
            #expect(second.etcdMembers.map(\.endpoint) == table.etcdMembers.map(\.endpoint), "etcd keeps its ports")
            #expect(Set(second.processes.map(\.pid)).isDisjoint(with: table.processes.map(\.pid)))
            for record in second.nodes {
                let status = try await NodeClient(baseURL: URL(string: record.endpoint!)!, signer: reader).status(id, wait: 30)
                #expect(status.status == "committed", "after the restart \(id.hex.prefix(12)) is \(status.status) on \(record.name)")
            }
            var resumed: Report?
            let deadline3 = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline3 {
                let answer = try await Self.status(directory)
                resumed = answer.report
                if answer.code == 0 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(resumed?.ok == true, "\(resumed?.problems ?? [])")
            #expect((resumed?.common_height ?? 0) >= (after.common_height ?? 0))
            let downAgain = try await ManagedProcess.medledger("network", "down", "--data", directory)
            #expect(downAgain.status == 0, "\(downAgain.stderr)")
            for record in second.processes {
                #expect(!DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime), "\(record.name) (pid \(record.pid)) still runs")
            }
            // The table names programs to run: a directory others may write is not trusted with it.
            #expect(chmod(directory, 0o777) == 0)
            let refused = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["network", "up", "--data", directory], timeout: .seconds(60))
            #expect(refused.status != 0 && refused.stderr.contains("no one else may write"), "\(refused.stderr)\n\(refused.stdout)")
            #expect(try ProcessTable.load(directory: directory) == nil, "nothing started")
        } catch {
            await Self.cleanUp(directory)
            throw error
        }
        await Self.cleanUp(directory)
    }

    /// Red team: two `up` (or `down`) runs on one directory at once each recorded only what they
    /// started; now the second is refused while the first holds `run/lock`.
    @Test func aSecondUpOnTheSameDirectoryIsRefused() async throws {
        let directory = Fixtures.temporaryPath("network-locked")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let held = try ProcessTable.Lock(directory: directory)
        let up = try await ManagedProcess.run(ManagedProcess.medledgerPath, ["network", "up", "--orgs", "1", "--etcd", "1", "--data", directory],
                                              timeout: .seconds(60))
        #expect(up.status != 0 && up.stderr.contains("is running on"), "\(up.stderr)\n\(up.stdout)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/" + NetworkDefinition.fileName), "up created a network")
        let down = try await ManagedProcess.medledger("network", "down", "--data", directory)
        #expect(down.status != 0 && down.stderr.contains("is running on"), "\(down.stderr)")
        withExtendedLifetime(held) {}
    }

    /// Without `etcd` on PATH, `up` names the package to install and creates nothing.
    @Test func missingEtcdNamesThePackage() async throws {
        let directory = Fixtures.temporaryPath("network-no-etcd")
        let empty = Fixtures.temporaryPath("empty-path")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: empty)
            try? FileManager.default.removeItem(atPath: directory)
        }
        let result = try await ManagedProcess.run("/usr/bin/env", ["PATH=\(empty)", ManagedProcess.medledgerPath, "network", "up", "--data", directory])
        #expect(result.status != 0)
        #expect(result.stderr.contains("etcd-server"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    /// `down` signals a recorded pid only while its start time matches: a process that reused the
    /// number is left alone, a matching one is stopped, a vanished one is reported as gone.
    @Test func downLeavesAReusedPidAlone() async throws {
        let directory = Fixtures.temporaryPath("network-reused-pid")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bystander = try ManagedProcess("/bin/sleep", ["300"])
        // Started as `network up` starts its processes (signal dispositions reset, so SIGTERM ends it).
        let (oursPID, oursStart) = try DetachedProcess.spawn("/bin/sleep", ["300"], log: directory + "/ours.log")
        let finished = try ManagedProcess("/bin/true", [])
        _ = await finished.waitForExit(timeout: .seconds(30))
        defer {
            bystander.send(SIGKILL)
            if DetachedProcess.isRunning(pid: oursPID, startTime: oursStart) { kill(oursPID, SIGKILL) }
        }
        let bystanderStart = try #require(DetachedProcess.startTime(of: bystander.pid))
        let table = ProcessTable(networkID: .zero, processes: [
            .init(name: "node-reused", kind: .node, pid: bystander.pid, startTime: bystanderStart + 1, argv: ["/bin/sleep", "300"],
                  endpoint: nil, organization: nil, log: "logs/node-reused.log"),
            .init(name: "node-ours", kind: .node, pid: oursPID, startTime: oursStart, argv: ["/bin/sleep", "300"],
                  endpoint: nil, organization: nil, log: "logs/node-ours.log"),
            .init(name: "etcd-gone", kind: .etcd, pid: finished.pid, startTime: 1, argv: ["/bin/true"],
                  endpoint: nil, organization: nil, log: "logs/etcd-gone.log"),
        ])
        try table.write(directory: directory)
        let down = try await ManagedProcess.medledger("network", "down", "--data", directory, "--grace", "10")
        #expect(down.status == 0, "\(down.stderr)")
        #expect(down.stdout.contains("node-reused: pid \(bystander.pid) now belongs to another process"), "\(down.stdout)")
        #expect(down.stdout.contains("stopped node-ours"), "\(down.stdout)")
        #expect(down.stdout.contains("etcd-gone (pid \(finished.pid)) was already gone"), "\(down.stdout)")
        #expect(DetachedProcess.isRunning(pid: bystander.pid, startTime: bystanderStart), "the bystander was signalled")
        #expect(!DetachedProcess.isRunning(pid: oursPID, startTime: oursStart), "the recorded process still runs")
        var status: Int32 = 0
        _ = waitpid(oursPID, &status, 0)
        #expect(try ProcessTable.load(directory: directory) == nil)
    }

    /// `GET /v1/node` on a solo node: its identity and tip, no leadership, no divergence; the
    /// divergence once the node has one; the certificate expiry in /metrics.
    @Test func nodeRouteAndCertificateMetric() async throws {
        let harness = try NodeHarness()
        let api = try await APIHarness(harness)
        let auditor = try harness.identity("device-regulator/auditor")
        let answer = try await api.get("/v1/node", as: auditor)
        #expect(answer.status == 200, "\(answer.text)")
        let object = try #require(try JSONSerialization.jsonObject(with: answer.body) as? [String: Any])
        let node = harness.node
        #expect(object["fingerprint"] as? String == node.identity.fingerprint.hex)
        #expect(object["organization"] as? String == "st-mary")
        #expect(object["ordering"] as? String == "solo")
        #expect(object["height"] as? Int == Int(node.tip.height))
        #expect(object["block_hash"] as? String == node.tip.hash.hex)
        #expect(object["state_root"] as? String == node.tip.stateRoot.hex)
        #expect(object["log_root"] as? String == node.tip.logRoot.hex)
        #expect(object["leader_epoch"] is NSNull && object["log_height"] is NSNull && object["divergence"] is NSNull, "\(answer.text)")
        let notAfter = try #require(object["certificate_not_after"] as? Int)
        #expect(notAfter == Int(node.identity.certificate.notValidAfter.timeIntervalSince1970))

        node.halted.withLock { $0 = Divergence(height: 7, reason: "test: a different state root") }
        let diverged = try await api.get("/v1/node", as: auditor)
        let status = try JSONDecoder().decode(NodeStatus.self, from: diverged.body)
        #expect(status.divergence == Divergence(height: 7, reason: "test: a different state root"))

        let metrics = node.metrics.render()
        let line = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("medledger_certificate_expiry_seconds ") })
        let seconds = try #require(Int64(line.split(separator: " ")[1]))
        let expected = Int64(node.identity.certificate.notValidAfter.timeIntervalSince1970 - Date().timeIntervalSince1970)
        #expect(abs(seconds - expected) <= 5)
        #expect(seconds > 300 * 86_400)
        await api.stop()
        try await harness.stop()
    }
}
