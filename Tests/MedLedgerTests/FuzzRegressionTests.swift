import Foundation
import LedgerCore
import Testing

/// Replays the fuzzer's inputs through ``FuzzHarness/run(_:)``: every crash the fuzzer ever found
/// (`Fixtures/fuzz-regressions`, filled by `scripts/fuzz`) and the seed corpus (`FuzzTesting/Corpus`).
/// A regression traps with a message naming the decoder whose canonical round-trip broke.
@Suite struct FuzzRegressionTests {
    /// The repository root, from this file's location (`Tests/MedLedgerTests/FuzzRegressionTests.swift`).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The regular files directly in `directory`, sorted by name; empty when it does not exist.
    static func inputs(in directory: URL) throws -> [URL] {
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        return try FileManager.default
            .contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
            .filter { try $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func replay(_ files: [URL]) throws {
        for file in files {
            FuzzHarness.run([UInt8](try Data(contentsOf: file)))
        }
    }

    @Test func replaysFuzzRegressions() throws {
        let fixtures = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let files = try Self.inputs(in: fixtures.appendingPathComponent("fuzz-regressions"))
        try Self.replay(files)
    }

    @Test func replaysSeedCorpus() throws {
        let corpus = Self.repositoryRoot.appendingPathComponent("FuzzTesting/Corpus")
        let files = try Self.inputs(in: corpus)
        #expect(files.count > 0, "no seed inputs found in \(corpus.path)")
        try Self.replay(files)
    }
}
