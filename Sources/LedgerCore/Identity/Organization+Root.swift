public import X509
import SwiftASN1

extension Organization {
    /// The organisation's root CA certificate, parsed: valid DER X.509, issuer equal to subject, and
    /// its own key verifies its signature (docs/formats.md §3). Checked wherever an organisation
    /// enters the ledger (genesis, `addOrganization`) and by whoever assembles or approves a draft.
    public func parsedRootCertificate() throws(LedgerError) -> Certificate {
        guard let root = try? Certificate(derEncoded: rootCertificate) else {
            throw LedgerError(.invalidCertificate, "root certificate of \(id) is not valid DER X.509")
        }
        guard root.issuer == root.subject, root.publicKey.isValidSignature(root.signature, for: root) else {
            throw LedgerError(.invalidCertificate, "root certificate of \(id) must be self-signed")
        }
        return root
    }
}
