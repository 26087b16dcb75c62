/// The device fields of the MedTech Chain schema plus location. Every field is optional so that an
/// update carries only what changed; a registered device must have the ``required`` fields.
///
/// Dates are whole days since 1970-01-01 (UTC); instants are milliseconds since the epoch; no
/// floating point anywhere (ledger state must be bit-identical on every node).
public struct DeviceAttributes: BinaryCodable, Hashable, Codable {
    public var manufacturer: String?
    public var model: String?
    public var firmwareVersion: String?
    public var deviceType: String?
    public var category: String?
    public var speciality: String?
    public var location: String?
    public var productionDate: Int64?
    public var lastServiceDate: Int64?
    public var warrantyExpiry: Int64?
    public var usageHours: Int64?
    /// Percent, 0...100.
    public var batteryLevel: Int64?
    public var syncFrequencySeconds: Int64?
    public var lastSync: Int64?
    /// Switched on (true) or off.
    public var active: Bool?
    /// The lot or batch printed in the UDI's production identifier (GS1 (10), HIBCC `$`/`$$`).
    public var lot: String?
    /// The expiry date printed in the UDI (GS1 (17), HIBCC `$$`/`/14D`), a day number.
    public var expiryDate: Int64?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case manufacturer, model, category, speciality, location, active
        case firmwareVersion = "firmware_version"
        case deviceType = "device_type"
        case productionDate = "production_date"
        case lastServiceDate = "last_service_date"
        case warrantyExpiry = "warranty_expiry"
        case usageHours = "usage_hours"
        case batteryLevel = "battery_level"
        case syncFrequencySeconds = "sync_frequency_seconds"
        case lastSync = "last_sync"
        case lot
        case expiryDate = "expiry_date"
    }

    // Tags are part of the on-ledger format: append only.
    nonisolated(unsafe) static let stringFields: [(tag: UInt8, path: WritableKeyPath<DeviceAttributes, String?>, name: String)] = [
        (1, \.manufacturer, "manufacturer"), (2, \.model, "model"), (3, \.firmwareVersion, "firmware_version"),
        (4, \.deviceType, "device_type"), (5, \.category, "category"), (6, \.speciality, "speciality"),
        (7, \.location, "location"), (16, \.lot, "lot"),
    ]
    nonisolated(unsafe) static let integerFields: [(tag: UInt8, path: WritableKeyPath<DeviceAttributes, Int64?>, name: String)] = [
        (8, \.productionDate, "production_date"), (9, \.lastServiceDate, "last_service_date"),
        (10, \.warrantyExpiry, "warranty_expiry"), (11, \.usageHours, "usage_hours"), (12, \.batteryLevel, "battery_level"),
        (13, \.syncFrequencySeconds, "sync_frequency_seconds"), (14, \.lastSync, "last_sync"),
        (17, \.expiryDate, "expiry_date"),
    ]
    static let activeTag: UInt8 = 15

    /// Fields a registration must carry.
    public static let required: [String] = ["manufacturer", "model", "device_type", "category", "speciality", "production_date"]

    public var missingRequired: [String] {
        var missing: [String] = []
        for field in Self.stringFields where Self.required.contains(field.name) && (self[keyPath: field.path]?.isEmpty ?? true) {
            missing.append(field.name)
        }
        for field in Self.integerFields where Self.required.contains(field.name) && self[keyPath: field.path] == nil {
            missing.append(field.name)
        }
        return missing
    }

    public var isEmpty: Bool { self == DeviceAttributes() }

    /// `self` with every field that `patch` sets replaced.
    public func merging(_ patch: DeviceAttributes) -> DeviceAttributes {
        var result = self
        for field in Self.stringFields where patch[keyPath: field.path] != nil {
            result[keyPath: field.path] = patch[keyPath: field.path]
        }
        for field in Self.integerFields where patch[keyPath: field.path] != nil {
            result[keyPath: field.path] = patch[keyPath: field.path]
        }
        if let active = patch.active { result.active = active }
        return result
    }

    /// Range and length checks; returns the first problem.
    public func validate() throws(LedgerError) {
        for field in Self.stringFields {
            if let value = self[keyPath: field.path], value.isEmpty || value.utf8.count > 200 {
                throw LedgerError(.invalidArgument, "\(field.name) must be 1...200 bytes")
            }
        }
        if let battery = batteryLevel, !(0...100).contains(battery) {
            throw LedgerError(.invalidArgument, "battery_level must be 0...100, got \(battery)")
        }
        if let hours = usageHours, hours < 0 { throw LedgerError(.invalidArgument, "usage_hours must not be negative") }
        if let frequency = syncFrequencySeconds, frequency <= 0 {
            throw LedgerError(.invalidArgument, "sync_frequency_seconds must be positive")
        }
        // Days: 1900-01-01 ... 2200-01-01.
        for field in Self.integerFields where [8, 9, 10, 17].contains(field.tag) {
            if let day = self[keyPath: field.path], !(-25_567...84_006).contains(day) {
                throw LedgerError(.invalidArgument, "\(field.name) is out of range (a day number between 1900 and 2200)")
            }
        }
    }

    // Encoding and decoding are written out field by field (no key paths): they run for every
    // device transaction, twice.
    public func encode(to writer: inout BinaryWriter) {
        var count: UInt8 = 0
        for present in [manufacturer != nil, model != nil, firmwareVersion != nil, deviceType != nil, category != nil,
                        speciality != nil, location != nil, productionDate != nil, lastServiceDate != nil, warrantyExpiry != nil,
                        usageHours != nil, batteryLevel != nil, syncFrequencySeconds != nil, lastSync != nil, active != nil,
                        lot != nil, expiryDate != nil] where present {
            count += 1
        }
        writer.write(count)
        func string(_ tag: UInt8, _ value: String?) {
            guard let value else { return }
            writer.write(tag)
            writer.write(value)
        }
        func integer(_ tag: UInt8, _ value: Int64?) {
            guard let value else { return }
            writer.write(tag)
            writer.write(value)
        }
        string(1, manufacturer)
        string(2, model)
        string(3, firmwareVersion)
        string(4, deviceType)
        string(5, category)
        string(6, speciality)
        string(7, location)
        integer(8, productionDate)
        integer(9, lastServiceDate)
        integer(10, warrantyExpiry)
        integer(11, usageHours)
        integer(12, batteryLevel)
        integer(13, syncFrequencySeconds)
        integer(14, lastSync)
        if let active {
            writer.write(Self.activeTag)
            writer.write(active)
        }
        string(16, lot)
        integer(17, expiryDate)
    }

    /// Tags must be strictly increasing, so every value has exactly one encoding.
    public init(from reader: inout BinaryReader) throws(LedgerError) {
        self.init()
        let count = try reader.readUInt8("attributes count")
        var lastTag: UInt8 = 0
        for _ in 0..<count {
            let tag = try reader.readUInt8("attribute tag")
            guard tag > lastTag else { throw LedgerError(.malformedEncoding, "attributes: tags must be strictly increasing") }
            lastTag = tag
            switch tag {
            case 1: manufacturer = try reader.readString("manufacturer", maxLength: 200)
            case 2: model = try reader.readString("model", maxLength: 200)
            case 3: firmwareVersion = try reader.readString("firmware_version", maxLength: 200)
            case 4: deviceType = try reader.readString("device_type", maxLength: 200)
            case 5: category = try reader.readString("category", maxLength: 200)
            case 6: speciality = try reader.readString("speciality", maxLength: 200)
            case 7: location = try reader.readString("location", maxLength: 200)
            case 8: productionDate = try reader.readInt64("production_date")
            case 9: lastServiceDate = try reader.readInt64("last_service_date")
            case 10: warrantyExpiry = try reader.readInt64("warranty_expiry")
            case 11: usageHours = try reader.readInt64("usage_hours")
            case 12: batteryLevel = try reader.readInt64("battery_level")
            case 13: syncFrequencySeconds = try reader.readInt64("sync_frequency_seconds")
            case 14: lastSync = try reader.readInt64("last_sync")
            case Self.activeTag: active = try reader.readBool("attribute active")
            case 16: lot = try reader.readString("lot", maxLength: 200)
            case 17: expiryDate = try reader.readInt64("expiry_date")
            default: throw LedgerError(.malformedEncoding, "attributes: unknown tag \(tag)")
            }
        }
    }
}

/// Converts between civil dates and day numbers (days since 1970-01-01), in integer arithmetic.
public enum CivilDate {
    /// Days since the epoch for a proleptic Gregorian date (H. Hinnant's algorithm).
    public static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }

    public static func components(days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `YYYY-MM-DD` → day number, or nil when not a real date.
    public static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        let days = days(year: y, month: m, day: d)
        let back = components(days: days)
        return back == (y, m, d) ? days : nil
    }

    public static func format(days: Int64) -> String {
        let c = components(days: days)
        let pad = { (v: Int, w: Int) in String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))"
    }
}
