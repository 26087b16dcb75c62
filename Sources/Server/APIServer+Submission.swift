import Hummingbird
import NIOCore
import Foundation
import LedgerCore
import Node

/// Reading submission bodies: one envelope (`POST /v1/transactions`), or many (`…/batch`).
extension APIServer {
    /// The envelope in a submission body (binary, or `{"envelope": "<base64>"}`). A body that is too
    /// large or not an envelope is refused like any other submission: with a code, and audited.
    static func envelope(_ request: inout Request, node: LedgerNode) async throws(LedgerError) -> [UInt8] {
        let contentType = request.headers[.contentType] ?? ""
        return try await submission(&request, node: node, limit: Int(node.config.maxTransactionBytes) * 2 + 1024) { body throws(LedgerError) in
            try envelopeBytes(body, contentType: contentType)
        }
    }

    /// Most bytes in one batch submission body.
    static let maxBatchBytes = 4 << 20

    /// The envelopes of a batch submission (``EnvelopeBatch``), refused and audited like a single
    /// body when too large or malformed (then none of them is admitted).
    static func batch(_ request: inout Request, node: LedgerNode) async throws(LedgerError) -> [[UInt8]] {
        try await submission(&request, node: node, limit: maxBatchBytes) { body throws(LedgerError) in
            try EnvelopeBatch(decoding: [UInt8](buffer: body)).envelopes
        }
    }

    /// A submission's body, at most `limit` bytes (a declared length over it is refused before any
    /// byte is awaited), as `decode` reads it; every refusal is audited.
    static func submission<T>(_ request: inout Request, node: LedgerNode, limit: Int,
                              decode: (ByteBuffer) throws(LedgerError) -> T) async throws(LedgerError) -> T {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            let refusal = LedgerError(.payloadTooLarge, "the request body exceeds \(limit) bytes")
            node.recordRefusal(refusal, bytes: [])
            throw refusal
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            let refusal = (error as? any HTTPResponseError)?.status == .contentTooLarge
                ? LedgerError(.payloadTooLarge, "the request body exceeds \(limit) bytes")
                : LedgerError(.malformedEncoding, "the request body could not be read")
            node.recordRefusal(refusal, bytes: [])
            throw refusal
        }
        do {
            return try decode(body)
        } catch {
            node.recordRefusal(error, bytes: [])
            throw error
        }
    }

    static func envelopeBytes(_ body: ByteBuffer, contentType: String) throws(LedgerError) -> [UInt8] {
        let bytes = [UInt8](buffer: body)
        guard contentType.hasPrefix("application/json") else { return bytes }
        struct Submission: Decodable { var envelope: String }
        guard let submission = try? JSONDecoder().decode(Submission.self, from: Data(bytes)),
              let decoded = Data(base64Encoded: submission.envelope) else {
            throw LedgerError(.malformedEncoding, "expected JSON {\"envelope\": \"<base64 of the binary envelope>\"}")
        }
        return [UInt8](decoded)
    }
}
