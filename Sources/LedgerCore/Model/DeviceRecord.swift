/// A device as held in ledger state under key `dev/<udi>`, `udi` being canonical (``UDI/canonicalKey(_:)``).
public struct DeviceRecord: BinaryCodable, Hashable {
    public enum Status: UInt8, Sendable, Hashable, Codable {
        case active = 0
        case decommissioned = 1
    }

    public var udi: String
    /// The owning hospital's organisation id.
    public var owner: String
    public var status: Status
    public var attributes: DeviceAttributes
    /// 1 at registration, +1 on every change.
    public var version: UInt64
    public var registeredAt: Int64
    public var updatedAt: Int64
    /// What the last change was (`register`, `firmware_update`, `transfer`, …).
    public var lastEvent: String
    /// Set while a transfer offered by the owner awaits the receiving organisation's acceptance.
    public var pendingTransferTo: String?

    public init(udi: String, owner: String, status: Status, attributes: DeviceAttributes, version: UInt64,
                registeredAt: Int64, updatedAt: Int64, lastEvent: String, pendingTransferTo: String?) {
        self.udi = udi
        self.owner = owner
        self.status = status
        self.attributes = attributes
        self.version = version
        self.registeredAt = registeredAt
        self.updatedAt = updatedAt
        self.lastEvent = lastEvent
        self.pendingTransferTo = pendingTransferTo
    }

    public static func key(_ udi: String) -> String { "dev/" + udi }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(udi)
        writer.write(owner)
        writer.write(status.rawValue)
        attributes.encode(to: &writer)
        writer.write(version)
        writer.write(registeredAt)
        writer.write(updatedAt)
        writer.write(lastEvent)
        writer.writeOptional(pendingTransferTo)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        udi = try reader.readString("device udi", maxLength: 128)
        owner = try reader.readString("device owner", maxLength: 64)
        guard let status = Status(rawValue: try reader.readUInt8("device status")) else {
            throw LedgerError(.malformedEncoding, "device: unknown status")
        }
        self.status = status
        attributes = try DeviceAttributes(from: &reader)
        version = try reader.readUInt64("device version")
        registeredAt = try reader.readInt64("device registeredAt")
        updatedAt = try reader.readInt64("device updatedAt")
        lastEvent = try reader.readString("device lastEvent", maxLength: 64)
        pendingTransferTo = try reader.readOptionalString("device pendingTransfer", maxLength: 64)
    }
}

/// Arguments of the `devices` contract's actions.
public enum DeviceAction: Sendable, Hashable {
    case register(udi: String, attributes: DeviceAttributes)
    /// An event-driven update: `event` names what happened (`firmware_update`, `power`, `battery`,
    /// `service`, `sync`, `usage`, `relocate`, …), `changes` carries only the changed fields.
    case update(udi: String, event: String, changes: DeviceAttributes)
    /// The owner offers the device to another hospital.
    case transfer(udi: String, to: String)
    /// The receiving hospital accepts a pending transfer.
    case acceptTransfer(udi: String)
    case decommission(udi: String, reason: String)

    public var name: String {
        switch self {
        case .register: "register"
        case .update: "update"
        case .transfer: "transfer"
        case .acceptTransfer: "accept_transfer"
        case .decommission: "decommission"
        }
    }

    public var udi: String {
        switch self {
        case .register(let udi, _), .update(let udi, _, _), .transfer(let udi, _), .acceptTransfer(let udi), .decommission(let udi, _): udi
        }
    }

    /// The encoded arguments (the action name travels in the payload).
    public var arguments: [UInt8] {
        var writer = BinaryWriter()
        switch self {
        case .register(let udi, let attributes):
            writer.write(udi)
            attributes.encode(to: &writer)
        case .update(let udi, let event, let changes):
            writer.write(udi)
            writer.write(event)
            changes.encode(to: &writer)
        case .transfer(let udi, let to):
            writer.write(udi)
            writer.write(to)
        case .acceptTransfer(let udi):
            writer.write(udi)
        case .decommission(let udi, let reason):
            writer.write(udi)
            writer.write(reason)
        }
        return writer.bytes
    }

    /// Decodes the arguments of the named action.
    public init(action: String, arguments: [UInt8]) throws(LedgerError) {
        guard ["register", "update", "transfer", "accept_transfer", "decommission"].contains(action) else {
            throw LedgerError(.unknownAction, "devices contract has no action \(action)")
        }
        var reader = BinaryReader(arguments)
        let udi = try reader.readString("udi", maxLength: 128)
        switch action {
        case "register": self = .register(udi: udi, attributes: try DeviceAttributes(from: &reader))
        case "update":
            let event = try reader.readString("event", maxLength: 64)
            self = .update(udi: udi, event: event, changes: try DeviceAttributes(from: &reader))
        case "transfer": self = .transfer(udi: udi, to: try reader.readString("to", maxLength: 64))
        case "accept_transfer": self = .acceptTransfer(udi: udi)
        case "decommission": self = .decommission(udi: udi, reason: try reader.readString("reason", maxLength: 512))
        default: throw LedgerError(.unknownAction, "devices contract has no action \(action)")
        }
        try reader.expectEnd("devices.\(action) arguments")
    }
}
