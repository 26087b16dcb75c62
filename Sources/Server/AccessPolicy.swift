public import LedgerCore

/// Every route of the HTTP API. A handler is registered under exactly one of these, so the route a
/// decision is about is the one the router matched, never a re-parse of the path.
public enum APIRoute: String, Sendable, CaseIterable, Hashable {
    case health
    case openAPI
    case submitTransaction
    case submitTransactions
    case submitQuery
    case chain
    case node
    case chainHeightAt
    case consistencyProof
    case metrics
    case refusals
    case devices
    case device
    case deviceHistory
    case block
    case events
    case transactionStatus
    case inclusionProof
    case researchBudget
    case researchLog
    case storeRecord
    case rotateRecord
    case record
    case recordKey
    case recordBlob
    case accessDecision
    case patientRecords
    case patientConsent
    case disclosures
    case breakGlassQueue

    /// Method and path template, as in README.md.
    public var template: String {
        switch self {
        case .health: "GET /health"
        case .openAPI: "GET /openapi.json"
        case .submitTransaction: "POST /v1/transactions"
        case .submitTransactions: "POST /v1/transactions/batch"
        case .submitQuery: "POST /v1/queries"
        case .chain: "GET /v1/chain"
        case .node: "GET /v1/node"
        case .chainHeightAt: "GET /v1/chain/height-at"
        case .consistencyProof: "GET /v1/proofs/consistency"
        case .metrics: "GET /metrics"
        case .refusals: "GET /v1/refusals"
        case .devices: "GET /v1/devices"
        case .device: "GET /v1/device"
        case .deviceHistory: "GET /v1/device/history"
        case .block: "GET /v1/blocks/{height}"
        case .events: "GET /v1/events"
        case .transactionStatus: "GET /v1/transactions/{id}"
        case .inclusionProof: "GET /v1/proofs/inclusion/{id}"
        case .researchBudget: "GET /v1/research/budget/{member}"
        case .researchLog: "GET /v1/research/log"
        case .storeRecord: "POST /v1/records"
        case .rotateRecord: "POST /v1/records/{id}/rotate"
        case .record: "GET /v1/records/{id}"
        case .recordKey: "GET /v1/records/{id}/key"
        case .recordBlob: "GET /v1/records/{id}/blob"
        case .accessDecision: "GET /v1/records/{id}/decision"
        case .patientRecords: "GET /v1/patients/{pseudonym}/records"
        case .patientConsent: "GET /v1/patients/{pseudonym}/consent"
        case .disclosures: "GET /v1/patients/{pseudonym}/disclosures"
        case .breakGlassQueue: "GET /v1/break-glass"
        }
    }

    /// The largest signed request body the route reads.
    public var bodyLimit: Int {
        self == .storeRecord ? SealedRecord.maxUploadBytes : RequestAuthenticator.maxBodyBytes
    }

    /// Whether a node that diverged from the network still answers the route: only what tells an
    /// operator its state (every other route answers 503 `diverged`, saying why).
    public var answersWhenDiverged: Bool {
        switch self {
        // /v1/node says why the node diverged: `network status` reads it from a halted node.
        case .health, .openAPI, .metrics, .node: true
        default: false
        }
    }

    /// How callers of the route are authenticated.
    public var authentication: Authentication {
        switch self {
        case .health, .openAPI: .none
        case .submitTransaction, .submitTransactions, .submitQuery: .envelope
        default: .signedRequest
        }
    }

    public enum Authentication: Sendable {
        /// Open to anyone who can reach the port.
        case none
        /// The body is a signed envelope; admission checks its creator (registered, unrevoked,
        /// organisation active, certificate valid, signature) exactly as for every transaction.
        case envelope
        /// An `Authorization: MedLedger-Signature …` header (``RequestSignature``).
        case signedRequest
    }
}

/// The resource a decision is about, once the handler has looked it up.
public enum AccessResource: Sendable, Hashable {
    /// Nothing specific (or not looked up yet).
    case route
    /// `/v1/devices?owner=`: the owner asked for (nil: every owner).
    case deviceOwnerFilter(String?)
    /// A device: its current owner.
    case deviceOwnedBy(String)
    /// A transaction: the organisation of its creator (nil while it is pending and not yet stored).
    case transactionCreatedBy(organization: String?)
    /// A researcher's budget.
    case budgetOf(Hash256)
    /// A patient's records, consent or disclosure log: the hospital the patient is enrolled at, and
    /// whether the caller is the patient or one of their delegates.
    case patient(hospital: String, speaksForPatient: Bool)
}

/// What a caller may see of a route.
public enum AccessScope: Sendable, Hashable {
    /// All of it.
    case everything
    /// Only what belongs to this organisation (devices it owns, transactions its members created).
    case organization(String)
    /// Only the caller's own entries (research log entries it asked).
    case own(Hash256)
}

public enum AccessDecision: Sendable, Hashable {
    case allow(AccessScope)
    /// No valid credentials: HTTP 401.
    case unauthenticated(String)
    /// Authenticated, without the right: HTTP 403 `forbidden`.
    case forbidden(String)
}

/// The one role × route table of the API (mirrored in README.md and docs/threat_model.md).
///
/// A pure function of the principal, the route and the resource. Handlers call it twice where the
/// answer depends on data: first with ``AccessResource/route`` before any lookup (so a caller with
/// no right to a route learns nothing, not even whether a resource exists), then with the resource.
///
/// Standing of a principal, first match wins:
/// 1. **researcher** — role `researcher` (of any organisation).
/// 2. **oversight** — role `auditor` or `node` (of any organisation), or any member of a `regulator`.
/// 3. **patient** — role `patient` or `delegate`: nothing beyond the chain head and consistency proofs.
/// 4. **coordinator** — role `admin` of a `research` organisation.
/// 5. **hospital staff** — any other member of a `hospital` (admin, collector, device, clinician).
/// 6. **member** — anyone else (e.g. a manufacturer's admin).
public enum AccessPolicy {
    public enum Standing: String, Sendable, CaseIterable {
        case researcher, oversight, patient, coordinator, hospitalStaff = "hospital_staff", member
    }

    public static func standing(of principal: Principal) -> Standing {
        if principal.role == .researcher { return .researcher }
        if principal.role == .auditor || principal.role == .node || principal.organizationKind == .regulator { return .oversight }
        if principal.role == .patient || principal.role == .delegate { return .patient }
        if principal.role == .admin && principal.organizationKind == .research { return .coordinator }
        if principal.organizationKind == .hospital { return .hospitalStaff }
        return .member
    }

    public static func decide(_ principal: Principal?, _ route: APIRoute, _ resource: AccessResource = .route) -> AccessDecision {
        switch route.authentication {
        case .none, .envelope: return .allow(.everything)
        case .signedRequest: break
        }
        guard let principal else {
            return .unauthenticated("\(route.template) needs a signed request: Authorization: \(RequestSignature.scheme) … (docs/formats.md)")
        }
        let standing = standing(of: principal)
        let deny = AccessDecision.forbidden("\(principal.name) (\(standing.rawValue)) may not use \(route.template)")
        let isAdmin = principal.role == .admin

        switch route {
        case .health, .openAPI, .submitTransaction, .submitTransactions, .submitQuery:
            return .allow(.everything)

        case .chain, .chainHeightAt:
            return .allow(.everything)

        case .consistencyProof:
            // Its membership evidence carries governance envelopes, and those name device UDIs.
            return standing == .researcher || standing == .patient ? deny : .allow(.everything)

        case .metrics, .node:
            // Operational state (leadership, certificate expiry, why a node diverged): for the
            // people who run and oversee nodes, as for the metrics.
            return standing == .oversight || isAdmin ? .allow(.everything) : deny

        case .refusals:
            // Refusal messages quote what was submitted: an admin sees its own organisation's.
            if standing == .oversight { return .allow(.everything) }
            return isAdmin ? .allow(.organization(principal.organization)) : deny

        case .block, .events:
            return standing == .oversight ? .allow(.everything) : deny

        case .devices, .device, .deviceHistory:
            switch standing {
            case .oversight: return .allow(.everything)
            case .hospitalStaff:
                switch resource {
                case .route, .deviceOwnerFilter(nil): return .allow(.organization(principal.organization))
                case .deviceOwnerFilter(let owner?), .deviceOwnedBy(let owner):
                    return owner == principal.organization ? .allow(.organization(principal.organization))
                        : .forbidden("\(principal.name) may read only devices owned by \(principal.organization)")
                default: return deny
                }
            default: return deny
            }

        case .transactionStatus, .inclusionProof:
            switch standing {
            case .oversight: return .allow(.everything)
            case .researcher, .patient: return deny
            case .coordinator, .hospitalStaff, .member:
                switch resource {
                case .route, .transactionCreatedBy(organization: nil): return .allow(.organization(principal.organization))
                case .transactionCreatedBy(organization: let creator?):
                    return creator == principal.organization ? .allow(.organization(principal.organization))
                        : .forbidden("\(principal.name) may see only transactions created by members of \(principal.organization)")
                default: return deny
                }
            }

        case .researchBudget:
            switch standing {
            case .oversight, .coordinator: return .allow(.everything)
            case .researcher:
                switch resource {
                case .route: return .allow(.own(principal.member))
                case .budgetOf(let member):
                    return member == principal.member ? .allow(.own(principal.member))
                        : .forbidden("a researcher may read only its own budget")
                default: return deny
                }
            default: return deny
            }

        case .researchLog:
            switch standing {
            case .oversight, .coordinator: return .allow(.everything)
            case .researcher: return .allow(.own(principal.member))
            default: return deny
            }

        case .storeRecord:
            // The handler also requires the caller's organisation to be this node's.
            let writers: Set<Role> = [.admin, .collector, .clinician]
            return standing == .hospitalStaff && writers.contains(principal.role) ? .allow(.organization(principal.organization)) : deny

        case .rotateRecord:
            // Key management: the holder's admins (the handler requires this node's organisation).
            return standing == .hospitalStaff && isAdmin ? .allow(.organization(principal.organization)) : deny

        case .recordKey, .recordBlob, .accessDecision:
            // The authorisation is the recorded decision: the handler checks that the caller is its
            // reader (for a decision, or one who may read the patient's disclosure log).
            return .allow(.own(principal.member))

        case .record, .patientRecords, .patientConsent, .disclosures:
            // Metadata only (hashes, sizes, categories, times, who asked): the patient and their
            // delegates; the patient's hospital (its admins for consent and the disclosure log);
            // oversight. Researchers and other organisations' staff see none of it.
            let hospitalRoles: Set<Role> = route == .record || route == .patientRecords ? [.admin, .clinician, .collector] : [.admin]
            switch (standing, resource) {
            case (.oversight, _): return .allow(.everything)
            case (.patient, .route):
                return .allow(.own(principal.member))
            case (.hospitalStaff, .route) where hospitalRoles.contains(principal.role):
                return .allow(.own(principal.member))
            case (.patient, .patient(_, let speaks)):
                return speaks ? .allow(.own(principal.member)) : .forbidden("\(principal.name) may read only its own patient data")
            case (.hospitalStaff, .patient(let hospital, _)) where hospitalRoles.contains(principal.role):
                return hospital == principal.organization ? .allow(.organization(hospital))
                    : .forbidden("the patient is enrolled at \(hospital); \(principal.organization) may not read it")
            default: return deny
            }

        case .breakGlassQueue:
            if standing == .oversight { return .allow(.everything) }
            return standing == .hospitalStaff && isAdmin ? .allow(.organization(principal.organization)) : deny
        }
    }
}
