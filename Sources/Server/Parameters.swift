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

    /// A path parameter that must be a height.
    static func height(_ text: String?, _ name: String) throws(LedgerError) -> UInt64 {
        guard let text else { throw LedgerError(.invalidArgument, "\(name) is required") }
        return try parse(text, name, in: 0...maxHeight)
    }

    static func parse<T: FixedWidthInteger>(_ text: String, _ name: String, in range: ClosedRange<T>) throws(LedgerError) -> T {
        // Digits only (and a leading minus where the range allows it): no "+5", " 5", "0x10", "1e3".
        let digits = text.first == "-" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = T(text, radix: 10), range.contains(value)
        else {
            throw LedgerError(.invalidArgument, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
