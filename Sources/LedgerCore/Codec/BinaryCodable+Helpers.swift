extension BinaryWriter {
    public mutating func writeOptional(_ value: String?) {
        write(value != nil)
        if let value { write(value) }
    }

    public mutating func writeOptional(_ value: Int64?) {
        write(value != nil)
        if let value { write(value) }
    }

    public mutating func write<T: BinaryCodable>(array: [T]) {
        write(UInt32(array.count))
        for element in array { element.encode(to: &self) }
    }

    public mutating func write(strings: [String]) {
        write(UInt32(strings.count))
        for element in strings { write(element) }
    }
}

extension BinaryReader {
    public mutating func readOptionalString(_ field: StaticString, maxLength: Int = 4096) throws(LedgerError) -> String? {
        try readBool(field) ? try readString(field, maxLength: maxLength) : nil
    }

    public mutating func readOptionalInt64(_ field: StaticString) throws(LedgerError) -> Int64? {
        try readBool(field) ? try readInt64(field) : nil
    }

    public mutating func readArray<T: BinaryCodable>(_ field: StaticString, maxCount: Int = 10_000) throws(LedgerError) -> [T] {
        let count = Int(try readUInt32(field))
        guard count <= maxCount, count <= remaining else {
            throw LedgerError(.malformedEncoding, "\(field): \(count) elements exceeds the limit")
        }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try T(from: &self)) }
        return result
    }

    public mutating func readStrings(_ field: StaticString, maxCount: Int = 10_000) throws(LedgerError) -> [String] {
        let count = Int(try readUInt32(field))
        guard count <= maxCount, count <= remaining else {
            throw LedgerError(.malformedEncoding, "\(field): \(count) elements exceeds the limit")
        }
        var result: [String] = []
        for _ in 0..<count { result.append(try readString(field)) }
        return result
    }

    public mutating func readEnum<T: RawRepresentable>(_ field: StaticString) throws(LedgerError) -> T where T.RawValue == String {
        let raw = try readString(field, maxLength: 64)
        guard let value = T(rawValue: raw) else {
            throw LedgerError(.malformedEncoding, "\(field): unknown value \(raw)")
        }
        return value
    }
}
