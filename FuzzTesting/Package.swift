// swift-tools-version: 6.1
// libFuzzer target for LedgerCore's binary decoders. Build and run with `scripts/fuzz`, or:
//   swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   .build/debug/DecoderFuzzer Corpus
import PackageDescription

let package = Package(
    name: "FuzzTesting",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "medledger", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "DecoderFuzzer",
            dependencies: [.product(name: "LedgerCore", package: "medledger")],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .enableExperimentalFeature("Extern"),
            ]
        ),
    ]
)
