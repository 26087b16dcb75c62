import Hummingbird
import LedgerCore

/// Query and path parameters, parsed strictly: a value that is not a plain decimal integer within
/// the route's range is a 400 `invalid_argument`, never a silent default and never a trap.
enum Parameters {
    /// Heights and log positions are stored as SQLite integers.
    static let maxHeight = UInt64(Int64.max)
    static let maxOffset = 1_000_000_000

    /// The value of `?name=`, nil when absent.
    static func integer<T: FixedWidthInteger>(_ request: Request, _ name: String, in range: ClosedRange<T>) throws(LedgerError) -> T? {
        let values = request.uri.queryParameters.getAll(name)
        guard let text = values.first else { return nil }
        guard values.count == 1 else { throw LedgerError(.invalidArgument, "\(name) is given more than once") }
        return try parse(String(text), name, in: range)
    }

    /// The text of `?name=`, nil when absent: given at most once, non-empty, at most 512 bytes, and
    /// free of control characters (SQLite would cut a bound string at a NUL, so `st-mary%00x` would
    /// otherwise read as `st-mary`).
    static func text(_ request: Request, _ name: String) throws(LedgerError) -> String? {
        let values = request.uri.queryParameters.getAll(name)
        guard let value = values.first else { return nil }
        guard values.count == 1 else { throw LedgerError(.invalidArgument, "\(name) is given more than once") }
        guard !value.isEmpty, value.utf8.count <= 512, !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw LedgerError(.invalidArgument, "\(name) must be 1–512 bytes of text without control characters")
        }
        return String(value)
    }

    /// A path parameter that must be a height.
    static func height(_ text: String?, _ name: String) throws(LedgerError) -> UInt64 {
        guard let text else { throw LedgerError(.invalidArgument, "\(name) is required") }
        return try parse(text, name, in: 0...maxHeight)
    }

    static func parse<T: FixedWidthInteger>(_ text: String, _ name: String, in range: ClosedRange<T>) throws(LedgerError) -> T {
        // Digits only (and a leading minus where the range has negative numbers): no "+5", " 5",
        // "0x10", "1e3", and no "-0" for a count or a height.
        let negative = text.first == "-"
        let digits = negative ? text.dropFirst() : Substring(text)
        guard !negative || range.lowerBound < 0, !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = T(text, radix: 10), range.contains(value)
        else {
            throw LedgerError(.invalidArgument, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
