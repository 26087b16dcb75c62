public import LedgerCore

/// The exact (not yet private) value of a query. Never leaves the node: only
/// ``QueryRelease`` turns it into something releasable.
public enum ExactAggregate: Sendable, Hashable {
    case count(Int64)
    /// Sum of the values clamped to the field's bounds, over devices that have a value.
    case sum(Int64)
    /// Devices with a value, and the sum of `clamp(x) − center` over them.
    case average(count: Int64, centeredSum: Int64)
    /// Count per label, in label order; labels with no device are absent.
    case groups([ReleasedGroup])
}

public enum GroupLabel {
    public static let none = "(none)"
    public static let other = "(other)"

    /// Every label a closed-domain grouping releases (zeros included), in order; nil for an open domain.
    public static func closed(_ grouping: QueryGrouping, policy: ResearchPolicy, hospitals: [String]) -> [String]? {
        switch grouping {
        case .bins(_, let edges):
            return bins(edges) + [none]
        case .field(.hospital): return hospitals.sorted() + [other]
        case .field(.active): return ["false", "true", none]
        case .field(.status): return ["active", "decommissioned"]
        case .field(let field):
            return policy.domain(of: field).map { $0 + [other, none] }
        }
    }

    /// `(-inf,e0)`, `[e0,e1)`, …, `[ek,+inf)`.
    public static func bins(_ edges: [Int64]) -> [String] {
        var labels = ["(-inf,\(edges[0]))"]
        for (low, high) in zip(edges, edges.dropFirst()) { labels.append("[\(low),\(high))") }
        labels.append("[\(edges[edges.count - 1]),+inf)")
        return labels
    }
}

extension DeviceTable {
    /// Whole days since the epoch at the table's block time: the reference of the derived fields.
    public var referenceDay: Int64 { time >= 0 ? time / 86_400_000 : (time - 86_399_999) / 86_400_000 }

    /// Evaluates `spec` exactly over the table's state.
    public func evaluate(_ spec: QuerySpec, policy: ResearchPolicy, hospitals: [String]) -> ExactAggregate {
        let rows = matchingRows(spec.filters)
        switch spec.kind {
        case .count:
            return .count(Int64(rows?.count ?? count))
        case .sum(let field):
            let bounds = policy.bounds(of: field)!
            var sum: Int64 = 0
            forEachValue(field, rows) { sum += min(max($0, bounds.lower), bounds.upper) }
            return .sum(sum)
        case .average(let field):
            let bounds = policy.bounds(of: field)!
            let center = ClampedField.center(lower: bounds.lower, upper: bounds.upper)
            var n: Int64 = 0
            var sum: Int64 = 0
            forEachValue(field, rows) {
                n += 1
                sum += min(max($0, bounds.lower), bounds.upper) - center
            }
            return .average(count: n, centeredSum: sum)
        case .groupedCount(let grouping):
            return .groups(groupCounts(grouping, rows, policy: policy, hospitals: hospitals))
        }
    }

    // MARK: Filters

    /// Rows passing every filter, in row order; nil when there are no filters (every row).
    func matchingRows(_ filters: [QueryFilter]) -> [Int32]? {
        guard !filters.isEmpty else { return nil }
        var rows: [Int32]? = nil
        for filter in filters {
            let test = predicate(filter)
            if let current = rows {
                rows = current.filter { test(Int($0)) }
            } else {
                var selected: [Int32] = []
                for row in 0..<count where test(row) { selected.append(Int32(row)) }
                rows = selected
            }
        }
        return rows
    }

    func predicate(_ filter: QueryFilter) -> (Int) -> Bool {
        switch filter {
        case .oneOf(let field, let values):
            let wanted = Set(values)
            return categoricalTest(field) { wanted.contains($0) }
        case .prefix(let field, let prefix):
            return categoricalTest(field) { $0.hasPrefix(prefix) }
        case .range(let field, let lower, let upper):
            let (column, low, high) = integerRange(field, lower ?? Int64.min, upper ?? Int64.max)
            let values = integers[column]
            return { row in
                let value = values[row]
                return value != Self.missing && value >= low && value <= high
            }
        }
    }

    func categoricalTest(_ field: QueryField, _ accept: @escaping (String) -> Bool) -> (Int) -> Bool {
        switch field {
        case .active:
            let table = [false, accept("false"), accept("true")]
            let column = active
            return { table[Int(column[$0])] }
        case .status:
            let table = [accept("active"), accept("decommissioned")]
            let column = status
            return { table[Int(column[$0])] }
        default:
            let column = strings[Self.stringFields.firstIndex(of: field)!]
            let table = column.accepting(accept)
            let codes = column.codes
            return { table[Int(codes[$0])] }
        }
    }

    /// The stored column and bounds equivalent to `lower ≤ field ≤ upper` (derived fields are
    /// rewritten onto the column they derive from). Bounds saturate instead of overflowing.
    func integerRange(_ field: QueryField, _ lower: Int64, _ upper: Int64) -> (column: Int, lower: Int64, upper: Int64) {
        let day = referenceDay
        let column = Self.columnIndex(field)
        switch field {
        case .ageDays:
            // age = day − production  ⇔  production ∈ [day − upper, day − lower]
            return (column, Self.saturating(day, minus: upper), Self.saturating(day, minus: lower))
        case .warrantyDays:
            // days left = warranty − day  ⇔  warranty ∈ [day + lower, day + upper]
            return (column, Self.saturating(lower, plus: day), Self.saturating(upper, plus: day))
        default:
            return (column, max(lower, Self.missing + 1), upper)
        }
    }

    /// The stored column an integer field reads: derived fields read the date they count from.
    static func columnIndex(_ field: QueryField) -> Int {
        switch field {
        case .ageDays: integerFields.firstIndex(of: .productionDate)!
        case .warrantyDays: integerFields.firstIndex(of: .warrantyExpiry)!
        default: integerFields.firstIndex(of: field)!
        }
    }

    /// An integer field's stored column and how a stored (present) value becomes the field's value.
    func integerColumn(_ field: QueryField) -> (values: [Int64], derive: (Int64) -> Int64) {
        let day = referenceDay
        let values = integers[Self.columnIndex(field)]
        switch field {
        case .ageDays: return (values, { day - $0 })
        case .warrantyDays: return (values, { $0 - day })
        default: return (values, { $0 })
        }
    }

    static func saturating(_ a: Int64, minus b: Int64) -> Int64 {
        let (result, overflow) = a.subtractingReportingOverflow(b)
        return overflow ? (b > 0 ? Int64.min + 1 : Int64.max) : max(result, Int64.min + 1)
    }

    static func saturating(_ a: Int64, plus b: Int64) -> Int64 {
        let (result, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? Int64.max : Int64.min + 1) : max(result, Int64.min + 1)
    }

    // MARK: Values

    /// Calls `body` with the field's value for each selected row that has one.
    func forEachValue(_ field: QueryField, _ rows: [Int32]?, _ body: (Int64) -> Void) {
        let (column, derive) = integerColumn(field)
        if let rows {
            for row in rows where column[Int(row)] != Self.missing { body(derive(column[Int(row)])) }
        } else {
            for value in column where value != Self.missing { body(derive(value)) }
        }
    }

    // MARK: Groups

    func groupCounts(_ grouping: QueryGrouping, _ rows: [Int32]?, policy: ResearchPolicy, hospitals: [String]) -> [ReleasedGroup] {
        // Each row maps to a label index; counts accumulate per index. Closed domains count into
        // exactly the labels the release lists (GroupLabel.closed).
        let labels: [String]
        let labelOf: (Int) -> Int
        switch grouping {
        case .bins(let field, let edges):
            labels = GroupLabel.closed(grouping, policy: policy, hospitals: hospitals)!
            let (column, derive) = integerColumn(field)
            let noneIndex = labels.count - 1
            labelOf = { row in
                let raw = column[row]
                guard raw != Self.missing else { return noneIndex }
                let value = derive(raw)
                var low = 0, high = edges.count  // first edge > value
                while low < high {
                    let mid = (low + high) / 2
                    if edges[mid] > value { high = mid } else { low = mid + 1 }
                }
                return low
            }
        case .field(.active), .field(.status):
            labels = GroupLabel.closed(grouping, policy: policy, hospitals: hospitals)!
            let index = Self.indexes(labels)
            // The stored codes, in order: active 0 none, 1 false, 2 true; status by raw value.
            let (codes, byCode) = grouping == .field(.active)
                ? (active, [GroupLabel.none, "false", "true"].map { index[$0]! })
                : (status, ["active", "decommissioned"].map { index[$0]! })
            labelOf = { byCode[Int(codes[$0])] }
        case .field(let field):
            let column = strings[Self.stringFields.firstIndex(of: field)!]
            let codeToLabel: [Int]
            if let closed = GroupLabel.closed(grouping, policy: policy, hospitals: hospitals) {
                labels = closed
                let index = Self.indexes(closed)
                let other = index[GroupLabel.other]!
                codeToLabel = [index[GroupLabel.none] ?? other] + column.values.map { index[$0] ?? other }
            } else {
                labels = [GroupLabel.none] + column.values
                codeToLabel = Array(0...column.values.count)
            }
            let codes = column.codes
            labelOf = { codeToLabel[Int(codes[$0])] }
        }
        var counts = [Int64](repeating: 0, count: labels.count)
        if let rows {
            for row in rows { counts[labelOf(Int(row))] += 1 }
        } else {
            for row in 0..<count { counts[labelOf(row)] += 1 }
        }
        return zip(labels, counts).filter { $0.1 > 0 }.map { ReleasedGroup(label: $0.0, value: $0.1) }
            .sorted { $0.label.utf8.lexicographicallyPrecedes($1.label.utf8) }
    }

    /// Label → its position.
    static func indexes(_ labels: [String]) -> [String: Int] {
        Dictionary(labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }
}
