/// Reads MedLedger's binary encoding with bounds checks. Every failure is a
/// ``LedgerError/Code/malformedEncoding`` error naming the field; nothing ever traps on bad input.
public struct BinaryReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    /// The largest single length-prefixed field accepted (16 MiB). Real limits are lower and
    /// enforced by callers; this bound only keeps a corrupt length from allocating wildly.
    public static let maxFieldLength = 16 << 20

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
    }

    public var isAtEnd: Bool { offset == bytes.count }
    public var remaining: Int { bytes.count - offset }

    public mutating func readUInt8(_ field: StaticString = "u8") throws(LedgerError) -> UInt8 {
        guard offset < bytes.count else { throw truncated(field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBool(_ field: StaticString = "bool") throws(LedgerError) -> Bool {
        switch try readUInt8(field) {
        case 0: return false
        case 1: return true
        case let other: throw LedgerError(.malformedEncoding, "\(field): boolean byte must be 0 or 1, got \(other)")
        }
    }

    public mutating func readUInt16(_ field: StaticString = "u16") throws(LedgerError) -> UInt16 { try readInteger(field) }
    public mutating func readUInt32(_ field: StaticString = "u32") throws(LedgerError) -> UInt32 { try readInteger(field) }
    public mutating func readUInt64(_ field: StaticString = "u64") throws(LedgerError) -> UInt64 { try readInteger(field) }
    public mutating func readInt64(_ field: StaticString = "i64") throws(LedgerError) -> Int64 {
        Int64(bitPattern: try readInteger(field) as UInt64)
    }

    public mutating func readRaw(count: Int, _ field: StaticString = "bytes") throws(LedgerError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw truncated(field) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func readBytes(_ field: StaticString = "bytes", maxLength: Int = BinaryReader.maxFieldLength) throws(LedgerError) -> [UInt8] {
        let length = Int(try readUInt32(field))
        guard length <= maxLength else {
            throw LedgerError(.malformedEncoding, "\(field): length \(length) exceeds the limit of \(maxLength) bytes")
        }
        return try readRaw(count: length, field)
    }

    public mutating func readString(_ field: StaticString = "string", maxLength: Int = 4096) throws(LedgerError) -> String {
        let raw = try readBytes(field, maxLength: maxLength)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw LedgerError(.malformedEncoding, "\(field): not valid UTF-8")
        }
        return string
    }

    public mutating func readHash(_ field: StaticString = "hash") throws(LedgerError) -> Hash256 {
        Hash256(unchecked: try readRaw(count: 32, field))
    }

    /// Fails unless every byte has been consumed: trailing bytes are never silently ignored.
    public func expectEnd(_ what: String) throws(LedgerError) {
        guard isAtEnd else {
            throw LedgerError(.malformedEncoding, "\(what): \(remaining) unexpected trailing bytes")
        }
    }

    private mutating func readInteger<T: FixedWidthInteger>(_ field: StaticString) throws(LedgerError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw truncated(field) }
        var value: T = 0
        for index in offset..<offset + size {
            value = value << 8 | T(bytes[index])
        }
        offset += size
        return value
    }

    private func truncated(_ field: StaticString) -> LedgerError {
        LedgerError(.malformedEncoding, "\(field): input ends early at byte \(offset) of \(bytes.count)")
    }
}

/// A value with one exact binary encoding. `decode(encode(x)) == x`, and decoding rejects any input
/// that is not the encoding of some value (no trailing bytes, no out-of-range tags).
public protocol BinaryCodable: Sendable {
    func encode(to writer: inout BinaryWriter)
    init(from reader: inout BinaryReader) throws(LedgerError)
}

extension BinaryCodable {
    public var encoded: [UInt8] {
        var writer = BinaryWriter()
        encode(to: &writer)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(LedgerError) {
        var reader = BinaryReader(bytes)
        self = try Self(from: &reader)
        try reader.expectEnd("\(Self.self)")
    }
}
