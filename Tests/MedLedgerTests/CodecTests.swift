import Testing
import Crypto
import LedgerCore
import Contracts

/// Known answers computed independently (Python struct + hashlib) from docs/formats.md.
struct CodecTests {
    static func bytes(_ byte: UInt8) -> Hash256 { Hash256(bytes: [UInt8](repeating: byte, count: 32))! }

    @Test func blockHeaderEncodingKnownAnswer() throws {
        let header = BlockHeader(height: 1, previousHash: Self.bytes(0x11), timestamp: 1_700_000_000_000, transactionCount: 2,
                                 transactionRoot: Self.bytes(0x22), logSize: 3, logRoot: Self.bytes(0x33), stateRoot: Self.bytes(0x44),
                                 proposer: Self.bytes(0x55), epoch: 7)
        #expect(header.encoded.count == 200)
        #expect(header.hash.hex == "379e1ffe0e5639ae4a5c4a492cfcc2a6ae35786241916e70e2dc57ec8e4b4bd2")
        #expect(try BlockHeader(decoding: header.encoded) == header)
    }

    @Test func payloadEncodingAndTransactionIDKnownAnswer() throws {
        let payload = TransactionPayload(network: Self.bytes(0xAA), creator: Self.bytes(0xBB), nonce: Array(1...16),
                                         timestamp: 1_700_000_000_000, contract: "devices", action: "update", arguments: [1, 2, 3])
        #expect(payload.encoded.count == 120)
        let envelope = Envelope(payloadBytes: payload.encoded, signature: [UInt8](repeating: 9, count: 64))
        #expect(envelope.id.hex == "f4d819e79760fb9a15b58dedcaa410b8496028d59dcafe9cc31d0e32553c8591")
        let decoded = try Envelope(decoding: envelope.encoded)
        #expect(decoded == envelope)
        #expect(try decoded.payload() == payload)
    }

    @Test func logLeafAndStateRootKnownAnswers() {
        let leaf = LogLeaf(height: 7, index: 2, transactionID: Self.bytes(0x66), envelopeHash: Self.bytes(0x77),
                           result: TransactionResult(status: 14, writeSetHash: Self.bytes(0x88)))
        #expect(leaf.leafHash.hex == "c5809bbc5928b482f78548d48def751a1f9dd12b6a3948384aabdaf8a5b4783d")
        #expect(BlockHeader.nextStateRoot(previous: .zero, blockWriteSetHash: Self.bytes(0x99)).hex
                == "b36c3b4c48704603d184c7d2a7297a09329ebb78c50e7100b3715083c515df9b")
    }

    /// The numbers stored on the ledger for refusal codes never change.
    /// `POST /v1/transactions/batch`: "MLTB" ‖ u32 count ‖ count × (u32 length ‖ bytes), docs/formats.md §4.3.
    @Test func envelopeBatchKnownAnswerAndBounds() throws {
        let batch = EnvelopeBatch([[0x01], [0x02, 0x03]])
        #expect(batch.encoded == Array("MLTB".utf8) + [0, 0, 0, 2, 0, 0, 0, 1, 0x01, 0, 0, 0, 2, 0x02, 0x03])
        #expect(try EnvelopeBatch(decoding: batch.encoded) == batch)
        let refused: [[UInt8]] = [
            Array("MLTB".utf8) + [0, 0, 0, 0],                                  // empty
            Array("MLTB".utf8) + [0, 0, 0x03, 0xE9] + [UInt8](repeating: 0, count: 1001 * 4),  // 1,001 > maxCount
            Array("MLTB".utf8) + [0xFF, 0xFF, 0xFF, 0xFF],                       // a count its bytes cannot hold
            Array("MLTB".utf8) + [0, 0, 0, 1, 0, 0, 0, 2, 0x01],                 // truncated envelope
            batch.encoded + [0x00],                                              // trailing byte
            Array("MLQE".utf8) + [0, 0, 0, 1, 0, 0, 0, 1, 0x01],                 // another format's magic
        ]
        for bytes in refused {
            #expect(throws: LedgerError.self, "\(bytes.prefix(12))") { try EnvelopeBatch(decoding: bytes) }
        }
        let full = EnvelopeBatch([[UInt8]](repeating: [0x07], count: EnvelopeBatch.maxCount))
        #expect(try EnvelopeBatch(decoding: full.encoded).envelopes.count == 1_000)
    }

    @Test func ledgerStatusNumbersAreStable() {
        #expect(LedgerError.Code.malformedEncoding.ledgerStatus == 1)
        #expect(LedgerError.Code.badSignature.ledgerStatus == 2)
        #expect(LedgerError.Code.unknownDevice.ledgerStatus == 14)
        #expect(LedgerError.Code.duplicateTransaction.ledgerStatus == 10)
        #expect(LedgerError.Code(ledgerStatus: 14) == .unknownDevice)
        #expect(LedgerError.Code.invalidConfiguration.ledgerStatus == 24)
        #expect(LedgerError.Code.storage.ledgerStatus == LedgerError.Code.internal.ledgerStatus)
        #expect(LedgerError.Code(ledgerStatus: 9999).rawValue == "status_9999")
    }

    @Test func decodersRefuseNonCanonicalInput() throws {
        let payload = TransactionPayload(network: .zero, creator: .zero, nonce: Array(repeating: 0, count: 16), timestamp: 0,
                                         contract: "c", action: "a", arguments: [])
        let envelope = Envelope(payloadBytes: payload.encoded, signature: Array(repeating: 1, count: 64))
        var trailing = envelope.encoded
        trailing.append(0)
        #expect(throws: LedgerError.self) { try Envelope(decoding: trailing) }
        #expect(throws: LedgerError.self) { try Envelope(decoding: Array(envelope.encoded.dropLast())) }
        var badVersion = envelope.encoded
        badVersion[0] = 2
        #expect(throws: LedgerError.self) { try Envelope(decoding: badVersion) }
        var shortSignature = Envelope(payloadBytes: payload.encoded, signature: Array(repeating: 1, count: 63)).encoded
        #expect(throws: LedgerError.self) { try Envelope(decoding: shortSignature) }
        shortSignature = []
        #expect(throws: LedgerError.self) { try Envelope(decoding: shortSignature) }
        var badMagic = payload.encoded
        badMagic[0] = UInt8(ascii: "X")
        #expect(throws: LedgerError.self) { try TransactionPayload(decoding: badMagic) }
        // Attribute tags must be strictly increasing: the same field twice is refused.
        #expect(throws: LedgerError.self) { try DeviceAttributes(decoding: [2, 11, 0, 0, 0, 0, 0, 0, 0, 1, 11, 0, 0, 0, 0, 0, 0, 0, 2]) }
        // A boolean is 0 or 1.
        #expect(throws: LedgerError.self) { try DeviceAttributes(decoding: [1, 15, 2]) }
    }

    @Test func deviceRecordsRoundTrip() throws {
        var attributes = DeviceAttributes()
        attributes.manufacturer = "Helix"
        attributes.usageHours = 12
        attributes.active = false
        let record = DeviceRecord(udi: "(01)00844588003288(21)1", owner: "st-mary", status: .active, attributes: attributes, version: 3,
                                  registeredAt: 1, updatedAt: 2, lastEvent: "power", pendingTransferTo: "north-general")
        #expect(try DeviceRecord(decoding: record.encoded) == record)
        let action = DeviceAction.update(udi: record.udi, event: "usage", changes: attributes)
        #expect(try DeviceAction(action: "update", arguments: action.arguments) == action)
        #expect(throws: LedgerError.self) { try DeviceAction(action: "explode", arguments: action.arguments) }
    }

    @Test func writeSetHashIsIndependentOfInsertionOrder() {
        var a = WriteSet()
        a.set("b", [2])
        a.set("a", [1])
        a.set("c", nil)
        var b = WriteSet()
        b.set("c", nil)
        b.set("a", [1])
        b.set("b", [2])
        #expect(a.hash == b.hash)
        #expect(a.encoded == b.encoded)
        b.set("b", [3])
        #expect(a.hash != b.hash)
    }

    @Test func civilDatesRoundTrip() {
        #expect(CivilDate.parse("1970-01-01") == 0)
        #expect(CivilDate.parse("2000-03-01") == 11_017)
        #expect(CivilDate.parse("2024-02-29") == 19_782)
        #expect(CivilDate.parse("2023-02-29") == nil)
        #expect(CivilDate.parse("2023-13-01") == nil)
        for days: Int64 in [-1000, 0, 59, 11_016, 19_782, 40_000] {
            #expect(CivilDate.parse(CivilDate.format(days: days)) == days)
        }
    }

    @Test func signaturesCoverExactlyThePayloadBytes() {
        let key = P256.Signing.PrivateKey()
        let message: [UInt8] = Array("MLP1 payload".utf8)
        let signature = Array(try! key.signature(for: message).rawRepresentation)
        #expect(SignatureCheck.isValid(signature: signature, message: message, publicKey: key.publicKey))
        var changed = message
        changed[0] ^= 1
        #expect(!SignatureCheck.isValid(signature: signature, message: changed, publicKey: key.publicKey))
        #expect(!SignatureCheck.isValid(signature: Array(signature.dropLast()), message: message, publicKey: key.publicKey))
    }
}
