internal import Foundation
internal import GRDB
public import LedgerCore

/// An account row with what it is checked against: the password hash, the sealed TOTP secret and
/// the step of the last TOTP code used. Internal: only ``Account`` leaves the library.
struct StoredAccount: Sendable {
    var account: Account
    var passwordHash: String
    var sealedTOTPSecret: Data?
    var totpLastStep: Int64?

    init(row: Row) throws(LedgerError) {
        guard let role = Role(rawValue: row["role"]) else {
            throw LedgerError(.storage, "account row \(row["id"] as Int64? ?? -1) has an unknown role")
        }
        account = Account(id: row["id"], organization: row["organization"], username: row["username"], role: role,
                          mustChangePassword: row["must_change"], totpConfirmed: row["totp_confirmed"],
                          failedAttempts: row["failed_attempts"], lockedUntil: row["locked_until"],
                          memberFingerprint: row["member_fingerprint"], createdAt: row["created_at"], disabledAt: row["disabled_at"])
        passwordHash = row["password_hash"]
        sealedTOTPSecret = row["totp_secret"]
        totpLastStep = row["totp_last_step"]
    }

    var id: Int64 { account.id }
}

extension Session {
    init(row: Row) {
        self.init(tokenDigest: row["token_hash"], csrfDigest: row["csrf_hash"], accountID: row["account_id"],
                  mfaVerified: row["mfa_verified"], createdAt: row["created_at"], lastSeenAt: row["last_seen_at"],
                  expiresAt: row["expires_at"], revokedAt: row["revoked_at"])
    }
}
