/// An amount of privacy loss: ε in millionths and δ in units of 10⁻¹².
public struct PrivacyBudget: BinaryCodable, Sendable, Hashable, Codable {
    public var epsilonMicros: UInt64
    public var deltaPicos: UInt64

    public init(epsilonMicros: UInt64, deltaPicos: UInt64) {
        self.epsilonMicros = epsilonMicros
        self.deltaPicos = deltaPicos
    }

    public static let zero = PrivacyBudget(epsilonMicros: 0, deltaPicos: 0)

    public var description: String {
        "ε \(FixedPoint.format(epsilonMicros, digits: FixedPoint.epsilonDigits)), δ \(FixedPoint.format(deltaPicos, digits: FixedPoint.deltaDigits))"
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(epsilonMicros)
        writer.write(deltaPicos)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        epsilonMicros = try reader.readUInt64("budget epsilon")
        deltaPicos = try reader.readUInt64("budget delta")
    }
}

/// Clamping bounds of a numeric field: they define the sensitivity of its sum and average.
public struct FieldBounds: BinaryCodable, Sendable, Hashable, Codable {
    public var field: QueryField
    public var lower: Int64
    public var upper: Int64

    public init(field: QueryField, lower: Int64, upper: Int64) {
        self.field = field
        self.lower = lower
        self.upper = upper
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(field.rawValue)
        writer.write(lower)
        writer.write(upper)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        field = try reader.readEnum("bounds field")
        lower = try reader.readInt64("bounds lower")
        upper = try reader.readInt64("bounds upper")
    }
}

/// The public, closed list of values of a categorical field: grouped counts over it release every
/// value (zeros included) plus `(other)` and `(none)`.
public struct FieldDomain: BinaryCodable, Sendable, Hashable, Codable {
    public var field: QueryField
    public var values: [String]

    public init(field: QueryField, values: [String]) {
        self.field = field
        self.values = values
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(field.rawValue)
        writer.write(strings: values)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        field = try reader.readEnum("domain field")
        values = try reader.readStrings("domain values", maxCount: 256)
    }
}

/// Who may ask research queries and at what privacy cost; part of ``NetworkConfig``, so changed
/// only through governance. A researcher's budget per period can be overridden by a governance
/// proposal (``ProposalAction/setResearchBudget(_:_:)``).
public struct ResearchPolicy: BinaryCodable, Sendable, Hashable, Codable {
    /// Roles that may query (sorted).
    public var allowedRoles: [Role]
    /// Largest ε one query may spend.
    public var maxEpsilonMicrosPerQuery: UInt64
    /// δ charged by a query that needs one (Gaussian noise, open-domain partition selection).
    public var deltaPicosPerQuery: UInt64
    /// Each researcher's budget per period unless governance set another.
    public var budget: PrivacyBudget
    /// Budget periods are consecutive windows of this length from the Unix epoch, in block time.
    public var periodMilliseconds: UInt64
    /// Clamping bounds of every numeric field that may be summed or averaged (sorted by field).
    public var bounds: [FieldBounds]
    /// Closed domains of categorical fields (sorted by field).
    public var domains: [FieldDomain]
    /// Most groups an open-domain grouped count releases (the largest noisy counts).
    public var maxGroups: UInt32

    public init(allowedRoles: [Role] = [.researcher], maxEpsilonMicrosPerQuery: UInt64 = 1_000_000,
                deltaPicosPerQuery: UInt64 = 1000, budget: PrivacyBudget = PrivacyBudget(epsilonMicros: 10_000_000, deltaPicos: 1_000_000),
                periodMilliseconds: UInt64 = 30 * 86_400_000, bounds: [FieldBounds] = Self.defaultBounds,
                domains: [FieldDomain] = Self.defaultDomains, maxGroups: UInt32 = 200) {
        self.allowedRoles = allowedRoles
        self.maxEpsilonMicrosPerQuery = maxEpsilonMicrosPerQuery
        self.deltaPicosPerQuery = deltaPicosPerQuery
        self.budget = budget
        self.periodMilliseconds = periodMilliseconds
        self.bounds = bounds
        self.domains = domains
        self.maxGroups = maxGroups
    }

    public static let defaultBounds: [FieldBounds] = [
        FieldBounds(field: .ageDays, lower: 0, upper: 365 * 30),
        FieldBounds(field: .batteryLevel, lower: 0, upper: 100),
        FieldBounds(field: .syncFrequencySeconds, lower: 0, upper: 86_400),
        FieldBounds(field: .usageHours, lower: 0, upper: 100_000),
        FieldBounds(field: .warrantyDays, lower: -3650, upper: 3650),
    ]

    public static let defaultDomains: [FieldDomain] = [
        FieldDomain(field: .category, values: ["diagnostic", "life_support", "monitoring", "therapeutic"]),
        FieldDomain(field: .deviceType, values: [
            "defibrillator", "dialysis_machine", "ecg_recorder", "infusion_pump", "insulin_pump", "mri_scanner",
            "patient_monitor", "pulse_oximeter", "ultrasound_scanner", "ventilator",
        ]),
        FieldDomain(field: .speciality, values: [
            "cardiology", "emergency_medicine", "endocrinology", "intensive_care", "nephrology", "paediatrics", "radiology",
        ]),
    ]

    public func bounds(of field: QueryField) -> FieldBounds? { bounds.first { $0.field == field } }

    public func domain(of field: QueryField) -> [String]? { domains.first { $0.field == field }?.values }

    public func validate() throws(LedgerError) {
        guard !allowedRoles.isEmpty, allowedRoles == Array(Set(allowedRoles)).sorted() else {
            throw LedgerError(.invalidConfiguration, "research.allowedRoles must be non-empty, sorted and distinct")
        }
        guard (QueryRequest.minimumEpsilonMicros...100_000_000).contains(maxEpsilonMicrosPerQuery) else {
            throw LedgerError(.invalidConfiguration, "research.maxEpsilonPerQuery must be 0.001...100")
        }
        guard (2...10_000_000_000).contains(deltaPicosPerQuery) else {
            throw LedgerError(.invalidConfiguration, "research.deltaPerQuery must be 2e-12...0.01 (it may be split in two)")
        }
        guard (60_000...10 * 366 * 86_400_000).contains(periodMilliseconds) else {
            throw LedgerError(.invalidConfiguration, "research.period must be a minute to ten years")
        }
        guard zip(bounds, bounds.dropFirst()).allSatisfy({ $0.field < $1.field }),
              bounds.allSatisfy({ !$0.field.isCategorical && $0.lower < $0.upper && $0.lower.magnitude <= 1_000_000_000 && $0.upper.magnitude <= 1_000_000_000 })
        else {
            throw LedgerError(.invalidConfiguration, "research.bounds: one entry per numeric field, sorted, lower < upper, |bound| ≤ 1e9")
        }
        guard zip(domains, domains.dropFirst()).allSatisfy({ $0.field < $1.field }),
              domains.allSatisfy({ domain in
                  domain.field.isCategorical && !domain.values.isEmpty && domain.values.count <= 256
                      && zip(domain.values, domain.values.dropFirst()).allSatisfy { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                      && !domain.values.contains("(other)") && !domain.values.contains("(none)")
              })
        else {
            throw LedgerError(.invalidConfiguration, "research.domains: one entry per categorical field, sorted, 1...256 sorted distinct values, none of them (other) or (none)")
        }
        guard (1...10_000).contains(maxGroups) else { throw LedgerError(.invalidConfiguration, "research.maxGroups must be 1...10000") }
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(strings: allowedRoles.map(\.rawValue))
        writer.write(maxEpsilonMicrosPerQuery)
        writer.write(deltaPicosPerQuery)
        budget.encode(to: &writer)
        writer.write(periodMilliseconds)
        writer.write(array: bounds)
        writer.write(array: domains)
        writer.write(maxGroups)
    }

    public init(from reader: inout BinaryReader) throws(LedgerError) {
        allowedRoles = try reader.readStrings("research roles", maxCount: 16).map { raw throws(LedgerError) in
            guard let role = Role(rawValue: raw) else { throw LedgerError(.malformedEncoding, "research: unknown role \(raw)") }
            return role
        }
        maxEpsilonMicrosPerQuery = try reader.readUInt64("research max epsilon")
        deltaPicosPerQuery = try reader.readUInt64("research delta per query")
        budget = try PrivacyBudget(from: &reader)
        periodMilliseconds = try reader.readUInt64("research period")
        bounds = try reader.readArray("research bounds", maxCount: 64)
        domains = try reader.readArray("research domains", maxCount: 64)
        maxGroups = try reader.readUInt32("research max groups")
    }
}
