/// A device field a research query may filter, group or aggregate on.
///
/// Categorical fields compare strings; the others are integers: dates are day numbers, `last_sync`
/// and `updated_at` are instants in ms, and `age_days` / `warranty_days` are derived from the
/// production date and warranty expiry relative to the time of the block the query is evaluated at.
public enum QueryField: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    case hospital
    case manufacturer
    case model
    case firmwareVersion = "firmware_version"
    case deviceType = "device_type"
    case category
    case speciality
    case location
    case active
    case status
    case productionDate = "production_date"
    case lastServiceDate = "last_service_date"
    case warrantyExpiry = "warranty_expiry"
    case usageHours = "usage_hours"
    case batteryLevel = "battery_level"
    case syncFrequencySeconds = "sync_frequency_seconds"
    case lastSync = "last_sync"
    case updatedAt = "updated_at"
    case ageDays = "age_days"
    case warrantyDays = "warranty_days"

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var isCategorical: Bool {
        switch self {
        case .hospital, .manufacturer, .model, .firmwareVersion, .deviceType, .category, .speciality, .location, .active, .status: true
        default: false
        }
    }

    /// Fields whose value is a day number (printed and parsed as `YYYY-MM-DD`).
    public var isDate: Bool { [.productionDate, .lastServiceDate, .warrantyExpiry].contains(self) }

    /// Fields whose value is an instant in ms (parsed from ISO 8601).
    public var isInstant: Bool { [.lastSync, .updatedAt].contains(self) }
}

/// One condition a device must meet. A device without a value for the field never matches.
public enum QueryFilter: Sendable, Hashable {
    /// Equality or set membership on a categorical field (values sorted, distinct).
    case oneOf(QueryField, [String])
    /// `lower ≤ value ≤ upper` on an integer field; a missing bound is open.
    case range(QueryField, lower: Int64?, upper: Int64?)
    /// The value starts with the prefix (firmware version, model, …).
    case prefix(QueryField, String)

    public var field: QueryField {
        switch self {
        case .oneOf(let field, _), .range(let field, _, _), .prefix(let field, _): field
        }
    }
}

/// How a grouped count partitions the devices.
public enum QueryGrouping: Sendable, Hashable {
    /// By the value of a categorical field. A field with a domain declared in the research policy
    /// (or `hospital`, `active`, `status`) releases every category, zeros included; any other field
    /// is an open domain and releases only groups that pass DP partition selection.
    case field(QueryField)
    /// By an integer field in bins `[e0, e1), [e1, e2), …` plus `< e0`, `≥ last` and `(none)`: all released.
    case bins(QueryField, edges: [Int64])
}

public enum QueryKind: Sendable, Hashable {
    case count
    case groupedCount(QueryGrouping)
    /// Sum of a numeric field, each value clamped to the field's declared bounds.
    case sum(QueryField)
    /// Noisy sum over noisy count, the budget split evenly between them.
    case average(QueryField)

    public var name: String {
        switch self {
        case .count: "count"
        case .groupedCount: "grouped_count"
        case .sum: "sum"
        case .average: "average"
        }
    }
}

/// What a researcher asks: an aggregate over the devices that pass every filter.
///
/// Canonical form (required by ``validate()``, which admission and execution run, so equal
/// questions have equal bytes and equal cache keys): filters sorted by field with at most one per
/// field, set values sorted and distinct, bin edges strictly increasing. The decoder itself accepts
/// any order, so that a non-canonical query is refused with `invalid_argument`, not as malformed.
public struct QuerySpec: BinaryCodable, Sendable, Hashable {
    public var kind: QueryKind
    public var filters: [QueryFilter]

    public static let maxFilters = 16
    public static let maxValues = 256
    public static let maxBins = 100

    public init(kind: QueryKind, filters: [QueryFilter]) {
        self.kind = kind
        self.filters = filters
    }

    /// `self` in canonical form: filters sorted by field, set values sorted and distinct.
    public var canonical: QuerySpec {
        var copy = self
        copy.filters = filters.map { filter in
            if case .oneOf(let field, let values) = filter {
                return .oneOf(field, Array(Set(values)).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            }
            return filter
        }.sorted { $0.field < $1.field }
        return copy
    }

    /// Checks everything that needs no policy: field kinds, canonical order, sizes.
    public func validate() throws(LedgerError) {
        guard self == canonical else { throw LedgerError(.invalidArgument, "query is not in canonical form (filters sorted by field, values sorted and distinct)") }
        guard filters.count <= Self.maxFilters else { throw LedgerError(.invalidArgument, "at most \(Self.maxFilters) filters") }
        for (a, b) in zip(filters, filters.dropFirst()) where a.field == b.field {
            throw LedgerError(.invalidArgument, "at most one filter per field (\(a.field.rawValue) appears twice)")
        }
        for filter in filters {
            switch filter {
            case .oneOf(let field, let values):
                guard field.isCategorical else { throw LedgerError(.invalidArgument, "\(field.rawValue) is numeric: filter it with a range") }
                guard !values.isEmpty, values.count <= Self.maxValues, values.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 200 }) else {
                    throw LedgerError(.invalidArgument, "\(field.rawValue): give 1...\(Self.maxValues) values of 1...200 bytes")
                }
            case .range(let field, let lower, let upper):
                guard !field.isCategorical else { throw LedgerError(.invalidArgument, "\(field.rawValue) is categorical: filter it with values or a prefix") }
                guard lower != nil || upper != nil else { throw LedgerError(.invalidArgument, "\(field.rawValue): a range needs a bound") }
                if let lower, let upper, lower > upper { throw LedgerError(.invalidArgument, "\(field.rawValue): lower bound above upper bound") }
            case .prefix(let field, let prefix):
                guard field.isCategorical else { throw LedgerError(.invalidArgument, "\(field.rawValue) is numeric: filter it with a range") }
                guard !prefix.isEmpty, prefix.utf8.count <= 200 else { throw LedgerError(.invalidArgument, "\(field.rawValue): prefix must be 1...200 bytes") }
            }
        }
        switch kind {
        case .count: break
        case .groupedCount(.field(let field)):
            guard field.isCategorical else { throw LedgerError(.invalidArgument, "group \(field.rawValue) in bins: it is numeric") }
        case .groupedCount(.bins(let field, let edges)):
            guard !field.isCategorical else { throw LedgerError(.invalidArgument, "\(field.rawValue) is categorical: group by the field itself") }
            guard !edges.isEmpty, edges.count <= Self.maxBins, zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw LedgerError(.invalidArgument, "bins need 1...\(Self.maxBins) strictly increasing edges")
            }
        case .sum(let field), .average(let field):
            guard !field.isCategorical else { throw LedgerError(.invalidArgument, "\(field.rawValue) is categorical: it has no sum or average") }
        }
    }

    public func encode(to writer: inout BinaryWriter) {
        switch kind {
        case .count: writer.write(UInt8(1))
        case .groupedCount(.field(let field)):
            writer.write(UInt8(2))
            writer.write(field.rawValue)
        case .groupedCount(.bins(let field, let edges)):
            writer.write(UInt8(3))
            writer.write(field.rawValue)
            writer.write(UInt32(edges.count))
            for edge in edges { writer.write(edge) }
        case .sum(let field):
            writer.write(UInt8(4))
            writer.write(field.rawValue)
        case .average(let field):
            writer.write(UInt8(5))
            writer.write(field.rawValue)
        }
        writer.write(UInt32(filters.count))
        for filter in filters {
            switch filter {
            case .oneOf(let field, let values):
                writer.write(UInt8(1))
                writer.write(field.rawValue)
                writer.write(strings: values)
            case .range(let field, let lower, let upper):
                writer.write(UInt8(2))
                writer.write(field.rawValue)
                writer.writeOptional(lower)
                writer.writeOptional(upper)
            case .prefix(let field, let prefix):
                writer.write(UInt8(3))
                writer.write(field.rawValue)
                writer.write(prefix)
            }
        }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        let tag = try reader.readUInt8("query kind")
        switch tag {
        case 1: kind = .count
        case 2: kind = .groupedCount(.field(try reader.readEnum("query group field")))
        case 3:
            let field: QueryField = try reader.readEnum("query bin field")
            let count = Int(try reader.readUInt32("query bin count"))
            guard count <= Self.maxBins else { throw LedgerError(.malformedEncoding, "query: too many bin edges") }
            var edges: [Int64] = []
            for _ in 0..<count { edges.append(try reader.readInt64("query bin edge")) }
            kind = .groupedCount(.bins(field, edges: edges))
        case 4: kind = .sum(try reader.readEnum("query sum field"))
        case 5: kind = .average(try reader.readEnum("query average field"))
        default: throw LedgerError(.malformedEncoding, "query: unknown kind \(tag)")
        }
        let count = Int(try reader.readUInt32("query filter count"))
        guard count <= Self.maxFilters else { throw LedgerError(.malformedEncoding, "query: too many filters") }
        filters = []
        for _ in 0..<count {
            let filterTag = try reader.readUInt8("query filter kind")
            let field: QueryField = try reader.readEnum("query filter field")
            switch filterTag {
            case 1: filters.append(.oneOf(field, try reader.readStrings("query filter values", maxCount: Self.maxValues)))
            case 2: filters.append(.range(field, lower: try reader.readOptionalInt64("query filter lower"), upper: try reader.readOptionalInt64("query filter upper")))
            case 3: filters.append(.prefix(field, try reader.readString("query filter prefix", maxLength: 200)))
            default: throw LedgerError(.malformedEncoding, "query: unknown filter kind \(filterTag)")
            }
        }
    }
}

/// A researcher's signed question (the arguments of `research.ask`): the query, the mechanism and
/// the ε it may spend, and optionally the block height whose state it is about (default: the
/// latest committed block when the node evaluates it).
public struct QueryRequest: BinaryCodable, Sendable, Hashable {
    public var spec: QuerySpec
    public var mechanism: NoiseMechanism
    public var epsilonMicros: UInt64
    public var asOfHeight: UInt64?

    /// ε below 0.001 gives answers that are pure noise; refuse them rather than spend budget on them.
    public static let minimumEpsilonMicros: UInt64 = 1000

    public init(spec: QuerySpec, mechanism: NoiseMechanism, epsilonMicros: UInt64, asOfHeight: UInt64? = nil) {
        self.spec = spec
        self.mechanism = mechanism
        self.epsilonMicros = epsilonMicros
        self.asOfHeight = asOfHeight
    }

    public func encode(to writer: inout BinaryWriter) {
        spec.encode(to: &writer)
        writer.write(mechanism.rawValue)
        writer.write(epsilonMicros)
        writer.write(asOfHeight != nil)
        if let asOfHeight { writer.write(asOfHeight) }
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        spec = try QuerySpec(from: &reader)
        guard let mechanism = NoiseMechanism(rawValue: try reader.readUInt8("query mechanism")) else {
            throw LedgerError(.malformedEncoding, "query: unknown mechanism")
        }
        self.mechanism = mechanism
        epsilonMicros = try reader.readUInt64("query epsilon")
        asOfHeight = try reader.readBool("query asOf present") ? try reader.readUInt64("query asOf") : nil
    }

    /// The cache key of the question asked of the state at `height`: SHA-256 of
    /// `"MLQ1" ‖ spec ‖ u8 mechanism ‖ u64 ε ‖ u64 height`. Equal keys get the recorded answer.
    public func key(height: UInt64) -> Hash256 {
        var writer = BinaryWriter()
        writer.writeRaw(Array("MLQ1".utf8))
        spec.encode(to: &writer)
        writer.write(mechanism.rawValue)
        writer.write(epsilonMicros)
        writer.write(height)
        return Hash256.of(writer.bytes)
    }
}

extension QuerySpec {
    /// A one-line human description, e.g. `average(usage_hours) where device_type ∈ {ventilator}`.
    public var summary: String {
        var text: String
        switch kind {
        case .count: text = "count"
        case .groupedCount(.field(let field)): text = "count by \(field.rawValue)"
        case .groupedCount(.bins(let field, let edges)): text = "count by \(field.rawValue) in bins \(edges.map(String.init).joined(separator: ","))"
        case .sum(let field): text = "sum(\(field.rawValue))"
        case .average(let field): text = "average(\(field.rawValue))"
        }
        guard !filters.isEmpty else { return text }
        let conditions = filters.map { filter -> String in
            switch filter {
            case .oneOf(let field, let values): "\(field.rawValue) ∈ {\(values.joined(separator: ", "))}"
            case .range(let field, let lower, let upper): "\(field.rawValue) ∈ [\(lower.map(String.init) ?? "-inf"), \(upper.map(String.init) ?? "+inf")]"
            case .prefix(let field, let prefix): "\(field.rawValue) starts with \(prefix)"
            }
        }
        return text + " where " + conditions.joined(separator: " and ")
    }
}
