/// Human accounts of the web app: password hashing (scrypt), the NIST SP 800-63B password policy
/// and TOTP (RFC 6238). Pure logic; the account store and sessions build on it.
public enum Accounts {}
