import Foundation
import Hummingbird
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
                let body = try await request.body.collect(upTo: SealedRecord.maxUploadBytes)
                let (id, holderKey) = try node.acceptRecord(Array(body.readableBytesView))
                return json(StoredRecordView(id: id, size: body.readableBytes, holder_key: Hex.encode(holderKey)), status: .created)
            }
        }
        router.get("/v1/records/:id", .record) { _, context, caller in
            await handle {
                let id = try hash(context.parameters.get("id").map { Substring($0) }, "record id")
                guard let anchor = try node.anchor(id) else { throw LedgerError(.unknownRecord, "no record \(id.hex.prefix(16))… is anchored") }
                try requirePatient(caller, .record, anchor.put.patient, node: node)
                return json(RecordView(anchor))
            }
        }
        router.get("/v1/records/:id/key", .recordKey) { request, context, caller in
            await handle {
                let (id, decision, reader) = try grantParameters(request, context, caller)
                let (wrapped, granted) = try node.releaseKey(record: id, decision: decision, reader: reader, now: Clock.nowMilliseconds())
                return json(KeyView(record: id, decision: decision, wrapped_key: Hex.encode(wrapped), expires_at: granted.expiresAt))
            }
        }
        router.get("/v1/records/:id/blob", .recordBlob) { request, context, caller in
            await handle {
                let (id, decision, reader) = try grantParameters(request, context, caller)
                let blob = try node.releaseBlob(record: id, decision: decision, reader: reader, now: Clock.nowMilliseconds())
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: blob)))
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
        router.get("/v1/patients/:pseudonym/records", .patientRecords) { _, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .patientRecords, node: node)
                return json(try node.patientRecords(pseudonym).map(RecordView.init))
            }
        }
        router.get("/v1/patients/:pseudonym/consent", .patientConsent) { _, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .patientConsent, node: node)
                let state = try node.consentState(pseudonym)
                return json(ConsentView(version: state.version, rules: state.rules.map(RuleView.init)))
            }
        }
        router.get("/v1/patients/:pseudonym/disclosures", .disclosures) { request, context, caller in
            await handle {
                let pseudonym = try patient(context, caller, .disclosures, node: node)
                let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 1000
                return json(try node.disclosures(pseudonym, limit: limit).map { DecisionView($0, node: node) })
            }
        }
        router.get("/v1/break-glass", .breakGlassQueue) { _, _, caller in
            await handle {
                let scope = try require(caller, .breakGlassQueue, .route)
                let organization: String? = if case .organization(let own) = scope { own } else { nil }
                return json(try node.breakGlassQueue(organization).map { DecisionView($0, node: node) })
            }
        }
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
            // Only those who could read some patient's data learn that a pseudonym is not enrolled.
            try require(caller, route, .route)
            throw LedgerError(.unknownPatient, "no patient is enrolled under this pseudonym")
        }
        try require(caller, route, .patient(hospital: entry.hospital, speaksForPatient: caller.map { entry.speaksFor($0.member) } ?? false))
    }
}

struct StoredRecordView: Codable {
    var id: Hash256
    var size: Int
    var holder_key: String
}

struct RecordView: Codable {
    var id: Hash256
    var size: UInt64
    var category: String
    var device: String?
    var patient: Hash256
    var holder: String
    var holder_key: String
    var wrapped_key: String
    var stored_by: Hash256
    var stored_at: Int64
    var erased_at: Int64?

    init(_ anchor: RecordAnchor) {
        id = anchor.id
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
    }
}

struct KeyView: Codable {
    var record: Hash256
    var decision: Hash256
    /// The data key wrapped for the reader's registered encryption key (docs/formats.md §17.2).
    var wrapped_key: String
    var expires_at: Int64?
}

struct GranteeView: Codable {
    var kind: String
    var organization: String?
    var role: String?
    var member: Hash256?

    init(_ grantee: Grantee) {
        switch grantee {
        case .organization(let id): kind = "organization"; organization = id
        case .role(let role, let id): kind = "role"; self.role = role.rawValue; organization = id
        case .member(let fingerprint): kind = "member"; member = fingerprint
        }
    }
}

struct RuleView: Codable {
    var id: Hash256
    var effect: String
    var grantee: GranteeView
    var categories: [String]
    var devices: [String]
    var purposes: [String]
    var expires_at: Int64?
    var granted_by: Hash256
    var granted_at: Int64

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

struct ConsentView: Codable {
    var version: UInt64
    var rules: [RuleView]
}

struct DecisionView: Codable {
    var id: Hash256
    var record: Hash256
    var patient: Hash256
    var holder: String
    var reader: Hash256
    var reader_name: String?
    var reader_organization: String
    var reader_role: String
    var purpose: String
    var granted: Bool
    var basis: String
    var rule: Hash256?
    var reason: String?
    var decided_at: Int64
    var expires_at: Int64?

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
