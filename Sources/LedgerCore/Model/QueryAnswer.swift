/// One released number and how it was perturbed.
public struct NoisyValue: BinaryCodable, Sendable, Hashable {
    public var value: Int64
    public var noise: NoiseDescription

    public init(value: Int64, noise: NoiseDescription) {
        self.value = value
        self.noise = noise
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(value)
        noise.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        value = try reader.readInt64("noisy value")
        noise = try NoiseDescription(from: &reader)
    }
}

/// A released group of a grouped count.
public struct ReleasedGroup: BinaryCodable, Sendable, Hashable {
    public var label: String
    public var value: Int64

    public init(label: String, value: Int64) {
        self.label = label
        self.value = value
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(label)
        writer.write(value)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        label = try reader.readString("group label", maxLength: 256)
        value = try reader.readInt64("group value")
    }
}

/// The released (noisy) result. Only integers: averages and intervals are derived by readers.
public enum QueryResult: Sendable, Hashable {
    case count(NoisyValue)
    /// Sum of values clamped to `[lower, upper]`.
    case sum(NoisyValue, lower: Int64, upper: Int64)
    /// `average = center + centeredSum / count`, where the sum is of `clamp(x) − center`.
    case average(centeredSum: NoisyValue, count: NoisyValue, center: Int64, lower: Int64, upper: Int64)
    /// Groups in label order; `threshold` is set for an open domain (groups below it are not released).
    case grouped(groups: [ReleasedGroup], noise: NoiseDescription, threshold: Int64?)
}

/// What a node releases for a query: the result, and the state it was computed on.
public struct QueryAnswer: BinaryCodable, Sendable, Hashable {
    /// The block whose state the query was evaluated on.
    public var height: UInt64
    /// That block's timestamp: the reference time of `age_days` and `warranty_days`.
    public var referenceTime: Int64
    public var result: QueryResult

    public init(height: UInt64, referenceTime: Int64, result: QueryResult) {
        self.height = height
        self.referenceTime = referenceTime
        self.result = result
    }

    /// Every noise description in the answer with the ε and δ it spent.
    public var releases: [NoiseDescription] {
        switch result {
        case .count(let value), .sum(let value, _, _): [value.noise]
        case .average(let sum, let count, _, _, _): [count.noise, sum.noise]
        case .grouped(_, let noise, _): [noise]
        }
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(height)
        writer.write(referenceTime)
        switch result {
        case .count(let value):
            writer.write(UInt8(1))
            value.encode(to: &writer)
        case .sum(let value, let lower, let upper):
            writer.write(UInt8(2))
            value.encode(to: &writer)
            writer.write(lower)
            writer.write(upper)
        case .average(let sum, let count, let center, let lower, let upper):
            writer.write(UInt8(3))
            sum.encode(to: &writer)
            count.encode(to: &writer)
            writer.write(center)
            writer.write(lower)
            writer.write(upper)
        case .grouped(let groups, let noise, let threshold):
            writer.write(UInt8(4))
            writer.write(array: groups)
            noise.encode(to: &writer)
            writer.writeOptional(threshold)
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        height = try reader.readUInt64("answer height")
        referenceTime = try reader.readInt64("answer reference time")
        switch try reader.readUInt8("answer kind") {
        case 1: result = .count(try NoisyValue(from: &reader))
        case 2: result = .sum(try NoisyValue(from: &reader), lower: try reader.readInt64("answer lower"), upper: try reader.readInt64("answer upper"))
        case 3:
            result = .average(centeredSum: try NoisyValue(from: &reader), count: try NoisyValue(from: &reader),
                              center: try reader.readInt64("answer center"), lower: try reader.readInt64("answer lower"),
                              upper: try reader.readInt64("answer upper"))
        case 4:
            result = .grouped(groups: try reader.readArray("answer groups", maxCount: 10_000), noise: try NoiseDescription(from: &reader),
                              threshold: try reader.readOptionalInt64("answer threshold"))
        case let other: throw LedgerError(.malformedEncoding, "answer: unknown kind \(other)")
        }
    }
}

/// The arguments of `research.charge`, signed by the node a researcher asked: the researcher's
/// signed `research.ask`, unchanged, and the block whose state the answer will describe. It holds
/// no value: the budget is debited (or the question found already paid for) *before* any noise
/// is drawn, so a refused charge reveals nothing.
public struct ResearchCharge: BinaryCodable, Sendable, Hashable {
    public var query: Envelope
    public var height: UInt64

    public init(query: Envelope, height: UInt64) {
        self.query = query
        self.height = height
    }

    public func encode(to writer: inout BinaryWriter) {
        query.encode(to: &writer)
        writer.write(height)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        query = try Envelope(from: &reader)
        height = try reader.readUInt64("charge height")
    }
}

/// The arguments of `research.answer`, signed by the node that charged the question: the
/// question's key and the noisy answer, drawn after the charge committed.
public struct ResearchAnswer: BinaryCodable, Sendable, Hashable {
    public var key: Hash256
    public var answer: QueryAnswer

    public init(key: Hash256, answer: QueryAnswer) {
        self.key = key
        self.answer = answer
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(key)
        answer.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        key = try reader.readHash("answer key")
        answer = try QueryAnswer(from: &reader)
    }
}

/// The ledger's record of a question, under `rq/<key>` (see ``QueryRequest/key(height:)``):
/// charged (budget debited, answer pending) and then answered.
public struct QueryRecord: BinaryCodable, Sendable, Hashable {
    public var key: Hash256
    /// The researcher who first asked (later identical asks are charges that point here, free).
    public var asker: Hash256
    /// The id of that researcher's signed `research.ask`.
    public var askID: Hash256
    public var request: QueryRequest
    /// The block whose state the answer describes.
    public var height: UInt64
    public var cost: PrivacyBudget
    /// The node that charged the question: only it may answer.
    public var node: Hash256
    /// Block time of the charge.
    public var chargedAt: Int64
    /// Set once answered: the answer, SHA-256 of its encoding, the `research.answer` transaction and its block time.
    public var answer: QueryAnswer?
    public var answerHash: Hash256?
    public var answerTransaction: Hash256?
    public var answeredAt: Int64?

    public init(key: Hash256, asker: Hash256, askID: Hash256, request: QueryRequest, height: UInt64, cost: PrivacyBudget,
                node: Hash256, chargedAt: Int64) {
        self.key = key
        self.asker = asker
        self.askID = askID
        self.request = request
        self.height = height
        self.cost = cost
        self.node = node
        self.chargedAt = chargedAt
    }

    /// `self` answered by `answer` in transaction `transaction` at `time`.
    public func answered(_ answer: QueryAnswer, transaction: Hash256, at time: Int64) -> QueryRecord {
        var copy = self
        copy.answer = answer
        copy.answerHash = Hash256.of(answer.encoded)
        copy.answerTransaction = transaction
        copy.answeredAt = time
        return copy
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(key)
        writer.write(asker)
        writer.write(askID)
        request.encode(to: &writer)
        writer.write(height)
        cost.encode(to: &writer)
        writer.write(node)
        writer.write(chargedAt)
        if let answer, let answerHash, let answerTransaction, let answeredAt {
            writer.write(true)
            answer.encode(to: &writer)
            writer.write(answerHash)
            writer.write(answerTransaction)
            writer.write(answeredAt)
        } else {
            writer.write(false)
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        key = try reader.readHash("record key")
        asker = try reader.readHash("record asker")
        askID = try reader.readHash("record ask id")
        request = try QueryRequest(from: &reader)
        height = try reader.readUInt64("record height")
        cost = try PrivacyBudget(from: &reader)
        node = try reader.readHash("record node")
        chargedAt = try reader.readInt64("record charged at")
        if try reader.readBool("record answered") {
            answer = try QueryAnswer(from: &reader)
            answerHash = try reader.readHash("record answer hash")
            answerTransaction = try reader.readHash("record answer transaction")
            answeredAt = try reader.readInt64("record answered at")
        }
    }
}

/// A researcher's spending in the current budget period, under `rspent/<fingerprint>`.
public struct BudgetUsage: BinaryCodable, Sendable, Hashable {
    /// `blockTime / periodMilliseconds` of the period the spending belongs to.
    public var period: UInt64
    public var spent: PrivacyBudget
    public var queries: UInt64

    public init(period: UInt64, spent: PrivacyBudget, queries: UInt64) {
        self.period = period
        self.spent = spent
        self.queries = queries
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(period)
        spent.encode(to: &writer)
        writer.write(queries)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        period = try reader.readUInt64("usage period")
        spent = try PrivacyBudget(from: &reader)
        queries = try reader.readUInt64("usage queries")
    }
}

/// Under `rqa/<ask id>`: which question (`rq/<key>`) a researcher's ask was charged as, and the
/// node's `research.charge` transaction that recorded the ask.
public struct QueryAskRecord: BinaryCodable, Sendable, Hashable {
    public var key: Hash256
    public var chargeTransaction: Hash256

    public init(key: Hash256, chargeTransaction: Hash256) {
        self.key = key
        self.chargeTransaction = chargeTransaction
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(key)
        writer.write(chargeTransaction)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        key = try reader.readHash("ask key")
        chargeTransaction = try reader.readHash("ask charge transaction")
    }
}
