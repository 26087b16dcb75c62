// libFuzzer entry points for LedgerCore's binary decoders (see ../../Package.swift for how to build).
//
// Built with `-parse-as-library`, so this file has no top-level code. SwiftPM links executables with
// `--defsym main=DecoderFuzzer_main` (so that tests could link them), which would shadow
// libFuzzer's own `main`; `DecoderFuzzer_main` therefore hands over to libFuzzer's driver.
import LedgerCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzHarness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's documented driver entry point (`int LLVMFuzzerRunDriver(int *argc, char ***argv,
/// int (*UserCb)(const uint8_t *Data, size_t Size))`).
@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("DecoderFuzzer_main")
public func decoderFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzTest(data, size) }
}
