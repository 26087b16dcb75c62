/// The signed part of a transaction: who, where (which network), when, and what.
///
/// The transaction id is SHA-256 of these exact bytes; the signature covers these exact bytes.
/// Verifiers never re-serialize: they hash and verify the bytes they received.
public struct TransactionPayload: BinaryCodable, Hashable {
    /// "MLP1": distinguishes payloads from every other signed structure (domain separation).
    public static let magic: [UInt8] = Array("MLP1".utf8)

    /// The network id (hash of the genesis block header); zero inside the genesis block itself.
    public var network: Hash256
    /// SHA-256 of the creator's DER certificate.
    public var creator: Hash256
    /// 16 bytes chosen by the creator so that equal requests still have distinct ids.
    public var nonce: [UInt8]
    /// Creation time, milliseconds since the Unix epoch (UTC).
    public var timestamp: Int64
    public var contract: String
    public var action: String
    /// The action's arguments in the contract's binary encoding.
    public var arguments: [UInt8]

    public init(network: Hash256, creator: Hash256, nonce: [UInt8], timestamp: Int64, contract: String, action: String, arguments: [UInt8]) {
        precondition(nonce.count == 16, "a transaction nonce is 16 bytes")
        self.network = network
        self.creator = creator
        self.nonce = nonce
        self.timestamp = timestamp
        self.contract = contract
        self.action = action
        self.arguments = arguments
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Self.magic)
        writer.write(network)
        writer.write(creator)
        writer.writeRaw(nonce)
        writer.write(timestamp)
        writer.write(contract)
        writer.write(action)
        writer.writeBytes(arguments)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        let magic = try reader.readRaw(count: 4, "payload magic")
        guard magic == Self.magic else {
            throw LedgerError(.malformedEncoding, "payload: expected magic MLP1")
        }
        network = try reader.readHash("payload network")
        creator = try reader.readHash("payload creator")
        nonce = try reader.readRaw(count: 16, "payload nonce")
        timestamp = try reader.readInt64("payload timestamp")
        contract = try reader.readString("payload contract", maxLength: 64)
        action = try reader.readString("payload action", maxLength: 64)
        arguments = try reader.readBytes("payload arguments")
    }
}
