public import LedgerCore

/// Differentially private research queries, ordered like every other transaction so that budgets
/// can never be overspent on any node.
///
/// A researcher signs a `research.ask` (a ``QueryRequest``) and gives it to a node. Answering takes
/// two ordered transactions, both signed by that node:
/// 1. `research.charge` (``ResearchCharge``: the ask, unchanged, and the block the answer will
///    describe). It checks the researcher (registered, allowed role, certificate valid, signature)
///    and the request against the policy, then either records the ask as a free repeat of a
///    question already charged (asking twice reveals nothing new), or debits the researcher's
///    budget and records the question as pending — or refuses (`budget_exhausted`, `forbidden`, …)
///    and writes nothing. It carries no value, so a refusal reveals nothing.
/// 2. `research.answer` (``ResearchAnswer``), computed only after the charge committed: accepted
///    once per question, only from the node that charged it, only with the structure the request
///    implies (mechanism, ε/δ split, sensitivities, scale), and — on every node that holds the
///    network noise secret — only with the values that node recomputes through its
///    ``ResearchOracle`` (else `answer_mismatch`). Every noisy value on the ledger is paid for,
///    and none is made up.
///
/// The question describes the block the request names (`asOfHeight`), else the block before the
/// charge's (``describedHeight(_:chargeBlock:)``).
public struct ResearchContract: Contract {
    public static let name = "research"
    public var name: String { Self.name }

    /// Checks answers' values; without one (a node or auditor that holds no noise secret) only
    /// their structure is checked.
    public let oracle: (any ResearchOracle)?

    public init(oracle: (any ResearchOracle)? = nil) {
        self.oracle = oracle
    }

    public func execute(_ context: inout TransactionContext) throws(LedgerError) {
        switch context.payload.action {
        case "charge": try charge(&context)
        case "answer": try answer(&context)
        default:
            throw LedgerError(.forbidden, "research queries are submitted to a node (POST /v1/queries), which charges and answers them")
        }
    }

    public func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {
        guard creator.role == .node else { throw LedgerError(.forbidden, "only nodes charge and answer research queries") }
        switch payload.action {
        case "charge": _ = try ResearchCharge(decoding: payload.arguments)
        case "answer": _ = try ResearchAnswer(decoding: payload.arguments)
        default:
            throw LedgerError(.forbidden, "research queries are submitted to a node (POST /v1/queries), which charges and answers them")
        }
    }

    func charge(_ context: inout TransactionContext) throws(LedgerError) {
        let node = try context.require(role: [.node], action: "charge research queries")
        let charge = try ResearchCharge(decoding: context.payload.arguments)
        let policy = try context.config().research
        let (ask, request, asker) = try checkAsk(charge.query, policy: policy, context)
        guard try context.get(StateKey.queryAsk(ask.id)) == nil else {
            throw LedgerError(.duplicateTransaction, "query \(ask.id.hex.prefix(16))… was already charged")
        }
        if let asOf = request.asOfHeight, asOf != charge.height {
            throw LedgerError(.invalidArgument, "the query asks about block \(asOf); the charge is for block \(charge.height)")
        }
        guard charge.height < context.height else {
            throw LedgerError(.invalidArgument, "block \(charge.height) is not committed yet")
        }
        // The block the answer describes: the one asked about, else the one before this charge's
        // (every node holds that state in memory while it executes this block), whatever the
        // charging node saw when it admitted the ask.
        let height = Self.describedHeight(request, chargeBlock: context.height)
        let key = request.key(height: height)
        context.put(StateKey.queryAsk(ask.id), QueryAskRecord(key: key, chargeTransaction: context.id))
        if try context.get(StateKey.query(key)) != nil {
            return  // The same question about the same state: its (pending or recorded) answer, free.
        }
        let cost = request.cost(policy: policy)
        let limit = try context.get(PrivacyBudget.self, StateKey.researchBudget(asker.fingerprint)) ?? policy.budget
        let usage = try BudgetAccount.charge(cost, usage: try context.get(BudgetUsage.self, StateKey.researchSpent(asker.fingerprint)),
                                             limit: limit, blockTime: context.blockTime, periodMilliseconds: policy.periodMilliseconds)
        context.put(StateKey.researchSpent(asker.fingerprint), usage)
        context.put(StateKey.query(key), QueryRecord(key: key, asker: asker.fingerprint, askID: ask.id, request: request,
                                                      height: height, cost: cost, node: node.fingerprint,
                                                      chargedAt: context.blockTime))
    }

    func answer(_ context: inout TransactionContext) throws(LedgerError) {
        let node = try context.require(role: [.node], action: "answer research queries")
        let release = try ResearchAnswer(decoding: context.payload.arguments)
        guard let record = try context.get(QueryRecord.self, StateKey.query(release.key)) else {
            throw LedgerError(.notFound, "no charged question \(release.key.hex.prefix(16))…: a node charges before it answers")
        }
        guard record.answer == nil else {
            throw LedgerError(.duplicateTransaction, "question \(release.key.hex.prefix(16))… is already answered")
        }
        guard record.node == node.fingerprint else {
            throw LedgerError(.forbidden, "only the node that charged a question answers it")
        }
        // Every node evaluates a question before the block after its charge's: an answer in the
        // charge's own block could not be checked.
        guard try context.overlay.base.value(forKey: StateKey.query(release.key)) != nil else {
            throw LedgerError(.invalidArgument, "question \(release.key.hex.prefix(16))… was charged in this block; answer it in a later one")
        }
        guard release.answer.height == record.height else {
            throw LedgerError(.invalidArgument, "the question is about block \(record.height); the answer is about block \(release.answer.height)")
        }
        let policy = try context.config().research
        try Self.checkStructure(release.answer, request: record.request, policy: policy)
        // The values: recomputed by this node from the state the question describes and the noise
        // secret; any difference, even by one, is refused.
        if let oracle, let noiseKey = try context.get(NoiseKeyEpoch.self, StateKey.noiseKey),
           try oracle.check(release.answer, for: record, policy: policy, noiseKey: noiseKey, transaction: context.id) == false {
            throw LedgerError(.answerMismatch, "the answer's values are not the ones every node computes for question \(release.key.hex.prefix(16))…")
        }
        context.put(StateKey.query(release.key), record.answered(release.answer, transaction: context.id, at: context.blockTime))
    }

    /// The block a question charged in block `chargeBlock` describes: the request's `asOfHeight`,
    /// else `chargeBlock − 1`.
    public static func describedHeight(_ request: QueryRequest, chargeBlock: UInt64) -> UInt64 {
        request.asOfHeight ?? chargeBlock - 1
    }

    /// The researcher's signed request: its envelope, decoded request and registered member.
    /// Every check here uses committed state and block time only.
    func checkAsk(_ ask: Envelope, policy: ResearchPolicy, _ context: TransactionContext) throws(LedgerError) -> (Envelope, QueryRequest, Member) {
        let payload = try ask.payload()
        guard payload.network == context.payload.network else { throw LedgerError(.wrongNetwork, "the query is for another network") }
        guard payload.contract == Self.name, payload.action == "ask" else {
            throw LedgerError(.invalidArgument, "the released query must be a research.ask transaction")
        }
        let request = try QueryRequest(decoding: payload.arguments)
        guard let asker = try context.get(Member.self, StateKey.member(payload.creator)) else {
            throw LedgerError(.unknownMember, "the query's creator \(payload.creator.hex.prefix(16))… is not a registered member")
        }
        try Self.checkAsker(asker, policy: policy, at: context.blockTime) { id throws(LedgerError) in try context.organization(id) }
        try asker.checkSignature(of: ask, subject: "researcher")
        try context.checkSkew(of: payload.timestamp, what: "the query's")
        try request.validate(policy: policy)
        return (ask, request, asker)
    }

    /// Who may ask: an unrevoked member of an active organisation, certificate valid at `time`,
    /// with a role the policy allows. Shared by admission (clock time) and execution (block time).
    public static func checkAsker(_ asker: Member, policy: ResearchPolicy, at time: Int64,
                                  organization: (String) throws(LedgerError) -> Organization?) throws(LedgerError) {
        try asker.checkActive(organization: try organization(asker.organization), at: time, subject: "researcher")
        guard policy.allowedRoles.contains(asker.role) else {
            throw LedgerError(.forbidden, "role \(asker.role.rawValue) may not ask research queries; allowed: \(policy.allowedRoles.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The answer spends exactly the request's ε (split as ``QueryRequest/split(policy:)`` says),
    /// with the request's mechanism and the sensitivities the policy's bounds imply.
    static func checkStructure(_ answer: QueryAnswer, request: QueryRequest, policy: ResearchPolicy) throws(LedgerError) {
        let (first, second) = request.split(policy: policy)
        // Missing bounds fail the bounds checks below before a sensitivity is needed.
        let sensitivity = request.sensitivities(policy: policy) ?? (0, 0)
        func check(_ noise: NoiseDescription, _ share: PrivacyBudget, sensitivity: UInt64) throws(LedgerError) {
            guard noise.mechanism == request.mechanism, noise.epsilonMicros == share.epsilonMicros, noise.deltaPicos == share.deltaPicos,
                  noise.sensitivity == sensitivity
            else {
                throw LedgerError(.invalidArgument, "the answer's noise does not match the request (mechanism, ε/δ share or sensitivity)")
            }
            // Laplace: the scale is exactly b = Δ/ε, i.e. numerator·ε_micros = Δ·10⁶·denominator.
            // (A Gaussian's σ² is calibrated in floating point by the node; it is not re-derived here.)
            if noise.mechanism == .laplace {
                let left = noise.scaleNumerator.multipliedFullWidth(by: share.epsilonMicros)
                let (delta, overflow) = sensitivity.multipliedReportingOverflow(by: 1_000_000)
                let right = delta.multipliedFullWidth(by: noise.scaleDenominator)
                guard !overflow, left.high == right.high, left.low == right.low else {
                    throw LedgerError(.invalidArgument, "the answer's Laplace scale is not Δ/ε")
                }
            }
        }
        switch (request.spec.kind, answer.result) {
        case (.count, .count(let value)):
            try check(value.noise, first, sensitivity: sensitivity.first)
        case (.sum(let field), .sum(let value, let lower, let upper)):
            guard let bounds = policy.bounds(of: field), bounds.lower == lower, bounds.upper == upper else {
                throw LedgerError(.invalidArgument, "the answer's clamping bounds are not the policy's")
            }
            try check(value.noise, first, sensitivity: sensitivity.first)
        case (.average(let field), .average(let sum, let count, let center, let lower, let upper)):
            guard let bounds = policy.bounds(of: field), bounds.lower == lower, bounds.upper == upper,
                  center == ClampedField.center(lower: lower, upper: upper)
            else {
                throw LedgerError(.invalidArgument, "the answer's clamping bounds are not the policy's")
            }
            try check(count.noise, first, sensitivity: sensitivity.first)
            try check(sum.noise, second, sensitivity: sensitivity.second)
        case (.groupedCount, .grouped(let groups, let noise, let threshold)):
            try check(noise, first, sensitivity: sensitivity.first)
            let open = request.isOpenDomain(policy: policy)
            guard (threshold != nil) == open else {
                throw LedgerError(.invalidArgument, "an open-domain grouped count needs a release threshold, a closed one must not have one")
            }
            guard groups.count <= (open ? Int(policy.maxGroups) : QuerySpec.maxBins + 260) else {
                throw LedgerError(.invalidArgument, "the answer releases too many groups")
            }
        default:
            throw LedgerError(.invalidArgument, "the answer is not of the kind the query asks for")
        }
    }
}
