import Testing
import LedgerCore

struct UDITests {
    // GS1 examples with published check digits (GS1 member organisations, bwipp tests, HL7 FHIR examples).
    @Test(arguments: [
        "96385074", "036000291452", "6291041500213", "8904000210037", "7300011000017", "09528765432108", "12345678901231",
        "(01)00844588003288(17)141120(10)7654321D(21)10987654d321",
        "(01)09504000059118(17)141120(10)7654321D(21)10987654d321",
        "(01)00643169007222(17)160128(21)BLC200461H",
        "(01)51022222233336(11)141231(17)150707(10)A213B1(21)1234",
    ])
    func acceptsGS1(_ udi: String) throws {
        #expect(try UDI.validate(udi) == .gs1)
    }

    // HIBCC examples with published mod-43 check characters (bwipp and tc-lib-barcode test suites).
    @Test(arguments: ["+A123BJC5D6E71G", "+H123ABC01234567890D", "+A99912345/$$52001510X33", "+A123BJC5D6E71/$$52001510X3C"])
    func acceptsHIBCC(_ udi: String) throws {
        #expect(try UDI.validate(udi) == .hibcc)
    }

    @Test(arguments: [
        "09528765432107",  // wrong GS1 check digit
        "6291041500214",
        "1234567",  // wrong length
        "(01)00844588003289(21)X",  // wrong check digit inside HRI
        "(01)00844588003288(17)141320",  // month 13
        "(01)00844588003288(99)X",  // not a UDI AI
        "(01)00844588003288(21)A(21)B",  // repeated AI
        "+A123BJC5D6E71H",  // wrong HIBCC check character
        "+A99912345/$$52001510X3",  // check character missing
        "+1234ABC5G",  // labeler must start with a letter
        "+a123BJC5D6E71G",  // lower case is outside the alphabet
        "",
        "device-42",
        // Attacks on the canonical form (finding 8 of issue 7).
        "(01)00614141999996(11)240231(21)1",  // 31 February
        "(01)00614141999996(17)250229(21)1",  // 29 February in a common year
        "(01)00614141999996(11)240431(21)1",  // 31 April
        "(01)00614141999996(17)251300(21)1",  // month 13
        "(01)00614141999996(17)250132(21)1",  // day 32
        "(01)00614141999996(17)2512(21)1",  // date too short
        "(01)00614141999996(21)",  // empty serial
        "(01)00614141999996(21)ABCDEFGHIJKLMNOPQRSTU",  // 21 characters
        "(01)00614141999996(21)AB CD",  // space is outside GS1 character set 82
        "(01)00614141999996(21)#1",  // so is #
        "(01)00614141999996(21)SÉ",  // and anything non-ASCII
        "(01)00614141999996(21)1(21)1",  // the same AI twice, even with the same value
        "(01)00614141999996(01)00614141999996(21)1",
        "(01)00614141999996(21)a(b",  // a parenthesis inside a value
        "(01)061414199999(21)1",  // 12 digits with a wrong check digit
        " (01)00614141999996(21)1",  // leading whitespace
        "(01)00614141999996(21)1 ",  // trailing whitespace
        "(01) 00614141999996(21)1",
        "(21)1",  // no (01)
        "https://id.gs1.org/01/00614141999996/21/1",  // GS1 Digital Link is not accepted
        "010061414199999621",  // element string with an empty serial
        "01006141419999",  // element string cut short
        "0100614141999995211",  // element string with a wrong check digit
        "]A00100614141999996211",  // a symbology that carries no GS1 data
        "+A123BJC5D6E71/$+7",  // HIBCC $+ with an empty serial (7 is the check character)
        "+A123BJC5D6E71/$+12345/S999V",  // a serial twice
        "+A123BJC5D6E71/$$2022925SN1-",  // MMDDYY 29 February 2025
        "+A123BJC5D6E71/$$3240230LOT7",  // YYMMDD 30 February 2024
        "+A123BJC5D6E71/$$80512345673",  // a quantity format
        "+A123BJC5D6E71/$$+72406012345.".lowercased(),
        "(01)00614141999996(21)1(10)" + String(repeating: "A", count: 110),  // longer than 128 bytes
    ])
    func refusesInvalid(_ udi: String) {
        #expect(throws: LedgerError.self) { try UDI.validate(udi) }
        do {
            try UDI.validate(udi)
        } catch {
            #expect(error.code == .invalidUDI)
        }
    }

    @Test func checkCharactersAreComputedAsPublished() {
        #expect(UDI.gs1CheckDigit(Array("0952876543210".utf8)) == UInt8(ascii: "8"))
        #expect(UDI.hibccCheckCharacter(Array("+H123ABC01234567890".utf8)) == UInt8(ascii: "D"))
        #expect(UDI.hibccCheckCharacter(Array("+$$52001510X3G".utf8)) == UInt8(ascii: "D"))
    }

    // MARK: Canonical identity (finding 8 of issue 7)

    /// Spellings and their canonical keys. HIBCC check characters were computed independently with
    /// scripts/verify_export.py's `hibcc_check` (Python) and checked by the parser's mod-43 check.
    @Test(arguments: [
        // GTIN-13 and GTIN-14 are one GTIN (GS1 General Specifications §3.3.2: leading zeros).
        ("0614141999996", "(01)00614141999996"),
        ("00614141999996", "(01)00614141999996"),
        ("96385074", "(01)00000096385074"),
        ("036000291452", "(01)00036000291452"),
        ("(01)00614141999996(21)12345", "(01)00614141999996(21)12345"),
        ("(01)0614141999996(21)12345", "(01)00614141999996(21)12345"),
        ("(21)12345(01)00614141999996", "(01)00614141999996(21)12345"),
        ("(01)00614141999996(10)L7(21)12345", "(01)00614141999996(21)12345"),
        ("(01)00614141999996(21)12345(10)L7", "(01)00614141999996(21)12345"),
        ("(01)00614141999996(11)240229(21)12345", "(01)00614141999996(21)12345"),
        ("(17)251200(21)12345(11)240115(01)0614141999996(10)L7", "(01)00614141999996(21)12345"),
        // The GS1 General Specifications' example element strings.
        ("(01)00844588003288(17)141120(10)7654321D(21)10987654d321", "(01)00844588003288(21)10987654d321"),
        ("(01)51022222233336(11)141231(17)150707(10)A213B1(21)1234", "(01)51022222233336(21)1234"),
        // Element strings as scanners transmit them: FNC1 as GS (0x1D), symbology identifiers.
        ("01006141419999962112345", "(01)00614141999996(21)12345"),
        ("]C101006141419999962112345", "(01)00614141999996(21)12345"),
        ("]d2010061414199999610L7\u{1D}2112345", "(01)00614141999996(21)12345"),
        ("]Q3\u{1D}0100614141999996\u{1D}17251231211234\u{1D}", "(01)00614141999996(21)1234"),
        ("2112345\u{1D}0100614141999996", "(01)00614141999996(21)12345"),
        // HIBCC: the serial from $+, $$+ or /S; lot, expiry and manufacture date are not identity.
        ("+A123BJC5D6E71G", "+A123BJC5D6E71G"),
        ("+A123BJC5D6E71/$$52001510X3C", "+A123BJC5D6E71G"),
        ("+A99912345/$$52001510X33", "+A999123457"),
        ("+A123BJC5D6E71/$+12345M", "+A123BJC5D6E71/$+12345M"),
        ("+A123BJC5D6E71/$LOT5/S12345%", "+A123BJC5D6E71/$+12345M"),
        ("+A123BJC5D6E71/$$3271231LOT5/S12345E", "+A123BJC5D6E71/$+12345M"),
        ("+A123BJC5D6E71/$$0327LOT5/S12345/16D20240115$", "+A123BJC5D6E71/$+12345M"),
        ("+A123BJC5D6E71/$$+52406012345Z", "+A123BJC5D6E71/$+12345M"),
        ("+A123BJC5D6E71/$$+3271231SN771", "+A123BJC5D6E71/$+SN77T"),
        ("+A123BJC5D6E71/$$+72406012345.", "+A123BJC5D6E71/$+2406012345Y"),
        ("+A123BJC5D6E71/27001SN1W", "+A123BJC5D6E71G"),
        // Check characters that look like whitespace or separators are still check characters.
        ("+A123BJC5D6E71/$+13999 ", "+A123BJC5D6E71/$+13999 "),
        ("+A123BJC5D6E71/$+15999/", "+A123BJC5D6E71/$+15999/"),
        ("+A123BJC5D6E71/$+16999+", "+A123BJC5D6E71/$+16999+"),
    ])
    func canonicalKeys(_ udi: String, _ canonical: String) throws {
        #expect(try UDI.canonicalKey(udi) == canonical)
        #expect(try UDI.canonicalKey(canonical) == canonical)
    }

    @Test func productionIdentifiersAreParsedAsAttributes() throws {
        let gs1 = try UDI.parse("(17)251200(21)12345(11)240115(01)0614141999996(10)L7")
        #expect(gs1.agency == .gs1)
        #expect(gs1.deviceIdentifier == "00614141999996")
        #expect(gs1.serial == "12345")
        #expect(gs1.lot == "L7")
        #expect(gs1.productionDate?.firstDay == CivilDate.parse("2024-01-15"))
        // DD 00 in an expiry: the whole month, read as its last day.
        #expect(gs1.expiryDate?.firstDay == CivilDate.parse("2025-12-01"))
        #expect(gs1.expiryDate?.lastDay == CivilDate.parse("2025-12-31"))
        let filled = try gs1.registrationAttributes(DeviceAttributes())
        #expect(filled.lot == "L7")
        #expect(filled.productionDate == CivilDate.parse("2024-01-15"))
        #expect(filled.expiryDate == CivilDate.parse("2025-12-31"))

        var conflicting = DeviceAttributes()
        conflicting.lot = "L8"
        #expect(throws: LedgerError.self) { try gs1.registrationAttributes(conflicting) }
        conflicting = DeviceAttributes()
        conflicting.productionDate = CivilDate.parse("2024-01-16")
        #expect(throws: LedgerError.self) { try gs1.registrationAttributes(conflicting) }
        var agreeing = DeviceAttributes()
        agreeing.expiryDate = CivilDate.parse("2025-12-15")  // inside the month the label names
        #expect(try gs1.registrationAttributes(agreeing).expiryDate == CivilDate.parse("2025-12-15"))

        let hibcc = try UDI.parse("+A123BJC5D6E71/$$0327LOT5/S12345/16D20240115$")
        #expect(hibcc.deviceIdentifier == "A123BJC5D6E71")
        #expect(hibcc.serial == "12345")
        #expect(hibcc.lot == "LOT5")
        #expect(hibcc.expiryDate?.lastDay == CivilDate.parse("2027-03-31"))
        #expect(hibcc.productionDate?.firstDay == CivilDate.parse("2024-01-15"))
        #expect(try UDI.parse("+A99912345/$$52001510X33").expiryDate?.firstDay == CivilDate.parse("2020-01-15"))
    }

    /// Two-digit years: the GS1 sliding window as of 2026, fixed (00…76 → 20YY, 77…99 → 19YY).
    @Test func twoDigitYearsFollowTheGS1Window() throws {
        #expect(try UDI.parse("(01)00614141999996(11)991231(21)1").productionDate?.firstDay == CivilDate.parse("1999-12-31"))
        #expect(try UDI.parse("(01)00614141999996(11)000229(21)1").productionDate?.firstDay == CivilDate.parse("2000-02-29"))
        #expect(try UDI.parse("(01)00614141999996(17)760229(21)1").expiryDate?.firstDay == CivilDate.parse("2076-02-29"))
        #expect(throws: LedgerError.self) { try UDI.parse("(01)00614141999996(11)770229(21)1") }  // 1977 is no leap year
        #expect(try UDI.parse("+A123BJC5D6E71/$$+5000601F").expiryDate?.firstDay == CivilDate.parse("2000-02-29"))
    }

    /// The fuzz harness's UDI property over every accepted example: the canonical form is a fixed point.
    @Test func canonicalFormIsAFixedPointOfTheFuzzProperty() {
        for text in ["(01)00614141999996(21)!\"%&'*+,-./:;<=>?_z", "+A123BJC5D6E71/$+12345M", "]C10100614141999996"] {
            FuzzHarness.checkUDI(text)
            #expect((try? UDI.canonicalKey(UDI.canonicalKey(text))) == (try? UDI.canonicalKey(text)))
        }
    }
}
