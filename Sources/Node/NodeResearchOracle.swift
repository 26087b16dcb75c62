import Synchronization
public import LedgerCore
public import Contracts
import Privacy
public import Research

/// The node-local half of checkable research answers (``ResearchOracle``): the noise secrets this
/// node unwrapped, and the exact aggregates of the questions charged in recent blocks, evaluated
/// before the block that needs them executes.
///
/// The answer for a question is ``QueryRelease/answer(_:exact:policy:hospitals:height:referenceTime:using:)``
/// with a ``NoiseStream`` seeded by ``NoiseSecret/seed(network:epoch:question:)``: a pure function of
/// the state the question describes and of the secret. The node that answers and every node that
/// checks compute it the same way, so the noise of a question is drawn once by construction.
public final class NodeResearchOracle: ResearchOracle {
    /// An exact aggregate, with the block time and hospital list of the state it describes.
    public struct Evaluation: Sendable, Hashable {
        public var aggregate: ExactAggregate
        public var time: Int64
        public var hospitals: [String]

        public init(aggregate: ExactAggregate, time: Int64, hospitals: [String]) {
            self.aggregate = aggregate
            self.time = time
            self.hospitals = hospitals
        }
    }

    struct State {
        var secrets: [UInt32: NoiseSecret] = [:]
        var evaluations: [Hash256: Evaluation] = [:]
        var order: [Hash256] = []
    }

    /// Evaluations kept (oldest dropped first); a dropped one is evaluated again when needed.
    static let capacity = 4096

    let network: Hash256
    let state = Mutex(State())

    public init(network: Hash256) {
        self.network = network
    }

    /// Keeps the secret of `epoch` in memory (never written anywhere).
    public func install(_ secret: NoiseSecret, epoch: UInt32) {
        state.withLock { $0.secrets[epoch] = secret }
    }

    public func holdsSecret(epoch: UInt32) -> Bool {
        state.withLock { $0.secrets[epoch] != nil }
    }

    public func remember(_ evaluation: Evaluation, question: Hash256) {
        state.withLock { state in
            guard state.evaluations.updateValue(evaluation, forKey: question) == nil else { return }
            state.order.append(question)
            if state.order.count > Self.capacity {
                let dropped = state.order.removeFirst()
                state.evaluations.removeValue(forKey: dropped)
            }
        }
    }

    public func evaluation(question: Hash256) -> Evaluation? {
        state.withLock { $0.evaluations[question] }
    }

    public func forget(question: Hash256) {
        state.withLock { state in
            if state.evaluations.removeValue(forKey: question) != nil { state.order.removeAll { $0 == question } }
        }
    }

    /// The answer for `record` under `noiseKey`: nil without that epoch's secret or without an
    /// evaluation of the question.
    public func answer(for record: QueryRecord, policy: ResearchPolicy, noiseKey: NoiseKeyEpoch) -> QueryAnswer? {
        let (secret, evaluation) = state.withLock { ($0.secrets[noiseKey.epoch], $0.evaluations[record.key]) }
        guard let secret, let evaluation else { return nil }
        var stream = NoiseStream(seed: secret.seed(network: network, epoch: noiseKey.epoch, question: record.key))
        return QueryRelease.answer(record.request, exact: evaluation.aggregate, policy: policy, hospitals: evaluation.hospitals,
                                   height: record.height, referenceTime: evaluation.time, using: &stream)
    }

    public func check(_ answer: QueryAnswer, for record: QueryRecord, policy: ResearchPolicy, noiseKey: NoiseKeyEpoch,
                      transaction: Hash256) throws(LedgerError) -> Bool? {
        guard holdsSecret(epoch: noiseKey.epoch) else { return nil }
        guard let expected = self.answer(for: record, policy: policy, noiseKey: noiseKey) else {
            throw LedgerError(.storage, "question \(record.key.hex.prefix(16))… was not evaluated before its answer executed")
        }
        return expected == answer
    }
}

extension NodeResearchOracle {
    /// The request a `research.charge` carries (its arguments: the researcher's embedded ask).
    static func request(ofCharge arguments: [UInt8]) -> QueryRequest? {
        guard let charge = try? ResearchCharge(decoding: arguments), let ask = try? charge.query.payload() else { return nil }
        return try? QueryRequest(decoding: ask.arguments)
    }

    /// The request of a charge about the block before its own (no `asOfHeight`) that `policy`
    /// accepts, as the contract will check: the questions evaluated before a block executes.
    static func currentQuestion(ofCharge arguments: [UInt8], policy: ResearchPolicy) -> QueryRequest? {
        guard let request = request(ofCharge: arguments), request.asOfHeight == nil,
              (try? request.validate(policy: policy)) != nil, (try? QueryRelease.checkCalibration(request, policy: policy)) != nil
        else { return nil }
        return request
    }
}

extension WriteSet {
    /// The device records this write set stores (deleted keys and other prefixes left out).
    var deviceRecords: some Sequence<DeviceRecord> {
        entries.lazy.compactMap { entry in
            entry.key.hasPrefix("dev/") ? entry.value.flatMap { try? DeviceRecord(decoding: $0) } : nil
        }
    }
}
