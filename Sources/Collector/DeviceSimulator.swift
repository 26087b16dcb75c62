public import LedgerCore

/// A small, fast, seedable generator (SplitMix64) for simulated data. Never used by contracts.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Simulated hospital equipment: realistic device types, valid GS1 and HIBCC UDIs, and
/// event-driven changes (firmware updates, power, battery, service, sync, usage, moves).
public struct DeviceSimulator: Sendable {
    struct Kind: Sendable {
        var type: String
        var category: String
        var speciality: String
        var battery: Bool
    }

    static let kinds: [Kind] = [
        Kind(type: "infusion_pump", category: "therapeutic", speciality: "intensive_care", battery: true),
        Kind(type: "patient_monitor", category: "monitoring", speciality: "cardiology", battery: true),
        Kind(type: "ventilator", category: "life_support", speciality: "intensive_care", battery: true),
        Kind(type: "defibrillator", category: "therapeutic", speciality: "emergency_medicine", battery: true),
        Kind(type: "ultrasound_scanner", category: "diagnostic", speciality: "radiology", battery: false),
        Kind(type: "ecg_recorder", category: "diagnostic", speciality: "cardiology", battery: true),
        Kind(type: "insulin_pump", category: "therapeutic", speciality: "endocrinology", battery: true),
        Kind(type: "pulse_oximeter", category: "monitoring", speciality: "paediatrics", battery: true),
        Kind(type: "dialysis_machine", category: "therapeutic", speciality: "nephrology", battery: false),
        Kind(type: "mri_scanner", category: "diagnostic", speciality: "radiology", battery: false),
    ]
    static let manufacturers: [(name: String, prefix: String, gs1Company: String)] = [
        ("Helix Medical", "HX", "0614141"), ("Nordlys Devices", "ND", "5412345"), ("CardioWorks", "CW", "0084458"),
        ("Meridian Health Systems", "MH", "4006381"), ("Pulse Dynamics", "PD", "0950400"),
    ]
    static let wards = ["ICU", "Emergency", "Cardiology", "Radiology", "Paediatrics", "Theatre 2", "Ward 7B", "Dialysis unit"]

    public var hospital: String
    var random: SplitMix64
    var serial: UInt64 = 0

    public init(hospital: String, seed: UInt64) {
        self.hospital = hospital
        self.random = SplitMix64(seed: seed)
    }

    /// A GS1 UDI: `(01)<GTIN-14 with check digit>(21)<serial>`.
    public static func gs1UDI(company: String, item: Int, serial: String) -> String {
        var digits = "0" + company + String(item % 100_000).leftPadded(to: 12 - company.count)
        digits = String(digits.prefix(13))
        let check = UDI.gs1CheckDigit(Array(digits.utf8))
        return "(01)" + digits + String(UnicodeScalar(check)) + "(21)" + serial
    }

    /// An HIBCC UDI in canonical form: `+<LIC><product><unit>/$+<serial><check>`.
    public static func hibccUDI(labeler: String, product: String, serial: String) -> String {
        let body = "+" + labeler + product + "1/$+" + serial
        let check = UDI.hibccCheckCharacter(Array(body.utf8))!
        return body + String(UnicodeScalar(check))
    }

    /// A new device with all registration fields.
    public mutating func newDevice(today: Int64) -> (udi: String, attributes: DeviceAttributes) {
        serial += 1
        let kind = Self.kinds[Int(random.next() % UInt64(Self.kinds.count))]
        let maker = Self.manufacturers[Int(random.next() % UInt64(Self.manufacturers.count))]
        let modelNumber = 100 + Int(random.next() % 900)
        let serialText = "\(hospital.prefix(3).uppercased())\(serial)X\(random.next() % 100_000)"
        let udi: String
        if random.next() % 5 == 0 {
            udi = Self.hibccUDI(labeler: "H" + maker.prefix + "1", product: "\(modelNumber)",
                                serial: String(serialText.filter { $0.isASCII && ($0.isLetter || $0.isNumber) }.uppercased().prefix(18)))
        } else {
            udi = Self.gs1UDI(company: maker.gs1Company, item: modelNumber * 10 + Self.kinds.firstIndex { $0.type == kind.type }!, serial: serialText)
        }
        let production = today - 365 * 8 + Int64(random.next() % (365 * 7))
        var attributes = DeviceAttributes()
        attributes.manufacturer = maker.name
        attributes.model = "\(maker.prefix)-\(modelNumber)"
        attributes.firmwareVersion = "\(1 + random.next() % 4).\(random.next() % 10).\(random.next() % 20)"
        attributes.deviceType = kind.type
        attributes.category = kind.category
        attributes.speciality = kind.speciality
        attributes.location = Self.wards[Int(random.next() % UInt64(Self.wards.count))]
        attributes.productionDate = production
        attributes.lastServiceDate = max(production, today - Int64(random.next() % 365))
        attributes.warrantyExpiry = production + 365 * 5
        attributes.usageHours = Int64(random.next() % 40_000)
        if kind.battery { attributes.batteryLevel = Int64(20 + random.next() % 81) }
        attributes.syncFrequencySeconds = [60, 300, 900, 3600][Int(random.next() % 4)]
        attributes.lastSync = nil
        attributes.active = true
        return (udi, attributes)
    }

    /// A plausible event for a device: the event name and only the changed fields.
    public mutating func nextEvent(for current: DeviceAttributes, now: Int64, today: Int64) -> (event: String, changes: DeviceAttributes) {
        var changes = DeviceAttributes()
        switch random.next() % 7 {
        case 0:
            let parts = (current.firmwareVersion ?? "1.0.0").split(separator: ".").compactMap { Int($0) }
            let major = parts.first ?? 1, minor = parts.count > 1 ? parts[1] : 0
            changes.firmwareVersion = "\(major).\(minor + 1).0"
            return ("firmware_update", changes)
        case 1:
            changes.active = !(current.active ?? true)
            return ("power", changes)
        case 2 where current.batteryLevel != nil:
            changes.batteryLevel = Int64(random.next() % 101)
            return ("battery", changes)
        case 3:
            changes.lastServiceDate = today
            return ("service", changes)
        case 4:
            changes.location = Self.wards[Int(random.next() % UInt64(Self.wards.count))]
            return ("relocate", changes)
        case 5:
            changes.usageHours = (current.usageHours ?? 0) + 1 + Int64(random.next() % 12)
            return ("usage", changes)
        default:
            changes.lastSync = now
            return ("sync", changes)
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
