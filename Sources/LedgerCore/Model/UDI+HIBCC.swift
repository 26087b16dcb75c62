extension UDI {
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

    static func isAlphanumeric(_ c: UInt8) -> Bool { isUpper(c) || isDigit(c) }

    /// HIBC Supplier Labeling Standard, primary and secondary data concatenated with `/`:
    /// `+` ‖ labeler (4) ‖ product (1–18) ‖ unit of measure (digit) [‖ `/` secondary [‖ `/` field …]] ‖ check.
    /// HIBCC data is upper case only; lower case is refused, not folded (it is not HIBCC data).
    static func parseHIBCC(_ text: [UInt8]) throws(LedgerError) -> Parsed {
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
        let fields = body.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        let primary = fields[0]
        let lic = Array(primary.prefix(4))
        guard lic.count == 4, isUpper(lic[0]), lic.allSatisfy(isAlphanumeric) else {
            throw LedgerError(.invalidUDI, "HIBCC labeler id must be 4 alphanumeric characters starting with a letter")
        }
        let rest = primary.dropFirst(4)
        guard rest.count >= 2, rest.count <= 19, let unit = rest.last, isDigit(unit), rest.dropLast().allSatisfy(isAlphanumeric) else {
            throw LedgerError(.invalidUDI, "HIBCC product number must be 1...18 alphanumeric characters followed by a unit-of-measure digit")
        }
        var parsed = Parsed(agency: .hibcc, deviceIdentifier: String(decoding: primary, as: UTF8.self))
        if fields.count > 1 { try parseHIBCCSecondary(fields[1], into: &parsed) }
        for field in fields.dropFirst(2) { try parseHIBCCSupplemental(field, into: &parsed) }
        return parsed
    }

    /// `$` lot · `$+` serial · `$$` date lot · `$$+` date serial · `YYJJJ` lot (the date is the expiry).
    static func parseHIBCCSecondary(_ field: ArraySlice<UInt8>, into parsed: inout Parsed) throws(LedgerError) {
        let dollar = UInt8(ascii: "$"), plus = UInt8(ascii: "+")
        var rest = field
        var isSerial = false
        if rest.first == dollar {
            rest = rest.dropFirst()
            if rest.first == dollar {
                rest = rest.dropFirst()
                if rest.first == plus {
                    rest = rest.dropFirst()
                    isSerial = true
                }
                parsed.expiryDate = try hibccFlaggedDate(&rest)
            } else if rest.first == plus {
                rest = rest.dropFirst()
                isSerial = true
            }
        } else {
            guard rest.count >= 5, rest.prefix(5).allSatisfy(isDigit) else {
                throw LedgerError(.invalidUDI, "HIBCC secondary data must start with $, $+, $$, $$+ or a YYJJJ date")
            }
            parsed.expiryDate = try hibccJulian(rest.prefix(5))
            rest = rest.dropFirst(5)
        }
        let value = try hibccLotOrSerial(rest, what: isSerial ? "serial" : "lot")
        if isSerial { parsed.serial = value } else { parsed.lot = value }
    }

    /// `/S` serial · `/14D` expiry YYYYMMDD · `/16D` manufacture date YYYYMMDD (ANSI MH10.8.2 data identifiers).
    static func parseHIBCCSupplemental(_ field: ArraySlice<UInt8>, into parsed: inout Parsed) throws(LedgerError) {
        if field.first == UInt8(ascii: "S") {
            guard parsed.serial == nil else { throw LedgerError(.invalidUDI, "HIBCC UDI carries a serial twice") }
            parsed.serial = try hibccLotOrSerial(field.dropFirst(), what: "serial")
            return
        }
        let identifier = String(decoding: field.prefix(3), as: UTF8.self)
        guard identifier == "14D" || identifier == "16D" else {
            throw LedgerError(.invalidUDI, "HIBCC supplemental data field \"\(String(decoding: field.prefix(8), as: UTF8.self))\" is not /S, /14D or /16D")
        }
        let value = field.dropFirst(3)
        guard value.count == 8, value.allSatisfy(isDigit) else { throw LedgerError(.invalidUDI, "HIBCC /\(identifier) must be YYYYMMDD") }
        let digits = value.map { Int($0 - 48) }
        let year = digits[0...3].reduce(0) { $0 * 10 + $1 }
        guard (1900...2199).contains(year) else { throw LedgerError(.invalidUDI, "HIBCC /\(identifier) year must be 1900...2199") }
        let date = try hibccDate(year: year, month: digits[4] * 10 + digits[5], day: digits[6] * 10 + digits[7])
        if identifier == "14D" {
            guard parsed.expiryDate == nil else { throw LedgerError(.invalidUDI, "HIBCC UDI carries an expiry date twice") }
            parsed.expiryDate = date
        } else {
            guard parsed.productionDate == nil else { throw LedgerError(.invalidUDI, "HIBCC UDI carries a manufacture date twice") }
            parsed.productionDate = date
        }
    }

    static func hibccLotOrSerial(_ value: ArraySlice<UInt8>, what: String) throws(LedgerError) -> String {
        guard (1...18).contains(value.count), value.allSatisfy(isAlphanumeric) else {
            throw LedgerError(.invalidUDI, "HIBCC \(what) must be 1...18 characters 0-9 A-Z")
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// The expiry after `$$`/`$$+`: `0`/`1` start MMYY; then 2 MMDDYY, 3 YYMMDD, 4 YYMMDDHH, 5 YYJJJ,
    /// 6 YYJJJHH, 7 none. 8 and 9 (quantity first) are not accepted.
    static func hibccFlaggedDate(_ rest: inout ArraySlice<UInt8>) throws(LedgerError) -> LabelDate? {
        guard let flag = rest.first, isDigit(flag) else { throw LedgerError(.invalidUDI, "HIBCC $$ must be followed by a date format digit") }
        func digits(_ count: Int, from offset: Int) throws(LedgerError) -> [Int] {
            let slice = rest.dropFirst(offset).prefix(count)
            guard slice.count == count, slice.allSatisfy(isDigit) else { throw LedgerError(.invalidUDI, "HIBCC date is cut short or not digits") }
            return slice.map { Int($0 - 48) }
        }
        let date: LabelDate?
        switch flag {
        case UInt8(ascii: "0"), UInt8(ascii: "1"):
            let d = try digits(4, from: 0)
            date = try hibccDate(year: labelYear(d[2] * 10 + d[3]), month: d[0] * 10 + d[1], day: 0, monthOnly: true)
            rest = rest.dropFirst(4)
        case UInt8(ascii: "2"):
            let d = try digits(6, from: 1)
            date = try hibccDate(year: labelYear(d[4] * 10 + d[5]), month: d[0] * 10 + d[1], day: d[2] * 10 + d[3])
            rest = rest.dropFirst(7)
        case UInt8(ascii: "3"), UInt8(ascii: "4"):
            let hours = flag == UInt8(ascii: "4")
            let d = try digits(hours ? 8 : 6, from: 1)
            if hours, d[6] * 10 + d[7] > 23 { throw LedgerError(.invalidUDI, "HIBCC hour must be 00...23") }
            date = try hibccDate(year: labelYear(d[0] * 10 + d[1]), month: d[2] * 10 + d[3], day: d[4] * 10 + d[5])
            rest = rest.dropFirst(hours ? 9 : 7)
        case UInt8(ascii: "5"), UInt8(ascii: "6"):
            let hours = flag == UInt8(ascii: "6")
            let d = try digits(hours ? 7 : 5, from: 1)
            if hours, d[5] * 10 + d[6] > 23 { throw LedgerError(.invalidUDI, "HIBCC hour must be 00...23") }
            date = try hibccJulian(rest.dropFirst().prefix(5))
            rest = rest.dropFirst(hours ? 8 : 6)
        case UInt8(ascii: "7"):
            date = nil
            rest = rest.dropFirst()
        default:
            throw LedgerError(.invalidUDI, "HIBCC $$ date format \(Character(Unicode.Scalar(flag))) (quantity) is not accepted")
        }
        return date
    }

    /// `YYJJJ`: year ``labelYear(_:)``, day of the year 001…365 (366 in leap years).
    static func hibccJulian(_ value: ArraySlice<UInt8>) throws(LedgerError) -> LabelDate {
        guard value.count == 5, value.allSatisfy(isDigit) else { throw LedgerError(.invalidUDI, "HIBCC Julian date must be YYJJJ") }
        let d = value.map { Int($0 - 48) }
        let year = labelYear(d[0] * 10 + d[1]), dayOfYear = d[2] * 100 + d[3] * 10 + d[4]
        let length = LabelDate.daysIn(month: 2, year: year) == 29 ? 366 : 365
        guard (1...length).contains(dayOfYear) else { throw LedgerError(.invalidUDI, "HIBCC Julian day \(dayOfYear) is not a day of \(year)") }
        let c = CivilDate.components(days: CivilDate.days(year: year, month: 1, day: 1) + Int64(dayOfYear - 1))
        return LabelDate(year: c.year, month: c.month, day: c.day)
    }

    /// A real calendar date; `day` 0 only for the month-only format (MMYY).
    static func hibccDate(year: Int, month: Int, day: Int, monthOnly: Bool = false) throws(LedgerError) -> LabelDate {
        guard (1...12).contains(month), ((monthOnly ? 0 : 1)...LabelDate.daysIn(month: month, year: year)).contains(day) else {
            throw LedgerError(.invalidUDI, "HIBCC date \(year)-\(month)-\(day) is not a date")
        }
        return LabelDate(year: year, month: month, day: day)
    }
}
