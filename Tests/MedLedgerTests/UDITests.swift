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
        "(21)ABC(01)00844588003288",  // must start with (01)
        "(01)00844588003288(17)141320",  // month 13
        "(01)00844588003288(99)X",  // not a UDI AI
        "(01)00844588003288(21)A(21)B",  // repeated AI
        "+A123BJC5D6E71H",  // wrong HIBCC check character
        "+A99912345/$$52001510X3",  // check character missing
        "+1234ABC5G",  // labeler must start with a letter
        "+a123BJC5D6E71G",  // lower case is outside the alphabet
        "",
        "device-42",
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
}
