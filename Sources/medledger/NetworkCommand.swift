import ArgumentParser
import Foundation
import LedgerCore
import Contracts
import Node

struct Network: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "The founding ceremony (draft, approve, seal, join, show), and a local network on loopback (up, status, down).",
        discussion: """
            1. Each organisation: medledger org init --id ID --kind KIND --out ORGDIR, and sends \
            ORGDIR/public/organization.json to the others.
            2. One organisation: medledger network draft --name NAME --org BUNDLE... --out draft.genesis
            3. Each organisation: medledger network approve --draft draft.genesis --org-dir ORGDIR, and \
            sends the approval file to the sealer.
            4. A founding organisation: medledger network seal --draft draft.genesis --approvals FILE... \
            --org-dir ORGDIR --out PUBDIR, and sends PUBDIR/genesis.block to the others.
            5. Each organisation: medledger network join --genesis PUBDIR/genesis.block --org-dir ORGDIR \
            --out NODEDIR, then medledger node --data NODEDIR.

            Compare the draft hash, the root CA fingerprints and the network id by another channel \
            (`medledger network show`).
            """,
        subcommands: [NetworkDraft.self, NetworkShow.self, NetworkApprove.self, NetworkSeal.self, NetworkJoin.self,
                      NetworkUp.self, NetworkStatus.self, NetworkDown.self]
    )

    /// `path` itself, or `path/relative` when `path` is a directory.
    static func file(_ path: String, orIn relative: String) -> String {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue ? path + "/" + relative : path
    }
}

struct NetworkDraft: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draft",
        abstract: "Assemble a genesis draft from the founding organisations' public bundles (no private key is read).",
        discussion: """
            Writes the exact draft bytes (docs/formats.md §5.2) that every organisation's admin approves. The network \
            noise secret is generated here, wrapped to every founding node's key and forgotten: no file holds it.

            Example:
              medledger network draft --name regional --org st-mary/public/organization.json \\
                  --org north/public/organization.json --org research/public/organization.json --out draft.genesis
            """
    )

    @Option(name: .long, help: "Network name.")
    var name: String

    @Option(name: .customLong("org"), parsing: .upToNextOption,
            help: "An organisation's public bundle (organization.json, or its organisation directory). Repeat; the order is the draft's.")
    var bundles: [String]

    @OptionGroup var settings: NetworkConfigOptions

    @Option(name: .long, help: "Draft file to write (must not exist).")
    var out: String

    func run() throws {
        do {
            let bundles = try self.bundles.map { path throws(LedgerError) in
                try OrganizationBundle.load(Network.file(path, orIn: OrganizationBundle.path))
            }
            let draft = try GenesisCeremony.draft(name: name, config: try settings.config(), organizations: bundles)
            let bytes = draft.encoded
            try SecureFile.create(out, contents: bytes, mode: 0o644)
            let summary = try DraftSummary(draft: bytes)
            print("Wrote the genesis draft \(out) (\(bytes.count) bytes)")
            print("  draft hash: \(summary.draft.hex)")
            print("  needs approvals from \(summary.requiredApprovals) of \(summary.organizations.count) organisations (policy: \(summary.policy))")
            print("Each organisation approves it with: medledger network approve --draft \(out) --org-dir ITS-DIRECTORY")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}

struct NetworkShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print what a genesis draft or a sealed genesis block says, as JSON.",
        discussion: """
            Example:
              medledger network show --draft draft.genesis
              medledger network show --genesis network/genesis.block
            """
    )

    @Option(name: .long, help: "A genesis draft file.")
    var draft: String?

    @Option(name: .long, help: "A genesis block file (genesis.block).")
    var genesis: String?

    func run() throws {
        do {
            switch (draft, genesis) {
            case (let draft?, nil):
                Output.json(try DraftSummary(draft: try SecureFile.read(draft)))
            case (nil, let genesis?):
                let block = try Block(decoding: try SecureFile.read(genesis))
                let definition = try NetworkDefinition(genesis: block)
                var summary = try DraftSummary(draft: try GenesisCharter.of(block).draft)
                summary.networkID = definition.networkID
                summary.approvedBy = definition.approvedBy
                summary.sealedBy = definition.sealedBy
                Output.json(summary)
            default:
                throw ValidationError("give exactly one of --draft and --genesis")
            }
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}

struct NetworkApprove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Check a genesis draft against this organisation's directory and sign its exact bytes as its admin.",
        discussion: """
            Refused unless the draft would execute, lists this organisation exactly as its directory does (name, \
            kind, root CA, members) and gives this organisation's nodes the committed noise secret. Read the \
            summary it prints (or `medledger network show --draft`) before sending the approval to the sealer.

            Example:
              medledger network approve --draft draft.genesis --org-dir ./st-mary --expect-hash 3f2a…
            """
    )

    @Option(name: .long, help: "The genesis draft file.")
    var draft: String

    @Option(name: .long, help: "This organisation's directory (from `medledger org init`).")
    var orgDir: String

    @Option(name: .long, help: "The admin who signs (default: the organisation's first admin).")
    var admin: String?

    @Option(name: .long, help: "Refuse unless the draft's hash is this one (64 hex digits, compared out of band).")
    var expectHash: String?

    @Option(name: .long, help: "Approval file to write (default: ORG-DIR/public/approval-<draft hash prefix>.json).")
    var out: String?

    func run() throws {
        do {
            let bytes = try SecureFile.read(draft)
            let hash = Hash256.of(bytes)
            if let expectHash {
                guard let expected = Hash256(hex: expectHash) else { throw ValidationError("--expect-hash must be 64 hex digits") }
                guard expected == hash else {
                    throw LedgerError(.draftMismatch, "\(draft) has hash \(hash.hex), not the expected \(expected.hex)")
                }
            }
            let organization = try OrganizationDirectory.load(orgDir)
            let approval = try GenesisCeremony.approve(draft: bytes, organization: organization, admin: admin)
            let path = out ?? orgDir + "/public/approval-\(hash.hex.prefix(16)).json"
            try SecureFile.create(path, contents: approval.json, mode: 0o644)
            let summary = try DraftSummary(draft: bytes)
            print("\(organization.id) approves draft \(hash.hex) of network \(summary.name):")
            for entry in summary.organizations {
                print("  \(entry.id) (\(entry.kind.rawValue)) root \(entry.rootFingerprint.hex.prefix(16))…, \(entry.members.count) members")
            }
            print("  policy: \(summary.policy), \(summary.requiredApprovals) approvals needed")
            print("Wrote \(path); send it to the sealing organisation.")
        } catch let error as LedgerError {
            throw UserError(error.userMessage)
        }
    }
}

struct NetworkSeal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Seal block 0 with this organisation's node once the approvals satisfy the draft's approval policy.",
        discussion: """
            Writes OUT/genesis.block and OUT/network.json (public). Refused, naming the approval at fault, when an \
            approval is for another draft, by a non-admin, by an organisation not in the draft, a second one of \
            one organisation, or when there are too few.

            Example:
              medledger network seal --draft draft.genesis --approvals st-mary.json north.json --org-dir ./st-mary --out ./network
            """
    )

    @Option(name: .long, help: "The genesis draft file.")
    var draft: String

    @Option(name: .long, parsing: .upToNextOption, help: "Approval files (from `medledger network approve`).")
    var approvals: [String]

    @Option(name: .long, help: "The sealing organisation's directory.")
    var orgDir: String

    @Option(name: .long, help: "The node that seals (default: the organisation's first node).")
    var node: String?

    @Option(name: .long, help: "Directory to write genesis.block and network.json to (created; files must not exist).")
    var out = "./network"

    func run() throws {
        do {
            let bytes = try SecureFile.read(draft)
            let files = try approvals.map { path throws(LedgerError) in try GenesisApprovalFile.load(path) }
            let organization = try OrganizationDirectory.load(orgDir)
            let block = try GenesisCeremony.seal(draft: bytes, approvals: files, organization: organization, node: node,
                                                 time: Clock.nowMilliseconds())
            let definition = try NetworkDefinition(genesis: block)
            try SecureFile.makeDirectory(out)
            try SecureFile.create(out + "/" + NetworkDefinition.genesisFileName, contents: block.encoded, mode: 0o644)
            try definition.write(to: out)
            print("Sealed network \(definition.name)")
            print("  network id: \(definition.networkID.hex)")
            print("  approved by: \(definition.approvedBy.joined(separator: ", "))")
            print("Send \(out)/\(NetworkDefinition.genesisFileName) to every founding organisation; each joins with:")
            print("  medledger network join --genesis \(out)/\(NetworkDefinition.genesisFileName) --org-dir ITS-DIRECTORY --out NODE-DIRECTORY")
        } catch {
            // Everything above throws LedgerError only.
            throw UserError(error.userMessage)
        }
    }
}

struct NetworkJoin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Check a sealed genesis from this organisation's side and create its node directory.",
        discussion: """
            Re-executes block 0 (approvals included), checks that it lists this organisation exactly as its \
            directory does, that its nodes unwrap the noise secret, that it is not sealed in the future and that \
            this organisation approved it (--unapproved to join one it did not), then writes NODEDIR/network.json \
            (derived from the block), NODEDIR/genesis.block and NODEDIR/orgs/ID, a copy of the organisation \
            directory without its CA key.

            Example:
              medledger network join --genesis ./network/genesis.block --org-dir ./st-mary --out ./st-mary-node
              medledger node --data ./st-mary-node
            """
    )

    @Option(name: .long, help: "The sealed genesis block (a genesis.block file, or a directory holding one).")
    var genesis: String

    @Option(name: .long, help: "This organisation's directory.")
    var orgDir: String

    @Option(name: .long, help: "The node directory to create (new or empty).")
    var out: String

    @Flag(name: .long, help: "Join although this organisation did not approve the genesis (others may have founded it under a majority policy).")
    var unapproved = false

    @Flag(name: .long, help: "This organisation is not a founder: the network admitted it later (`governance propose-organization`); its node starts from genesis.")
    var admitted = false

    func run() throws {
        do {
            let block = try Block(decoding: try SecureFile.read(Network.file(genesis, orIn: NetworkDefinition.genesisFileName)))
            let organization = try OrganizationDirectory.load(orgDir)
            let definition = try GenesisCeremony.join(genesis: block, organization: organization, into: out, unapproved: unapproved, admitted: admitted)
            print("\(organization.id) joined network \(definition.name)")
            print("  network id: \(definition.networkID.hex) (compare it with the other organisations)")
            print("  approved by: \(definition.approvedBy.joined(separator: ", "))")
            print("Node directory \(out) (the CA key stayed in \(orgDir)). Start the node with: medledger node --data \(out)")
        } catch {
            // Everything above throws LedgerError only.
            throw UserError(error.userMessage)
        }
    }
}

/// What `network show` prints about a draft (and, for a sealed genesis, its seal).
struct DraftSummary: Encodable {
    struct Member: Encodable {
        var name: String
        var role: Role
        var fingerprint: Hash256
    }

    struct Organization: Encodable {
        var id: String
        var name: String
        var kind: OrganizationKind
        var rootFingerprint: Hash256
        var members: [Member]

        enum CodingKeys: String, CodingKey {
            case id, name, kind, members
            case rootFingerprint = "root_fingerprint"
        }
    }

    var name: String
    var draft: Hash256
    var policy: String
    var requiredApprovals: Int
    var organizations: [Organization]
    var noiseKeyRecipients: Int
    var networkID: Hash256?
    var approvedBy: [String]?
    var sealedBy: Hash256?

    enum CodingKeys: String, CodingKey {
        case name, draft, policy, organizations
        case requiredApprovals = "required_approvals"
        case noiseKeyRecipients = "noise_key_recipients"
        case networkID = "network_id"
        case approvedBy = "approved_by"
        case sealedBy = "sealed_by"
    }

    init(draft bytes: [UInt8]) throws(LedgerError) {
        let draft = try GenesisConfig(decoding: bytes)
        let founders = try draft.foundingMembers()
        name = draft.networkName
        self.draft = Hash256.of(bytes)
        policy = draft.config.approvalPolicy.summary
        requiredApprovals = max(1, draft.config.approvalPolicy.required(organizations: draft.organizations.count))
        noiseKeyRecipients = draft.noiseKey?.wrapped.count ?? 0
        organizations = draft.organizations.map { organization in
            Organization(id: organization.id, name: organization.name, kind: organization.kind,
                         rootFingerprint: Hash256.of(organization.rootCertificate),
                         members: founders.filter { $0.organization == organization.id }.map {
                             Member(name: $0.name, role: $0.role, fingerprint: $0.fingerprint)
                         })
        }
    }
}
