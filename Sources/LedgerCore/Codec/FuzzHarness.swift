/// Feeds arbitrary bytes to every binary decoder in LedgerCore and checks the canonical-encoding
/// property: whenever `T(decoding: bytes)` succeeds, `value.encoded == bytes` and decoding the
/// re-encoding gives back an equal value. A violation traps with `fatalError` naming the type, which
/// is what a fuzzer (libFuzzer, see `FuzzTesting/`) reports as a crash. Decoding failures
/// (thrown ``LedgerError``) are expected and ignored.
///
/// The first input byte selects the decoder (modulo ``decoderCount`` + 1); the rest is the input.
/// The last selector value runs every decoder on the rest. Deterministic, no I/O.
public enum FuzzHarness {
    /// The device contract's actions, whose arguments ``DeviceAction/init(action:arguments:)`` decodes.
    public static let deviceActions = ["register", "update", "transfer", "accept_transfer", "decommission"]

    enum Target: UInt8, CaseIterable {
        case envelope, transactionPayload, blockHeader, logLeaf, genesisConfig, proposalAction, member
        case networkConfig, organization, memberRegistration, approvalPolicy, proposal, deviceAttributes
        case deviceRecord, deviceRegister, deviceUpdate, deviceTransfer, deviceAcceptTransfer, deviceDecommission
        case udi
        // Research (appended: selectors of older corpus entries keep their meaning).
        case queryRequest, queryAnswer, researchCharge, researchAnswer, queryRecord, queryAskRecord, budgetUsage, researchPolicy, noiseDescription
        // The HTTP `Authorization` parser (the one text decoder that any client reaches unauthenticated).
        case authorization
        // The approved genesis (version 2 arguments) and one founding admin's approval.
        case genesisCharter, genesisApproval
        // What nodes read from the shared ordering store: a queue entry, a published checkpoint.
        case queueEntry, publishedCheckpoint
        // The body of a batch submission (any client reaches it unauthenticated).
        case envelopeBatch
        // Patient data: the records and consent contracts' state and arguments (every action name).
        case recordAnchor, patientEntry, consentState, consentDecision, breakGlassReview, recordAction, consentAction
    }

    public static let recordActions = ["register_key", "put", "erase", "rotate"]
    public static let consentActions = ["register", "enrol", "delegate", "grant", "revoke", "request", "break_glass", "review"]

    /// How many individual decoders there are; selector value `decoderCount` runs them all.
    public static var decoderCount: Int { Target.allCases.count }

    /// The name of the decoder an input's first byte selects (`"authorization"`, …), or `nil` for the
    /// selector that runs them all (and for the empty input).
    public static func targetName(of bytes: [UInt8]) -> String? {
        guard let selector = bytes.first else { return nil }
        let index = Int(selector) % (Target.allCases.count + 1)
        return index == Target.allCases.count ? nil : "\(Target.allCases[index])"
    }

    public static func run(_ bytes: [UInt8]) {
        guard let selector = bytes.first else {
            for target in Target.allCases { run(target, []) }
            return
        }
        let rest = Array(bytes.dropFirst())
        let index = Int(selector) % (Target.allCases.count + 1)
        if index == Target.allCases.count {
            for target in Target.allCases { run(target, rest) }
        } else {
            run(Target.allCases[index], rest)
        }
    }

    static func run(_ target: Target, _ bytes: [UInt8]) {
        switch target {
        case .envelope:
            if let envelope = check(Envelope.self, bytes), let payload = try? envelope.payload() {
                checkPayload(payload, bytes: envelope.payloadBytes)
            }
        case .transactionPayload:
            if let payload = check(TransactionPayload.self, bytes) { checkPayload(payload, bytes: bytes) }
        case .blockHeader: _ = check(BlockHeader.self, bytes)
        case .logLeaf: _ = check(LogLeaf.self, bytes)
        case .genesisConfig: _ = check(GenesisConfig.self, bytes)
        case .proposalAction: _ = check(ProposalAction.self, bytes)
        case .member: _ = check(Member.self, bytes)
        case .networkConfig: _ = check(NetworkConfig.self, bytes)
        case .organization: _ = check(Organization.self, bytes)
        case .memberRegistration: _ = check(MemberRegistration.self, bytes)
        case .approvalPolicy: _ = check(ApprovalPolicy.self, bytes)
        case .proposal: _ = check(Proposal.self, bytes)
        case .deviceAttributes: _ = check(DeviceAttributes.self, bytes)
        case .deviceRecord: _ = check(DeviceRecord.self, bytes)
        case .deviceRegister: checkDeviceAction("register", bytes)
        case .deviceUpdate: checkDeviceAction("update", bytes)
        case .deviceTransfer: checkDeviceAction("transfer", bytes)
        case .deviceAcceptTransfer: checkDeviceAction("accept_transfer", bytes)
        case .deviceDecommission: checkDeviceAction("decommission", bytes)
        case .udi:
            if let text = String(validating: bytes, as: UTF8.self) { checkUDI(text) }
        case .queryRequest:
            if let request = check(QueryRequest.self, bytes) { _ = try? request.validate(policy: ResearchPolicy()) }
        case .queryAnswer: _ = check(QueryAnswer.self, bytes)
        case .researchCharge:
            if let charge = check(ResearchCharge.self, bytes), let payload = try? charge.query.payload() {
                _ = check(QueryRequest.self, payload.arguments)
            }
        case .researchAnswer: _ = check(ResearchAnswer.self, bytes)
        case .queryRecord: _ = check(QueryRecord.self, bytes)
        case .queryAskRecord: _ = check(QueryAskRecord.self, bytes)
        case .budgetUsage: _ = check(BudgetUsage.self, bytes)
        case .researchPolicy: _ = check(ResearchPolicy.self, bytes)
        case .noiseDescription: _ = check(NoiseDescription.self, bytes)
        case .authorization:
            if let text = String(validating: bytes, as: UTF8.self) { checkAuthorization(text) }
        case .genesisCharter:
            if let charter = check(GenesisCharter.self, bytes) { _ = check(GenesisConfig.self, charter.draft) }
        case .genesisApproval: _ = check(GenesisApproval.self, bytes)
        case .queueEntry: checkQueueEntry(bytes)
        case .envelopeBatch:
            if let batch = check(EnvelopeBatch.self, bytes) {
                for envelope in batch.envelopes { run(.envelope, envelope) }
            }
        case .recordAnchor: _ = check(RecordAnchor.self, bytes)
        case .patientEntry: _ = check(PatientEntry.self, bytes)
        case .consentState: _ = check(ConsentState.self, bytes)
        case .consentDecision: _ = check(ConsentDecision.self, bytes)
        case .breakGlassReview: _ = check(BreakGlassReview.self, bytes)
        case .recordAction: for name in recordActions { checkAction(name, bytes, RecordAction.init(action:arguments:), \.arguments, \.name) }
        case .consentAction: for name in consentActions { checkAction(name, bytes, ConsentAction.init(action:arguments:), \.arguments, \.name) }
        case .publishedCheckpoint:
            if let checkpoint = check(PublishedCheckpoint.self, bytes), let statement = try? checkpoint.statement() {
                guard statement.body == checkpoint.body else { fatalError("PublishedCheckpoint: an accepted body is not the canonical MLC1 encoding of its statement") }
            }
        }
    }

    /// Whenever an `Authorization` value parses, the credentials' own header value parses back to the
    /// same credentials, and is no longer than the parser's limit.
    public static func checkAuthorization(_ text: String) {
        guard let credentials = try? RequestSignature.parse(text) else { return }
        let header = credentials.headerValue
        guard let again = try? RequestSignature.parse(header), again == credentials else {
            fatalError("Authorization: the header value of accepted credentials does not parse back to them")
        }
        guard header.utf8.count <= text.utf8.count else { fatalError("Authorization: canonical header is longer than the accepted input") }
    }

    /// Whenever a queue entry decodes, it re-encodes to the same bytes and its size bound holds.
    static func checkQueueEntry(_ bytes: [UInt8]) {
        let position = QueuePosition(node: .zero, sequence: 1)
        guard let entry = try? QueueEntry(position: position, decoding: bytes) else { return }
        guard entry.encodedValue == bytes else { fatalError("QueueEntry: decoded from \(describe(bytes)) but re-encodes differently") }
        guard (try? QueueEntry(position: position, decoding: entry.encodedValue)) == entry, entry.size <= bytes.count + 8 else {
            fatalError("QueueEntry: re-encoding of \(describe(bytes)) does not decode to an equal entry")
        }
    }

    /// Whenever `text` parses as a UDI, its canonical form parses to the same identity and is its own
    /// canonical form: two spellings can never name two keys for one device, nor one key go unreadable.
    public static func checkUDI(_ text: String) {
        guard let parsed = try? UDI.parse(text) else { return }
        let canonical = parsed.canonical
        guard let again = try? UDI.parse(canonical) else { fatalError("UDI: canonical form \(canonical) of an accepted UDI does not parse") }
        guard again.canonical == canonical, again.agency == parsed.agency, again.deviceIdentifier == parsed.deviceIdentifier,
              again.serial == parsed.serial, canonical.utf8.count <= 128
        else { fatalError("UDI: canonical form \(canonical) is not a fixed point") }
    }

    /// Decodes `bytes` as `T`; on success checks that the encoding is canonical and round-trips.
    @discardableResult
    static func check<T: BinaryCodable & Equatable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        let value: T
        do {
            value = try T(decoding: bytes)
        } catch {
            return nil
        }
        let reencoded = value.encoded
        guard reencoded == bytes else {
            fatalError("FuzzHarness: \(T.self) decoded from \(describe(bytes)) but re-encodes to \(describe(reencoded))")
        }
        guard let again = try? T(decoding: reencoded), again == value else {
            fatalError("FuzzHarness: \(T.self) re-encoding of \(describe(bytes)) does not decode to an equal value")
        }
        return value
    }

    /// A decoded payload's arguments are also fed to the device contract's decoder.
    static func checkPayload(_ payload: TransactionPayload, bytes: [UInt8]) {
        guard payload.encoded == bytes else {
            fatalError("FuzzHarness: TransactionPayload decoded from \(describe(bytes)) but re-encodes differently")
        }
        if deviceActions.contains(payload.action) {
            checkDeviceAction(payload.action, payload.arguments)
        }
        if payload.contract == "records" {
            checkAction(payload.action, payload.arguments, RecordAction.init(action:arguments:), \.arguments, \.name)
        }
        if payload.contract == "consent" {
            checkAction(payload.action, payload.arguments, ConsentAction.init(action:arguments:), \.arguments, \.name)
        }
    }

    /// Whenever the arguments decode as action `name`, the action names itself so and re-encodes
    /// to the same bytes, which decode to an equal action.
    static func checkAction<A: Equatable>(_ name: String, _ bytes: [UInt8], _ decode: (String, [UInt8]) throws(LedgerError) -> A,
                                          _ arguments: KeyPath<A, [UInt8]>, _ actionName: KeyPath<A, String>) {
        guard let action = try? decode(name, bytes) else { return }
        guard action[keyPath: actionName] == name, action[keyPath: arguments] == bytes,
              (try? decode(name, action[keyPath: arguments])) == action else {
            fatalError("FuzzHarness: \(A.self).\(name) decoded from \(describe(bytes)) but does not re-encode to the same bytes and action")
        }
    }

    static func checkDeviceAction(_ name: String, _ bytes: [UInt8]) {
        let action: DeviceAction
        do {
            action = try DeviceAction(action: name, arguments: bytes)
        } catch {
            return
        }
        guard action.name == name else {
            fatalError("FuzzHarness: DeviceAction decoded as \(name) but names itself \(action.name)")
        }
        let reencoded = action.arguments
        guard reencoded == bytes else {
            fatalError("FuzzHarness: DeviceAction.\(name) decoded from \(describe(bytes)) but re-encodes to \(describe(reencoded))")
        }
        guard let again = try? DeviceAction(action: name, arguments: reencoded), again == action else {
            fatalError("FuzzHarness: DeviceAction.\(name) re-encoding of \(describe(bytes)) does not decode to an equal value")
        }
    }

    static func describe(_ bytes: [UInt8]) -> String {
        let shown = Hex.encode(bytes.prefix(96))
        return bytes.count > 96 ? "\(bytes.count) bytes \(shown)…" : "\(bytes.count) bytes \(shown)"
    }
}
