import Testing
import Foundation
import Crypto
import X509
import Logging
import LedgerCore
import Contracts
import LedgerStore
@testable import Node
import LedgerTesting
#if canImport(Glibc)
import Glibc
#endif

/// Three founding organisations, each in its own temporary directory as if on its own machine:
/// hospitals `st-mary` and `north`, research coordinator `research`.
final class Founders: Sendable {
    let root: String
    let stMary: OrganizationDirectory
    let north: OrganizationDirectory
    let research: OrganizationDirectory

    init() throws {
        root = Fixtures.temporaryPath("founders")
        stMary = try OrganizationDirectory.create(id: "st-mary", name: "St Mary's Hospital", kind: .hospital, at: root + "/st-mary")
        north = try OrganizationDirectory.create(id: "north", name: "North General", kind: .hospital, at: root + "/north")
        research = try OrganizationDirectory.create(id: "research", name: "Research Consortium", kind: .research, at: root + "/research")
    }

    var all: [OrganizationDirectory] { [stMary, north, research] }

    /// A draft of all three (public bundles only), approval policy `policy`.
    func draft(_ organizations: [OrganizationDirectory]? = nil, policy: ApprovalPolicy = .majority) throws -> [UInt8] {
        try GenesisCeremony.draft(name: "regional", config: NetworkConfig(approvalPolicy: policy),
                                  organizations: (organizations ?? all).map(\.bundle)).encoded
    }

    /// An organisation that is not in the drafts.
    func outsider() throws -> OrganizationDirectory {
        try OrganizationDirectory.create(id: "outsider", name: "Outsider Clinic", kind: .hospital, at: root + "/outsider-\(UUID().uuidString)")
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

/// Issues another member from the organisation's own CA and adds it to its public bundle.
func addMember(_ organization: OrganizationDirectory, name: String, role: Role) throws -> OrganizationDirectory {
    let caKey = try P256.Signing.PrivateKey(pemRepresentation: String(decoding: try SecureFile.read(organization.path + "/ca.key"), as: UTF8.self))
    let authority = CertificateAuthority(organization: organization.id, privateKey: caKey,
                                         certificate: try Certificate.parse(pem: organization.bundle.rootCertificate, "root"))
    let key = P256.Signing.PrivateKey()
    let certificate = try authority.issue(name: "\(organization.id)/\(name)", role: role, publicKey: key.publicKey)
    try SecureFile.create(organization.path + "/\(name).key", text: key.pemRepresentation)
    try SecureFile.create(organization.path + "/\(name).pem", text: certificate.pemText, mode: 0o644)
    var bundle = organization.bundle
    bundle.members.append(.init(name: name, role: role, fingerprint: certificate.fingerprint, certificate: certificate.pemText))
    let path = organization.path + "/" + OrganizationBundle.path
    try FileManager.default.removeItem(atPath: path)
    try SecureFile.create(path, contents: bundle.json, mode: 0o644)
    return try OrganizationDirectory.load(organization.path)
}

/// The error `body` throws (nil when it does not throw one).
func refusal(_ body: () throws -> Void) -> LedgerError? {
    do {
        try body()
        return nil
    } catch let error as LedgerError {
        return error
    } catch {
        Issue.record("expected a LedgerError, got \(error)")
        return nil
    }
}

/// What a forger's node would run for block 0: the genesis contract's writes without its checks of
/// the approvals (so its header claims a committed genesis).
struct PermissiveGenesis: Contract {
    let name = GovernanceContract.name

    func execute(_ context: inout TransactionContext) throws(LedgerError) {
        let draft = try GenesisCharter(decoding: context.payload.arguments).config()
        for organization in draft.organizations { context.put(StateKey.organization(organization.id), organization) }
        context.put(StateKey.organizationIndex, StringList(draft.organizations.map(\.id).sorted()))
        context.put(StateKey.config, draft.config)
        context.put(StateKey.networkName, StringList([draft.networkName]))
        for (registration, certificate) in zip(draft.members, try draft.foundingMembers()) {
            context.put(StateKey.member(certificate.fingerprint), Member(certificate: certificate, deviceUDI: registration.deviceUDI))
        }
        if let noiseKey = draft.noiseKey { context.put(StateKey.noiseKey, noiseKey) }
    }

    func preflight(_ payload: TransactionPayload, creator: Member) throws(LedgerError) {}
}

@Suite struct GenesisCeremonyTests {
    static let now = Clock.nowMilliseconds()

    /// Organisations keep their own keys: drafted from bundles, approved by two of three (majority),
    /// sealed by st-mary's node, joined by all three; each node directory opens a node on the same
    /// network that holds the noise secret, reading only its own organisation's directory.
    @Test func ceremonyFoundsOneNetworkFromSeparateOrganisations() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let approvals = try [founders.stMary, founders.north].map { try GenesisCeremony.approve(draft: draft, organization: $0) }
        let genesis = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now)
        var networks: Set<Hash256> = []
        for organization in founders.all {
            let directory = founders.root + "/\(organization.id)-node"
            if organization.id == "research" {
                // It did not approve: joining is its explicit choice.
                let refused = refusal { try GenesisCeremony.join(genesis: genesis, organization: organization, into: directory) }
                #expect(refused?.code == .forbidden)
                #expect(refused?.message.hasPrefix("research did not approve this genesis (approved by north, st-mary)") == true)
                #expect(!FileManager.default.fileExists(atPath: directory))
            }
            let definition = try GenesisCeremony.join(genesis: genesis, organization: organization, into: directory,
                                                      unapproved: organization.id == "research")
            #expect(definition.approvedBy == ["north", "st-mary"])
            #expect(definition.localOrganizations(directory: directory).map(\.id) == [organization.id])
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/orgs") == [organization.id])
            #expect(!FileManager.default.fileExists(atPath: directory + "/orgs/\(organization.id)/ca.key"), "the CA key stays in the organisation directory")
            let node = try LedgerNode(directory: directory, logger: Logger.quiet)
            #expect(node.identity.fingerprint == organization.bundle.members.first { $0.role == .node }?.fingerprint)
            #expect(node.researchOracle.holdsSecret(epoch: 1), "\(organization.id)'s node unwraps the network noise secret")
            #expect(ChainVerifier.verify(store: node.store).ok)
            networks.insert(node.network)
            // Another organisation's key is not there to be used.
            let other = founders.all.first { $0.id != organization.id }!
            #expect(refusal { _ = try definition.identity(named: "\(other.id)/admin", directory: directory) }?.code == .notFound)
        }
        #expect(networks == [genesis.header.hash])
    }

    /// Keys are 0600, directories 0700, and no organisation's directory — nor a node directory made
    /// from it — holds a private key of another organisation.
    @Test func organisationDirectoriesHoldOnlyTheirOwnKeys() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let approvals = try founders.all.map { try GenesisCeremony.approve(draft: draft, organization: $0) }
        let genesis = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now)
        let quickStart = founders.root + "/quick-start"
        _ = try NetworkBuilder.build(NetworkSpec(name: "q", organizations: [
            .init(id: "st-mary", name: "St Mary", kind: .hospital), .init(id: "north", name: "North", kind: .hospital),
        ]), directory: quickStart)

        var directories: [(path: String, organization: String)] = founders.all.map { ($0.path, $0.id) }
        for organization in founders.all {
            let node = founders.root + "/\(organization.id)-node"
            try GenesisCeremony.join(genesis: genesis, organization: organization, into: node)
            directories.append((node, organization.id))
        }
        directories += [("st-mary", "st-mary"), ("north", "north")].map { (quickStart + "/orgs/" + $0.0, $0.1) }
        // Every public key of every organisation, to tell whose a private key is.
        var owner: [Data: String] = [:]
        for organization in founders.all {
            let (_, _, certificates) = try organization.bundle.validated()
            for certificate in certificates { owner[Data(certificate.publicKey)] = organization.id }
            let root = try Certificate.parse(pem: organization.bundle.rootCertificate, "root")
            owner[Data(P256.Signing.PublicKey(root.publicKey)!.rawRepresentation)] = organization.id
        }
        var keysSeen = 0
        for (directory, organization) in directories {
            let enumerator = try #require(FileManager.default.enumerator(atPath: directory))
            for case let relative as String in enumerator {
                let path = directory + "/" + relative
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                if isDirectory.boolValue {
                    #expect(SecureFile.mode(of: path) == 0o700, "\(path) must be 0700")
                    continue
                }
                let text = String(decoding: try SecureFile.read(path), as: UTF8.self)
                guard text.contains("PRIVATE KEY") else {
                    #expect(!relative.hasSuffix(".key"), "\(path) is named a key but holds none")
                    continue
                }
                keysSeen += 1
                #expect(relative.hasSuffix(".key") && SecureFile.mode(of: path) == 0o600, "\(path) holds a private key: it must be a 0600 .key file")
                let key = try P256.Signing.PrivateKey(pemRepresentation: text)
                let keyOwner = owner[Data(key.publicKey.rawRepresentation)]
                if directory.hasPrefix(quickStart) {
                    #expect(keyOwner == nil, "the quick start's keys are its own")
                } else {
                    #expect(keyOwner == organization, "\(path) holds a key of \(keyOwner ?? "nobody known"), not of \(organization)")
                }
            }
        }
        #expect(keysSeen == 5 + 5 + 4 + 4 + 4 + 3 + 5 + 5, "CA and the members per founder (four for a hospital, three for research), members only per node directory, the quick start's two hospitals")
        // The public bundle and the network's public files carry no key.
        for file in founders.all.map({ $0.path + "/" + OrganizationBundle.path }) + [founders.root + "/north-node/network.json"] {
            #expect(!String(decoding: try SecureFile.read(file), as: UTF8.self).contains("PRIVATE KEY"))
        }
    }

    /// The ceremony as organisations run it: `org init` in three directories, `network draft` from
    /// their bundles, `network approve` by two, a refused and then a successful `network seal`,
    /// `network join` by all three, a node started from one node directory, `verify`, and the
    /// independent Python verifier over its export.
    @Test(.timeLimit(.minutes(5))) func ceremonyThroughTheCommandLine() async throws {
        let root = Fixtures.temporaryPath("ceremony-cli")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (id, kind) in [("st-mary", "hospital"), ("north", "hospital"), ("research", "research")] {
            let created = try await ManagedProcess.medledger("org", "init", "--id", id, "--kind", kind, "--out", "\(root)/\(id)")
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout.contains("root CA fingerprint"))
        }
        let again = try await ManagedProcess.medledger("org", "init", "--id", "st-mary", "--kind", "hospital", "--out", "\(root)/st-mary")
        #expect(again.status == 1 && again.stderr.contains("is not empty"), "\(again.stderr)")

        let draft = "\(root)/draft.genesis"
        let drafted = try await ManagedProcess.medledger("network", "draft", "--name", "regional", "--org", "\(root)/st-mary/public/organization.json",
                                                         "\(root)/north/public/organization.json", "\(root)/research", "--out", draft)
        #expect(drafted.status == 0, "\(drafted.stderr)")
        let hash = Hash256.of(try SecureFile.read(draft)).hex
        #expect(drafted.stdout.contains("draft hash: \(hash)"))
        let wrongHash = try await ManagedProcess.medledger("network", "approve", "--draft", draft, "--org-dir", "\(root)/north",
                                                           "--expect-hash", String(repeating: "0", count: 64))
        #expect(wrongHash.status == 1 && wrongHash.stderr.contains("[draft_mismatch]"), "\(wrongHash.stderr)")
        for id in ["st-mary", "north"] {
            let approved = try await ManagedProcess.medledger("network", "approve", "--draft", draft, "--org-dir", "\(root)/\(id)",
                                                              "--expect-hash", hash, "--out", "\(root)/\(id).approval.json")
            #expect(approved.status == 0, "\(approved.stderr)")
        }

        let short = try await ManagedProcess.medledger("network", "seal", "--draft", draft, "--approvals", "\(root)/north.approval.json",
                                                       "--org-dir", "\(root)/st-mary", "--out", "\(root)/network")
        #expect(short.status == 1)
        #expect(short.stderr.contains("the genesis needs approvals from 2 of its 3 organisations (policy: majority); it has 1 (north) [insufficient_approvals]"),
                "\(short.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/network/genesis.block"))
        let sealed = try await ManagedProcess.medledger("network", "seal", "--draft", draft, "--approvals", "\(root)/st-mary.approval.json",
                                                        "\(root)/north.approval.json", "--org-dir", "\(root)/st-mary", "--out", "\(root)/network")
        #expect(sealed.status == 0, "\(sealed.stderr)")
        let shown = try await ManagedProcess.medledger("network", "show", "--genesis", "\(root)/network/genesis.block")
        #expect(shown.status == 0 && shown.stdout.contains("\"approved_by\" : [\n    \"north\",\n    \"st-mary\"\n  ]"), "\(shown.stdout)")

        for id in ["st-mary", "north", "research"] {
            let joined = try await ManagedProcess.medledger(["network", "join", "--genesis", "\(root)/network", "--org-dir", "\(root)/\(id)",
                                                             "--out", "\(root)/\(id)-node"] + (id == "research" ? ["--unapproved"] : []))
            #expect(joined.status == 0, "\(joined.stderr)")
        }
        let node = "\(root)/north-node"
        #expect(try FileManager.default.contentsOfDirectory(atPath: node + "/orgs") == ["north"])
        let (process, _) = try await ProcessTests.startNode(node)
        let network = try NetworkDefinition.load(directory: node).networkID
        #expect(process.stdoutLines.contains { $0.contains("network=\(network.hex)") })
        process.send(SIGTERM)
        #expect(await process.waitForExit(timeout: .seconds(30)) == 0)
        // Another organisation's key is not in north's node directory.
        let foreign = try await ManagedProcess.medledger("node", "--data", node, "--identity", "st-mary/node", "--port", "0")
        #expect(foreign.status == 1 && foreign.stderr.contains("holds no keys of st-mary"), "\(foreign.stderr)")

        let verified = try await ManagedProcess.medledger("verify", "--data", node)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("OK: 1 blocks"))
        let export = "\(root)/chain.json"
        #expect(try await ManagedProcess.medledger("export", "--data", node, "--out", export).status == 0)
        let independent = try await ManagedProcess.run("/usr/bin/env", ["python3", Self.verifier, export, "--network", node])
        #expect(independent.status == 0, "\(independent.stdout) \(independent.stderr)")
        #expect(independent.stdout.contains("\"genesis_approved_by\": [\"north\", \"st-mary\"]"))
    }

    /// A sealer choosing a block time far ahead would stall the network (every transaction refused
    /// for skew until then): no organisation joins such a genesis.
    @Test func genesisSealedInTheFutureIsNotJoined() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let approvals = try [founders.stMary, founders.north].map { try GenesisCeremony.approve(draft: draft, organization: $0) }
        let genesis = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now + 86_400_000)
        let joined = refusal { try GenesisCeremony.join(genesis: genesis, organization: founders.north, into: founders.root + "/north-node") }
        #expect(joined?.code == .timestampSkew)
        #expect(joined?.message.hasSuffix("in the future: its transactions would be refused until then") == true)
    }

    // MARK: Refusals at seal (the same checks the genesis contract makes, with the file at fault named)

    @Test func approvalByANonAdminIsRefused() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let approve = refusal { _ = try GenesisCeremony.approve(draft: draft, organization: founders.north, admin: "node") }
        #expect(approve?.code == .forbidden)
        #expect(approve?.message.contains("only admins approve") == true)
        // An approval signed with north's node key anyway.
        let node = try founders.north.identity("node")
        let forged = GenesisApprovalFile(organization: "north", approval: GenesisApproval(draft: Hash256.of(draft), signer: node),
                                         draft: Hash256.of(draft), certificate: node.certificate)
        let approvals = [try GenesisCeremony.approve(draft: draft, organization: founders.stMary), forged]
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now) }
        #expect(sealed?.code == .forbidden)
        #expect(sealed?.message == "approval by north/node (role node): only admins approve a genesis")
    }

    @Test func approvalByAnOrganisationNotInTheDraftIsRefused() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let outsider = try founders.outsider()
        let approve = refusal { _ = try GenesisCeremony.approve(draft: draft, organization: outsider) }
        #expect(approve?.code == .unknownOrganization)
        #expect(approve?.message == "the draft does not include organisation outsider")
        let admin = try outsider.identity("admin")
        let forged = GenesisApprovalFile(organization: "outsider", approval: GenesisApproval(draft: Hash256.of(draft), signer: admin),
                                         draft: Hash256.of(draft), certificate: admin.certificate)
        let approvals = [try GenesisCeremony.approve(draft: draft, organization: founders.stMary), forged]
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now) }
        #expect(sealed?.code == .unknownOrganization)
        #expect(sealed?.message == "the approval by outsider/admin is from organisation outsider, which is not in this draft")
    }

    @Test func twoApprovalsFromOneOrganisationAreRefused() throws {
        let founders = try Founders()
        let stMary = try addMember(founders.stMary, name: "admin-2", role: .admin)
        let draft = try founders.draft([stMary, founders.north, founders.research])
        let first = try GenesisCeremony.approve(draft: draft, organization: stMary)
        let second = try GenesisCeremony.approve(draft: draft, organization: stMary, admin: "admin-2")
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: [first, second], organization: stMary, time: Self.now) }
        #expect(sealed?.code == .alreadyApproved)
        #expect(sealed?.message.hasPrefix("st-mary approved twice (st-mary/admin") == true, "\(sealed?.message ?? "")")
        // The same approval file twice.
        let twice = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: [first, first], organization: stMary, time: Self.now) }
        #expect(twice?.code == .alreadyApproved)
        #expect(twice?.message.hasSuffix("approved this genesis twice") == true)
    }

    @Test func approvalOfAnotherDraftIsRefused() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let other = try founders.draft()  // the same organisations, another noise secret: another draft
        #expect(other != draft)
        let approvals = [try GenesisCeremony.approve(draft: draft, organization: founders.stMary),
                         try GenesisCeremony.approve(draft: other, organization: founders.north)]
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: approvals, organization: founders.stMary, time: Self.now) }
        #expect(sealed?.code == .draftMismatch)
        #expect(sealed?.message == "the approval by north/admin is for draft \(Hash256.of(other).hex.prefix(16))…, not this draft \(Hash256.of(draft).hex.prefix(16))…")
    }

    @Test func draftTamperedAfterApprovalIsRefused() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let approvals = try [founders.stMary, founders.north].map { try GenesisCeremony.approve(draft: draft, organization: $0) }
        var changed = try GenesisConfig(decoding: draft)
        changed.config.approvalPolicy = .atLeast(1)
        let tampered = changed.encoded
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: tampered, approvals: approvals, organization: founders.stMary, time: Self.now) }
        #expect(sealed?.code == .draftMismatch)
        #expect(sealed?.message.hasPrefix("the approval by st-mary/admin is for draft \(Hash256.of(draft).hex.prefix(16))") == true)
        // Editing the approval files to name the tampered draft leaves signatures over the old one.
        let edited = approvals.map { file -> GenesisApprovalFile in
            var file = file
            file.draft = Hash256.of(tampered)
            return file
        }
        let resealed = refusal { _ = try GenesisCeremony.seal(draft: tampered, approvals: edited, organization: founders.stMary, time: Self.now) }
        #expect(resealed?.code == .badSignature)
        #expect(resealed?.message.hasSuffix("does not verify over this draft (\(Hash256.of(tampered).hex.prefix(16))…)") == true)
    }

    @Test func tooFewApprovalsAreRefused() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let one = [try GenesisCeremony.approve(draft: draft, organization: founders.north)]
        let sealed = refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: one, organization: founders.stMary, time: Self.now) }
        #expect(sealed?.code == .insufficientApprovals)
        #expect(sealed?.message == "the genesis needs approvals from 2 of its 3 organisations (policy: majority); it has 1 (north)")
        let all = try founders.draft(policy: .all)
        let two = try [founders.stMary, founders.north].map { try GenesisCeremony.approve(draft: all, organization: $0) }
        #expect(refusal { _ = try GenesisCeremony.seal(draft: all, approvals: two, organization: founders.stMary, time: Self.now) }?.code == .insufficientApprovals)
        #expect(refusal { _ = try GenesisCeremony.seal(draft: draft, approvals: [], organization: founders.stMary, time: Self.now) }?.code == .insufficientApprovals)
    }

    // MARK: On the ledger

    /// A genesis that does not carry enough approvals does not execute: the contract refuses it, a
    /// node will not open on it, and a ledger that holds it anyway (committed by a forger's code)
    /// fails `medledger verify` and the independent Python verifier.
    @Test func genesisWithTooFewApprovalsNeverExecutes() async throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let charter = GenesisCharter(draft: draft, approvals: [GenesisApproval(draft: Hash256.of(draft), signer: try founders.north.identity("admin"))])
        let node = try founders.stMary.identity("node")
        let executed = refusal { _ = try GenesisCeremony.sealBlock(charter, node: node, time: Self.now) }
        #expect(executed?.code == .insufficientApprovals)

        let (_, envelope) = node.transaction(network: .zero, contract: GovernanceContract.name, action: "genesis", arguments: charter.encoded,
                                             timestamp: Self.now)
        let prepared = [PreparedTransaction(bytes: envelope.encoded)]
        let assembled = try BlockAssembler.assemble(prepared, network: .zero, previous: nil, blockTime: Self.now, proposer: node.fingerprint,
                                                frontier: MerkleFrontier(), base: MemoryLedger(),
                                                executor: BlockExecutor(contracts: [PermissiveGenesis()]))
        #expect(assembled.execution.refusals.allSatisfy { $0 == nil })
        let signature = node.sign(assembled.header.encoded)
        let forged = Block(header: assembled.header, signature: signature, envelopes: [envelope.encoded])

        let opened = refusal { _ = try LedgerNode(store: try LedgerStore(path: founders.root + "/node.sqlite"), genesis: forged,
                                                   identity: node, logger: Logger.quiet) }
        #expect(opened?.code == .verificationFailed)
        #expect(refusal { _ = try NetworkDefinition(genesis: forged) }?.code == .verificationFailed)

        let path = founders.root + "/forged.sqlite"
        let store = try LedgerStore(path: path)
        try store.commit(LedgerNode.batch(for: assembled, transactions: prepared, firstSequence: 0, signature: signature, checkpoint: nil,
                                          refusals: []))
        let report = ChainVerifier.verify(store: store)
        #expect(!report.ok)
        #expect(report.failure?.contains("recorded as committed, replay gives insufficient_approvals") == true, "\(report.failure ?? "")")

        let export = founders.root + "/forged.json"
        #expect(FileManager.default.createFile(atPath: export, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: export))
        try LedgerExporter.export(store: store, to: handle)
        try handle.close()
        let independent = try await ManagedProcess.run("/usr/bin/env", ["python3", Self.verifier, export])
        #expect(independent.status == 1)
        #expect(independent.stdout.contains("the genesis needs approvals from 2 organisations, it has 1"), "\(independent.stdout) \(independent.stderr)")
    }

    static let verifier = FuzzRegressionTests.repositoryRoot.appendingPathComponent("scripts/verify_export.py").path

    /// Forgeries of a genesis, each refused by the genesis contract itself (so by every node and by
    /// `medledger verify`), whatever a sealer's own checks would have said.
    @Test func forgedGenesisIsRefusedByTheContract() throws {
        let founders = try Founders()
        let draft = try founders.draft()
        let hash = Hash256.of(draft)
        let node = try founders.stMary.identity("node")
        let stMary = GenesisApproval(draft: hash, signer: try founders.stMary.identity("admin"))
        let north = GenesisApproval(draft: hash, signer: try founders.north.identity("admin"))
        func sealed(_ draft: [UInt8], _ approvals: [GenesisApproval], by signer: SigningIdentity? = nil, time: Int64 = Self.now) -> LedgerError? {
            refusal { _ = try GenesisCeremony.sealBlock(GenesisCharter(draft: draft, approvals: approvals.sorted { $0.approver < $1.approver }),
                                                        node: signer ?? node, time: time) }
        }
        #expect(sealed(draft, [stMary, north]) == nil)

        // A self-issued "st-mary" admin certificate (another CA, the same organisation name).
        let impostorCA = try CertificateAuthority.create(organization: "st-mary")
        let impostor = try TestNetwork.issue(impostorCA, name: "st-mary/admin", role: .admin, now: Date())
        let selfIssued = sealed(draft, [GenesisApproval(draft: hash, signer: impostor), north])
        #expect(selfIssued?.code == .unknownMember)
        #expect(selfIssued?.message == "genesis does not apply: approval by \(impostor.fingerprint.hex.prefix(16))…, which is not a member this draft registers")
        // ... slipped into the draft's members: not issued by st-mary's root.
        var padded = try GenesisConfig(decoding: draft)
        padded.members.append(MemberRegistration(certificate: impostor.certificate.derBytes))
        let inserted = sealed(padded.encoded, [GenesisApproval(draft: Hash256.of(padded.encoded), signer: impostor), north])
        #expect(inserted?.code == .invalidCertificate)
        #expect(inserted?.message == "genesis does not apply: certificate for st-mary/admin was not issued by the st-mary root CA")

        // An approval replayed from another draft of the same organisations.
        let other = try founders.draft()
        let replayed = sealed(other, [GenesisApproval(draft: Hash256.of(other), signer: try founders.stMary.identity("admin")), north])
        #expect(replayed?.code == .badSignature)
        #expect(replayed?.message == "genesis does not apply: approval by north/admin does not verify over this draft (\(Hash256.of(other).hex.prefix(16))…)")

        // The organisations reordered after approval.
        var reordered = try GenesisConfig(decoding: draft)
        reordered.organizations.reverse()
        #expect(sealed(reordered.encoded, [stMary, north])?.code == .badSignature)
        #expect(throws: Never.self) { try GenesisConfig(decoding: reordered.encoded).foundingMembers() }  // it is a valid draft, just not the approved one

        // Approvals out of order, or one approver twice.
        let ordered = [stMary, north].sorted { $0.approver < $1.approver }
        let unsorted = refusal { _ = try GenesisCeremony.sealBlock(GenesisCharter(draft: draft, approvals: ordered.reversed()), node: node, time: Self.now) }
        #expect(unsorted?.code == .invalidArgument)
        #expect(unsorted?.message == "genesis does not apply: genesis approvals must be sorted by approver fingerprint")
        #expect(sealed(draft, [north, north])?.code == .alreadyApproved)

        // Sealed by an admin (the version-1 way), or approved with a certificate no longer valid.
        let byAdmin = sealed(draft, [stMary, north], by: try founders.stMary.identity("admin"))
        #expect(byAdmin?.code == .forbidden)
        #expect(byAdmin?.message == "genesis does not apply: the genesis transaction must be signed by one of the nodes it registers (the sealing node)")
        let late = Self.now + 3 * 365 * 86_400_000
        #expect(sealed(draft, [stMary, north], time: late)?.code == .certificateExpired)

        // A version-1 genesis: the bare draft as the arguments, no approvals.
        let (_, legacy) = try founders.stMary.identity("admin").transaction(network: .zero, contract: GovernanceContract.name, action: "genesis",
                                                                          arguments: draft, timestamp: Self.now)
        let assembled = try BlockAssembler.assemble([PreparedTransaction(bytes: legacy.encoded)], network: .zero, previous: nil, blockTime: Self.now,
                                                proposer: node.fingerprint, frontier: MerkleFrontier(), base: MemoryLedger(), executor: BlockExecutor())
        #expect(assembled.execution.refusals.first??.code == .malformedEncoding)
    }

    /// A drafter cannot misrepresent an organisation, leave a node without the noise secret or give
    /// it another secret than the others': the organisation's own approval refuses the draft.
    @Test func approvalChecksTheDraftAgainstTheOrganisation() throws {
        let founders = try Founders()
        let draft = try GenesisConfig(decoding: try founders.draft())

        // North's CA swapped for one the drafter controls (with members it issued).
        let fake = try Founders()
        var swapped = draft
        let index = swapped.organizations.firstIndex { $0.id == "north" }!
        swapped.organizations[index].rootCertificate = try fake.north.bundle.validated().organization.rootCertificate
        let northFingerprints = Set(try founders.north.bundle.validated().certificates.map(\.fingerprint))
        swapped.members = swapped.members.filter { !northFingerprints.contains(Hash256.of($0.certificate)) } + (try fake.north.bundle.validated().members)
        swapped.noiseKey = nil
        swapped.noiseKey = try NoiseSecret().wrapped(epoch: 1, to: try nodes(of: swapped))
        let misrepresented = refusal { _ = try GenesisCeremony.approve(draft: swapped.encoded, organization: founders.north) }
        #expect(misrepresented?.code == .verificationFailed)
        #expect(misrepresented?.message == "the draft's north differs from \(founders.north.path): its root certificate is not this organisation's")

        // One of north's members left out.
        var dropped = draft
        let collector = try founders.north.identity("collector").certificate.derBytes
        dropped.members.removeAll { $0.certificate == collector }
        #expect(refusal { _ = try GenesisCeremony.approve(draft: dropped.encoded, organization: founders.north) }?.code == .verificationFailed)

        // North's node left out of the noise key (the contract refuses that too).
        var unwrapped = draft
        let northNode = try founders.north.identity("node").fingerprint
        unwrapped.noiseKey = try NoiseSecret().wrapped(epoch: 1, to: try nodes(of: draft).filter { $0.fingerprint != northNode })
        let missing = refusal { _ = try GenesisCeremony.approve(draft: unwrapped.encoded, organization: founders.north) }
        #expect(missing?.code == .invalidArgument)
        #expect(missing?.message == "the noise key is not wrapped to founding node north/node")

        // North's box holding another secret than the committed one.
        var split = draft
        var epoch = try NoiseSecret().wrapped(epoch: 1, to: try nodes(of: draft))
        let otherBox = try NoiseSecret().wrapped(epoch: 1, to: try nodes(of: draft).filter { $0.fingerprint == northNode }).wrapped[0]
        epoch.wrapped[epoch.wrapped.firstIndex { $0.recipient == northNode }!] = otherBox
        split.noiseKey = epoch
        #expect(throws: Never.self) { try split.foundingMembers() }
        #expect(refusal { _ = try GenesisCeremony.approve(draft: split.encoded, organization: founders.stMary) } == nil)
        let wrongSecret = refusal { _ = try GenesisCeremony.approve(draft: split.encoded, organization: founders.north) }
        #expect(wrongSecret?.code == .verificationFailed)
        #expect(wrongSecret?.message.hasPrefix("the draft's noise secret does not open for north/node") == true)
    }

    func nodes(of draft: GenesisConfig) throws -> [(fingerprint: Hash256, publicKey: P256.Signing.PublicKey)] {
        try draft.foundingMembers().filter { $0.role == .node }.map { ($0.fingerprint, try P256.Signing.PublicKey(rawRepresentation: $0.publicKey)) }
    }

    /// Known answer: the approval message and the charter bytes of docs/formats.md §15.8, made in
    /// Python from that section alone.
    @Test func approvalKnownAnswer() throws {
        struct Vector: Decodable {
            var private_key: String
            var draft: String
            var draft_hash: String
            var message: String
            var signature: String
            var charter: String
        }
        let fixtures = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let vector = try JSONDecoder().decode(Vector.self, from: Data(contentsOf: fixtures.appendingPathComponent("genesis-approval/vector.json")))
        let key = try P256.Signing.PrivateKey(rawRepresentation: try #require(Hex.decode(vector.private_key)))
        let draft = try #require(Hex.decode(vector.draft))
        #expect(Hash256.of(draft).hex == vector.draft_hash)
        #expect(Hex.encode(GenesisApproval.message(draft: Hash256.of(draft))) == vector.message)
        let charter = try GenesisCharter(decoding: try #require(Hex.decode(vector.charter)))
        #expect(charter.draft == draft)
        #expect(charter.approvals.count == 1)
        #expect(Hex.encode(charter.approvals[0].signature) == vector.signature)
        #expect(SignatureCheck.isValid(signature: charter.approvals[0].signature, message: GenesisApproval.message(draft: charter.draftHash),
                                       publicKey: key.publicKey))
        #expect(Hex.encode(charter.encoded) == vector.charter)
    }

    /// The fuzz seeds of the two genesis targets reach the decoders' accepting paths.
    @Test func genesisFuzzSeedsDecode() throws {
        let corpus = FuzzRegressionTests.repositoryRoot.appendingPathComponent("FuzzTesting/Corpus")
        let charter = [UInt8](try Data(contentsOf: corpus.appendingPathComponent("49-genesis-charter")))
        #expect(FuzzHarness.targetName(of: charter) == "genesisCharter")
        #expect(try GenesisCharter(decoding: Array(charter.dropFirst())).config().organizations.isEmpty)
        let approval = [UInt8](try Data(contentsOf: corpus.appendingPathComponent("50-genesis-approval")))
        #expect(FuzzHarness.targetName(of: approval) == "genesisApproval")
        #expect(try GenesisApproval(decoding: Array(approval.dropFirst())).signature.count == 64)
        // The patient-data seeds decode as what their selector names.
        for (name, target) in [("54-consent-state", "consentState"), ("55-consent-grant", "consentAction"), ("56-record-anchor", "recordAnchor"),
                             ("57-record-rotate", "recordAction")] {
            let seed = [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))
            #expect(FuzzHarness.targetName(of: seed) == target, "\(name)")
        }
        #expect(try ConsentState(decoding: Array([UInt8](try Data(contentsOf: corpus.appendingPathComponent("54-consent-state"))).dropFirst())).rules.count == 1)
        #expect(try RecordAnchor(decoding: Array([UInt8](try Data(contentsOf: corpus.appendingPathComponent("56-record-anchor"))).dropFirst())).holder == "st-mary")
        if case .grant(_, let terms) = try ConsentAction(action: "grant", arguments: Array([UInt8](try Data(contentsOf: corpus.appendingPathComponent("55-consent-grant"))).dropFirst())) {
            #expect(terms.purposes == [.research, .treatment])
        } else {
            Issue.record("55-consent-grant is not a grant")
        }
        if case .rotate(let record, let put) = try RecordAction(action: "rotate", arguments: Array([UInt8](try Data(contentsOf: corpus.appendingPathComponent("57-record-rotate"))).dropFirst())) {
            #expect(record == Hash256(bytes: [UInt8](repeating: 0x0b, count: 32)) && put.category == "device_readings")
        } else {
            Issue.record("57-record-rotate is not a rotation")
        }
        for name in ["39-all-header", "40-all-leaf"] {
            #expect(FuzzHarness.targetName(of: [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))) == nil, "\(name) must run every decoder")
        }
    }
}
