import Foundation
public import LedgerCore
import Contracts
public import LedgerStore

/// Writes the whole chain as JSON (format `medledger-export/1`, see docs/formats.md): every block's
/// exact header bytes and signature, every envelope's exact bytes with its execution result, and
/// every certificate ever registered, so a third party can verify the chain in another language.
///
/// The output is streamed block by block, so exporting a large ledger needs little memory.
public enum LedgerExporter {
    public static func export(store: LedgerStore, to output: FileHandle, progress: ((UInt64, UInt64) -> Void)? = nil) throws {
        guard let tip = try store.tip() else { throw LedgerError(.notFound, "the ledger has no blocks") }
        guard let genesis = try store.block(at: 0) else { throw LedgerError(.storage, "block 0 is missing") }
        let name = try store.value(forKey: StateKey.networkName).flatMap { try StringList(decoding: $0).values.first } ?? ""

        func write(_ text: String) { output.write(Data(text.utf8)) }
        func json(_ value: String) -> String {
            let data = try! JSONEncoder().encode(value)
            return String(decoding: data, as: UTF8.self)
        }

        write("{\n  \"format\": \"medledger-export/1\",\n")
        write("  \"network_id\": \"\(genesis.header.hash.hex)\",\n")
        write("  \"network_name\": \(json(name)),\n")
        write("  \"height\": \(tip.height),\n  \"log_size\": \(tip.logSize),\n  \"log_root\": \"\(tip.logRoot.hex)\",\n")
        write("  \"organizations\": [\n")
        let organizations = try store.state(prefix: "org/", limit: 100_000)
        for (index, entry) in organizations.enumerated() {
            let organization = try Organization(decoding: entry.value)
            write("    {\"id\": \(json(organization.id)), \"name\": \(json(organization.name)), \"kind\": \"\(organization.kind.rawValue)\", \"active\": \(organization.active), \"root_certificate\": \"\(Data(organization.rootCertificate).base64EncodedString())\"}")
            write(index + 1 < organizations.count ? ",\n" : "\n")
        }
        write("  ],\n  \"certificates\": [\n")
        var after: String? = nil
        var first = true
        while true {
            let page = try store.state(prefix: "mem/", limit: 1000, after: after)
            for entry in page {
                let member = try Member(decoding: entry.value)
                write(first ? "" : ",\n")
                first = false
                let revoked = member.revokedAt.map(String.init) ?? "null"
                write("    {\"fingerprint\": \"\(member.fingerprint.hex)\", \"organization\": \(json(member.organization)), \"role\": \"\(member.role.rawValue)\", \"name\": \(json(member.certificate.name)), \"revoked_at\": \(revoked), \"certificate\": \"\(Data(member.certificate.der).base64EncodedString())\"}")
            }
            guard let last = page.last, page.count == 1000 else { break }
            after = last.key
        }
        write("\n  ],\n  \"blocks\": [\n")
        for height in 0...tip.height {
            guard let block = try store.block(at: height) else { throw LedgerError(.storage, "block \(height) is missing") }
            write("    {\"height\": \(height), \"hash\": \"\(Hash256.of(block.headerBytes).hex)\", \"header\": \"\(Data(block.headerBytes).base64EncodedString())\", \"signature\": \"\(Data(block.signature).base64EncodedString())\", \"transactions\": [")
            for (index, transaction) in block.transactions.enumerated() {
                let code = transaction.result.isCommitted ? "null" : "\"\(LedgerError.Code(ledgerStatus: transaction.result.status).rawValue)\""
                write(index == 0 ? "\n" : ",\n")
                write("      {\"id\": \"\(transaction.id.hex)\", \"sequence\": \(transaction.sequence), \"status\": \(transaction.result.status), \"code\": \(code), \"write_set_hash\": \"\(transaction.result.writeSetHash.hex)\", \"envelope\": \"\(Data(transaction.envelope).base64EncodedString())\"}")
            }
            write(block.transactions.isEmpty ? "]}" : "\n    ]}")
            write(height < tip.height ? ",\n" : "\n")
            progress?(height, tip.height)
        }
        write("  ]\n}\n")
    }
}
