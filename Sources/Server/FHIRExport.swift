import Foundation
import LedgerCore
import Node

/// A patient's disclosure log and consent as FHIR R4B resources (`?format=fhir`): a `collection`
/// Bundle of `AuditEvent`s (one per access decision) or of `Consent`s (one per rule in force).
/// Identifiers are the ledger's: member fingerprints, record ids and the pseudonym, under
/// `urn:medledger:` systems; nothing identifies the patient but the pseudonym.
enum FHIRExport {
    static let purposeSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

    static func instant(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func identifier(_ kind: String, _ value: String) -> [String: Any] {
        ["system": "urn:medledger:\(kind)", "value": value]
    }

    static func bundle(_ resources: [[String: Any]]) -> [String: Any] {
        ["resourceType": "Bundle", "type": "collection", "entry": resources.map { ["resource": $0] }]
    }

    static func auditEvents(_ decisions: [ConsentDecision], node: LedgerNode) -> [String: Any] {
        bundle(decisions.map { decision in
            let purpose: [String: Any] = ["coding": [["system": purposeSystem, "code": decision.purpose.rawValue]]]
            var outcome = decision.granted ? "granted" : "denied"
            outcome += " (\(decision.basis.rawValue)\(decision.rule.map { ", rule \($0.hex)" } ?? ""))"
            if let reason = decision.reason { outcome += ": \(reason)" }
            var reader: [String: Any] = ["identifier": identifier("member", decision.reader.hex)]
            if let name = node.member(decision.reader)?.certificate.name { reader["display"] = name }
            var event: [String: Any] = [
                "resourceType": "AuditEvent",
                "id": decision.id.hex,
                "type": ["system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"],
                "subtype": [["system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"]],
                "action": "R",
                "recorded": instant(decision.decidedAt),
                "outcome": decision.granted ? "0" : "4",
                "outcomeDesc": outcome,
                "purposeOfEvent": [purpose],
                "agent": [[
                    "who": reader,
                    "requestor": true,
                    "role": [["text": decision.readerRole.rawValue]],
                    "purposeOfUse": [purpose],
                ] as [String: Any]],
                "source": ["site": decision.holder, "observer": ["display": "MedLedger node of \(node.organization)"]],
                "entity": [
                    ["what": ["identifier": identifier("record", decision.record.hex)],
                     "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"]],
                    ["what": ["identifier": identifier("patient-pseudonym", decision.patient.hex)],
                     "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"],
                     "role": ["system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"]],
                ],
            ]
            if let expiresAt = decision.expiresAt {
                event["period"] = ["start": instant(decision.decidedAt), "end": instant(expiresAt)]
            }
            return event
        })
    }

    static func consents(_ state: ConsentState, patient: PatientEntry) -> [String: Any] {
        bundle(state.rules.map { rule in
            let terms = rule.terms
            var actor: [String: Any] = ["role": ["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP",
                                                               "display": "information recipient"]]]]
            switch terms.grantee {
            case .organization(let id): actor["reference"] = ["identifier": identifier("organization", id), "display": id]
            case .role(let role, let id): actor["reference"] = ["display": "role \(role.rawValue)" + (id.map { " at \($0)" } ?? " at any organisation")]
            case .member(let fingerprint): actor["reference"] = ["identifier": identifier("member", fingerprint.hex)]
            }
            var period: [String: Any] = ["start": instant(rule.grantedAt)]
            if let expiresAt = terms.expiresAt { period["end"] = instant(expiresAt) }
            var provision: [String: Any] = [
                "type": terms.effect == .permit ? "permit" : "deny",
                "period": period,
                "actor": [actor],
                "purpose": terms.purposes.map { ["system": purposeSystem, "code": $0.rawValue] },
            ]
            if !terms.categories.isEmpty {
                provision["class"] = terms.categories.map { ["system": "urn:medledger:record-category", "code": $0] }
            }
            if !terms.devices.isEmpty {
                provision["data"] = terms.devices.map { ["meaning": "related", "reference": ["identifier": identifier("device-udi", $0)]] }
            }
            return [
                "resourceType": "Consent",
                "id": rule.id.hex,
                "status": "active",
                "scope": ["coding": [["system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"]]],
                "category": [["coding": [["system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"]]]],
                "patient": ["identifier": identifier("patient-pseudonym", patient.pseudonym.hex)],
                "dateTime": instant(rule.grantedAt),
                "organization": [["identifier": identifier("organization", patient.hospital), "display": patient.hospital]],
                "policyRule": ["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": terms.effect == .permit ? "OPTIN" : "OPTOUT"]]],
                "provision": provision,
            ] as [String: Any]
        })
    }

    static func data(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
    }
}
