/// Human accounts of the web app: password hashing (scrypt), the NIST SP 800-63B password policy,
/// TOTP (RFC 6238), and on them the account store (``AccountStore``, SQLite) and its rules
/// (``AccountService``: login, lockout, sessions, enrolment, administration).
public enum Accounts {}
