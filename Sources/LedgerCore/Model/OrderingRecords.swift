/// Records that nodes exchange through the shared ordering store (etcd): submission queue entries
/// and published checkpoints. Anything with write access to the store can put bytes there, so every
/// reader decodes them strictly (fuzzed by ``FuzzHarness``).

/// Where a queue entry lives: the submitting node and its per-node sequence number.
public struct QueuePosition: Sendable, Hashable, Comparable {
    public var node: Hash256
    public var sequence: UInt64
    public init(node: Hash256, sequence: UInt64) {
        self.node = node
        self.sequence = sequence
    }

    public static func < (a: QueuePosition, b: QueuePosition) -> Bool {
        (a.node.hex, a.sequence) < (b.node.hex, b.sequence)
    }
}

/// A batch of admitted envelopes one node queued for ordering.
///
/// Encoding: `"MLQE" ‖ u32 count ‖ (bytes envelope)*` (the position is the entry's key).
public struct QueueEntry: Sendable, Hashable {
    public var position: QueuePosition
    public var envelopes: [[UInt8]]

    public init(position: QueuePosition, envelopes: [[UInt8]]) {
        self.position = position
        self.envelopes = envelopes
    }

    public var encodedValue: [UInt8] {
        var writer = BinaryWriter()
        writer.writeRaw(Array("MLQE".utf8))
        writer.write(UInt32(envelopes.count))
        for envelope in envelopes { writer.writeBytes(envelope) }
        return writer.bytes
    }

    public init(position: QueuePosition, decoding bytes: [UInt8]) throws(LedgerError) {
        var reader = BinaryReader(bytes)
        guard try reader.readRaw(count: 4, "queue entry magic") == Array("MLQE".utf8) else {
            throw LedgerError(.malformedEncoding, "queue entry: expected magic MLQE")
        }
        let count = Int(try reader.readUInt32("queue entry count"))
        guard count <= reader.remaining else { throw LedgerError(.malformedEncoding, "queue entry: count exceeds its bytes") }
        var envelopes: [[UInt8]] = []
        envelopes.reserveCapacity(count)
        for _ in 0..<count { envelopes.append(try reader.readBytes("queue entry envelope", maxLength: 1 << 20)) }
        try reader.expectEnd("queue entry")
        self.init(position: position, envelopes: envelopes)
    }

    /// Bytes this entry occupies in the store (for block size limits).
    public var size: Int { envelopes.reduce(8) { $0 + $1.count + 4 } }
}

/// A node's signed checkpoint as it publishes it for the other nodes to cross-check: the signer's
/// fingerprint, the checkpoint body it signed (`MLC1`, docs/formats.md §10) and the signature.
///
/// Encoding: `"MLPC" ‖ signer (32) ‖ bytes body ‖ bytes signature`.
public struct PublishedCheckpoint: BinaryCodable, Hashable {
    public var signer: Hash256
    public var body: [UInt8]
    public var signature: [UInt8]

    public init(signer: Hash256, body: [UInt8], signature: [UInt8]) {
        self.signer = signer
        self.body = body
        self.signature = signature
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeRaw(Array("MLPC".utf8))
        writer.write(signer)
        writer.writeBytes(body)
        writer.writeBytes(signature)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        guard try reader.readRaw(count: 4, "published checkpoint magic") == Array("MLPC".utf8) else {
            throw LedgerError(.malformedEncoding, "published checkpoint: expected magic MLPC")
        }
        signer = try reader.readHash("published checkpoint signer")
        body = try reader.readBytes("published checkpoint body", maxLength: 256)
        signature = try reader.readBytes("published checkpoint signature", maxLength: 256)
    }

    /// The body's fields (`MLC1 ‖ u64 height ‖ block hash ‖ state root ‖ u64 log size ‖ log root`),
    /// or with magic `MLR1` (``refused``) the same fields of a header the signer computed for a
    /// block it could not accept: for the other nodes to judge, never a checkpoint of a block
    /// the signer committed (proofs refuse it as a cosignature).
    public struct Statement: Sendable, Hashable {
        public var height: UInt64
        public var blockHash: Hash256
        public var stateRoot: Hash256
        public var logSize: UInt64
        public var logRoot: Hash256
        public var refused: Bool

        public init(height: UInt64, blockHash: Hash256, stateRoot: Hash256, logSize: UInt64, logRoot: Hash256, refused: Bool = false) {
            self.height = height
            self.blockHash = blockHash
            self.stateRoot = stateRoot
            self.logSize = logSize
            self.logRoot = logRoot
            self.refused = refused
        }

        /// The signed body: `"MLC1" ‖ u64 height ‖ blockHash ‖ stateRoot ‖ u64 logSize ‖ logRoot` (116 bytes).
        public var body: [UInt8] {
            var writer = BinaryWriter()
            writer.writeRaw(Array((refused ? "MLR1" : "MLC1").utf8))
            writer.write(height)
            writer.write(blockHash)
            writer.write(stateRoot)
            writer.write(logSize)
            writer.write(logRoot)
            return writer.bytes
        }
    }

    public func statement() throws(LedgerError) -> Statement {
        var reader = BinaryReader(body)
        let magic = try reader.readRaw(count: 4, "checkpoint magic")
        guard magic == Array("MLC1".utf8) || magic == Array("MLR1".utf8) else {
            throw LedgerError(.malformedEncoding, "checkpoint: expected magic MLC1 or MLR1")
        }
        let statement = Statement(height: try reader.readUInt64("checkpoint height"), blockHash: try reader.readHash("checkpoint block hash"),
                                  stateRoot: try reader.readHash("checkpoint state root"), logSize: try reader.readUInt64("checkpoint log size"),
                                  logRoot: try reader.readHash("checkpoint log root"), refused: magic == Array("MLR1".utf8))
        try reader.expectEnd("checkpoint")
        return statement
    }
}
