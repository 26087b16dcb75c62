/// Unique Device Identifier parsing for the two issuing-agency syntaxes MedLedger accepts, and the
/// one canonical spelling of a device's identity that the ledger keys devices by.
///
/// A UDI is a device identifier (UDI-DI: which model) plus production identifiers (UDI-PI: serial,
/// lot, dates). Only the agency, the normalised device identifier and the serial identify a
/// physical unit; lot, production date and expiry are facts *about* the unit and become
/// ``DeviceAttributes``. So `(01)00614141999996(10)L1(21)7`, `(21)7(01)00614141999996`,
/// `(01)0614141999996(21)7` and `]C10100614141999996217` are one device, whose canonical key is
/// `(01)00614141999996(21)7`:
///
/// ```swift
/// let key = try UDI.canonicalKey("(17)271231(21)7(01)0614141999996")  // "(01)00614141999996(21)7"
/// ```
///
/// Accepted spellings (docs/formats.md §5.4 is the normative text):
/// * **GS1 bare GTIN**: 8, 12, 13 or 14 digits with the mod-10 check digit. A model, not a unit.
/// * **GS1 human-readable**: `(AI)value` elements in any order: `(01)` GTIN (8/12/13/14 digits,
///   zero-padded to GTIN-14), `(21)` serial, `(10)` lot, `(11)` production date, `(17)` expiry.
/// * **GS1 element string** (what a scanner transmits): optional symbology identifier `]C1`, `]d2`,
///   `]e0` or `]Q3`, then AI digits and values, variable-length values ended by GS (0x1D) or the end.
/// * **HIBCC**: `+` ‖ labeler (4) ‖ product number (1–18) ‖ unit of measure (1 digit) ‖ optionally
///   `/` and secondary data (`$` lot, `$+` serial, `$$`/`$$+` with an expiry date, or the Julian
///   `YYJJJ` form, then `/S` serial, `/14D` expiry, `/16D` manufacture date fields) ‖ mod-43 check.
///
/// Anything else is refused with ``LedgerError/Code/invalidUDI`` and a message that says why.
public enum UDI {
    public enum Agency: String, Sendable { case gs1, hibcc }

    /// A date as labels print it. `day` 0 means "that month" (GS1 `YYMMDD` with `DD` = 00, HIBCC `MMYY`).
    public struct LabelDate: Sendable, Hashable {
        public var year: Int
        public var month: Int
        public var day: Int

        /// The first day the label date can mean, as a day number (days since 1970-01-01).
        public var firstDay: Int64 { CivilDate.days(year: year, month: month, day: max(day, 1)) }
        /// The last day it can mean: the month's last day when `day` is 0 (GS1's reading of an expiry).
        public var lastDay: Int64 {
            guard day == 0 else { return firstDay }
            return CivilDate.days(year: month == 12 ? year + 1 : year, month: month == 12 ? 1 : month + 1, day: 1) - 1
        }
        public func contains(_ dayNumber: Int64) -> Bool { (firstDay...lastDay).contains(dayNumber) }

        static func daysIn(month: Int, year: Int) -> Int {
            switch month {
            case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
            case 4, 6, 9, 11: 30
            default: 31
            }
        }
    }

    /// A parsed UDI: the unit's identity and the production identifiers the label carried.
    public struct Parsed: Sendable, Hashable {
        public var agency: Agency
        /// GS1: the GTIN-14. HIBCC: labeler ‖ product number ‖ unit-of-measure digit.
        public var deviceIdentifier: String
        /// GS1 `(21)`; HIBCC `$+`, `$$+` or `/S`. Nil: the UDI names a model, not a unit.
        public var serial: String?
        public var lot: String?
        public var productionDate: LabelDate?
        public var expiryDate: LabelDate?

        /// The identity in the agency's own syntax, identity elements only, in a fixed order:
        /// GS1 `(01)<GTIN-14>[(21)<serial>]`, HIBCC `+<labeler><product><unit>[/$+<serial>]<check>`.
        /// It is itself a valid UDI whose canonical form is itself.
        public var canonical: String {
            switch agency {
            case .gs1:
                return "(01)" + deviceIdentifier + (serial.map { "(21)" + $0 } ?? "")
            case .hibcc:
                let body = "+" + deviceIdentifier + (serial.map { "/$+" + $0 } ?? "")
                return body + String(Unicode.Scalar(hibccCheckCharacter(Array(body.utf8))!))
            }
        }

        /// `attributes` of a registration with the label's production identifiers filled in. A field
        /// both set and on the label must agree with it (a production date inside a month-only label
        /// date agrees); a month-only expiry is the month's last day, a month-only production date its first.
        public func registrationAttributes(_ attributes: DeviceAttributes) throws(LedgerError) -> DeviceAttributes {
            var result = attributes
            if let lot {
                guard attributes.lot == nil || attributes.lot == lot else {
                    throw LedgerError(.invalidArgument, "lot \(attributes.lot!) disagrees with the UDI's lot \(lot)")
                }
                result.lot = lot
            }
            if let productionDate {
                if let given = attributes.productionDate {
                    guard productionDate.contains(given) else {
                        throw LedgerError(.invalidArgument, "production_date \(CivilDate.format(days: given)) disagrees with the UDI's production date")
                    }
                } else {
                    result.productionDate = productionDate.firstDay
                }
            }
            if let expiryDate {
                if let given = attributes.expiryDate {
                    guard expiryDate.contains(given) else {
                        throw LedgerError(.invalidArgument, "expiry_date \(CivilDate.format(days: given)) disagrees with the UDI's expiry date")
                    }
                } else {
                    result.expiryDate = expiryDate.lastDay
                }
            }
            return result
        }
    }

    /// Parses `text` in any accepted spelling.
    public static func parse(_ text: String) throws(LedgerError) -> Parsed {
        guard !text.isEmpty, text.utf8.count <= 128 else {
            throw LedgerError(.invalidUDI, "UDI must be 1...128 characters")
        }
        let bytes = Array(text.utf8)
        if bytes[0] == UInt8(ascii: "+") { return try parseHIBCC(bytes) }
        if bytes[0] == UInt8(ascii: "(") { return try parseGS1(elements: gs1HumanReadableElements(bytes)) }
        if [8, 12, 13, 14].contains(bytes.count), bytes.allSatisfy(isDigit) {
            return Parsed(agency: .gs1, deviceIdentifier: try gtin14(bytes[...]))
        }
        if isDigit(bytes[0]) || bytes[0] == UInt8(ascii: "]") || bytes[0] == groupSeparator {
            return try parseGS1(elements: gs1ElementStringElements(bytes))
        }
        throw LedgerError(.invalidUDI, "\"\(text.prefix(40))\" is neither a GS1 UDI (digits, (01)… or an element string) nor an HIBCC UDI (starting with +)")
    }

    /// The ledger's key for the device `text` names, in any accepted spelling: ``Parsed/canonical``.
    /// Every lookup by UDI (state key, history, API) goes through this.
    public static func canonicalKey(_ text: String) throws(LedgerError) -> String {
        try parse(text).canonical
    }

    /// Validates `text` and returns its issuing agency.
    @discardableResult
    public static func validate(_ text: String) throws(LedgerError) -> Agency {
        try parse(text).agency
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    static func isUpper(_ c: UInt8) -> Bool { c >= 65 && c <= 90 }
    static let groupSeparator: UInt8 = 0x1D
}

extension UDI.Parsed {
    init(agency: UDI.Agency, deviceIdentifier: String) {
        self.init(agency: agency, deviceIdentifier: deviceIdentifier, serial: nil, lot: nil, productionDate: nil, expiryDate: nil)
    }
}
