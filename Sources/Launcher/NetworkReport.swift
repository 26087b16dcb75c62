import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import LedgerCore
public import Node
import Collector

/// What `medledger network status` prints: every node's `GET /v1/node`, compared.
public struct NetworkReport: Sendable, Encodable {
    public struct NodeEntry: Sendable, Codable {
        public var name: String
        public var organization: String?
        public var endpoint: String?
        /// The process recorded in processes.json still runs (same pid and start time).
        public var processRunning: Bool
        /// It answered `GET /v1/node`.
        public var up: Bool
        public var error: String?
        public var status: NodeStatus?
        /// The highest height any node reported, minus this node's height.
        public var lag: UInt64?
        public var certificateDaysLeft: Int64?
        /// Fewer than ``NetworkReport/certificateWarningDays`` days left.
        public var certificateWarning: Bool
        /// The hash of its block at the common height, when it answered.
        public var commonBlockHash: Hash256?

        enum CodingKeys: String, CodingKey {
            case name, organization, endpoint, up, error, status, lag
            case processRunning = "process_running"
            case certificateDaysLeft = "certificate_days_left"
            case certificateWarning = "certificate_warning"
            case commonBlockHash = "common_block_hash"
        }
    }

    public struct EtcdEntry: Sendable, Codable {
        public var name: String
        public var endpoint: String?
        public var processRunning: Bool

        enum CodingKeys: String, CodingKey {
            case name, endpoint
            case processRunning = "process_running"
        }
    }

    public static let certificateWarningDays: Int64 = 30

    public var networkID: Hash256
    public var nodes: [NodeEntry]
    public var etcd: [EtcdEntry]
    public var maxHeight: UInt64?
    /// The lowest height every answering node has reached: their blocks there are compared.
    public var commonHeight: UInt64?
    /// Why the exit status is 1: a node down, diverged, or a block that differs at the common height.
    public var problems: [String]
    /// Certificates expiring within 30 days, leader-less network and the like: reported, exit 0.
    public var warnings: [String]
    public var ok: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case nodes, etcd, problems, warnings, ok
        case networkID = "network_id"
        case maxHeight = "max_height"
        case commonHeight = "common_height"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(networkID, forKey: .networkID)
        try container.encode(nodes, forKey: .nodes)
        try container.encode(etcd, forKey: .etcd)
        try container.encode(maxHeight, forKey: .maxHeight)
        try container.encode(commonHeight, forKey: .commonHeight)
        try container.encode(problems, forKey: .problems)
        try container.encode(warnings, forKey: .warnings)
        try container.encode(ok, forKey: .ok)
    }

    struct BlockHash: Decodable { var hash: Hash256 }

    /// Asks every node in `table` (each request at most `timeout`), compares what they answer.
    public static func gather(_ table: ProcessTable, reader: NodeClient.Signer, now: Date = Date(),
                              timeout: Duration = .seconds(10)) async -> NetworkReport {
        var entries: [NodeEntry] = []
        for record in table.nodes {
            var entry = NodeEntry(name: record.name, organization: record.organization, endpoint: record.endpoint,
                                  processRunning: DetachedProcess.isRunning(pid: record.pid, startTime: record.startTime),
                                  up: false, certificateWarning: false)
            if let endpoint = record.endpoint, let url = URL(string: endpoint) {
                let client = NodeClient(baseURL: url, signer: reader)
                do {
                    let status: NodeStatus = try await withTimeout(timeout) { try await client.get("v1/node") }
                    entry.status = status
                    entry.up = true
                    let days = (status.certificateNotAfter - Int64(now.timeIntervalSince1970)) / 86_400
                    entry.certificateDaysLeft = days
                    entry.certificateWarning = days < certificateWarningDays
                } catch {
                    entry.error = "\(error)"
                }
            } else {
                entry.error = "no endpoint recorded"
            }
            entries.append(entry)
        }
        var problems: [String] = []
        var warnings: [String] = []
        let answering = entries.compactMap(\.status)
        let maxHeight = answering.map(\.height).max()
        let commonHeight = answering.map(\.height).min()
        for index in entries.indices {
            if let status = entries[index].status, let maxHeight { entries[index].lag = maxHeight - status.height }
        }
        if let commonHeight {
            for index in entries.indices where entries[index].up {
                let client = NodeClient(baseURL: URL(string: entries[index].endpoint!)!, signer: reader)
                let block: BlockHash? = try? await withTimeout(timeout) { try await client.get("v1/blocks/\(commonHeight)") }
                entries[index].commonBlockHash = block?.hash
            }
            let hashes = Set(entries.compactMap(\.commonBlockHash))
            if hashes.count > 1 {
                let detail = entries.filter { $0.commonBlockHash != nil }
                    .map { "\($0.name) \($0.commonBlockHash!.hex.prefix(16))…" }.joined(separator: ", ")
                problems.append("the nodes disagree on block \(commonHeight): \(detail)")
            }
            for entry in entries where entry.up && entry.commonBlockHash == nil {
                problems.append("\(entry.name) did not serve block \(commonHeight)")
            }
        }
        for entry in entries {
            if !entry.up {
                problems.append("\(entry.name) is down\(entry.processRunning ? " (its process runs but does not answer)" : " (its process has exited)"): \(entry.error ?? "")")
            }
            if let divergence = entry.status?.divergence {
                problems.append("\(entry.name) diverged at height \(divergence.height): \(divergence.reason)")
            }
            if entry.certificateWarning, let days = entry.certificateDaysLeft {
                warnings.append("\(entry.name): its certificate expires in \(days) days; renew it")
            }
        }
        if !answering.isEmpty, !answering.contains(where: { $0.leaderEpoch != nil }) {
            warnings.append("no node reports that it leads (an election may be in progress)")
        }
        let etcd = table.etcdMembers.map {
            EtcdEntry(name: $0.name, endpoint: $0.endpoint, processRunning: DetachedProcess.isRunning(pid: $0.pid, startTime: $0.startTime))
        }
        for member in etcd where !member.processRunning { warnings.append("\(member.name) is not running") }
        return NetworkReport(networkID: table.networkID, nodes: entries, etcd: etcd, maxHeight: maxHeight, commonHeight: commonHeight,
                             problems: problems, warnings: warnings)
    }

    /// A human table: one line per node, then problems and warnings.
    public func rendered() -> String {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count) }
        var out = pad("node", 24) + pad("endpoint", 24) + pad("height", 8) + pad("block hash", 18) + pad("state root", 18)
            + pad("leader", 16) + pad("lag", 5) + "certificate\n"
        for entry in nodes {
            out += pad(entry.name, 24) + pad(entry.endpoint ?? "-", 24)
            guard let status = entry.status else {
                out += "DOWN" + (entry.processRunning ? " (process runs, no answer)" : " (process exited)") + "\n"
                continue
            }
            let leader = status.leaderEpoch.map { "yes (epoch \($0))" } ?? "no"
            let certificate = entry.certificateDaysLeft.map { "\($0) days\(entry.certificateWarning ? " WARN" : "")" } ?? "-"
            out += pad(String(status.height), 8) + pad(String(status.blockHash.hex.prefix(16)), 18) + pad(String(status.stateRoot.hex.prefix(16)), 18)
                + pad(leader, 16) + pad(String(entry.lag ?? 0), 5) + certificate
            if let divergence = status.divergence { out += "  DIVERGED at \(divergence.height)" }
            out += "\n"
        }
        for member in etcd {
            out += pad(member.name, 24) + pad(member.endpoint ?? "-", 24) + (member.processRunning ? "running" : "NOT RUNNING") + "\n"
        }
        if let commonHeight {
            out += "common height \(commonHeight): " + (problems.contains { $0.contains("disagree") } ? "blocks DIFFER" : "every answering node holds the same block") + "\n"
        }
        for warning in warnings { out += "WARN: \(warning)\n" }
        for problem in problems { out += "PROBLEM: \(problem)\n" }
        out += ok ? "ok\n" : ""
        return out
    }
}
