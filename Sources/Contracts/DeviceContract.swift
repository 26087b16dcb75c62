public import LedgerCore

/// The device registry: register, update (event-driven), transfer between hospitals (offer by the
/// owner, acceptance by the receiver: both sides sign), decommission.
///
/// A device is keyed by its canonical UDI (``UDI/canonicalKey(_:)``: agency, normalised device
/// identifier, serial), so every spelling of one unit's UDI names the same record; the label's lot,
/// production date and expiry are attributes. Registering needs a serial: a UDI-DI alone is a model.
///
/// Only members of the owning hospital write its devices (admins and collectors register and
/// update; only admins transfer, accept and decommission), and a device key writes only its own record. Every change bumps ``DeviceRecord/version``; the store keeps each
/// version with the transaction, identity, block and time that produced it.
public struct DeviceContract: Contract {
    public static let name = "devices"
    public var name: String { Self.name }

    static let writers: Set<Role> = [.admin, .collector]

    public init() {}

    public func execute(_ context: inout TransactionContext) throws(LedgerError) {
        let action = try DeviceAction(action: context.payload.action, arguments: context.payload.arguments)
        let creator = try context.requireCreator()
        try Self.validate(action, creator: creator)
        switch action {
        case .register(let udi, let attributes):
            guard let organization = try context.organization(creator.organization), organization.kind == .hospital else {
                throw LedgerError(.forbidden, "only hospitals register devices; \(creator.organization) is not a hospital")
            }
            let parsed = try UDI.parse(udi)
            let key = parsed.canonical
            guard try context.get(StateKey.device(key)) == nil else {
                throw LedgerError(.deviceExists, "device \(key) is already registered" + (key == udi ? "" : " (as \(udi))"))
            }
            var initial = try parsed.registrationAttributes(attributes)
            if initial.active == nil { initial.active = true }
            let record = DeviceRecord(udi: key, owner: creator.organization, status: .active, attributes: initial, version: 1,
                                      registeredAt: context.blockTime, updatedAt: context.blockTime, lastEvent: "register",
                                      pendingTransferTo: nil)
            context.put(StateKey.device(key), record)

        case .update(let udi, let event, let changes):
            var record = try ownedRecord(udi, creator: creator, context)
            record.attributes = record.attributes.merging(changes)
            try commit(&record, event: event, &context)

        case .transfer(let udi, let to):
            var record = try ownedRecord(udi, creator: creator, context)
            guard to != record.owner else { throw LedgerError(.invalidArgument, "device \(udi) already belongs to \(to)") }
            guard let target = try context.organization(to), target.active else {
                throw LedgerError(.unknownOrganization, "no active organisation \(to)")
            }
            guard target.kind == .hospital else { throw LedgerError(.invalidArgument, "devices transfer only to hospitals; \(to) is a \(target.kind.rawValue)") }
            record.pendingTransferTo = to
            try commit(&record, event: "transfer_offer", &context)

        case .acceptTransfer(let udi):
            guard var record = try context.get(DeviceRecord.self, StateKey.device(UDI.canonicalKey(udi))) else {
                throw LedgerError(.unknownDevice, "no device \(udi)")
            }
            guard record.status == .active else { throw LedgerError(.deviceDecommissioned, "device \(udi) is decommissioned") }
            guard record.pendingTransferTo == creator.organization else {
                throw LedgerError(.forbidden, "no transfer of \(udi) to \(creator.organization) is pending")
            }
            record.owner = creator.organization
            record.pendingTransferTo = nil
            try commit(&record, event: "transfer", &context)

        case .decommission(let udi, _):
            var record = try ownedRecord(udi, creator: creator, context)
            record.status = .decommissioned
            record.attributes.active = false
            record.pendingTransferTo = nil
            try commit(&record, event: "decommission", &context)
        }
    }

    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {
        try Self.validate(DeviceAction(action: payload.action, arguments: payload.arguments), creator: creator)
    }

    /// Every check that needs no state: the creator's role, identifier syntax, field values and
    /// required fields. Admission runs it early (``preflight(_:creator:)``); execution runs it first.
    static func validate(_ action: DeviceAction, creator: Member) throws(LedgerError) {
        guard writers.union([.device]).contains(creator.role) else {
            throw LedgerError(.forbidden, "role \(creator.role.rawValue) may not write device records")
        }
        switch action {
        case .register(let udi, let attributes):
            guard creator.role != .device else { throw LedgerError(.forbidden, "a device cannot register devices") }
            let parsed = try UDI.parse(udi)
            guard parsed.serial != nil else {
                throw LedgerError(.invalidUDI, "UDI \(udi.prefix(40)) has no serial, so it names a model, not a unit: register with (21) (GS1) or $+, $$+ or /S (HIBCC)")
            }
            let merged = try parsed.registrationAttributes(attributes)
            try merged.validate()
            let missing = merged.missingRequired
            guard missing.isEmpty else { throw LedgerError(.missingField, "registration is missing \(missing.joined(separator: ", "))") }
        case .update(let udi, let event, let changes):
            if creator.role == .device, try !isBound(creator, to: udi) {
                throw LedgerError(.forbidden, "a device key may only update its own device")
            }
            guard isValidEvent(event) else {
                throw LedgerError(.invalidArgument, "event must be 1...64 of a-z and _, got \"\(event.prefix(64))\"")
            }
            guard !changes.isEmpty else { throw LedgerError(.missingField, "an update must change at least one field") }
            try changes.validate()
        case .decommission(_, let reason):
            // Ownership and end of life are the organisation's decisions, not its data feed's: a
            // stolen collector key must not give the inventory away or retire it for good.
            guard creator.role == .admin else { throw LedgerError(.forbidden, "only an admin may decommission devices (not a \(creator.role.rawValue))") }
            guard !reason.isEmpty else { throw LedgerError(.missingField, "decommissioning needs a reason") }
        case .transfer, .acceptTransfer:
            guard creator.role == .admin else { throw LedgerError(.forbidden, "only an admin may \(action.name) devices (not a \(creator.role.rawValue))") }
        }
    }

    /// Whether the device key `creator` is bound to `udi`'s device, in whatever spelling either is written.
    static func isBound(_ creator: Member, to udi: String) throws(LedgerError) -> Bool {
        let key = try UDI.canonicalKey(udi)
        guard let bound = creator.deviceUDI, let boundKey = try? UDI.canonicalKey(bound) else { return false }
        return boundKey == key
    }

    /// The record, if it exists, is active, and `creator` may write it.
    func ownedRecord(_ udi: String, creator: Member, _ context: TransactionContext) throws(LedgerError) -> DeviceRecord {
        guard let record = try context.get(DeviceRecord.self, StateKey.device(UDI.canonicalKey(udi))) else {
            throw LedgerError(.unknownDevice, "no device \(udi); register it first")
        }
        guard record.status == .active else { throw LedgerError(.deviceDecommissioned, "device \(udi) is decommissioned") }
        guard record.owner == creator.organization else {
            throw LedgerError(.forbidden, "device \(udi) belongs to \(record.owner); \(creator.organization) may not write it")
        }
        return record
    }

    func commit(_ record: inout DeviceRecord, event: String, _ context: inout TransactionContext) throws(LedgerError) {
        record.version += 1
        record.updatedAt = context.blockTime
        record.lastEvent = event
        context.put(StateKey.device(record.udi), record)
    }

    static func isValidEvent(_ event: String) -> Bool {
        !event.isEmpty && event.utf8.count <= 64 && event.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || $0 == 95 }
    }
}
