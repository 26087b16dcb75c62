import Crypto
public import LedgerCore

/// The checks of a signer against ledger state at a point in time, shared by the executor (every
/// transaction's creator) and the research contract (the researcher behind an embedded ask).
/// `subject` names the signer in messages ("creator", "researcher").
extension Member {
    /// The member may act at `time`: its organisation is an active member, and its certificate is
    /// not revoked and is within its validity period.
    public func checkActive(organization: Organization?, at time: Int64, subject: String) throws(LedgerError) {
        guard let organization, organization.active else {
            throw LedgerError(.unknownOrganization, "\(subject)'s organisation \(self.organization) is not an active member")
        }
        if let revokedAt, revokedAt <= time { throw LedgerError(.certificateRevoked, "\(subject) certificate was revoked") }
        guard certificate.notBefore <= time, time <= certificate.notAfter else {
            throw LedgerError(.certificateExpired, "\(subject) certificate is not valid at \(time) (valid \(certificate.notBefore)…\(certificate.notAfter) ms)")
        }
    }

    /// `envelope` carries a valid signature by this member's key over its exact payload bytes.
    public func checkSignature(of envelope: Envelope, subject: String) throws(LedgerError) {
        guard let key = try? P256.Signing.PublicKey(rawRepresentation: certificate.publicKey),
              SignatureCheck.isValid(signature: envelope.signature, message: envelope.payloadBytes, publicKey: key)
        else {
            throw LedgerError(.badSignature, "signature does not verify against the \(subject)'s certificate")
        }
    }
}

extension TransactionContext {
    /// A signed timestamp is within the configured clock skew of block time.
    public func checkSkew(of timestamp: Int64, what: String) throws(LedgerError) {
        let skew = try config().clockSkewMilliseconds
        let (difference, overflow) = timestamp.subtractingReportingOverflow(blockTime)
        guard !overflow, difference.magnitude <= skew else {
            throw LedgerError(.timestampSkew, "\(what) time differs from block time by more than \(skew) ms")
        }
    }
}
