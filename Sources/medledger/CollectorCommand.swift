import ArgumentParser
import Foundation
import Logging
import LedgerCore
import Node
import Collector

struct Collector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collector",
        abstract: "Run a hospital collector against a node: register simulated devices, then send their events.",
        discussion: """
            Every transaction is signed with the collector's key and kept in a durable outbox until the \
            node reports it committed or rejected; unsent ones are resent on the next start.

            Example:
              medledger collector --network ./net --identity st-mary/collector --node http://127.0.0.1:8080 --devices 50
            """
    )

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "Devices to register before sending events.")
    var devices = 20

    @Option(name: .long, help: "Milliseconds between events.")
    var intervalMs = 500

    @Option(name: .long, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(name: .long, help: "Outbox database (default: NETWORK/collectors/<org>.outbox.sqlite).")
    var outbox: String?

    @Option(name: .long, help: "Log level.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        Logs.bootstrap(level: logLevel)
        let logger = Logger(label: "medledger.collector")
        let network = options.network
        let definition = try NetworkDefinition.load(directory: network)
        let signer = try definition.identity(named: options.identity, directory: network)
        let organization = options.identity.split(separator: "/").first.map(String.init) ?? options.identity
        try SecureFile.makeDirectory(network + "/collectors")
        let box = try Outbox(path: outbox ?? network + "/collectors/\(organization).outbox.sqlite")
        let client = try options.client()
        let collector = HospitalCollector(hospital: organization, identity: signer, network: definition.networkID, client: client,
                                          outbox: box, seed: UInt64(Date().timeIntervalSince1970), logger: logger)
        let deadline = duration.map { ContinuousClock.now + .milliseconds(Int($0 * 1000)) }
        try await collector.run(deviceCount: devices, interval: .milliseconds(intervalMs), until: deadline)
        Output.json(collector.statistics)
    }
}

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Sign and submit one device transaction (register, update, transfer, accept, decommission).",
        discussion: """
            Fields are set with --set name=value: manufacturer, model, firmware_version, device_type, category, \
            speciality, location, lot (text); production_date, last_service_date, warranty_expiry, expiry_date (YYYY-MM-DD); \
            usage_hours, battery_level (0-100), sync_frequency_seconds, last_sync (ms since epoch) (integers); \
            active (true/false). A UDI's lot, production date and expiry fill lot, production_date and
            expiry_date; the device is keyed by its canonical UDI (agency, device identifier, serial).

            Examples:
              medledger device register --network ./net --identity st-mary/collector --udi '(01)00844588003288(21)A1' \\
                  --set manufacturer=Helix --set model=HX-1 --set device_type=ventilator --set category=life_support \\
                  --set speciality=intensive_care --set production_date=2023-05-01
              medledger device update --network ./net --identity st-mary/collector --udi '(01)00844588003288(21)A1' \\
                  --event firmware_update --set firmware_version=2.1.0
              medledger device transfer --network ./net --identity st-mary/admin --udi '…' --to north-general
            """
    )

    @Argument(help: "register, update, transfer, accept or decommission.")
    var action: String

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "Device UDI (GS1 or HIBCC).")
    var udi: String

    @Option(name: .long, help: "Field to set, name=value. Repeat.")
    var set: [String] = []

    @Option(name: .long, help: "Event name for update (e.g. firmware_update, power, battery, service, sync).")
    var event = "update"

    @Option(name: .long, help: "Target hospital for transfer.")
    var to: String?

    @Option(name: .long, help: "Reason for decommission.")
    var reason: String?

    func run() async throws {
        let attributes = try Self.parse(set)
        let deviceAction: DeviceAction
        switch action {
        case "register": deviceAction = .register(udi: udi, attributes: attributes)
        case "update": deviceAction = .update(udi: udi, event: event, changes: attributes)
        case "transfer":
            guard let to else { throw ValidationError("transfer needs --to HOSPITAL") }
            deviceAction = .transfer(udi: udi, to: to)
        case "accept": deviceAction = .acceptTransfer(udi: udi)
        case "decommission":
            guard let reason else { throw ValidationError("decommission needs --reason TEXT") }
            deviceAction = .decommission(udi: udi, reason: reason)
        default: throw ValidationError("action must be register, update, transfer, accept or decommission")
        }
        _ = try await options.submit(contract: "devices", action: deviceAction.name, arguments: deviceAction.arguments)
    }

    static func parse(_ assignments: [String]) throws -> DeviceAttributes {
        var attributes = DeviceAttributes()
        for assignment in assignments {
            let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--set \(assignment): expected name=value") }
            let (name, value) = (parts[0], parts[1])
            func integer() throws -> Int64 {
                guard let number = Int64(value) else { throw ValidationError("\(name) must be an integer") }
                return number
            }
            func day() throws -> Int64 {
                guard let days = CivilDate.parse(value) else { throw ValidationError("\(name) must be a date YYYY-MM-DD") }
                return days
            }
            switch name {
            case "manufacturer": attributes.manufacturer = value
            case "model": attributes.model = value
            case "firmware_version": attributes.firmwareVersion = value
            case "device_type": attributes.deviceType = value
            case "category": attributes.category = value
            case "speciality": attributes.speciality = value
            case "location": attributes.location = value
            case "production_date": attributes.productionDate = try day()
            case "last_service_date": attributes.lastServiceDate = try day()
            case "warranty_expiry": attributes.warrantyExpiry = try day()
            case "usage_hours": attributes.usageHours = try integer()
            case "battery_level": attributes.batteryLevel = try integer()
            case "sync_frequency_seconds": attributes.syncFrequencySeconds = try integer()
            case "last_sync": attributes.lastSync = try integer()
            case "lot": attributes.lot = value
            case "expiry_date": attributes.expiryDate = try day()
            case "active":
                guard let flag = Bool(value) else { throw ValidationError("active must be true or false") }
                attributes.active = flag
            default: throw ValidationError("unknown field \(name)")
            }
        }
        return attributes
    }
}
