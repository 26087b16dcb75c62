/// Appends values in MedLedger's binary encoding: big-endian fixed-width integers and
/// `u32`-length-prefixed byte strings. See docs/formats.md.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }
    public mutating func write(_ value: UInt16) { writeBigEndian(value) }
    public mutating func write(_ value: UInt32) { writeBigEndian(value) }
    public mutating func write(_ value: UInt64) { writeBigEndian(value) }
    public mutating func write(_ value: Int64) { writeBigEndian(UInt64(bitPattern: value)) }

    /// Raw bytes with no length prefix (fixed-size fields such as hashes).
    public mutating func writeRaw(_ value: some Sequence<UInt8>) { bytes.append(contentsOf: value) }

    /// `u32` length, then the bytes.
    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// `u32` length, then the UTF-8 bytes.
    public mutating func write(_ value: String) { writeBytes(Array(value.utf8)) }

    public mutating func write(_ value: Hash256) { bytes.append(contentsOf: value.bytes) }

    private mutating func writeBigEndian<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }
}
