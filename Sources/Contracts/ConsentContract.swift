public import LedgerCore

/// Patients' consent and the access decisions taken under it. Every decision — granted or denied —
/// is an ordered transaction whose result is written to the patient's disclosure log.
///
/// Actions:
/// - `register(certificate)`: a hospital admin registers a patient's or delegate's certificate
///   (issued by its CA) at once, without a governance vote.
/// - `enrol(pseudonym, member)`: a hospital admin binds a pseudonym to a patient identity (role
///   `patient`, issued by the same hospital).
/// - `delegate(pseudonym, member, add)`: the patient appoints a delegate (role `delegate`, same
///   hospital); the patient or the hospital's admin removes one.
/// - `grant(pseudonym, terms)` / `revoke(pseudonym, rule)`: the patient or a delegate changes the rules.
/// - `request(record, purpose)`: a reader asks; ``decide(rules:patient:anchor:reader:purpose:at:)`` decides.
/// - `break_glass(record, reason)`: a hospital clinician's emergency access (ETREAT) without consent:
///   granted for ``breakGlassWindow``, queued for the holder's review.
/// - `review(pseudonym, decision, note)`: the holder's admin (its privacy officer) reviews one.
public struct ConsentContract: Contract {
    public static let name = "consent"
    public var name: String { Self.name }

    /// How long after a granted decision the holder releases the key (never past the rule's expiry).
    public static let accessWindow: Int64 = 15 * 60_000
    public static let breakGlassWindow: Int64 = 60 * 60_000

    static let readers: Set<Role> = [.admin, .clinician, .researcher, .auditor, .patient, .delegate]

    public init() {}

    public func execute(_ context: inout TransactionContext) throws(LedgerError) {
        let action = try ConsentAction(action: context.payload.action, arguments: context.payload.arguments)
        let creator = try context.requireCreator()
        try Self.validate(action, creator: creator)
        switch action {
        case .register(let der):
            guard let organization = try context.organization(creator.organization), organization.kind == .hospital else {
                throw LedgerError(.forbidden, "only hospitals register patients and delegates; \(creator.organization) is not a hospital")
            }
            let certificate = try GovernanceContract().memberCertificate(MemberRegistration(certificate: der), &context)
            guard certificate.organization == creator.organization else {
                throw LedgerError(.forbidden, "an admin registers only certificates of its own organisation")
            }
            guard certificate.role == .patient || certificate.role == .delegate else {
                throw LedgerError(.forbidden, "only patients and delegates are registered directly; a \(certificate.role.rawValue) is admitted by governance")
            }
            context.put(StateKey.member(certificate.fingerprint), Member(certificate: certificate))

        case .enrol(let pseudonym, let fingerprint):
            guard let organization = try context.organization(creator.organization), organization.kind == .hospital else {
                throw LedgerError(.forbidden, "only hospitals enrol patients; \(creator.organization) is not a hospital")
            }
            guard try context.get(StateKey.patient(pseudonym)) == nil else {
                throw LedgerError(.invalidArgument, "a patient is already enrolled under this pseudonym")
            }
            _ = try Self.person(fingerprint, role: .patient, of: creator.organization, context)
            context.put(StateKey.patient(pseudonym), PatientEntry(pseudonym: pseudonym, hospital: creator.organization, patient: fingerprint,
                                                                 enrolledAt: context.blockTime))

        case .delegate(let pseudonym, let fingerprint, let add):
            var entry = try context.patient(pseudonym)
            guard creator.fingerprint == entry.patient || (creator.role == .admin && creator.organization == entry.hospital) else {
                throw LedgerError(.forbidden, "only the patient or an admin of \(entry.hospital) changes the patient's delegates")
            }
            // Red-team finding: an admin could name a delegate identity it made itself and read
            // everything as "the patient". Only the patient appoints; the hospital may remove.
            guard !add || creator.fingerprint == entry.patient else {
                throw LedgerError(.forbidden, "only the patient appoints a delegate; the hospital's admin may only remove one")
            }
            if add {
                _ = try Self.person(fingerprint, role: .delegate, of: entry.hospital, context)
                guard !entry.delegates.contains(fingerprint) else { throw LedgerError(.invalidArgument, "already a delegate of this patient") }
                guard entry.delegates.count < PatientEntry.maxDelegates else {
                    throw LedgerError(.invalidArgument, "a patient has at most \(PatientEntry.maxDelegates) delegates")
                }
                entry.delegates.append(fingerprint)
                entry.delegates.sort()
            } else {
                guard let index = entry.delegates.firstIndex(of: fingerprint) else {
                    throw LedgerError(.notFound, "not a delegate of this patient")
                }
                entry.delegates.remove(at: index)
            }
            context.put(StateKey.patient(pseudonym), entry)

        case .grant(let pseudonym, var terms):
            let entry = try context.patient(pseudonym)
            try Self.requireSpeaksFor(entry, creator)
            terms.devices = try Self.canonical(devices: terms.devices)
            if let expiresAt = terms.expiresAt, expiresAt <= context.blockTime {
                throw LedgerError(.invalidArgument, "the rule expires at \(expiresAt), before block time \(context.blockTime)")
            }
            var state = try context.get(ConsentState.self, StateKey.consent(pseudonym)) ?? ConsentState()
            // Expired rules decide nothing; they make room here and stay in the key's history.
            state.rules.removeAll { ($0.terms.expiresAt ?? .max) <= context.blockTime }
            guard state.rules.count < ConsentState.maxRules else {
                throw LedgerError(.invalidArgument, "a patient has at most \(ConsentState.maxRules) rules in force; revoke one first")
            }
            state.rules.append(ConsentRule(id: context.id, terms: terms, grantedBy: creator.fingerprint, grantedAt: context.blockTime))
            state.rules.sort { $0.id < $1.id }
            state.version += 1
            // Red-team finding: with 256 large rules one 4 KB grant rewrote ~950 KB on every node.
            guard state.encoded.count <= ConsentState.maxEncodedBytes else {
                throw LedgerError(.invalidArgument, "a patient's rules in force may take at most \(ConsentState.maxEncodedBytes) bytes; revoke some first")
            }
            context.put(StateKey.consent(pseudonym), state)

        case .revoke(let pseudonym, let rule):
            let entry = try context.patient(pseudonym)
            try Self.requireSpeaksFor(entry, creator)
            guard var state = try context.get(ConsentState.self, StateKey.consent(pseudonym)),
                  let index = state.rules.firstIndex(where: { $0.id == rule })
            else {
                throw LedgerError(.notFound, "no rule \(rule.hex.prefix(16))… is in force for this patient")
            }
            state.rules.remove(at: index)
            state.version += 1
            context.put(StateKey.consent(pseudonym), state)

        case .request(let id, let purpose):
            let anchor = try context.liveRecord(id)
            let entry = try context.patient(anchor.put.patient)
            try Self.requireEncryptionKey(creator, context)
            let rules = try context.get(ConsentState.self, StateKey.consent(entry.pseudonym))?.rules ?? []
            let outcome = Self.decide(rules: rules, patient: entry, anchor: anchor, reader: creator, purpose: purpose, at: context.blockTime)
            Self.record(Self.decision(context, anchor, creator, purpose: purpose, outcome: outcome, reason: nil), &context)

        case .breakGlass(let id, let reason):
            guard let organization = try context.organization(creator.organization), organization.kind == .hospital else {
                throw LedgerError(.forbidden, "break-glass access is for hospital clinicians; \(creator.organization) is not a hospital")
            }
            let anchor = try context.liveRecord(id)
            try Self.requireEncryptionKey(creator, context)
            let outcome = Outcome(granted: true, basis: .breakGlass, rule: nil, expiresAt: context.blockTime.addingSaturating(Self.breakGlassWindow))
            Self.record(Self.decision(context, anchor, creator, purpose: .emergencyTreatment, outcome: outcome, reason: reason), &context)
            context.put(StateKey.breakGlassQueue(anchor.holder, context.blockTime, context.id), bytes: [])

        case .review(let pseudonym, let id, let note):
            guard let decision = try context.get(ConsentDecision.self, StateKey.decision(id)), decision.patient == pseudonym,
                  decision.basis == .breakGlass else {
                throw LedgerError(.notFound, "no break-glass access \(id.hex.prefix(16))… for this patient")
            }
            guard decision.holder == creator.organization else {
                throw LedgerError(.forbidden, "break-glass accesses to \(decision.holder)'s records are reviewed by \(decision.holder)")
            }
            let queued = StateKey.breakGlassQueue(decision.holder, decision.decidedAt, id)
            guard try context.get(queued) != nil else {
                throw LedgerError(.invalidArgument, "this break-glass access was already reviewed")
            }
            context.delete(queued)
            context.put(StateKey.breakGlassReview(id), BreakGlassReview(reviewer: creator.fingerprint, reviewedAt: context.blockTime, note: note))
        }
    }

    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {
        try Self.validate(ConsentAction(action: payload.action, arguments: payload.arguments), creator: creator)
    }

    // MARK: The decision

    public struct Outcome: Sendable, Hashable {
        public var granted: Bool
        public var basis: ConsentDecision.Basis
        public var rule: Hash256?
        public var expiresAt: Int64?
    }

    /// The decision for `reader` reading `anchor` for `purpose` at block time `time`: the patient
    /// and their delegates always read their own records; otherwise a matching deny rule refuses
    /// whatever permits say; otherwise the matching permit that lasts longest grants (ties: lowest
    /// rule id), for ``accessWindow`` and never past its expiry; otherwise nothing was consented.
    public static func decide(rules: [ConsentRule], patient: PatientEntry, anchor: RecordAnchor, reader: Member,
                              purpose: PurposeOfUse, at time: Int64) -> Outcome {
        let window = time.addingSaturating(accessWindow)
        if patient.speaksFor(reader.fingerprint) {
            return Outcome(granted: true, basis: .patient, rule: nil, expiresAt: window)
        }
        // Red-team finding: "St Mary's may treat" matched St Mary's other patients and delegates
        // (identities a hospital creates without a vote). A patient or delegate reads only the
        // records of a patient they speak for; no rule extends that.
        if reader.role == .patient || reader.role == .delegate {
            return Outcome(granted: false, basis: .noConsent, rule: nil, expiresAt: nil)
        }
        let matching = rules.filter { $0.terms.covers(reader, anchor, purpose: purpose, at: time) }
        if let deny = matching.first(where: { $0.terms.effect == .deny }) {
            return Outcome(granted: false, basis: .deny, rule: deny.id, expiresAt: nil)
        }
        var best: ConsentRule?
        for rule in matching where best.map({ (rule.terms.expiresAt ?? .max) > ($0.terms.expiresAt ?? .max) }) ?? true {
            best = rule
        }
        guard let best else { return Outcome(granted: false, basis: .noConsent, rule: nil, expiresAt: nil) }
        return Outcome(granted: true, basis: .consent, rule: best.id, expiresAt: min(window, best.terms.expiresAt ?? .max))
    }

    /// Writes the decision and its entry in the patient's disclosure log.
    static func record(_ decision: ConsentDecision, _ context: inout TransactionContext) {
        context.put(StateKey.decision(decision.id), decision)
        context.put(StateKey.disclosure(decision.patient, decision.decidedAt, decision.id), bytes: [])
    }

    static func decision(_ context: TransactionContext, _ anchor: RecordAnchor, _ reader: Member, purpose: PurposeOfUse,
                         outcome: Outcome, reason: String?) -> ConsentDecision {
        ConsentDecision(id: context.id, record: anchor.id, patient: anchor.put.patient, holder: anchor.holder, reader: reader.fingerprint,
                        readerOrganization: reader.organization, readerRole: reader.role, purpose: purpose, granted: outcome.granted,
                        basis: outcome.basis, rule: outcome.rule, reason: reason, decidedAt: context.blockTime, expiresAt: outcome.expiresAt)
    }

    // MARK: Checks

    static func validate(_ action: ConsentAction, creator: Member) throws(LedgerError) {
        switch action {
        case .register, .enrol:
            guard creator.role == .admin else { throw LedgerError(.forbidden, "only a hospital admin registers and enrols patients") }
        case .delegate:
            guard creator.role == .admin || creator.role == .patient else {
                throw LedgerError(.forbidden, "only the patient or a hospital admin changes delegates")
            }
        case .grant(_, let terms):
            guard creator.role == .patient || creator.role == .delegate else {
                throw LedgerError(.forbidden, "only the patient or a delegate grants consent (not a \(creator.role.rawValue))")
            }
            guard !terms.purposes.isEmpty, terms.purposes == Array(Set(terms.purposes)).sorted() else {
                throw LedgerError(.invalidArgument, "a rule names one or more purposes of use, sorted, each once")
            }
            guard !terms.purposes.contains(.emergencyTreatment) else {
                throw LedgerError(.invalidArgument, "ETREAT is break-glass access; consent rules do not grant or deny it")
            }
            guard terms.categories.allSatisfy(RecordCategory.isValid), terms.categories == Array(Set(terms.categories)).sorted() else {
                throw LedgerError(.invalidArgument, "rule categories are record categories, sorted, each once")
            }
            guard Set(terms.devices).count == terms.devices.count else { throw LedgerError(.invalidArgument, "rule devices are each named once") }
        case .revoke:
            guard creator.role == .patient || creator.role == .delegate else {
                throw LedgerError(.forbidden, "only the patient or a delegate revokes consent")
            }
        case .request(_, let purpose):
            guard readers.contains(creator.role) else {
                throw LedgerError(.forbidden, "role \(creator.role.rawValue) does not read patient records")
            }
            guard purpose != .emergencyTreatment else {
                throw LedgerError(.invalidArgument, "emergency access without consent is break_glass, with a reason")
            }
        case .breakGlass(_, let reason):
            guard creator.role == .clinician else {
                throw LedgerError(.forbidden, "only a clinician may break the glass (not a \(creator.role.rawValue))")
            }
            try validateReason(reason, what: "break-glass access")
        case .review(_, _, let note):
            guard creator.role == .admin else { throw LedgerError(.forbidden, "only the holder's admin reviews break-glass accesses") }
            try validateReason(note, what: "a review")
        }
    }

    static func validateReason(_ reason: String, what: String) throws(LedgerError) {
        guard reason.contains(where: { !$0.isWhitespace }) else {
            throw LedgerError(.missingField, "\(what) needs a reason")
        }
    }

    static func requireSpeaksFor(_ entry: PatientEntry, _ creator: Member) throws(LedgerError) {
        guard entry.speaksFor(creator.fingerprint) else {
            throw LedgerError(.forbidden, "only the patient or one of their delegates changes their consent")
        }
    }

    static func requireEncryptionKey(_ reader: Member, _ context: TransactionContext) throws(LedgerError) {
        guard try context.get(StateKey.encryptionKey(reader.fingerprint)) != nil else {
            throw LedgerError(.missingField, "register an encryption key (records.register_key) before asking for records")
        }
    }

    /// An active member of `organization` with `role`.
    static func person(_ fingerprint: Hash256, role: Role, of organization: String, _ context: TransactionContext) throws(LedgerError) -> Member {
        guard let member = try context.get(Member.self, StateKey.member(fingerprint)) else {
            throw LedgerError(.unknownMember, "no member has certificate \(fingerprint.hex.prefix(16))…")
        }
        guard member.role == role, member.organization == organization else {
            throw LedgerError(.invalidArgument, "the member must have role \(role.rawValue) at \(organization)")
        }
        guard member.revokedAt == nil else { throw LedgerError(.certificateRevoked, "the member's certificate is revoked") }
        return member
    }

    /// Canonical UDIs, sorted and unique.
    static func canonical(devices: [String]) throws(LedgerError) -> [String] {
        var keys: [String] = []
        for device in devices { keys.append(try UDI.canonicalKey(device)) }
        let unique = Array(Set(keys)).sorted()
        guard unique.count == keys.count else { throw LedgerError(.invalidArgument, "rule devices are each named once") }
        return unique
    }
}
