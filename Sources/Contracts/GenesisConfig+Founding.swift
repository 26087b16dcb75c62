import X509
public import LedgerCore

extension GenesisConfig {
    /// Every check of a genesis draft that needs no approvals, and its member certificates in
    /// registration order. The genesis contract runs exactly this on block 0; whoever assembles or
    /// approves a draft runs it first, so a draft that could never execute is refused early.
    ///
    /// In order: the configuration is valid; at least one organisation; ids valid and distinct,
    /// names non-empty, every founding organisation active, roots self-signed; every member
    /// certificate issued by its organisation's root, registered once, device bindings valid;
    /// every organisation registers an admin (else it could never approve anything); at least one
    /// node (the sealer) is registered; the noise
    /// key, when present, is epoch 1 and wrapped to exactly the nodes the draft registers.
    public func foundingMembers() throws(LedgerError) -> [MemberCertificate] {
        try config.validate()
        guard !organizations.isEmpty else { throw LedgerError(.invalidConfiguration, "genesis needs at least one organisation") }
        var ids: [String] = []
        var roots: [String: Certificate] = [:]
        for organization in organizations {
            try GovernanceContract.validateNew(organization, existing: ids)
            guard organization.active else {
                throw LedgerError(.invalidConfiguration, "founding organisation \(organization.id) must be active")
            }
            ids.append(organization.id)
            roots[organization.id] = try organization.parsedRootCertificate()
        }
        var seen = Set<Hash256>()
        var certificates: [MemberCertificate] = []
        for registration in members {
            let parsed = try MemberCertificate(der: registration.certificate, root: nil, organization: nil)
            guard let root = roots[parsed.organization] else {
                throw LedgerError(.unknownOrganization, "member certificate names unknown organisation \(parsed.organization)")
            }
            let certificate = try MemberCertificate(der: registration.certificate, root: root, organization: parsed.organization)
            guard seen.insert(certificate.fingerprint).inserted else {
                throw LedgerError(.invalidArgument, "certificate \(certificate.fingerprint.hex.prefix(16))… is registered twice")
            }
            try GovernanceContract.validateBinding(certificate, registration)
            certificates.append(certificate)
        }
        for id in ids where !certificates.contains(where: { $0.organization == id && $0.role == .admin }) {
            throw LedgerError(.missingField, "founding organisation \(id) registers no admin, so it could never approve")
        }
        guard certificates.contains(where: { $0.role == .node }) else {
            throw LedgerError(.missingField, "genesis registers no node, so nothing could seal it")
        }
        if let noiseKey {
            try noiseKey.validate()
            guard noiseKey.epoch == 1 else { throw LedgerError(.invalidArgument, "the next noise key epoch is 1, not \(noiseKey.epoch)") }
            let nodes = certificates.filter { $0.role == .node }
            let nodeFingerprints = Set(nodes.map(\.fingerprint))
            for box in noiseKey.wrapped where !nodeFingerprints.contains(box.recipient) {
                throw LedgerError(.invalidArgument, "noise key box for \(box.recipient.hex.prefix(16))…, which is not a node this genesis registers")
            }
            let recipients = Set(noiseKey.wrapped.map(\.recipient))
            for node in nodes where !recipients.contains(node.fingerprint) {
                throw LedgerError(.invalidArgument, "the noise key is not wrapped to founding node \(node.name)")
            }
        }
        return certificates
    }
}
