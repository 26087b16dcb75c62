public import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import LedgerCore

/// The client side of patient records (docs/patient-data.md): what `medledger records` and
/// `medledger access` do. Plaintext and data keys exist only here; the node sees ciphertext, the
/// ledger sees hashes and wrapped keys.
public struct RecordClient: Sendable {
    public let node: NodeClient
    public let identity: SigningIdentity
    public let network: Hash256

    public init(node: NodeClient, identity: SigningIdentity, network: Hash256) {
        self.node = node
        self.identity = identity
        self.network = network
    }

    public struct Stored: Decodable, Sendable {
        public var blob: Hash256
        public var record: Hash256
        public var holder: String
        public var size: Int
        public var holder_key: String
    }

    public struct Released: Decodable, Sendable {
        public var record: Hash256
        public var decision: Hash256
        public var blob: Hash256
        public var holder: String
        public var wrapped_key: String
        public var expires_at: Int64?
    }

    /// Seals `plaintext` under a fresh data key, uploads the blob to the hospital's node, wraps the
    /// key for the vault key the node answers with, and anchors the record; returns its id and the
    /// anchoring transaction's outcome.
    public func put(_ plaintext: [UInt8], patient: Hash256, category: String, device: String? = nil,
                    wait: Int = 30) async throws -> (record: Hash256, status: NodeClient.Status) {
        let key = SymmetricKey(size: .bits256)
        let blob = try SealedRecord.seal(plaintext, key: key)
        let stored: Stored = try await node.postSigned("v1/records", body: blob)
        let hash = Hash256.of(blob)
        guard stored.blob == hash, stored.record == RecordAnchor.recordID(holder: stored.holder, blob: hash), let holderBytes = Hex.decode(stored.holder_key),
              let holderKey = try? P256.KeyAgreement.PublicKey(x963Representation: holderBytes) else {
            throw LedgerError(.verificationFailed, "the node answered another blob hash or record id, or no valid vault key")
        }
        let put = RecordPut(id: hash, size: UInt64(blob.count), category: category, device: device, patient: patient,
                            holderKey: holderBytes, wrappedKey: try KeyWrap.wrap(key, for: holderKey, info: KeyWrap.holderInfo(record: hash)))
        let status = try await submit(contract: "records", action: RecordAction.put(put).name, arguments: RecordAction.put(put).arguments, wait: wait)
        return (stored.record, status)
    }

    /// What the client checks of a record's anchor before signing its rotation.
    struct Anchor: Decodable {
        var id: Hash256
        var category: String
        var device: String?
        var patient: Hash256
        var holder: String
    }

    struct Rotation: Decodable {
        var record: Hash256
        var rotated: Hash256
        var blob: Hash256
        var action: String
        var arguments: String
    }

    /// Key rotation (an admin of the holder): the holder's node re-seals `record` under a fresh
    /// data key; this checks that the prepared anchor keeps the record's patient, category and
    /// device and is the new record id it names, then signs and submits `records.rotate`.
    public func rotate(record: Hash256, wait: Int = 30) async throws -> (record: Hash256, status: NodeClient.Status) {
        let current: Anchor = try await node.get("v1/records/\(record.hex)")
        let rotation: Rotation = try await node.postSigned("v1/records/\(record.hex)/rotate", body: [], contentType: "application/json")
        guard current.id == record, rotation.record == record, rotation.action == "rotate", let arguments = Hex.decode(rotation.arguments),
              case .rotate(let old, let put) = try RecordAction(action: rotation.action, arguments: arguments), old == record,
              put.patient == current.patient, put.category == current.category, put.device == current.device, put.id == rotation.blob,
              RecordAnchor.recordID(holder: current.holder, blob: put.id) == rotation.rotated, KeyWrap.isValidPublicKey(put.holderKey) else {
            throw LedgerError(.verificationFailed, "the node prepared a rotation that changes the record's patient, category or device, or names another record")
        }
        let status = try await submit(contract: "records", action: rotation.action, arguments: arguments, wait: wait)
        return (rotation.rotated, status)
    }

    /// Fetches the record's blob and its data key under `decision` (a grant to this identity),
    /// checks the blob against the record id before anything else, and decrypts it.
    public func open(record: Hash256, decision: Hash256, encryptionKey: P256.KeyAgreement.PrivateKey) async throws -> [UInt8] {
        let released: Released = try await node.get("v1/records/\(record.hex)/key", query: [URLQueryItem(name: "decision", value: decision.hex)])
        let (status, body) = try await node.raw("/v1/records/\(record.hex)/blob?decision=\(decision.hex)")
        guard status == 200 else {
            throw (try? JSONDecoder().decode(NodeClient.ErrorBody.self, from: body)).map {
                LedgerError(LedgerError.Code(rawValue: $0.error.code), $0.error.message)
            } ?? LedgerError(.io, "HTTP \(status) fetching the blob")
        }
        let blob = [UInt8](body)
        guard released.record == record, released.decision == decision, RecordAnchor.recordID(holder: released.holder, blob: released.blob) == record,
              let wrapped = Hex.decode(released.wrapped_key) else {
            throw LedgerError(.malformedEncoding, "the key answer is for another record or decision")
        }
        guard Hash256.of(blob) == released.blob else {
            throw LedgerError(.verificationFailed, "the blob served is not record \(record.hex.prefix(16))… (its hash differs): not decrypted")
        }
        let key = try KeyWrap.unwrap(wrapped, with: encryptionKey, info: KeyWrap.readerInfo(record: record, decision: decision))
        return try SealedRecord.open(blob, key: key)
    }

    /// Signs and submits a transaction, waiting up to `wait` seconds for its outcome.
    public func submit(contract: String, action: String, arguments: [UInt8], wait: Int = 30) async throws -> NodeClient.Status {
        let (_, envelope) = identity.transaction(network: network, contract: contract, action: action, arguments: arguments)
        return try await node.submit(envelope.encoded, wait: wait)
    }
}
