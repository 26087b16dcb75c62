import Testing
import LedgerCore
import Contracts
import Collector
import LedgerTesting

/// Finding 8 of issue 7: one physical device registered under many UDI spellings. The ledger keys a
/// device by its canonical UDI, so every spelling of the same unit is the same device.
struct DeviceIdentityTests {
    static let unit = "(01)00614141999996(21)SM1"

    /// Before the fix each of these spellings was committed as a second device (the UDI string was
    /// the key): north-general could register st-mary's unit again and split its provenance.
    @Test(arguments: [
        "(01)00614141999996(10)L7(21)SM1",  // a lot added
        "(01)00614141999996(21)SM1(10)L7",  // elements reordered
        "(21)SM1(01)00614141999996",
        "(01)00614141999996(11)220314(21)SM1",  // a production date added (the one in the attributes)
        "(01)0614141999996(21)SM1",  // the GTIN written with 13 digits
        "0100614141999996" + "21SM1",  // the element string a scanner transmits
    ])
    func anotherSpellingOfARegisteredUnitIsTheSameDevice(_ spelling: String) throws {
        var net = try TestNetwork()
        #expect(net.apply(net.device("st-mary/collector", .register(udi: Self.unit, attributes: Fixtures.attributes()))) == [nil])
        let again = net.apply(net.device("north-general/collector", .register(udi: spelling, attributes: Fixtures.attributes())))
        #expect(again.first??.code == .deviceExists)
        #expect(net.device(Self.unit)?.owner == "st-mary")
        #expect(net.device(spelling)?.udi == Self.unit)
    }

    @Test func twoSpellingsInOneBlockAreOneDevice() throws {
        var net = try TestNetwork()
        let refusals = net.apply(net.device("st-mary/collector", .register(udi: "(01)0614141999996(10)A(21)SM9", attributes: Fixtures.attributes())),
                                 net.device("north-general/collector", .register(udi: "(21)SM9(01)00614141999996", attributes: Fixtures.attributes())))
        #expect(refusals.map { $0?.code } == [nil, .deviceExists])
        #expect(net.device("(01)00614141999996(21)SM9")?.owner == "st-mary")
    }

    @Test func anImpossibleProductionDateIsRefused() throws {
        var net = try TestNetwork()
        let refusals = net.apply(net.device("st-mary/collector", .register(udi: "(01)00614141999996(11)240231(21)SM2", attributes: Fixtures.attributes())))
        #expect(refusals.first??.code == .invalidUDI)
        #expect(net.device("(01)00614141999996(21)SM2") == nil)
    }

    @Test func bareGTINsOfThirteenAndFourteenDigitsAreOneModelAndNoUnit() throws {
        #expect(try UDI.canonicalKey("0614141999996") == UDI.canonicalKey("00614141999996"))
        var net = try TestNetwork()
        for model in ["0614141999996", "00614141999996", "(01)00614141999996", "+A123BJC5D6E71G", "+A99912345/$$52001510X33"] {
            let refusals = net.apply(net.device("st-mary/collector", .register(udi: model, attributes: Fixtures.attributes())))
            #expect(refusals.first??.code == .invalidUDI, "\(model) names a model, not a unit")
        }
    }

    @Test func updatesAndTransfersUnderAnySpellingAddressTheSameDevice() throws {
        var net = try TestNetwork()
        #expect(net.apply(net.device("st-mary/collector", .register(udi: Self.unit, attributes: Fixtures.attributes()))) == [nil])
        var changes = DeviceAttributes()
        changes.batteryLevel = 55
        #expect(net.apply(net.device("st-mary/collector", .update(udi: "(21)SM1(10)L7(01)0614141999996", event: "battery", changes: changes))) == [nil])
        #expect(net.device(Self.unit)?.version == 2)
        #expect(net.device(Self.unit)?.attributes.batteryLevel == 55)
        #expect(net.apply(net.device("st-mary/admin", .transfer(udi: "]C1010061414199999621SM1", to: "north-general"))) == [nil])
        #expect(net.apply(net.device("north-general/admin", .acceptTransfer(udi: "(01)0614141999996(21)SM1"))) == [nil])
        #expect(net.device(Self.unit)?.owner == "north-general")
        #expect(net.apply(net.device("north-general/admin", .decommission(udi: "(01)00614141999996(17)300100(21)SM1", reason: "end of life"))) == [nil])
        #expect(net.device(Self.unit)?.status == .decommissioned)
        // A spelling that is no UDI is refused as such, not as an unknown device.
        #expect(net.apply(net.device("north-general/collector", .update(udi: "(01)00614141999996(21)SM1 ", event: "power", changes: changes))).first??.code == .invalidUDI)
    }

    @Test func theLabelsProductionIdentifiersAreStoredAsAttributes() throws {
        var net = try TestNetwork()
        var attributes = Fixtures.attributes()
        attributes.productionDate = nil  // taken from (11)
        let udi = "(17)271200(10)LOT9(11)220314(21)SM3(01)00614141999996"
        #expect(net.apply(net.device("st-mary/collector", .register(udi: udi, attributes: attributes))) == [nil])
        let record = try #require(net.device("(01)00614141999996(21)SM3"))
        #expect(record.udi == "(01)00614141999996(21)SM3")
        #expect(record.attributes.lot == "LOT9")
        #expect(record.attributes.productionDate == CivilDate.parse("2022-03-14"))
        #expect(record.attributes.expiryDate == CivilDate.parse("2027-12-31"))

        var wrongLot = Fixtures.attributes()
        wrongLot.lot = "LOT8"
        let refusals = net.apply(net.device("st-mary/collector", .register(udi: "(01)00614141999996(10)LOT9(21)SM4", attributes: wrongLot)),
                                 net.device("st-mary/collector", .register(udi: "(01)00614141999996(11)220315(21)SM5", attributes: Fixtures.attributes())))
        #expect(refusals.map { $0?.code } == [.invalidArgument, .invalidArgument])
    }

    @Test func hibccSpellingsOfOneUnitAreOneDevice() throws {
        var net = try TestNetwork()
        #expect(net.apply(net.device("st-mary/collector", .register(udi: "+A123BJC5D6E71/$+12345M", attributes: Fixtures.attributes()))) == [nil])
        for spelling in ["+A123BJC5D6E71/$LOT5/S12345%", "+A123BJC5D6E71/$$3271231LOT5/S12345E", "+A123BJC5D6E71/$$+52406012345Z"] {
            let again = net.apply(net.device("north-general/collector", .register(udi: spelling, attributes: Fixtures.attributes())))
            #expect(again.first??.code == .deviceExists, "\(spelling)")
        }
        #expect(net.device("+A123BJC5D6E71/$LOT5/S12345%")?.owner == "st-mary")
    }

    /// The collector's simulator generates units (with serials) already in canonical form, GS1 and HIBCC.
    @Test func simulatedUDIsAreCanonicalUnits() throws {
        var simulator = DeviceSimulator(hospital: "st-mary", seed: 7)
        var agencies: Set<String> = []
        for _ in 0..<200 {
            let udi = simulator.newDevice(today: 20_400).udi
            let parsed = try UDI.parse(udi)
            #expect(parsed.canonical == udi)
            #expect(parsed.serial != nil)
            agencies.insert(parsed.agency.rawValue)
        }
        #expect(agencies == ["gs1", "hibcc"])
    }
}
