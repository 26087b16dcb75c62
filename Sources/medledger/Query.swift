import ArgumentParser
import Foundation
import LedgerCore
import Node
import Server
import Collector

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask differentially private questions about the device registry, within your privacy budget.",
        discussion: """
            Every query spends ε from the researcher's budget (set by governance, per period) and is \
            recorded on the ledger with the hash of what was released. Asking the same question about \
            the same block again returns the recorded answer for free. Answers carry the mechanism, the \
            noise scale and a 95 % interval.

            Filters (--where, repeatable): FIELD=v1,v2 (categorical), FIELD^=prefix, FIELD=lo..hi or \
            FIELD=v (numeric; either bound may be empty; dates as YYYY-MM-DD, instants as ISO 8601).
            Fields: \(QueryField.allCases.map(\.rawValue).joined(separator: ", ")).

            Examples:
              medledger query count --network ./net --identity medtech-research/researcher --epsilon 0.5 \\
                  --where device_type=infusion_pump --where battery_level=..30
              medledger query grouped --by manufacturer --epsilon 0.5 --network ./net --identity medtech-research/researcher
              medledger query grouped --by usage_hours --bins 0,10000,20000,30000 …
              medledger query average --field usage_hours --where hospital=st-mary --mechanism gaussian …
              medledger query budget --network ./net --identity medtech-research/researcher
              medledger query log --network ./net --identity medtech-research/researcher
            """
    )

    @Argument(help: "count, grouped, sum, average, budget or log.")
    var kind: String

    @OptionGroup var options: SubmitOptions

    @Option(name: .long, help: "ε to spend (decimal, e.g. 0.5).")
    var epsilon = "0.1"

    @Option(name: .long, help: "laplace or gaussian.")
    var mechanism = "laplace"

    @Option(name: .customLong("where"), help: "A filter (repeatable): FIELD=v1,v2 | FIELD^=prefix | FIELD=lo..hi.")
    var filters: [String] = []

    @Option(name: .long, help: "Grouping field (grouped).")
    var by: String?

    @Option(name: .long, help: "Bin edges for a numeric grouping, comma-separated (grouped).")
    var bins: String?

    @Option(name: .long, help: "Numeric field to sum or average.")
    var field: String?

    @Option(name: .long, help: "Ask about the state at this block height.")
    var asOfHeight: UInt64?

    @Option(name: .long, help: "Ask about the state at this time (ISO 8601): the last block at or before it.")
    var asOfTime: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        let client = try options.client()
        let definition = try NetworkDefinition.load(directory: options.network)
        let signer = try definition.identity(named: options.identity, directory: options.network)
        do {
            switch kind {
            case "budget":
                let budget: BudgetView = try await client.get("v1/research/budget/\(signer.fingerprint.hex)")
                if json { return Output.json(budget) }
                print("budget of \(options.identity): ε \(budget.remaining.epsilon) of \(budget.limit.epsilon) and δ \(budget.remaining.delta) of \(budget.limit.delta) remain; \(budget.queries) queries this period (renews \(Date(timeIntervalSince1970: Double(budget.period_ends) / 1000)))")
                return
            case "log":
                let entries: [ResearchLogEntry] = try await client.get("v1/research/log")
                if json { return Output.json(entries) }
                for entry in entries {
                    let outcome = "#\(entry.sequence) block \(entry.block) \(entry.action) \(entry.status)\(entry.code.map { " (\($0))" } ?? "")"
                    if entry.action == "answer" {
                        print("\(outcome): question \(entry.question?.hex.prefix(16) ?? "?")… about block \(entry.height.map(String.init) ?? "?")\(entry.answer_hash.map { ", answer hash \($0.hex.prefix(16))…" } ?? "")")
                    } else {
                        print("\(outcome): \(entry.asker_name ?? entry.asker?.hex.prefix(16).description ?? "?") asked \(entry.query ?? "?") ε \(entry.epsilon ?? "?") about block \(entry.height.map(String.init) ?? "?")")
                    }
                }
                return
            default: break
            }
            var request = try QueryInput.request(kind: kind, filters: filters, by: by, bins: bins, field: field,
                                                 mechanism: mechanism, epsilon: epsilon)
            request.asOfHeight = asOfHeight
            if asOfHeight != nil, asOfTime != nil { throw ValidationError("give --as-of-height or --as-of-time, not both") }
            if let asOfTime {
                guard let date = ISO8601DateFormatter().date(from: asOfTime) else { throw ValidationError("--as-of-time must be ISO 8601, e.g. 2026-11-20T12:00:00Z") }
                let found: [String: UInt64] = try await client.get("v1/chain/height-at", query: [URLQueryItem(name: "time", value: String(Int64(date.timeIntervalSince1970 * 1000)))])
                request.asOfHeight = found["height"]
            }
            let (_, envelope) = signer.transaction(network: definition.networkID, contract: "research", action: "ask", arguments: request.encoded)
            let view: QueryView = try await client.post("v1/queries", envelope: envelope.encoded)
            if json { return Output.json(view) }
            print(QueryInput.describe(view, spec: request.spec))
        } catch let error as LedgerError {
            throw UserError("refused: \(error.userMessage)")
        }
    }
}

/// Turns command-line text into a ``QueryRequest`` and answers into text.
enum QueryInput {
    static func request(kind: String, filters: [String], by: String?, bins: String?, field: String?, mechanism: String,
                        epsilon: String) throws -> QueryRequest {
        guard let epsilonMicros = FixedPoint.parse(epsilon, digits: FixedPoint.epsilonDigits), epsilonMicros > 0 else {
            throw ValidationError("--epsilon must be a positive decimal, e.g. 0.5")
        }
        guard let mechanism = NoiseMechanism(name: mechanism) else { throw ValidationError("--mechanism must be laplace or gaussian") }
        let queryKind: QueryKind
        switch kind {
        case "count": queryKind = .count
        case "grouped":
            let grouping = try self.field(by, option: "--by")
            if let bins {
                queryKind = .groupedCount(.bins(grouping, edges: try bins.split(separator: ",").map { try value(String($0), of: grouping) }))
            } else {
                queryKind = .groupedCount(.field(grouping))
            }
        case "sum": queryKind = .sum(try self.field(field, option: "--field"))
        case "average": queryKind = .average(try self.field(field, option: "--field"))
        default: throw ValidationError("query kind must be count, grouped, sum, average, budget or log")
        }
        let spec = QuerySpec(kind: queryKind, filters: try filters.map(filter)).canonical
        do { try spec.validate() } catch { throw ValidationError(error.message) }
        return QueryRequest(spec: spec, mechanism: mechanism, epsilonMicros: epsilonMicros)
    }

    static func field(_ name: String?, option: String) throws -> QueryField {
        guard let name else { throw ValidationError("\(option) FIELD is required") }
        guard let field = QueryField(rawValue: name) else {
            throw ValidationError("unknown field \(name); fields: \(QueryField.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return field
    }

    /// `FIELD=v1,v2`, `FIELD^=prefix`, `FIELD=lo..hi`, `FIELD=v`.
    static func filter(_ text: String) throws -> QueryFilter {
        if let range = text.range(of: "^=") {
            return .prefix(try field(String(text[..<range.lowerBound]), option: "--where"), String(text[range.upperBound...]))
        }
        guard let equals = text.firstIndex(of: "=") else { throw ValidationError("--where needs FIELD=VALUE, got \(text)") }
        let field = try field(String(text[..<equals]), option: "--where")
        let rest = String(text[text.index(after: equals)...])
        if field.isCategorical {
            return .oneOf(field, rest.split(separator: ",").map(String.init))
        }
        if let dots = rest.range(of: "..") {
            let lower = rest[..<dots.lowerBound], upper = rest[dots.upperBound...]
            return .range(field, lower: lower.isEmpty ? nil : try value(String(lower), of: field),
                          upper: upper.isEmpty ? nil : try value(String(upper), of: field))
        }
        let exact = try value(rest, of: field)
        return .range(field, lower: exact, upper: exact)
    }

    /// An integer, a `YYYY-MM-DD` date (date fields) or an ISO 8601 instant (instant fields).
    static func value(_ text: String, of field: QueryField) throws -> Int64 {
        if field.isDate {
            // Only dates: a bare number would silently be a day count since 1970.
            guard let day = CivilDate.parse(text) else { throw ValidationError("\(field.rawValue) takes dates as YYYY-MM-DD, got \(text)") }
            return day
        }
        if let integer = Int64(text) { return integer }
        if field.isInstant, let date = ISO8601DateFormatter().date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
        throw ValidationError("\(text) is not a valid value for \(field.rawValue)")
    }

    static func describe(_ view: QueryView, spec: QuerySpec) -> String {
        var lines: [String] = []
        let format = { (x: Double) in x == x.rounded() ? String(Int64(x)) : String(format: "%.2f", x) }
        if let result = view.result {
            let value = result.value.map(format) ?? "undefined (noisy count ≤ 0)"
            let interval = result.interval_95.map { " (95 % interval \(format($0[0])) … \(format($0[1])))" } ?? ""
            lines.append("\(spec.summary): \(value)\(interval)")
        }
        if let groups = view.groups {
            lines.append("\(spec.summary):")
            let width = groups.map(\.label.count).max() ?? 0
            for group in groups {
                lines.append("  \(group.label.padding(toLength: width, withPad: " ", startingAt: 0))  \(group.value)  (±\(group.interval_95[1] - group.value))")
            }
            if let threshold = view.threshold {
                lines.append("  (open domain: only groups with a noisy count ≥ \(threshold) are released)")
            }
        }
        for (part, noise) in view.noise.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(part): \(noise.mechanism) noise, ε \(noise.epsilon)\(noise.delta == "0" ? "" : ", δ \(noise.delta)"), sensitivity \(noise.sensitivity), \(noise.mechanism == "laplace" ? "scale b" : "variance σ²") = \(noise.scale) (sd \(String(format: "%.2f", noise.standard_deviation)))")
        }
        lines.append("  state of block \(view.height); cost ε \(view.cost.epsilon), δ \(view.cost.delta)\(view.cached ? " (asked before: the recorded answer, free)" : "")")
        lines.append("  charged by transaction \(view.charge_transaction.hex)")
        lines.append("  answer recorded by transaction \(view.answer_transaction.hex) in block \(view.block); answer hash \(view.answer_hash.hex)")
        return lines.joined(separator: "\n")
    }
}
