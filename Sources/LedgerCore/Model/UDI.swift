/// Unique Device Identifier validation for the two issuing-agency syntaxes MedLedger accepts.
///
/// * **GS1**: a GTIN (8, 12, 13 or 14 digits) with its mod-10 check digit, either bare or in
///   human-readable form `(01)<14 digits>` optionally followed by production identifiers
///   `(11)YYMMDD`, `(17)YYMMDD`, `(10)<lot>`, `(21)<serial>`.
/// * **HIBCC**: `+` ‖ labeler id (4 chars, first alphabetic) ‖ product number (1–18 alphanumeric)
///   ‖ unit of measure (1 digit) ‖ optional secondary data after `/` ‖ a mod-43 check character
///   computed over every preceding character, the `+` included.
///
/// Anything else is refused with ``LedgerError/Code/invalidUDI`` and a message that says why.
public enum UDI {
    public enum Agency: String, Sendable { case gs1, hibcc }

    /// Validates `text` and returns its issuing agency.
    @discardableResult
    public static func validate(_ text: String) throws(LedgerError) -> Agency {
        guard !text.isEmpty, text.utf8.count <= 128 else {
            throw LedgerError(.invalidUDI, "UDI must be 1...128 characters")
        }
        if text.hasPrefix("+") {
            try validateHIBCC(Array(text.utf8))
            return .hibcc
        }
        if text.hasPrefix("(") {
            try validateGS1HumanReadable(text)
            return .gs1
        }
        if text.utf8.allSatisfy(isDigit) {
            try validateGTIN(Array(text.utf8))
            return .gs1
        }
        throw LedgerError(.invalidUDI, "\"\(text.prefix(40))\" is neither a GS1 UDI (digits or (01)…) nor an HIBCC UDI (starting with +)")
    }

    // MARK: GS1

    /// GS1 mod-10: from the right, digits are weighted 3,1,3,1…; the check digit brings the sum to a multiple of 10.
    public static func gs1CheckDigit(_ digits: some Collection<UInt8>) -> UInt8 {
        var sum = 0
        for (position, digit) in digits.reversed().enumerated() {
            sum += Int(digit - 48) * (position % 2 == 0 ? 3 : 1)
        }
        return UInt8((10 - sum % 10) % 10) + 48
    }

    static func validateGTIN(_ digits: [UInt8]) throws(LedgerError) {
        guard [8, 12, 13, 14].contains(digits.count), digits.allSatisfy(isDigit) else {
            throw LedgerError(.invalidUDI, "a GTIN has 8, 12, 13 or 14 digits, got \(digits.count)")
        }
        let expected = gs1CheckDigit(digits.dropLast())
        guard digits.last == expected else {
            throw LedgerError(.invalidUDI, "GTIN check digit is \(Character(Unicode.Scalar(digits.last!))), expected \(Character(Unicode.Scalar(expected)))")
        }
    }

    static func validateGS1HumanReadable(_ text: String) throws(LedgerError) {
        var elements: [(ai: String, value: String)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            guard rest.first == "(", let close = rest.firstIndex(of: ")") else {
                throw LedgerError(.invalidUDI, "GS1 UDI: expected (AI) at \"\(rest.prefix(20))\"")
            }
            let ai = String(rest[rest.index(after: rest.startIndex)..<close])
            let afterClose = rest.index(after: close)
            let end = rest[afterClose...].firstIndex(of: "(") ?? rest.endIndex
            elements.append((ai, String(rest[afterClose..<end])))
            rest = rest[end...]
        }
        guard let first = elements.first, first.ai == "01" else {
            throw LedgerError(.invalidUDI, "GS1 UDI must start with (01) and the device's GTIN")
        }
        guard first.value.utf8.count == 14 else {
            throw LedgerError(.invalidUDI, "GS1 (01) must be followed by 14 digits")
        }
        try validateGTIN(Array(first.value.utf8))
        var seen: Set<String> = ["01"]
        for element in elements.dropFirst() {
            guard seen.insert(element.ai).inserted else {
                throw LedgerError(.invalidUDI, "GS1 UDI repeats (\(element.ai))")
            }
            switch element.ai {
            case "11", "17":
                let digits = Array(element.value.utf8)
                guard digits.count == 6, digits.allSatisfy(isDigit),
                      let month = Int(element.value.dropFirst(2).prefix(2)), (1...12).contains(month),
                      let day = Int(element.value.suffix(2)), (0...31).contains(day)
                else {
                    throw LedgerError(.invalidUDI, "GS1 (\(element.ai)) must be a date YYMMDD")
                }
            case "10", "21":
                guard (1...20).contains(element.value.utf8.count), element.value.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                    throw LedgerError(.invalidUDI, "GS1 (\(element.ai)) must be 1...20 printable characters")
                }
            default:
                throw LedgerError(.invalidUDI, "GS1 UDI: application identifier (\(element.ai)) is not a UDI production identifier")
            }
        }
    }

    // MARK: HIBCC

    static let hibccAlphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%".utf8)

    static func hibccValue(_ c: UInt8) -> Int? { hibccAlphabet.firstIndex(of: c) }

    /// The mod-43 check character over `data` (which starts with `+`).
    public static func hibccCheckCharacter(_ data: some Sequence<UInt8>) -> UInt8? {
        var sum = 0
        for c in data {
            guard let value = hibccValue(c) else { return nil }
            sum += value
        }
        return hibccAlphabet[sum % 43]
    }

    static func validateHIBCC(_ text: [UInt8]) throws(LedgerError) {
        guard text.count >= 8 else {
            throw LedgerError(.invalidUDI, "HIBCC UDI is too short: + ‖ 4-character labeler ‖ product ‖ unit digit ‖ check")
        }
        let body = Array(text.dropLast())
        guard let check = hibccCheckCharacter(body) else {
            throw LedgerError(.invalidUDI, "HIBCC UDI contains a character outside 0-9 A-Z - . space $ / + %")
        }
        guard text.last == check else {
            throw LedgerError(.invalidUDI, "HIBCC check character is \(Character(Unicode.Scalar(text.last!))), expected \(Character(Unicode.Scalar(check)))")
        }
        let primary = body.dropFirst().prefix { $0 != UInt8(ascii: "/") }
        let lic = Array(primary.prefix(4))
        guard lic.count == 4, isUpper(lic[0]), lic.allSatisfy({ isUpper($0) || isDigit($0) }) else {
            throw LedgerError(.invalidUDI, "HIBCC labeler id must be 4 alphanumeric characters starting with a letter")
        }
        let rest = Array(primary.dropFirst(4))
        guard rest.count >= 2, rest.count <= 19, let unit = rest.last, isDigit(unit),
              rest.dropLast().allSatisfy({ isUpper($0) || isDigit($0) })
        else {
            throw LedgerError(.invalidUDI, "HIBCC product number must be 1...18 alphanumeric characters followed by a unit-of-measure digit")
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    private static func isUpper(_ c: UInt8) -> Bool { c >= 65 && c <= 90 }
}
