import Crypto
public import LedgerCore

extension GenesisCharter {
    /// Checks every approval and returns the approving organisations, sorted. Deterministic, so
    /// every node, `medledger verify` and `medledger network seal` decide alike.
    ///
    /// Each approval, in order, must: come after the previous one in approver-fingerprint order
    /// (an approver twice is `already_approved`, any other disorder `invalid_argument`); name a
    /// member the draft registers (`unknown_member`) with role admin (`forbidden`) whose
    /// certificate is valid at `time` (`certificate_expired`); verify over `"MLA1" ‖ draftHash`
    /// with that certificate's key (`bad_signature`); and be its organisation's only approval
    /// (`already_approved`). Then at least `policy.required(organizations:)` organisations, and
    /// never fewer than one, must have approved (`insufficient_approvals`).
    public func approvingOrganizations(founders: [MemberCertificate], organizationCount: Int, policy: ApprovalPolicy,
                                       at time: Int64) throws(LedgerError) -> [String] {
        var byFingerprint: [Hash256: MemberCertificate] = [:]
        for founder in founders { byFingerprint[founder.fingerprint] = founder }
        let message = GenesisApproval.message(draft: draftHash)
        var approvers: [String: MemberCertificate] = [:]
        var previous: Hash256?
        for approval in approvals {
            if let previous, !(previous < approval.approver) {
                guard previous != approval.approver else {
                    throw LedgerError(.alreadyApproved, "approver \(approval.approver.hex.prefix(16))… approved this genesis twice")
                }
                throw LedgerError(.invalidArgument, "genesis approvals must be sorted by approver fingerprint")
            }
            previous = approval.approver
            guard let admin = byFingerprint[approval.approver] else {
                throw LedgerError(.unknownMember, "approval by \(approval.approver.hex.prefix(16))…, which is not a member this draft registers")
            }
            guard admin.role == .admin else {
                throw LedgerError(.forbidden, "approval by \(admin.name) (role \(admin.role.rawValue)): only admins approve a genesis")
            }
            guard admin.notBefore <= time, time <= admin.notAfter else {
                throw LedgerError(.certificateExpired, "approval by \(admin.name): the certificate is not valid at \(time) (valid \(admin.notBefore)…\(admin.notAfter) ms)")
            }
            guard let key = try? P256.Signing.PublicKey(rawRepresentation: admin.publicKey),
                  SignatureCheck.isValid(signature: approval.signature, message: message, publicKey: key)
            else {
                throw LedgerError(.badSignature, "approval by \(admin.name) does not verify over this draft (\(draftHash.hex.prefix(16))…)")
            }
            if let other = approvers[admin.organization] {
                throw LedgerError(.alreadyApproved, "\(admin.organization) approved twice (\(other.name) and \(admin.name)); one approval per organisation")
            }
            approvers[admin.organization] = admin
        }
        let required = max(1, policy.required(organizations: organizationCount))
        let approving = approvers.keys.sorted()
        guard approving.count >= required else {
            let list = approving.isEmpty ? "none" : approving.joined(separator: ", ")
            throw LedgerError(.insufficientApprovals, "the genesis needs approvals from \(required) of its \(organizationCount) organisations (policy: \(policy.summary)); it has \(approving.count) (\(list))")
        }
        return approving
    }
}

extension ApprovalPolicy {
    /// `majority`, `all` or `at least n`, for messages.
    public var summary: String {
        switch self {
        case .majority: "majority"
        case .all: "all"
        case .atLeast(let n): "at least \(n)"
        }
    }
}
