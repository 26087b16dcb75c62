import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import LedgerCore
import Node
import Contracts

/// Patient records: uploads of sealed blobs to their hospital's node, anchors, consent, the
/// disclosure log, and — under a recorded grant only — the blob and its data key re-wrapped for the
/// reader (docs/patient-data.md).
extension APIServer {
    static func addRecordRoutes(to router: GuardedRouter, node: LedgerNode) {
        // A sealed record (application/octet-stream, docs/formats.md §17.1) from a member of this
        // node's organisation; answers its id and the vault key to wrap the data key for.
        router.post("/v1/records", .storeRecord) { request, _, caller in
            await handle {
                guard let caller else { throw LedgerError(.unauthenticated, "sign the request") }
                guard caller.organization == node.organization else {
                    throw LedgerError(.forbidden, "this is \(node.organization)'s node: store \(caller.organization)'s records at its own node")
                }
                // Streamed to disk and hashed on the way; stored only if it is the body whose hash was signed.
                guard let declared = request.headers[RequestAuthenticator.bodyHashField].flatMap({ Hash256(hex: $0) }) else {
                    throw LedgerError(.unauthenticated, "the request declares no \(RequestAuthenticator.bodyHashField)")
                }
                let upload = try node.beginRecordUpload()
                do {
                    for try await buffer in request.body {
                        try buffer.withUnsafeReadableBytes { bytes in try upload.append(bytes) }
                    }
                } catch {
                    upload.discard()
                    throw error as? LedgerError ?? LedgerError(.invalidArgument, "the upload ended before its body did")
                }
                let (blob, record, holderKey) = try node.acceptRecord(upload, declared: declared)
                return json(StoredRecordView(blob: blob, record: record, holder: node.organization, size: upload.count, holder_key: Hex.encode(holderKey)),
                            status: .created)
            }
        }
        router.get("/v1/records/:id", .record) { _, context, caller in
            await handle {
                let id = try hash(context.parameters.get("id").map { Substring($0) }, "record id")
                guard let anchor = try node.anchor(id) else {
                    // Only oversight learns that an id is not anchored; anyone else cannot tell it from one it may not read.
                    guard try require(caller, .record, .route) == .everything else {
                        throw LedgerError(.forbidden, "\(caller?.name ?? "the caller") may not read record \(id.hex.prefix(16))…")
                    }
                    throw LedgerError(.unknownRecord, "no record \(id.hex.prefix(16))… is anchored")
                }
                try requirePatient(caller, .record, anchor.put.patient, node: node)
                return json(try RecordView(anchor, node: node))
            }
        }
        // Key rotation, the holder's half (docs/patient-data.md): the node re-seals the record under
        // a fresh data key and answers the `records.rotate` arguments for its admin to check and sign.
        router.post("/v1/records/:id/rotate", .rotateRecord) { _, context, caller in
            await handle {
                guard let caller else { throw LedgerError(.unauthenticated, "sign the request") }
                guard caller.organization == node.organization else {
                    throw LedgerError(.forbidden, "this is \(node.organization)'s node: \(caller.organization) rotates only its own records, at its own node")
                }
                let id = try hash(context.parameters.get("id").map { Substring($0) }, "record id")
                let put = try node.prepareRotation(record: id)
                let action = RecordAction.rotate(record: id, put: put)
                return json(RotationView(record: id, rotated: RecordAnchor.recordID(holder: node.organization, blob: put.id), blob: put.id,
                                         action: action.name, arguments: Hex.encode(action.arguments)), status: .created)
            }
        }
        router.get("/v1/records/:id/key", .recordKey) { request, context, caller in
            await handle {
                let (id, decision, reader) = try grantParameters(request, context, caller)
                let (wrapped, granted, anchor) = try node.releaseKey(record: id, decision: decision, reader: reader, now: Clock.nowMilliseconds())
                return json(KeyView(record: id, decision: decision, blob: anchor.put.id, holder: anchor.holder, wrapped_key: Hex.encode(wrapped),
                                    expires_at: granted.expiresAt))
            }
        }
        router.get("/v1/records/:id/blob", .recordBlob) { request, context, caller in
            await handle {
                let (id, decision, reader) = try grantParameters(request, context, caller)
                let (path, size) = try node.releaseBlob(record: id, decision: decision, reader: reader, now: Clock.nowMilliseconds())
                guard let file = FileHandle(forReadingAtPath: path) else { throw LedgerError(.notFound, "the blob of record \(id.hex.prefix(16))… is gone") }
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(contentLength: size) { writer in
                    defer { try? file.close() }
                    var sent = 0
                    while sent < size, let chunk = try file.read(upToCount: min(1 << 20, size - sent)), !chunk.isEmpty {
                        try await writer.write(ByteBuffer(bytes: chunk))
                        sent += chunk.count
                    }
                    try await writer.finish(nil)
                })
            }
        }
        // One decision, for its reader (who cannot read the patient's log) or whoever may read that log.
        router.get("/v1/records/:id/decision", .accessDecision) { request, context, caller in
            await handle {
                let (id, decisionID, reader) = try grantParameters(request, context, caller)
                guard let anchor = try node.anchor(id), let decision = try node.decision(anchor.put.patient, decisionID), decision.record == id else {
                    throw LedgerError(.notFound, "no access decision \(decisionID.hex.prefix(16))… about record \(id.hex.prefix(16))… is committed")
                }
                if decision.reader != reader { try requirePatient(caller, .disclosures, anchor.put.patient, node: node) }
                return json(DecisionView(decision, node: node))
            }
        }
        // Pages (?limit=, ?after=CURSOR); a full page carries the next cursor in MedLedger-Next-Page.
        router.get("/v1/patients/:pseudonym/records", .patientRecords) { request, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .patientRecords, node: node)
                let (after, limit) = try page(request)
                let anchors = try node.patientRecords(pseudonym, after: after, limit: limit)
                return paged(json(try anchors.map { anchor throws(LedgerError) in try RecordView(anchor, node: node) }), full: anchors.count == limit,
                             last: anchors.last.map { LedgerNode.cursor(time: $0.storedAt, id: $0.id) })
            }
        }
        // ?format=fhir: a FHIR R4B Bundle of Consent resources.
        router.get("/v1/patients/:pseudonym/consent", .patientConsent) { request, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .patientConsent, node: node)
                let state = try node.consentState(pseudonym)
                if try fhir(request), let entry = try node.patientEntry(pseudonym) {
                    return fhirResponse(FHIRExport.consents(state, patient: entry))
                }
                return json(ConsentView(version: state.version, rules: state.rules.map(RuleView.init)))
            }
        }
        // ?format=fhir: a FHIR R4B Bundle of AuditEvent resources.
        router.get("/v1/patients/:pseudonym/disclosures", .disclosures) { request, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .disclosures, node: node)
                let (after, limit) = try page(request)
                let decisions = try node.disclosures(pseudonym, after: after, limit: limit)
                let last = decisions.last.map { LedgerNode.cursor(time: $0.decidedAt, id: $0.id) }
                if try fhir(request) { return paged(fhirResponse(FHIRExport.auditEvents(decisions, node: node)), full: decisions.count == limit, last: last) }
                return paged(json(decisions.map { DecisionView($0, node: node) }), full: decisions.count == limit, last: last)
            }
        }
        router.get("/v1/break-glass", .breakGlassQueue) { request, _, caller in
            await handle {
                let (after, limit) = try page(request)
                guard case .organization(let own) = try require(caller, .breakGlassQueue, .route) else {
                    return json(try node.breakGlassQueue(nil, limit: limit).map { DecisionView($0, node: node) })
                }
                let decisions = try node.breakGlassQueue(own, after: after, limit: limit)
                return paged(json(decisions.map { DecisionView($0, node: node) }), full: decisions.count == limit,
                             last: decisions.last.map { LedgerNode.cursor(time: $0.decidedAt, id: $0.id) })
            }
        }
    }

    /// `?after=CURSOR` (16 hex digits, `/`, 64 hex digits) and `?limit=` (1…1000, default 1000).
    static func page(_ request: Request) throws(LedgerError) -> (String?, Int) {
        let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 1000
        guard let after = try Parameters.text(request, "after") else { return (nil, limit) }
        let parts = after.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 16, Hex.decode(String(parts[0])) != nil, Hash256(hex: String(parts[1])) != nil else {
            throw LedgerError(.invalidArgument, "after is a cursor from MedLedger-Next-Page (16 hex digits, /, 64 hex digits)")
        }
        return (after, limit)
    }

    /// Adds the next page's cursor when the page is full.
    static func paged(_ response: Response, full: Bool, last: String?) -> Response {
        var response = response
        if full, let last, let name = HTTPField.Name("MedLedger-Next-Page") { response.headers[name] = last }
        return response
    }

    /// `?format=fhir` (or `json`, the default).
    static func fhir(_ request: Request) throws(LedgerError) -> Bool {
        switch try Parameters.text(request, "format") {
        case nil, "json": false
        case "fhir": true
        case let other?: throw LedgerError(.invalidArgument, "format is json or fhir, not \(other.prefix(16))")
        }
    }

    static func fhirResponse(_ bundle: [String: Any]) -> Response {
        Response(status: .ok, headers: [.contentType: "application/fhir+json"], body: .init(byteBuffer: ByteBuffer(bytes: FHIRExport.data(bundle))))
    }

    /// `:id`, `?decision=` and the caller: the reader the decision must name.
    static func grantParameters(_ request: Request, _ context: BasicRequestContext, _ caller: Principal?) throws(LedgerError) -> (Hash256, Hash256, Hash256) {
        guard let caller else { throw LedgerError(.unauthenticated, "sign the request") }
        let id = try hash(context.parameters.get("id").map { Substring($0) }, "record id")
        guard let decision = try Parameters.text(request, "decision") else {
            throw LedgerError(.invalidArgument, "decision=<id of the granted consent.request or consent.break_glass> is required")
        }
        return (id, try hash(Substring(decision), "decision"), caller.member)
    }

    /// The `:pseudonym` of an enrolled patient the caller may read about on `route`.
    static func patient(_ context: BasicRequestContext, _ caller: Principal?, _ route: APIRoute, node: LedgerNode) throws(LedgerError) -> Hash256 {
        let pseudonym = try hash(context.parameters.get("pseudonym").map { Substring($0) }, "patient pseudonym")
        try requirePatient(caller, route, pseudonym, node: node)
        return pseudonym
    }

    static func requirePatient(_ caller: Principal?, _ route: APIRoute, _ pseudonym: Hash256, node: LedgerNode) throws(LedgerError) {
        guard let entry = try node.patientEntry(pseudonym) else {
            // Only oversight learns that a pseudonym is not enrolled; anyone else cannot tell it
            // from a patient whose data it may not read.
            guard try require(caller, route, .route) == .everything else {
                throw LedgerError(.forbidden, "\(caller?.name ?? "the caller") may not read this patient's data")
            }
            throw LedgerError(.unknownPatient, "no patient is enrolled under this pseudonym")
        }
        try require(caller, route, .patient(hospital: entry.hospital, speaksForPatient: caller.map { entry.speaksFor($0.member) } ?? false))
    }
}

struct StoredRecordView: Codable {
    /// SHA-256 of the sealed blob (`RecordPut.id`).
    var blob: Hash256
    /// The record id it has once anchored here (formats.md §17.3).
    var record: Hash256
    var holder: String
    var size: Int
    var holder_key: String
}

public struct RecordView: Codable, Sendable {
    public var id: Hash256
    public var blob: Hash256
    public var size: UInt64
    public var category: String
    public var device: String?
    public var patient: Hash256
    public var holder: String
    public var holder_key: String
    public var wrapped_key: String
    public var stored_by: Hash256
    public var stored_at: Int64
    public var erased_at: Int64?
    /// The record that replaced this one by key rotation (then `erased_at` is the rotation's time).
    public var rotated_to: Hash256?

    init(_ anchor: RecordAnchor, node: LedgerNode) throws(LedgerError) {
        id = anchor.id
        blob = anchor.put.id
        size = anchor.put.size
        category = anchor.put.category
        device = anchor.put.device
        patient = anchor.put.patient
        holder = anchor.holder
        holder_key = Hex.encode(anchor.put.holderKey)
        wrapped_key = Hex.encode(anchor.put.wrappedKey)
        stored_by = anchor.storedBy
        stored_at = anchor.storedAt
        erased_at = anchor.erasedAt
        rotated_to = anchor.erasedAt == nil ? nil : try node.rotation(of: anchor.id)
    }
}

/// The answer to `POST /v1/records/{id}/rotate`: the new record's ids and the `records.rotate`
/// transaction's arguments for the holder's admin to check and sign.
public struct RotationView: Codable, Sendable {
    public var record: Hash256
    public var rotated: Hash256
    public var blob: Hash256
    public var action: String
    public var arguments: String
}

struct KeyView: Codable {
    var record: Hash256
    var decision: Hash256
    /// The anchored blob hash and holder: the reader checks SHA-256 of the blob against `blob`,
    /// and `record` against the record id of (holder, blob), before decrypting.
    var blob: Hash256
    var holder: String
    /// The data key wrapped for the reader's registered encryption key (docs/formats.md §17.2).
    var wrapped_key: String
    var expires_at: Int64?
}

public struct GranteeView: Codable, Sendable {
    public var kind: String
    public var organization: String?
    public var role: String?
    public var member: Hash256?

    init(_ grantee: Grantee) {
        switch grantee {
        case .organization(let id): kind = "organization"; organization = id
        case .role(let role, let id): kind = "role"; self.role = role.rawValue; organization = id
        case .member(let fingerprint): kind = "member"; member = fingerprint
        }
    }
}

public struct RuleView: Codable, Sendable {
    public var id: Hash256
    public var effect: String
    public var grantee: GranteeView
    public var categories: [String]
    public var devices: [String]
    public var purposes: [String]
    public var expires_at: Int64?
    public var granted_by: Hash256
    public var granted_at: Int64

    init(_ rule: ConsentRule) {
        id = rule.id
        effect = rule.terms.effect.rawValue
        grantee = GranteeView(rule.terms.grantee)
        categories = rule.terms.categories
        devices = rule.terms.devices
        purposes = rule.terms.purposes.map(\.rawValue)
        expires_at = rule.terms.expiresAt
        granted_by = rule.grantedBy
        granted_at = rule.grantedAt
    }
}

public struct ConsentView: Codable, Sendable {
    public var version: UInt64
    public var rules: [RuleView]
}

public struct DecisionView: Codable, Sendable {
    public var id: Hash256
    public var record: Hash256
    public var patient: Hash256
    public var holder: String
    public var reader: Hash256
    public var reader_name: String?
    public var reader_organization: String
    public var reader_role: String
    public var purpose: String
    public var granted: Bool
    public var basis: String
    public var rule: Hash256?
    public var reason: String?
    public var decided_at: Int64
    public var expires_at: Int64?

    init(_ decision: ConsentDecision, node: LedgerNode) {
        id = decision.id
        record = decision.record
        patient = decision.patient
        holder = decision.holder
        reader = decision.reader
        reader_name = node.member(decision.reader)?.certificate.name
        reader_organization = decision.readerOrganization
        reader_role = decision.readerRole.rawValue
        purpose = decision.purpose.rawValue
        granted = decision.granted
        basis = decision.basis.rawValue
        rule = decision.rule
        reason = decision.reason
        decided_at = decision.decidedAt
        expires_at = decision.expiresAt
    }
}
