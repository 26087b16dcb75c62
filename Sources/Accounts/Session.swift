internal import Foundation

/// A login session as the store keeps it. The store knows it by the SHA-256 of its token, never by
/// the token, and keeps the SHA-256 of its CSRF token; neither digest is part of `description`.
public struct Session: Sendable, Hashable, CustomStringConvertible {
    /// SHA-256 of the session token: the primary key.
    let tokenDigest: Data
    /// SHA-256 of the session's CSRF token.
    let csrfDigest: Data
    public let accountID: Int64
    /// A second factor was checked for this session (a TOTP code at login or at enrolment).
    public let mfaVerified: Bool
    /// Unix milliseconds; a rotated token keeps the times of the session it replaces.
    public let createdAt: Int64
    public let lastSeenAt: Int64
    /// ``createdAt`` plus ``AccountService/sessionLifetime``: no activity extends it.
    public let expiresAt: Int64
    public let revokedAt: Int64?

    init(tokenDigest: Data, csrfDigest: Data, accountID: Int64, mfaVerified: Bool, createdAt: Int64, lastSeenAt: Int64,
         expiresAt: Int64, revokedAt: Int64?) {
        self.tokenDigest = tokenDigest
        self.csrfDigest = csrfDigest
        self.accountID = accountID
        self.mfaVerified = mfaVerified
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }

    /// Whether `csrfToken` is this session's CSRF token (compared as SHA-256 digests, in constant time).
    public func accepts(csrfToken: String) -> Bool {
        ConstantTime.equal(Array(Secrets.digest(csrfToken)), Array(csrfDigest))
    }

    public var description: String {
        "Session(account \(accountID), mfa \(mfaVerified), expires \(expiresAt)\(revokedAt == nil ? "" : ", revoked"))"
    }
}
