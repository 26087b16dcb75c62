import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerStore
import Node
import Collector
import LedgerTesting

final class Load: Sendable {
    final class Box<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
        func withLock<R: Sendable>(_ body: (inout sending Value) -> sending R) -> R { value.withLock(body) }
    }

    let acknowledged = Box<[Hash256]>([])
    let killed = Box(false)
    let failures = Box<[String]>([])
}

/// Real processes: a 3-member etcd cluster and three `medledger node --ordering etcd` processes
/// on loopback. Each test stops exactly the pids it started.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct EtcdProcessTests {
    static let nodes = ["st-mary", "north-general", "city-childrens"]

    static func database(_ directory: String, _ organization: String) -> String { directory + "/\(organization).sqlite" }

    static func startNode(_ directory: String, _ organization: String, etcd: EtcdCluster) async throws -> (ManagedProcess, URL) {
        let node = try ManagedProcess(medledger: "node", "--data", directory, "--identity", "\(organization)/node",
                                      "--database", database(directory, organization), "--port", "0", "--log-level", "warning",
                                      "--ordering", "etcd", "--etcd", etcd.endpoints.joined(separator: ","), "--lease-ttl", "2")
        guard let line = await node.line(containing: "listening on"),
              let address = line.split(separator: " ").first(where: { $0.hasPrefix("http://") }),
              let url = URL(string: String(address))
        else {
            throw LedgerError(.io, "node did not start: \(node.errors.withLock { $0 })")
        }
        return (node, url)
    }

    /// Which node leads, from each node's own `/metrics`.
    static func leader(_ clients: [String: NodeClient], timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for (name, client) in clients {
                if let (status, body) = try? await client.raw("/metrics"), status == 200,
                   String(decoding: body, as: UTF8.self).contains("\nmedledger_leader 1\n") {
                    return name
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LedgerError(.internal, "no node reports that it leads")
    }

    /// SIGKILL the leader node under load from clients of every node: every transaction any node
    /// acknowledged (202: in etcd's queue) commits, a new leader takes over within the lease, the
    /// killed node catches up after a restart, and all three databases hold the same blocks and verify.
    @Test func killedLeaderNodeLosesNoAcknowledgedTransaction() async throws {
        let directory = Fixtures.temporaryPath("etcd-processes")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let etcd = try await EtcdCluster.start(members: 3)
        var processes: [String: ManagedProcess] = [:]
        func stopEverything() async {
            for (name, process) in processes {
                let errors = process.errors.withLock { $0 }
                if !errors.isEmpty { print("[\(name) stderr]\n\(errors.suffix(3000))") }
                process.send(SIGKILL)
                _ = await process.waitForExit(timeout: .seconds(10))
            }
            await etcd.stop()
        }
        do {
            let initialized = try await ManagedProcess.medledger("init", "--out", directory, "--batch-size", "20", "--batch-timeout-ms", "10")
            #expect(initialized.status == 0, "\(initialized.stderr)")
            let definition = try NetworkDefinition.load(directory: directory)
            let auditor = try definition.identity(named: "device-regulator/auditor", directory: directory)
            var urls: [String: URL] = [:]
            for organization in Self.nodes {
                let (process, url) = try await Self.startNode(directory, organization, etcd: etcd)
                processes[organization] = process
                urls[organization] = url
            }
            let readers = urls.mapValues { NodeClient(baseURL: $0, signer: .init(identity: auditor, network: definition.networkID)) }
            let leader = try await Self.leader(readers)
            let signers = try Self.nodes.map { try definition.identity(named: "\($0)/collector", directory: directory) }

            let load = Load()
            let (acknowledged, killed, failures) = (load.acknowledged, load.killed, load.failures)
            let (enough, signal) = AsyncStream<Void>.makeStream()
            let workers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<6 {
                        let target = Self.nodes[worker % 3]
                        let client = NodeClient(baseURL: urls[target]!)
                        group.addTask {
                            var serial = 0
                            // Clients of the killed node stop at the kill; the others go on for 150 more.
                            while !Task.isCancelled, acknowledged.withLock({ $0.count }) < 450 {
                                if target == leader, killed.withLock({ $0 }) { return }
                                serial += 1
                                let action = DeviceAction.register(udi: Fixtures.udi(worker * 1_000_000 + serial), attributes: Fixtures.attributes())
                                let (id, envelope) = signers[worker % 3].transaction(network: definition.networkID, contract: "devices",
                                                                                     action: action.name, arguments: action.arguments)
                                do {
                                    _ = try await client.submit(envelope.encoded)
                                    let count = acknowledged.withLock { list in
                                        list.append(id)
                                        return list.count
                                    }
                                    if count == 300 { signal.yield() }
                                } catch {
                                    if !(target == leader && killed.withLock({ $0 })) { failures.withLock { $0.append("\(target): \(error)") } }
                                    if target == leader { return }
                                    try? await Task.sleep(for: .milliseconds(50))
                                }
                            }
                        }
                    }
                    await group.waitForAll()
                    signal.finish()
                }
            }
            for await _ in enough { break }
            killed.withLock { $0 = true }
            let killedAt = ContinuousClock.now
            processes[leader]!.send(SIGKILL)
            #expect(await processes[leader]!.waitForExit(timeout: .seconds(30)) != nil && processes[leader]!.terminatingSignal == SIGKILL)
            processes.removeValue(forKey: leader)
            let survivors = readers.filter { $0.key != leader }
            let newLeader = try await Self.leader(survivors)
            let failover = ContinuousClock.now - killedAt
            await workers.value
            // While there is no leader, submissions are still acknowledged (queued in etcd); none failed.
            #expect(failures.withLock { $0 }.isEmpty, "submissions failed: \(failures.withLock { $0 }.prefix(5))")
            let acked = acknowledged.withLock { $0 }
            #expect(acked.count >= 300)
            for id in acked {
                for (name, reader) in survivors {
                    let status = try await reader.status(id, wait: 30)
                    #expect(status.status == "committed", "acknowledged \(id.hex.prefix(12)) is \(status.status) on \(name) after the leader was killed")
                }
            }
            print("etcd ordering: leader SIGKILLed, new leader reported after \(failover) (lease TTL 2 s); \(acked.count) acknowledged transactions, all committed")
            #expect(newLeader != leader)
            #expect(failover < .seconds(7), "a new leader took \(failover) (lease 2 s)")

            // The killed node restarts from its height and catches up.
            let (restarted, restartedURL) = try await Self.startNode(directory, leader, etcd: etcd)
            processes[leader] = restarted
            let target = try await survivors.first!.value.chain().height
            let deadline = ContinuousClock.now + .seconds(60)
            var height: UInt64 = 0
            let restartedReader = NodeClient(baseURL: restartedURL, signer: .init(identity: auditor, network: definition.networkID))
            while ContinuousClock.now < deadline {
                height = (try? await restartedReader.chain().height) ?? 0
                if height >= target { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(height >= target, "the restarted node reached \(height) of \(target)")

            // Stop every node cleanly, then compare the three databases block by block and verify each.
            for (name, process) in processes {
                process.send(SIGTERM)
                let code = await process.waitForExit(timeout: .seconds(30))
                if code != 0 { print("[\(name) stderr]\n\(process.errors.withLock { $0 }.suffix(4000))") }
                #expect(code == 0, "\(name) exited with \(String(describing: code)): \(process.errors.withLock { $0 }.suffix(2000))")
            }
            processes = [:]
            let stores = try Self.nodes.map { try LedgerStore(path: Self.database(directory, $0)) }
            let tips = try stores.map { try #require(try $0.tip()) }
            #expect(Set(tips.map(\.hash)).count == 1, "tips differ: \(tips.map(\.height))")
            for height in 0...tips[0].height {
                let hashes = Set(try stores.map { try #require(try $0.block(at: height)).header.hash })
                #expect(hashes.count == 1, "block \(height) differs between nodes")
            }
            for store in stores {
                let report = ChainVerifier.verify(store: store)
                #expect(report.ok, "\(report.failure ?? "")")
            }
        } catch {
            await stopEverything()
            throw error
        }
        await stopEverything()
    }

    /// SIGSTOP the leader past its lease, let another lead and commit, then SIGCONT: the old leader
    /// must not append (its epoch is fenced out), it follows the new blocks, and all nodes agree.
    @Test func stoppedLeaderResumesAsAFollowerWithoutForking() async throws {
        let directory = Fixtures.temporaryPath("etcd-sigstop")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let etcd = try await EtcdCluster.start(members: 3)
        var processes: [String: ManagedProcess] = [:]
        func stopEverything() async {
            for (name, process) in processes {
                process.send(SIGCONT)
                let errors = process.errors.withLock { $0 }
                if errors.contains("critical") { print("[\(name) stderr]\n\(errors.suffix(3000))") }
                process.send(SIGKILL)
                _ = await process.waitForExit(timeout: .seconds(10))
            }
            await etcd.stop()
        }
        do {
            let initialized = try await ManagedProcess.medledger("init", "--out", directory, "--batch-size", "20", "--batch-timeout-ms", "10")
            #expect(initialized.status == 0, "\(initialized.stderr)")
            let definition = try NetworkDefinition.load(directory: directory)
            let auditor = try definition.identity(named: "device-regulator/auditor", directory: directory)
            var urls: [String: URL] = [:]
            for organization in Self.nodes {
                let (process, url) = try await Self.startNode(directory, organization, etcd: etcd)
                processes[organization] = process
                urls[organization] = url
            }
            let readers = urls.mapValues { NodeClient(baseURL: $0, signer: .init(identity: auditor, network: definition.networkID)) }
            let leader = try await Self.leader(readers)
            let survivors = readers.filter { $0.key != leader }
            func submit(_ serial: Int, to name: String) async throws -> Hash256 {
                let signer = try definition.identity(named: "\(name)/collector", directory: directory)
                let action = DeviceAction.register(udi: Fixtures.udi(700_000 + serial), attributes: Fixtures.attributes())
                let (id, envelope) = signer.transaction(network: definition.networkID, contract: "devices", action: action.name, arguments: action.arguments)
                _ = try await NodeClient(baseURL: urls[name]!).submit(envelope.encoded)
                return id
            }
            var ids: [Hash256] = []
            for serial in 0..<20 { ids.append(try await submit(serial, to: Self.nodes[serial % 3])) }

            processes[leader]!.send(SIGSTOP)
            let newLeader = try await Self.leader(survivors, timeout: .seconds(30))
            #expect(newLeader != leader)
            for serial in 20..<60 { ids.append(try await submit(serial, to: survivors.keys.sorted()[serial % 2])) }
            for id in ids {
                for (name, reader) in survivors {
                    let status = try await reader.status(id, wait: 30)
                    #expect(status.status == "committed", "\(id.hex.prefix(12)) is \(status.status) on \(name) while the old leader is stopped")
                }
            }
            let heightWhileStopped = try await survivors[newLeader]!.chain().height

            processes[leader]!.send(SIGCONT)
            // It wakes up believing it leads; its appends are refused and it follows instead.
            for serial in 60..<80 { ids.append(try await submit(serial, to: Self.nodes[serial % 3])) }
            for id in ids {
                let status = try await readers[leader]!.status(id, wait: 30)
                #expect(status.status == "committed", "\(id.hex.prefix(12)) is \(status.status) on the resumed node")
            }
            #expect(try await readers[leader]!.chain().height > heightWhileStopped)

            for (name, process) in processes {
                process.send(SIGTERM)
                let code = await process.waitForExit(timeout: .seconds(30))
                #expect(code == 0, "\(name) exited with \(String(describing: code)): \(process.errors.withLock { $0 }.suffix(2000))")
            }
            processes = [:]
            let stores = try Self.nodes.map { try LedgerStore(path: Self.database(directory, $0)) }
            let tips = try stores.map { try #require(try $0.tip()) }
            #expect(Set(tips.map(\.hash)).count == 1, "tips differ: \(tips.map(\.height))")
            for height in 0...tips.map(\.height).min()! {
                let hashes = Set(try stores.map { try #require(try $0.block(at: height)).header.hash })
                #expect(hashes.count == 1, "block \(height) differs between nodes")
            }
            for store in stores {
                let report = ChainVerifier.verify(store: store)
                #expect(report.ok, "\(report.failure ?? "")")
            }
        } catch {
            await stopEverything()
            throw error
        }
        await stopEverything()
    }
}
