extension UDI {
    /// GS1 mod-10: from the right, digits are weighted 3,1,3,1…; the check digit brings the sum to a multiple of 10.
    public static func gs1CheckDigit(_ digits: some Collection<UInt8>) -> UInt8 {
        var sum = 0
        for (position, digit) in digits.reversed().enumerated() {
            sum += Int(digit - 48) * (position % 2 == 0 ? 3 : 1)
        }
        return UInt8((10 - sum % 10) % 10) + 48
    }

    /// A GTIN-8/12/13/14 with a valid check digit, as a GTIN-14 (left-padded with zeros, which leaves
    /// the check digit unchanged: GS1 General Specifications §3.3.2).
    static func gtin14(_ digits: ArraySlice<UInt8>) throws(LedgerError) -> String {
        guard [8, 12, 13, 14].contains(digits.count), digits.allSatisfy(isDigit) else {
            throw LedgerError(.invalidUDI, "a GTIN has 8, 12, 13 or 14 digits, got \(digits.count)")
        }
        let expected = gs1CheckDigit(digits.dropLast())
        guard digits.last == expected else {
            throw LedgerError(.invalidUDI, "GTIN check digit is \(Character(Unicode.Scalar(digits.last!))), expected \(Character(Unicode.Scalar(expected)))")
        }
        return String(repeating: "0", count: 14 - digits.count) + String(decoding: digits, as: UTF8.self)
    }

    /// `(AI)value` elements. A value ends at the next `(`, so values cannot contain parentheses.
    static func gs1HumanReadableElements(_ bytes: [UInt8]) throws(LedgerError) -> [(ai: String, value: ArraySlice<UInt8>)] {
        var elements: [(ai: String, value: ArraySlice<UInt8>)] = []
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "("), let close = bytes[index...].firstIndex(of: UInt8(ascii: ")")) else {
                throw LedgerError(.invalidUDI, "GS1 UDI: expected (AI) at \"\(String(decoding: bytes[index...].prefix(20), as: UTF8.self))\"")
            }
            let end = bytes[(close + 1)...].firstIndex(of: UInt8(ascii: "(")) ?? bytes.count
            elements.append((String(decoding: bytes[(index + 1)..<close], as: UTF8.self), bytes[(close + 1)..<end]))
            index = end
        }
        return elements
    }

    /// A GS1 element string as scanners transmit it: an optional symbology identifier, then AIs
    /// with their values; `(01)`, `(11)` and `(17)` have fixed lengths, `(10)` and `(21)` end at a
    /// GS (FNC1) or the end of the data. A GS after a fixed-length value is tolerated.
    static func gs1ElementStringElements(_ bytes: [UInt8]) throws(LedgerError) -> [(ai: String, value: ArraySlice<UInt8>)] {
        var index = 0
        if bytes.first == UInt8(ascii: "]") {
            let identifier = String(decoding: bytes.prefix(3), as: UTF8.self)
            guard ["]C1", "]d2", "]e0", "]Q3"].contains(identifier) else {
                throw LedgerError(.invalidUDI, "GS1 element string: symbology identifier \(identifier) is not one that carries GS1 data")
            }
            index = 3
        }
        if index < bytes.count, bytes[index] == groupSeparator { index += 1 }
        var elements: [(ai: String, value: ArraySlice<UInt8>)] = []
        while index < bytes.count {
            guard index + 2 <= bytes.count, bytes[index..<(index + 2)].allSatisfy(isDigit) else {
                throw LedgerError(.invalidUDI, "GS1 element string: expected a two-digit application identifier at offset \(index)")
            }
            let ai = String(decoding: bytes[index..<(index + 2)], as: UTF8.self)
            index += 2
            let end: Int
            switch ai {
            case "01": end = index + 14
            case "11", "17": end = index + 6
            case "10", "21": end = bytes[index...].firstIndex(of: groupSeparator) ?? bytes.count
            default: throw LedgerError(.invalidUDI, "GS1 UDI: application identifier (\(ai)) is not a UDI identifier")
            }
            guard end <= bytes.count else { throw LedgerError(.invalidUDI, "GS1 element string: (\(ai)) is cut short") }
            elements.append((ai, bytes[index..<end]))
            index = end
            if index < bytes.count, bytes[index] == groupSeparator { index += 1 }
        }
        return elements
    }

    /// GS1 AI encodable character set 82 without `(` and `)`, which would make the human-readable
    /// form ambiguous (so the canonical form of every accepted serial parses back to itself).
    static func isGS1ValueCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "!"), UInt8(ascii: "\""), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "_"): true
        case UInt8(ascii: "*")...UInt8(ascii: "?"): true  // * + , - . / 0-9 : ; < = > ?
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): true
        default: false
        }
    }

    /// The year a two-digit label year means: the GS1 sliding window (General Specifications §7.12:
    /// at most 50 years ahead, 49 behind) as of 2026, fixed — validation must never read a clock,
    /// and a window that moved would let a UDI valid on one day be refused the next. 00…76 → 20YY,
    /// 77…99 → 19YY. HIBCC two-digit years are read the same way.
    static func labelYear(_ yy: Int) -> Int { yy <= 76 ? 2000 + yy : 1900 + yy }

    /// `YYMMDD` as GS1 defines it for (11) and (17): a real calendar date, or `DD` = 00 for a month.
    static func gs1Date(_ value: ArraySlice<UInt8>, ai: String) throws(LedgerError) -> LabelDate {
        guard value.count == 6, value.allSatisfy(isDigit) else {
            throw LedgerError(.invalidUDI, "GS1 (\(ai)) must be a date YYMMDD")
        }
        let digits = value.map { Int($0 - 48) }
        let year = labelYear(digits[0] * 10 + digits[1]), month = digits[2] * 10 + digits[3], day = digits[4] * 10 + digits[5]
        guard (1...12).contains(month), (0...LabelDate.daysIn(month: month, year: year)).contains(day) else {
            throw LedgerError(.invalidUDI, "GS1 (\(ai)) \(String(decoding: value, as: UTF8.self)) is not a date (YYMMDD; DD 00 means the whole month)")
        }
        return LabelDate(year: year, month: month, day: day)
    }

    static func parseGS1(elements: [(ai: String, value: ArraySlice<UInt8>)]) throws(LedgerError) -> Parsed {
        var seen: Set<String> = []
        var gtin: String?
        var parsed = Parsed(agency: .gs1, deviceIdentifier: "")
        for element in elements {
            guard seen.insert(element.ai).inserted else {
                throw LedgerError(.invalidUDI, "GS1 UDI repeats (\(element.ai))")
            }
            switch element.ai {
            case "01": gtin = try gtin14(element.value)
            case "11": parsed.productionDate = try gs1Date(element.value, ai: "11")
            case "17": parsed.expiryDate = try gs1Date(element.value, ai: "17")
            case "10", "21":
                guard (1...20).contains(element.value.count), element.value.allSatisfy(isGS1ValueCharacter) else {
                    throw LedgerError(.invalidUDI, "GS1 (\(element.ai)) must be 1...20 characters of GS1 character set 82 without parentheses")
                }
                let text = String(decoding: element.value, as: UTF8.self)
                if element.ai == "10" { parsed.lot = text } else { parsed.serial = text }
            default:
                throw LedgerError(.invalidUDI, "GS1 UDI: application identifier (\(element.ai)) is not a UDI identifier")
            }
        }
        guard let gtin else { throw LedgerError(.invalidUDI, "GS1 UDI must carry (01), the device's GTIN") }
        parsed.deviceIdentifier = gtin
        return parsed
    }
}
