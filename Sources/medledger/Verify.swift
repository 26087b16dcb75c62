import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore
import Node

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-verify a whole ledger from disk without trusting the database.",
        discussion: """
            Checks the hash chain, block signatures, every transaction's signature and certificate (valid at \
            block time, not revoked), per-block and global Merkle roots, and replays every block from genesis; \
            then compares every table the API serves from with what the replay derives (state, history, the \
            device projection, Merkle nodes, checkpoints, derived columns, extra rows) and checks the syntax \
            of the local refusal audit. Reads one consistent snapshot, so it can run on a live node. Exits 0 \
            when all holds; otherwise exits 1 naming the first block, transaction, table or key that is wrong.

            Example:
              medledger verify --data ./medledger-demo --json
            """
    )

    @Option(name: .long, help: "Network directory holding ledger.sqlite (or pass --database).")
    var data: String

    @Option(name: .long, help: "Ledger database path (default: DATA/ledger.sqlite).")
    var database: String?

    @Flag(name: .long, help: "Print the report as JSON.")
    var json = false

    @Option(name: .long, help: "Node identity (org/name) whose key unwraps the noise secret to re-check research answers (default: the node key in DATA, if any).")
    var identity: String?

    func run() async throws {
        let path = database ?? data + "/" + NetworkDefinition.databaseFileName
        let store: LedgerStore
        do { store = try LedgerStore(readOnlyPath: path) } catch let error as LedgerError { throw UserError(error.userMessage) }
        let expected = try? NetworkDefinition.load(directory: data).networkID
        let progress = ProgressLine("verifying")
        let definition = try? NetworkDefinition.load(directory: data)
        let holder: SigningIdentity?
        if let identity {
            do { holder = try definition?.identity(named: identity, directory: data) } catch { throw UserError(error.userMessage) }
        } else {
            holder = try? definition?.defaultNode(directory: data)
        }
        let report = ChainVerifier.verify(store: store, expectedGenesis: expected, noiseKeyHolder: holder) { done, total in
            progress.update(done + 1, of: total + 1)
        }
        progress.finish()
        if json {
            Output.json(report)
        } else if report.ok {
            print("OK: \(report.blocks) blocks, \(report.transactions) transactions verified in \(String(format: "%.2f", report.seconds)) s (\(Int(report.transactionsPerSecond)) tx/s)")
            if report.checkedResearchAnswers > 0 {
                print("research answers: the values of \(report.checkedResearchAnswers) were recomputed with the network noise secret and match")
            }
            if report.uncheckedResearchAnswers > 0 {
                print("NOTE: the values of \(report.uncheckedResearchAnswers) research answers were not re-checked (that needs the network noise secret, which only nodes hold); their structure was checked and their recorded verdicts replayed")
            }
        } else {
            Output.error("verification FAILED after \(report.blocks) blocks: \(report.failure ?? "unknown")")
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the chain (blocks, transactions, signatures, certificates) as JSON (docs/formats.md).",
        discussion: """
            Example:
              medledger export --data ./medledger-demo --out chain.json
              python3 scripts/verify_export.py chain.json
            """
    )

    @Option(name: .long, help: "Network directory holding ledger.sqlite.")
    var data: String

    @Option(name: .long, help: "Output file (default: standard output).")
    var out: String?

    func run() async throws {
        let store: LedgerStore
        do { store = try LedgerStore(readOnlyPath: data + "/" + NetworkDefinition.databaseFileName) } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
        let handle: FileHandle
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: nil), let file = FileHandle(forWritingAtPath: out) else {
                throw UserError("cannot write \(out)")
            }
            handle = file
        } else {
            handle = .standardOutput
        }
        let progress = ProgressLine("exporting")
        try LedgerExporter.export(store: store, to: handle) { done, total in progress.update(done + 1, of: total + 1) }
        progress.finish()
        try handle.synchronize()
        if let out { FileHandle.standardError.write(Data("wrote \(out)\n".utf8)) }
    }
}
