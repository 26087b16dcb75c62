import Testing
import Foundation
import LedgerCore
import Collector
import Research

/// The columnar evaluator against a brute-force one written independently over plain records,
/// on random devices and random queries (exact values: no noise is involved here).
@Suite("Query evaluation")
struct QueryEvaluationTests {
    static let hospitals = ["city-childrens", "north-general", "st-mary"]
    static let policy = ResearchPolicy()

    /// Random devices with gaps (missing fields), decommissioned ones and several versions.
    static func devices(_ n: Int, seed: UInt64) -> [DeviceRecord] {
        var random = SplitMix64(seed: seed)
        var simulators = hospitals.enumerated().map { DeviceSimulator(hospital: $1, seed: seed &+ UInt64($0)) }
        let today: Int64 = 20_400
        return (0..<n).map { i in
            let h = Int(random.next() % UInt64(hospitals.count + 1))
            let owner = h < hospitals.count ? hospitals[h] : "medtech-research"  // not a hospital: "(other)"
            var (udi, attributes) = simulators[h % hospitals.count].newDevice(today: today)
            if random.next() % 5 == 0 { attributes.batteryLevel = nil }
            if random.next() % 7 == 0 { attributes.warrantyExpiry = nil }
            if random.next() % 9 == 0 { attributes.deviceType = "prototype_\(random.next() % 3)" }
            if random.next() % 11 == 0 { attributes.active = nil }
            if random.next() % 3 == 0 { attributes.lastSync = today * 86_400_000 - Int64(random.next() % 10_000_000) }
            return DeviceRecord(udi: udi + "-\(i)", owner: owner, status: random.next() % 6 == 0 ? .decommissioned : .active,
                                attributes: attributes, version: 1 + random.next() % 3, registeredAt: 0,
                                updatedAt: 1_700_000_000_000 + Int64(random.next() % 100_000_000), lastEvent: "register", pendingTransferTo: nil)
        }
    }

    // MARK: Brute force

    static func text(_ record: DeviceRecord, _ field: QueryField) -> String? {
        let a = record.attributes
        switch field {
        case .hospital: return record.owner
        case .manufacturer: return a.manufacturer
        case .model: return a.model
        case .firmwareVersion: return a.firmwareVersion
        case .deviceType: return a.deviceType
        case .category: return a.category
        case .speciality: return a.speciality
        case .location: return a.location
        case .active: return a.active.map { $0 ? "true" : "false" }
        case .status: return record.status == .active ? "active" : "decommissioned"
        default: return nil
        }
    }

    static func number(_ record: DeviceRecord, _ field: QueryField, day: Int64) -> Int64? {
        let a = record.attributes
        switch field {
        case .productionDate: return a.productionDate
        case .lastServiceDate: return a.lastServiceDate
        case .warrantyExpiry: return a.warrantyExpiry
        case .usageHours: return a.usageHours
        case .batteryLevel: return a.batteryLevel
        case .syncFrequencySeconds: return a.syncFrequencySeconds
        case .lastSync: return a.lastSync
        case .updatedAt: return record.updatedAt
        case .ageDays: return a.productionDate.map { day - $0 }
        case .warrantyDays: return a.warrantyExpiry.map { $0 - day }
        default: return nil
        }
    }

    static func bruteForce(_ spec: QuerySpec, _ records: [DeviceRecord], day: Int64) -> ExactAggregate {
        let selected = records.filter { record in
            spec.filters.allSatisfy { filter in
                switch filter {
                case .oneOf(let field, let values): text(record, field).map(values.contains) ?? false
                case .prefix(let field, let prefix): text(record, field)?.hasPrefix(prefix) ?? false
                case .range(let field, let lower, let upper):
                    number(record, field, day: day).map { $0 >= (lower ?? .min) && $0 <= (upper ?? .max) } ?? false
                }
            }
        }
        switch spec.kind {
        case .count: return .count(Int64(selected.count))
        case .sum(let field):
            let bounds = policy.bounds(of: field)!
            return .sum(selected.compactMap { number($0, field, day: day) }.reduce(0) { $0 + min(max($1, bounds.lower), bounds.upper) })
        case .average(let field):
            let bounds = policy.bounds(of: field)!
            let center = (bounds.lower + bounds.upper) / 2
            let values = selected.compactMap { number($0, field, day: day) }
            return .average(count: Int64(values.count), centeredSum: values.reduce(0) { $0 + min(max($1, bounds.lower), bounds.upper) - center })
        case .groupedCount(let grouping):
            var counts: [String: Int64] = [:]
            for record in selected {
                let label: String
                switch grouping {
                case .bins(let field, let edges):
                    if let value = number(record, field, day: day) {
                        if value < edges[0] { label = "(-inf,\(edges[0]))" }
                        else if let i = edges.indices.last(where: { edges[$0] <= value }), i < edges.count - 1 { label = "[\(edges[i]),\(edges[i + 1]))" }
                        else { label = "[\(edges.last!),+inf)" }
                    } else {
                        label = "(none)"
                    }
                case .field(let field):
                    let value = text(record, field)
                    let domain: [String]? = field == .hospital ? hospitals : policy.domain(of: field)
                    if let value { label = domain.map { $0.contains(value) ? value : "(other)" } ?? value } else { label = "(none)" }
                }
                counts[label, default: 0] += 1
            }
            return .groups(counts.map { ReleasedGroup(label: $0.key, value: $0.value) }.sorted { $0.label.utf8.lexicographicallyPrecedes($1.label.utf8) })
        }
    }

    // MARK: Random queries

    static func randomFilter(_ random: inout SplitMix64) -> QueryFilter {
        func pick(_ values: [String]) -> String { values[Int(random.next() % UInt64(values.count))] }
        switch random.next() % 9 {
        case 0: return .oneOf(.hospital, [pick(hospitals), pick(hospitals)])
        case 1: return .oneOf(.deviceType, [pick(["infusion_pump", "ventilator", "mri_scanner", "prototype_1", "none"])])
        case 2: return .prefix(.firmwareVersion, pick(["1.", "2.3", "4", "3.1.1"]))
        case 3: return .range(.batteryLevel, lower: Int64(random.next() % 60), upper: random.next() % 2 == 0 ? nil : 80)
        case 4: return .range(.ageDays, lower: random.next() % 2 == 0 ? nil : 365, upper: 365 * Int64(1 + random.next() % 8))
        case 5: return .range(.warrantyDays, lower: -365, upper: random.next() % 2 == 0 ? nil : 0)
        case 6: return .oneOf(.active, [pick(["true", "false"])])
        case 7: return .range(.updatedAt, lower: 1_700_000_000_000 + Int64(random.next() % 50_000_000), upper: nil)
        default: return .oneOf(.status, ["decommissioned"])
        }
    }

    static func randomSpec(_ random: inout SplitMix64) -> QuerySpec {
        let kinds: [QueryKind] = [
            .count, .sum(.usageHours), .average(.batteryLevel), .average(.ageDays), .sum(.warrantyDays),
            .groupedCount(.field(.manufacturer)), .groupedCount(.field(.deviceType)), .groupedCount(.field(.hospital)),
            .groupedCount(.field(.active)), .groupedCount(.field(.status)),
            .groupedCount(.bins(.usageHours, edges: [0, 10_000, 20_000, 30_000])), .groupedCount(.bins(.warrantyDays, edges: [-365, 0, 365])),
        ]
        let kind = kinds[Int(random.next() % UInt64(kinds.count))]
        var filters: [QueryFilter] = []
        for _ in 0..<(random.next() % 3) {
            let filter = randomFilter(&random)
            if !filters.contains(where: { $0.field == filter.field }) { filters.append(filter) }
        }
        return QuerySpec(kind: kind, filters: filters).canonical
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func columnarEvaluatorAgreesWithBruteForce(seed: UInt64) throws {
        let records = Self.devices(3000, seed: seed)
        let time: Int64 = 20_400 * 86_400_000 + 12 * 3_600_000
        let table = DeviceTable(records: records, height: 9, time: time)
        #expect(table.referenceDay == 20_400)
        var random = SplitMix64(seed: seed * 1000)
        var nonEmpty = 0
        for _ in 0..<200 {
            let spec = Self.randomSpec(&random)
            try spec.validate()
            let expected = Self.bruteForce(spec, records, day: 20_400)
            #expect(table.evaluate(spec, policy: Self.policy, hospitals: Self.hospitals) == expected, "\(spec.summary)")
            if case .count(let n) = expected, n > 0 { nonEmpty += 1 }
        }
        #expect(nonEmpty > 5, "the random queries must select something")
    }

    @Test func updatesReplaceRowsAndTheTableKeepsItsHeight() throws {
        var records = Self.devices(100, seed: 7)
        var table = DeviceTable(records: records, height: 3, time: 0)
        records[5].attributes.batteryLevel = 1
        records[5].owner = "north-general"
        table.apply([records[5]], height: 4, time: 10)
        #expect(table.count == 100)
        #expect(table.height == 4)
        let spec = QuerySpec(kind: .count, filters: [.oneOf(.hospital, ["north-general"]), .range(.batteryLevel, lower: nil, upper: 1)])
        #expect(table.evaluate(spec, policy: Self.policy, hospitals: Self.hospitals) == Self.bruteForce(spec, records, day: 0))
    }
}
