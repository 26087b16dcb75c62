public import LedgerCore

extension TOTP {
    /// The Key URI that authenticator apps read from a QR code at enrolment:
    /// `otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
    ///
    /// The issuer and account are percent-encoded (RFC 3986, UTF-8, a space as `%20`) in the label
    /// and in the `issuer` parameter alike; the secret is unpadded Base32. Refuses
    /// (`invalid_argument`) an empty issuer or account, and either containing a colon, which the
    /// Key URI format reserves as the separator of the two (even percent-encoded).
    ///
    /// The URI holds the secret: show it once, as a QR code, and never log it.
    public func otpauthURI(issuer: String, account: String) throws(LedgerError) -> String {
        for (name, value) in [("issuer", issuer), ("account", account)] {
            guard !value.isEmpty else { throw LedgerError(.invalidArgument, "a TOTP \(name) name is not empty") }
            guard !value.contains(":") else {
                throw LedgerError(.invalidArgument, "a TOTP \(name) name has no ':' (it separates issuer and account)")
            }
        }
        let label = PercentEncoding.encode(issuer) + ":" + PercentEncoding.encode(account)
        return "otpauth://totp/\(label)?secret=\(base32Secret)&issuer=\(PercentEncoding.encode(issuer))"
            + "&algorithm=SHA1&digits=\(digits)&period=\(step)"
    }
}
