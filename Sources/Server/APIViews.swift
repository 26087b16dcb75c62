import Foundation
import LedgerCore
import LedgerStore
import Node

/// JSON shapes of the HTTP API (snake_case, hashes as lower-case hex, times in ms since the epoch).
struct ErrorBody: Codable {
    struct Detail: Codable {
        var code: String
        var message: String
    }
    var error: Detail
}

/// The answer to `POST /v1/transactions/batch`: one status per envelope, in body order.
struct BatchView: Codable {
    var results: [StatusView]
}

struct StatusView: Codable {
    var id: Hash256
    var status: String
    var height: UInt64?
    var index: UInt32?
    var sequence: UInt64?
    var code: String?
    var message: String?

    /// A submission in a batch that admission (or the ordering service) refused: nothing was ordered.
    init(refused id: Hash256, _ error: LedgerError) {
        self.id = id
        self.status = "refused"
        self.code = error.code.rawValue
        self.message = error.message
    }

    init(id: Hash256, status: TransactionStatus) {
        self.id = id
        switch status {
        case .unknown: self.status = "unknown"
        case .pending: self.status = "pending"
        case .committed(let height, let index, let sequence):
            self.status = "committed"
            self.height = height
            self.index = index
            self.sequence = sequence
        case .rejected(let height, let index, let sequence, let code, let message):
            self.status = "rejected"
            self.height = height
            self.index = index
            self.sequence = sequence
            self.code = code.rawValue
            self.message = message
        }
    }
}

struct ChainView: Codable {
    var networkID: Hash256
    var networkName: String
    var height: UInt64
    var hash: Hash256
    var timestamp: Int64
    var logSize: UInt64
    var logRoot: Hash256
    var stateRoot: Hash256
    var pending: Int
    var config: NetworkConfig

    enum CodingKeys: String, CodingKey {
        case height, hash, timestamp, pending, config
        case networkID = "network_id"
        case networkName = "network_name"
        case logSize = "log_size"
        case logRoot = "log_root"
        case stateRoot = "state_root"
    }
}

struct BlockView: Codable {
    var height: UInt64
    var hash: Hash256
    var previousHash: Hash256
    var timestamp: Int64
    var transactionRoot: Hash256
    var logSize: UInt64
    var logRoot: Hash256
    var stateRoot: Hash256
    var proposer: Hash256
    var signature: String
    var transactions: [StatusView]

    enum CodingKeys: String, CodingKey {
        case height, hash, timestamp, proposer, signature, transactions
        case previousHash = "previous_hash"
        case transactionRoot = "transaction_root"
        case logSize = "log_size"
        case logRoot = "log_root"
        case stateRoot = "state_root"
    }

    init(_ block: StoredBlock) {
        let header = block.header
        height = header.height
        hash = Hash256.of(block.headerBytes)
        previousHash = header.previousHash
        timestamp = header.timestamp
        transactionRoot = header.transactionRoot
        logSize = header.logSize
        logRoot = header.logRoot
        stateRoot = header.stateRoot
        proposer = header.proposer
        signature = Data(block.signature).base64EncodedString()
        transactions = block.transactions.map { transaction in
            StatusView(id: transaction.id, status: transaction.result.isCommitted
                ? .committed(height: transaction.height, index: transaction.index, sequence: transaction.sequence)
                : .rejected(height: transaction.height, index: transaction.index, sequence: transaction.sequence,
                            code: LedgerError.Code(ledgerStatus: transaction.result.status), message: nil))
        }
    }
}

/// A device with human-readable dates.
struct DeviceView: Codable {
    var udi: String
    var owner: String
    var status: String
    var version: UInt64
    var registeredAt: Int64
    var updatedAt: Int64
    var lastEvent: String
    var pendingTransferTo: String?
    var attributes: [String: AttributeValue]

    enum AttributeValue: Codable {
        case string(String)
        case integer(Int64)
        case bool(Bool)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let value): try container.encode(value)
            case .integer(let value): try container.encode(value)
            case .bool(let value): try container.encode(value)
            }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Int64.self) { self = .integer(value) }
            else { self = .string(try container.decode(String.self)) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case udi, owner, status, version, attributes
        case registeredAt = "registered_at"
        case updatedAt = "updated_at"
        case lastEvent = "last_event"
        case pendingTransferTo = "pending_transfer_to"
    }

    init(_ record: DeviceRecord) {
        udi = record.udi
        owner = record.owner
        status = record.status == .active ? "active" : "decommissioned"
        version = record.version
        registeredAt = record.registeredAt
        updatedAt = record.updatedAt
        lastEvent = record.lastEvent
        pendingTransferTo = record.pendingTransferTo
        attributes = Self.attributes(record.attributes)
    }

    static func attributes(_ a: DeviceAttributes) -> [String: AttributeValue] {
        var out: [String: AttributeValue] = [:]
        func string(_ key: String, _ value: String?) { if let value { out[key] = .string(value) } }
        func day(_ key: String, _ value: Int64?) { if let value { out[key] = .string(CivilDate.format(days: value)) } }
        func integer(_ key: String, _ value: Int64?) { if let value { out[key] = .integer(value) } }
        string("manufacturer", a.manufacturer)
        string("model", a.model)
        string("firmware_version", a.firmwareVersion)
        string("device_type", a.deviceType)
        string("category", a.category)
        string("speciality", a.speciality)
        string("location", a.location)
        day("production_date", a.productionDate)
        day("last_service_date", a.lastServiceDate)
        day("warranty_expiry", a.warrantyExpiry)
        integer("usage_hours", a.usageHours)
        integer("battery_level", a.batteryLevel)
        integer("sync_frequency_seconds", a.syncFrequencySeconds)
        integer("last_sync", a.lastSync)
        if let active = a.active { out["active"] = .bool(active) }
        string("lot", a.lot)
        day("expiry_date", a.expiryDate)
        return out
    }
}

/// One version of a device, with full provenance.
struct DeviceVersionView: Codable {
    struct Creator: Codable {
        var fingerprint: Hash256
        var organization: String?
        var name: String?
        var role: String?
    }

    var version: UInt64?
    var event: String?
    var action: String
    var device: DeviceView?
    var transactionID: Hash256
    var block: UInt64
    var index: UInt32
    var blockTime: Int64
    var submittedAt: Int64
    var creator: Creator

    enum CodingKeys: String, CodingKey {
        case version, event, action, device, block, index, creator
        case transactionID = "transaction_id"
        case blockTime = "block_time"
        case submittedAt = "submitted_at"
    }
}
