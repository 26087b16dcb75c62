public import LedgerCore

/// Device state held column by column for research queries: strings dictionary-encoded, integers
/// in flat arrays. A scan of two filters over a million devices touches two arrays, not a million
/// records. Built from the ledger's device records and kept current block by block; it always
/// knows the height whose state it holds.
public struct DeviceTable: Sendable {
    /// The block whose state the table holds, and that block's timestamp.
    public private(set) var height: UInt64
    public private(set) var time: Int64
    public private(set) var count = 0

    var rowOf: [String: Int32] = [:]
    /// One column per string field, in ``stringFields`` order. Code 0 means "no value".
    var strings: [StringColumn]
    /// One column per integer field, in ``integerFields`` order. `Int64.min` means "no value".
    var integers: [[Int64]]
    /// 0: no value, 1: false, 2: true.
    var active: [UInt8] = []
    /// ``DeviceRecord/Status`` raw values.
    var status: [UInt8] = []

    static let stringFields: [QueryField] = [.hospital, .manufacturer, .model, .firmwareVersion, .deviceType, .category, .speciality, .location]
    static let integerFields: [QueryField] = [.productionDate, .lastServiceDate, .warrantyExpiry, .usageHours, .batteryLevel,
                                              .syncFrequencySeconds, .lastSync, .updatedAt]
    static let missing = Int64.min

    public init(height: UInt64, time: Int64) {
        self.height = height
        self.time = time
        strings = Array(repeating: StringColumn(), count: Self.stringFields.count)
        integers = Array(repeating: [], count: Self.integerFields.count)
    }

    public init(records: some Sequence<DeviceRecord>, height: UInt64, time: Int64) {
        self.init(height: height, time: time)
        for record in records { upsert(record) }
    }

    /// Moves the table to a new block's state: `records` are the devices the block wrote.
    public mutating func apply(_ records: some Sequence<DeviceRecord>, height: UInt64, time: Int64) {
        for record in records { upsert(record) }
        if height >= self.height {
            self.height = height
            self.time = time
        }
    }

    public mutating func upsert(_ record: DeviceRecord) {
        let row: Int
        if let existing = rowOf[record.udi] {
            row = Int(existing)
        } else {
            row = count
            rowOf[record.udi] = Int32(row)
            count += 1
            for index in strings.indices { strings[index].codes.append(0) }
            for index in integers.indices { integers[index].append(Self.missing) }
            active.append(0)
            status.append(0)
        }
        let a = record.attributes
        let values: [String?] = [record.owner, a.manufacturer, a.model, a.firmwareVersion, a.deviceType, a.category, a.speciality, a.location]
        for (index, value) in values.enumerated() {
            strings[index].codes[row] = value.map { strings[index].code(for: $0) } ?? 0
        }
        let numbers: [Int64?] = [a.productionDate, a.lastServiceDate, a.warrantyExpiry, a.usageHours, a.batteryLevel,
                                 a.syncFrequencySeconds, a.lastSync, record.updatedAt]
        for (index, value) in numbers.enumerated() {
            integers[index][row] = value ?? Self.missing
        }
        active[row] = a.active.map { $0 ? 2 : 1 } ?? 0
        status[row] = record.status.rawValue
    }
}

/// A dictionary-encoded string column: `codes[row]` is 0 (no value) or 1 + an index into `values`.
struct StringColumn: Sendable {
    var codes: [UInt32] = []
    var values: [String] = []
    var lookup: [String: UInt32] = [:]

    mutating func code(for value: String) -> UInt32 {
        if let code = lookup[value] { return code }
        values.append(value)
        let code = UInt32(values.count)
        lookup[value] = code
        return code
    }

    /// For each code, whether its value passes `predicate` (code 0, no value, never does).
    func accepting(_ predicate: (String) -> Bool) -> [Bool] {
        [false] + values.map(predicate)
    }
}
