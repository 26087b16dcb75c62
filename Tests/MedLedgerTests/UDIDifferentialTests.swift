import Testing
import Foundation
import LedgerCore

/// The Swift UDI parser against the independent Python one in scripts/verify_export.py (which the
/// export verifier uses to re-check every committed registration): seeded mutations of real UDIs
/// must get the same verdict, canonical key, lot and dates from both.
struct UDIDifferentialTests {
    static let seeds = [
        "(01)00614141999996(21)12345", "(17)251200(21)12345(11)240115(01)0614141999996(10)L7", "96385074", "036000291452",
        "(01)51022222233336(11)141231(17)150707(10)A213B1(21)1234", "]d2010061414199999610L7\u{1D}2112345",
        "]Q3\u{1D}0100614141999996\u{1D}17251231211234\u{1D}", "+A123BJC5D6E71G", "+A99912345/$$52001510X33",
        "+A123BJC5D6E71/$$0327LOT5/S12345/16D20240115$", "+A123BJC5D6E71/$$+52406012345Z", "+A123BJC5D6E71/$$+3271231SN771",
        "+A123BJC5D6E71/27001SN1W", "+A123BJC5D6E71/$+13999 ", "+A123BJC5D6E71/$+15999/", "+H123ABC01234567890D",
    ]
    static let alphabet = Array("0123456789()$/+%-. ABCDLSQZaz]\u{1D}".utf8)

    /// One line per input: `canonical lot production expiry` (dates as first…last day numbers), or `-`.
    static func describe(_ text: String) -> String {
        guard let parsed = try? UDI.parse(text) else { return "-" }
        func date(_ d: UDI.LabelDate?) -> String { d.map { "\($0.firstDay)..\($0.lastDay)" } ?? "none" }
        return "\(parsed.canonical) \(parsed.lot ?? "none") \(date(parsed.productionDate)) \(date(parsed.expiryDate))"
    }

    static func mutations(count: Int) -> [String] {
        var state: UInt64 = 0x5EED_0DD1
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var out = seeds
        while out.count < count {
            var bytes = Array(seeds[next(seeds.count)].utf8)
            for _ in 0...next(3) {
                let position = next(bytes.count + 1)
                switch next(4) {
                case 0 where position < bytes.count: bytes[position] = alphabet[next(alphabet.count)]
                case 1: bytes.insert(alphabet[next(alphabet.count)], at: position)
                case 2 where position < bytes.count: bytes.remove(at: position)
                default:  // fix the HIBCC check character, so mutations get past it
                    if bytes.first == UInt8(ascii: "+"), bytes.count > 1,
                       let check = UDI.hibccCheckCharacter(bytes.dropLast()) { bytes[bytes.count - 1] = check }
                }
            }
            if let text = String(validating: bytes, as: UTF8.self) { out.append(text) }
        }
        return out
    }

    @Test func swiftAndPythonParsersAgree() throws {
        let inputs = Self.mutations(count: 3000)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/verify_export.py").path
        let program = """
            import importlib.util, json, sys
            spec = importlib.util.spec_from_file_location("verify_export", sys.argv[1])
            v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)
            def date(d): return "none" if d is None else f"{d[0]}..{d[1]}"
            out = []
            for text in json.load(sys.stdin):
                try:
                    u = v.parse_udi(text)
                except v.UDIError:
                    out.append("-"); continue
                out.append(f"{v.canonical_udi(u)} {u['lot'] or 'none'} {date(u['production'])} {date(u['expiry'])}")
            json.dump(out, sys.stdout)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", program, script]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: inputs))
        try stdin.fileHandleForWriting.close()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let python = try #require(try JSONSerialization.jsonObject(with: data) as? [String])
        try #require(python.count == inputs.count)
        var accepted = 0
        for (index, input) in inputs.enumerated() {
            let swift = Self.describe(input)
            #expect(swift == python[index], "\(input.debugDescription)")
            if swift != "-" { accepted += 1 }
            if let key = try? UDI.canonicalKey(input) { #expect(try UDI.canonicalKey(key) == key) }
        }
        #expect(accepted > 300)  // the mutations exercise the accepting paths too
    }
}
