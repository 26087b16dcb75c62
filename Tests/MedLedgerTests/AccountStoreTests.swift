import Foundation
import GRDB
import Testing
import LedgerCore
@testable import Accounts

/// The account store and its rules: creation, login and lockout, TOTP, sessions and their
/// expiry, password changes, administration, and what reaches the disk (no secret in plaintext).
/// Time is passed in, so nothing waits; scrypt runs with cheap parameters.
@Suite("Account store")
struct AccountStoreTests {
    /// A time at the start of a TOTP step (divisible by 30 s).
    static let start: Int64 = 1_750_000_020_000
    static let minute: Int64 = 60_000
    static let strongPassword = "correct horse battery staple"

    /// A fresh store in a temporary directory, removed afterwards.
    final class Fixture {
        let directory: String
        let store: AccountStore
        let service: AccountService
        var path: String { directory + "/accounts.sqlite" }

        init(logN: Int = 10) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("accounts-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            store = try AccountStore(path: directory + "/accounts.sqlite")
            service = try AccountService(store: store, passwordParameters: try .init(logN: logN))
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        /// The raw account row, every column.
        func row(_ id: Int64) throws -> Row? {
            try store.read { db in try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = ?", arguments: [id]) }
        }

        func sessionRows() throws -> [Row] {
            try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM session ORDER BY token_hash") }
        }

        func create(_ username: String, role: Role = .researcher, organization: String = "St Mary", by actor: Int64? = nil,
                    now: Int64 = AccountStoreTests.start) throws(LedgerError) -> (account: Account, password: String) {
            let (account, password) = try service.createAccount(organization: organization, username: username, role: role,
                                                                createdBy: actor, now: now)
            return (account, password)
        }

        /// Logs in and returns the session token (the outcome must be a session).
        func token(_ username: String, _ password: String, totp: String? = nil, now: Int64 = AccountStoreTests.start) throws(LedgerError) -> String {
            guard case .session(let token, _, _, _) = try service.login(username: username, password: password, totp: totp, now: now) else {
                Issue.record("expected a session")
                throw LedgerError(.internal, "no session")
            }
            return token
        }

        /// An administrator with a changed password and a confirmed TOTP authenticator.
        func admin(_ username: String = "ada@stmary.org", organization: String = "St Mary", now: Int64 = AccountStoreTests.start)
            throws -> (account: Account, secret: [UInt8], token: String) {
            let (account, oneTime) = try create(username, role: .admin, organization: organization, now: now)
            let first = try token(username, oneTime, now: now)
            let changed = try service.changePassword(token: first, current: oneTime, new: AccountStoreTests.strongPassword, now: now)
            let (secret, _) = try service.beginTOTPEnrolment(token: changed, password: AccountStoreTests.strongPassword, now: now)
            let bytes = try Base32.decode(secret)
            let token = try service.confirmTOTPEnrolment(token: changed, code: try AccountStoreTests.code(bytes, at: now), now: now)
            return (try #require(try store.account(id: account.id)), bytes, token)
        }
    }

    static func code(_ secret: [UInt8], at now: Int64) throws(LedgerError) -> String {
        try TOTP(secret: secret).code(at: now / 1000)
    }

    func code(_ secret: [UInt8], at now: Int64) throws(LedgerError) -> String { try Self.code(secret, at: now) }

    /// The error `body` throws (failing the test when it throws none).
    static func error<T>(_ body: () throws(LedgerError) -> T) -> LedgerError? {
        do {
            _ = try body()
            Issue.record("expected an error")
            return nil
        } catch {
            return error
        }
    }

    // MARK: Creation

    @Test("A new account has a random one-time password (24 unambiguous characters), stored only as a hash, to be changed")
    func creation() throws {
        let fixture = try Fixture()
        let (account, password) = try fixture.create("alice@stmary.org")
        let (_, other) = try fixture.create("bob@stmary.org")
        #expect(password.count >= 20 && password != other)
        #expect(password.allSatisfy { "23456789abcdefghjkmnpqrstuvwxyz".contains($0) })
        #expect(account.mustChangePassword && !account.totpConfirmed && account.role == .researcher && account.organization == "St Mary")
        let row = try #require(try fixture.row(account.id))
        let stored: String = row["password_hash"]
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$") && !stored.contains(password))
        #expect(try PasswordHash.verify(password, against: stored))
        guard case .session(_, let loggedIn, let mustChange, let enrol) = try fixture.service.login(
            username: "ALICE@stmary.org", password: password, totp: nil, now: Self.start) else {
            Issue.record("expected a session"); return
        }
        #expect(loggedIn.id == account.id && mustChange && !enrol)
        #expect(try fixture.store.events().map(\.kind) == [.accountCreated, .accountCreated, .login])
    }

    @Test("User names are unique case-insensitively after NFKC; a refused creation writes nothing",
          arguments: ["Alice@StMary.org", "ａｌｉｃｅ@stmary.org", "ALICE@STMARY.ORG"])
    func duplicateUsername(variant: String) throws {
        let fixture = try Fixture()
        _ = try fixture.create("alice@stmary.org")
        let error = Self.error { () throws(LedgerError) in try fixture.create(variant) }
        #expect(error?.code == .accountExists)
        #expect(try fixture.store.accounts().count == 1 && fixture.store.events().count == 1)
    }

    @Test("Empty, over-long, control, format, space and colon user names are refused, and non-human roles",
          arguments: ["", "a\u{07}b", "al ice", " alice", "a\u{200B}b", "a:b", "a\nb", String(repeating: "x", count: 65)])
    func badUsernames(name: String) throws {
        let fixture = try Fixture()
        #expect(Self.error { () throws(LedgerError) in try fixture.create(name) }?.code == .invalidArgument)
        #expect(Self.error { () throws(LedgerError) in try fixture.create("node1", role: .node) }?.code == .invalidArgument)
        #expect(try fixture.store.accounts().isEmpty)
        _ = try fixture.create(String(repeating: "x", count: 64))
    }

    // MARK: Login

    @Test("Unknown user, wrong password and wrong TOTP code are the same error; an unknown user still costs a hash")
    func uniformRefusal() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let (alice, password) = try fixture.create("alice@stmary.org")
        let unknown = Self.error { () throws(LedgerError) in try fixture.service.login(username: "nobody", password: password, totp: nil, now: Self.start) }
        let wrong = Self.error { () throws(LedgerError) in try fixture.service.login(username: "alice@stmary.org", password: "not it", totp: nil, now: Self.start) }
        let later = Self.start + 60_000
        let typo = try code(admin.secret, at: later) == "000000" ? "111111" : "000000"
        let wrongCode = Self.error { () throws(LedgerError) in
            try fixture.service.login(username: admin.account.username, password: Self.strongPassword, totp: typo, now: later)
        }
        #expect(unknown != nil && unknown?.code == .unauthenticated)
        #expect(unknown == wrong && wrong == wrongCode)
        #expect(fixture.service.dummyHash.parameters == fixture.service.passwordParameters)
        let failed = try fixture.store.events().filter { $0.kind == .loginFailed }
        #expect(failed.map(\.accountID) == [nil, alice.id, admin.account.id])
    }

    @Test("An unknown user name takes as long as a wrong password (the dummy scrypt hash)")
    func unknownUserTiming() throws {
        let fixture = try Fixture(logN: 14)
        let (_, password) = try fixture.create("alice@stmary.org")
        func median(_ username: String) -> Duration {
            let clock = ContinuousClock()
            let times = (0..<5).map { _ in clock.measure { _ = try? fixture.service.login(username: username, password: password + "x", totp: nil, now: Self.start) } }
            return times.sorted()[2]
        }
        let wrong = median("alice@stmary.org"), unknown = median("mallory@stmary.org")
        #expect(unknown > wrong / 3, "unknown \(unknown), wrong password \(wrong)")
    }

    @Test("Five consecutive failures lock the account for 15 minutes, even against the right password; success resets the count")
    func lockout() throws {
        let fixture = try Fixture()
        let (account, password) = try fixture.create("alice@stmary.org")
        func attempt(_ typed: String, _ now: Int64) -> LedgerError? {
            do {
                _ = try fixture.service.login(username: "alice@stmary.org", password: typed, totp: nil, now: now)
                return nil
            } catch { return error }
        }
        // Four failures, a success, four more: the success reset the count.
        for _ in 0..<4 { #expect(attempt("wrong", Self.start)?.code == .unauthenticated) }
        #expect(try fixture.store.account(id: account.id)?.failedAttempts == 4)
        #expect(attempt(password, Self.start) == nil)
        #expect(try fixture.store.account(id: account.id)?.failedAttempts == 0)
        for _ in 0..<4 { #expect(attempt("wrong", Self.start)?.code == .unauthenticated) }
        let fifth = attempt("wrong", Self.start)
        #expect(fifth?.code == .accountLocked && fifth?.message.contains("15 more minutes") == true)
        #expect(try fixture.store.account(id: account.id)?.lockedUntil == Self.start + 15 * Self.minute)
        #expect(attempt(password, Self.start + 1)?.code == .accountLocked)
        #expect(attempt(password, Self.start + 15 * Self.minute - 1)?.code == .accountLocked)
        #expect(attempt(password, Self.start + 15 * Self.minute) == nil)
        let unlocked = try #require(try fixture.store.account(id: account.id))
        #expect(unlocked.failedAttempts == 0 && unlocked.lockedUntil == nil)
        #expect(try fixture.store.events().filter { $0.kind == .accountLocked }.count == 1)
        #expect(try fixture.store.events().filter { $0.kind == .loginFailed }.count == 11)
    }

    @Test("TOTP: no code asks for one (not a failure, no session); ±1 step accepted; no code works twice or after a later one")
    func totp() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let name = admin.account.username
        let sessions = try fixture.sessionRows().count
        for blank in [nil, "", "  "] {
            #expect(try fixture.service.login(username: name, password: Self.strongPassword, totp: blank, now: Self.start) == .totpRequired)
        }
        #expect(try fixture.store.account(id: admin.account.id)?.failedAttempts == 0 && fixture.sessionRows().count == sessions)
        let now = Self.start + 90_000 // three steps after enrolment
        let before = try code(admin.secret, at: now - 30_000), after = try code(admin.secret, at: now + 30_000)
        _ = try fixture.token(name, Self.strongPassword, totp: before, now: now)
        // The same code again, the current one (older than the next step's, once used), two steps ahead: refused.
        _ = try fixture.token(name, Self.strongPassword, totp: after, now: now)
        for refused in try [after, code(admin.secret, at: now), code(admin.secret, at: now + 60_000)] {
            let error = Self.error { () throws(LedgerError) in try fixture.service.login(username: name, password: Self.strongPassword, totp: refused, now: now) }
            #expect(error == AccountService.loginRefused)
        }
        #expect(try fixture.store.account(id: admin.account.id)?.failedAttempts == 3)
        let raw: Int64? = try fixture.row(admin.account.id)?["totp_last_step"]
        #expect(raw == (now + 30_000) / 30_000)
    }

    @Test("An administrator without TOTP gets a session that needs enrolment; confirming it rotates the token and marks MFA")
    func adminEnrolment() throws {
        let fixture = try Fixture()
        let (account, oneTime) = try fixture.create("ada@stmary.org", role: .admin)
        guard case .session(let token, _, let mustChange, let enrol) = try fixture.service.login(
            username: "ada@stmary.org", password: oneTime, totp: nil, now: Self.start) else { Issue.record("no session"); return }
        #expect(mustChange && enrol)
        #expect(try fixture.service.authenticate(token: token, now: Self.start).session.mfaVerified == false)
        let (secret, uri) = try fixture.service.beginTOTPEnrolment(token: token, password: oneTime, now: Self.start)
        #expect(uri.hasPrefix("otpauth://totp/MedLedger:ada%40stmary.org?secret=\(secret)&issuer=MedLedger"))
        let bytes = try Base32.decode(secret)
        let wrong = Self.error { () throws(LedgerError) in try fixture.service.confirmTOTPEnrolment(token: token, code: "12345x", now: Self.start) }
        #expect(try wrong?.code == .invalidArgument && fixture.store.account(id: account.id)?.totpConfirmed == false)
        let rotated = try fixture.service.confirmTOTPEnrolment(token: token, code: try code(bytes, at: Self.start), now: Self.start)
        #expect(rotated != token)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: token, now: Self.start) }?.code == .unauthenticated)
        let (enrolled, session) = try fixture.service.authenticate(token: rotated, now: Self.start)
        #expect(session.mfaVerified && enrolled.totpConfirmed && !enrolled.needsTOTPEnrolment)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.beginTOTPEnrolment(token: rotated, password: oneTime, now: Self.start) }?.code == .forbidden)
        // The enrolment's code is used up; a login now needs a code.
        #expect(try fixture.service.login(username: "ada@stmary.org", password: oneTime, totp: nil, now: Self.start) == .totpRequired)
        #expect(Self.error { () throws(LedgerError) in
            try fixture.service.login(username: "ada@stmary.org", password: oneTime, totp: try code(bytes, at: Self.start), now: Self.start)
        }?.code == .unauthenticated)
        #expect(try fixture.store.events().map(\.kind).suffix(3) == [.totpEnrolmentStarted, .totpEnrolled, .loginFailed])
    }

    // MARK: Sessions

    @Test("Tokens are 43 base64url characters; the store keeps SHA-256; CSRF tokens belong to their session")
    func tokens() throws {
        let fixture = try Fixture()
        let (_, password) = try fixture.create("alice@stmary.org")
        let one = try fixture.token("alice@stmary.org", password), two = try fixture.token("alice@stmary.org", password)
        #expect(one.count == 43 && one != two && Secrets.isWellFormedToken(one))
        let digests = try fixture.sessionRows().map { Data($0["token_hash"] as Data) }
        #expect(Set(digests) == [Secrets.digest(one), Secrets.digest(two)])
        let session = try fixture.service.authenticate(token: one, now: Self.start).session
        #expect(session.accepts(csrfToken: fixture.service.csrfToken(forSession: one)))
        #expect(!session.accepts(csrfToken: fixture.service.csrfToken(forSession: two)) && !session.accepts(csrfToken: ""))
        for bad in ["", "x", String(one.dropLast()) + "!", String(repeating: "A", count: 43)] {
            #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: bad, now: Self.start) }?.code == .unauthenticated)
        }
    }

    @Test("A session ends 12 hours after login however active, and after 30 idle minutes; last seen is written once a minute")
    func expiry() throws {
        let fixture = try Fixture()
        let (_, password) = try fixture.create("alice@stmary.org")
        let token = try fixture.token("alice@stmary.org", password)
        #expect(try fixture.service.authenticate(token: token, now: Self.start + 59_999).session.lastSeenAt == Self.start)
        #expect(try fixture.service.authenticate(token: token, now: Self.start + Self.minute).session.lastSeenAt == Self.start + Self.minute)
        var now = Self.start + Self.minute
        while now + 29 * Self.minute < Self.start + 12 * 60 * Self.minute {
            now += 29 * Self.minute
            _ = try fixture.service.authenticate(token: token, now: now)
        }
        _ = try fixture.service.authenticate(token: token, now: Self.start + 12 * 60 * Self.minute - 1)
        let expired = Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: token, now: Self.start + 12 * 60 * Self.minute) }
        #expect(expired?.code == .unauthenticated && expired?.message.contains("12 hours") == true)

        let idle = try fixture.token("alice@stmary.org", password)
        _ = try fixture.service.authenticate(token: idle, now: Self.start + 30 * Self.minute - 1)
        let seen = Self.start + 30 * Self.minute - 1
        _ = try fixture.service.authenticate(token: idle, now: seen + 30 * Self.minute - 1)
        let ended = Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: idle, now: seen + 60 * Self.minute - 1) }
        #expect(ended?.code == .unauthenticated && ended?.message.contains("30 minutes") == true)
    }

    @Test("Logout ends one session; revoking ends all, by the account itself or its administrator only")
    func logoutAndRevocation() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let (alice, password) = try fixture.create("alice@stmary.org")
        let otherAdmin = try fixture.admin("eve@elsewhere.org", organization: "Elsewhere")
        let one = try fixture.token("alice@stmary.org", password), two = try fixture.token("alice@stmary.org", password)
        try fixture.service.logout(token: one, now: Self.start)
        try fixture.service.logout(token: one, now: Self.start)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: one, now: Self.start) }?.code == .unauthenticated)
        _ = try fixture.service.authenticate(token: two, now: Self.start)
        #expect(try fixture.store.events().filter { $0.kind == .logout }.count == 1)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.revokeSessions(accountID: alice.id, by: otherAdmin.account.id, now: Self.start) }?.code == .forbidden)
        _ = try fixture.service.authenticate(token: two, now: Self.start)
        #expect(try fixture.service.revokeSessions(accountID: alice.id, by: admin.account.id, now: Self.start) == 1)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: two, now: Self.start) }?.code == .unauthenticated)
        let three = try fixture.token("alice@stmary.org", password)
        #expect(try fixture.service.revokeSessions(accountID: alice.id, by: alice.id, now: Self.start) == 1)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: three, now: Self.start) }?.code == .unauthenticated)
    }

    // MARK: Passwords

    @Test("Changing the password revokes every session, the old token too, clears must-change and rotates the token")
    func passwordChange() throws {
        let fixture = try Fixture()
        let (account, oneTime) = try fixture.create("alice@stmary.org")
        let one = try fixture.token("alice@stmary.org", oneTime), two = try fixture.token("alice@stmary.org", oneTime)
        let new = try fixture.service.changePassword(token: one, current: oneTime, new: Self.strongPassword, now: Self.start + 1)
        for old in [one, two] {
            #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: old, now: Self.start + 2) }?.code == .unauthenticated)
        }
        let (changed, session) = try fixture.service.authenticate(token: new, now: Self.start + 2)
        #expect(!changed.mustChangePassword && session.createdAt == Self.start && session.expiresAt == Self.start + AccountService.sessionLifetime)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.login(username: "alice@stmary.org", password: oneTime, totp: nil, now: Self.start) }?.code == .unauthenticated)
        guard case .session(_, _, let mustChange, _) = try fixture.service.login(
            username: "alice@stmary.org", password: Self.strongPassword, totp: nil, now: Self.start) else { Issue.record("no session"); return }
        #expect(!mustChange)
        #expect(try fixture.store.events().contains { $0.kind == .passwordChanged && $0.accountID == account.id })
    }

    @Test("A refused password change changes nothing: weak, the current one, or containing the user name",
          arguments: ["aaaaaaaaaaaaaaaa", "qwertyuiopasdf", "my alice@stmary.org pass", "short"])
    func refusedPasswordChange(new: String) throws {
        let fixture = try Fixture()
        let (account, oneTime) = try fixture.create("alice@stmary.org")
        let token = try fixture.token("alice@stmary.org", oneTime)
        let row = try fixture.row(account.id)
        let sessions = try fixture.sessionRows()
        let events = try fixture.store.events()
        for candidate in [new, oneTime] {
            let error = Self.error { () throws(LedgerError) in try fixture.service.changePassword(token: token, current: oneTime, new: candidate, now: Self.start) }
            #expect(error?.code == .weakPassword)
        }
        #expect(try fixture.row(account.id) == row && fixture.sessionRows() == sessions && fixture.store.events() == events)
        // A wrong current password counts as a failed login and changes nothing else.
        let wrong = Self.error { () throws(LedgerError) in try fixture.service.changePassword(token: token, current: "guess", new: Self.strongPassword, now: Self.start) }
        #expect(try wrong == AccountService.loginRefused && fixture.store.account(id: account.id)?.failedAttempts == 1)
        let hashBefore: String? = row?["password_hash"], hashAfter: String? = try fixture.row(account.id)?["password_hash"]
        #expect(hashAfter == hashBefore)
    }

    @Test("An administrator's reset gives a new one-time password, ends the sessions and lifts a lockout")
    func passwordReset() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let (alice, first) = try fixture.create("alice@stmary.org", by: admin.account.id)
        let token = try fixture.token("alice@stmary.org", first)
        for _ in 0..<5 { _ = try? fixture.service.login(username: "alice@stmary.org", password: "wrong", totp: nil, now: Self.start) }
        #expect(try fixture.store.account(id: alice.id)?.isLocked(at: Self.start) == true)
        let second = try fixture.service.resetPassword(accountID: alice.id, by: admin.account.id, now: Self.start)
        #expect(second != first && second.count >= 20)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: token, now: Self.start) }?.code == .unauthenticated)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.login(username: "alice@stmary.org", password: first, totp: nil, now: Self.start) } == AccountService.loginRefused)
        guard case .session(_, _, let mustChange, _) = try fixture.service.login(
            username: "alice@stmary.org", password: second, totp: nil, now: Self.start) else { Issue.record("no session"); return }
        #expect(mustChange)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.resetPassword(accountID: admin.account.id, by: admin.account.id, now: Self.start) }?.code == .forbidden)
        let event = try #require(try fixture.store.events().last { $0.kind == .passwordReset })
        #expect(event.accountID == alice.id && event.actorID == admin.account.id)
    }

    // MARK: Administration

    @Test("A disabled account cannot log in or use a session; only an enrolled administrator of its organisation disables")
    func disabling() throws {
        let fixture = try Fixture()
        let (unenrolled, _) = try fixture.create("bert@stmary.org", role: .admin)
        let admin = try fixture.admin()
        let (alice, password) = try fixture.create("alice@stmary.org", by: admin.account.id)
        let token = try fixture.token("alice@stmary.org", password)
        for actor in [unenrolled.id, alice.id] {
            #expect(Self.error { () throws(LedgerError) in try fixture.service.disable(accountID: alice.id, by: actor, now: Self.start) }?.code == .forbidden)
        }
        #expect(Self.error { () throws(LedgerError) in try fixture.create("carl@stmary.org", by: unenrolled.id) }?.code == .forbidden)
        #expect(Self.error { () throws(LedgerError) in try fixture.create("carl@else.org", organization: "Else", by: admin.account.id) }?.code == .forbidden)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.disable(accountID: admin.account.id, by: admin.account.id, now: Self.start) }?.code == .forbidden)
        try fixture.service.disable(accountID: alice.id, by: admin.account.id, now: Self.start + 5)
        #expect(try fixture.store.account(id: alice.id)?.disabledAt == Self.start + 5)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: token, now: Self.start + 6) }?.code == .unauthenticated)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.login(username: "alice@stmary.org", password: password, totp: nil, now: Self.start + 6) }?.code == .accountDisabled)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.login(username: "alice@stmary.org", password: "wrong", totp: nil, now: Self.start + 6) } == AccountService.loginRefused)
    }

    @Test("A session of an account disabled behind the service's back is refused")
    func disabledSession() throws {
        let fixture = try Fixture()
        let (alice, password) = try fixture.create("alice@stmary.org")
        let token = try fixture.token("alice@stmary.org", password)
        try fixture.store.write { db in try db.execute(sql: "UPDATE account SET disabled_at = 1 WHERE id = ?", arguments: [alice.id]) }
        #expect(Self.error { () throws(LedgerError) in try fixture.service.authenticate(token: token, now: Self.start) }?.code == .accountDisabled)
    }

    @Test("Member fingerprints are 64 lowercase hex digits, set by an administrator")
    func memberFingerprint() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let (alice, _) = try fixture.create("alice@stmary.org", by: admin.account.id)
        let fingerprint = String(repeating: "ab", count: 32)
        #expect(Self.error { () throws(LedgerError) in try fixture.service.assignMember(accountID: alice.id, fingerprint: fingerprint.uppercased(), by: admin.account.id, now: Self.start) }?.code == .invalidArgument)
        try fixture.service.assignMember(accountID: alice.id, fingerprint: fingerprint, by: admin.account.id, now: Self.start)
        #expect(try fixture.store.account(id: alice.id)?.memberFingerprint == fingerprint)
    }

    // MARK: What reaches the disk

    @Test("After every flow, no password, token, CSRF token or TOTP secret is in the database files; all files are 0600")
    func nothingInPlaintext() throws {
        let fixture = try Fixture()
        let (account, oneTime) = try fixture.create("ada@stmary.org", role: .admin)
        var secrets: [[UInt8]] = [Array(oneTime.utf8), Array(Self.strongPassword.utf8)]
        let first = try fixture.token("ada@stmary.org", oneTime)
        let changed = try fixture.service.changePassword(token: first, current: oneTime, new: Self.strongPassword, now: Self.start)
        let (base32, uri) = try fixture.service.beginTOTPEnrolment(token: changed, password: Self.strongPassword, now: Self.start)
        let secret = try Base32.decode(base32)
        let enrolled = try fixture.service.confirmTOTPEnrolment(token: changed, code: try code(secret, at: Self.start), now: Self.start)
        let (alice, aliceOneTime) = try fixture.create("alice@stmary.org", by: account.id)
        let aliceToken = try fixture.token("alice@stmary.org", aliceOneTime)
        let reset = try fixture.service.resetPassword(accountID: alice.id, by: account.id, now: Self.start)
        let later = try fixture.token("ada@stmary.org", Self.strongPassword, totp: try code(secret, at: Self.start + 30_000), now: Self.start + 30_000)
        for token in [first, changed, enrolled, aliceToken, later] {
            secrets += [Array(token.utf8), Array(fixture.service.csrfToken(forSession: token).utf8)]
        }
        secrets += [secret, Array(base32.utf8), Array(uri.utf8), Array(aliceOneTime.utf8), Array(reset.utf8)]

        let files = ["accounts.sqlite", "accounts.sqlite-wal", "accounts.sqlite-shm"].map { fixture.directory + "/" + $0 }
        let contents = files.map { FileManager.default.contents(atPath: $0).map { Array($0) } ?? [] }
        #expect(contents[0].count + contents[1].count > 8192)
        for (index, needle) in secrets.enumerated() {
            for (file, haystack) in zip(files, contents) {
                #expect(haystack.firstRange(of: needle) == nil, "secret \(index) found in \(file)")
            }
        }
        // The test would see a secret: the sealed TOTP secret is there, the password hash too.
        let sealedValue: Data? = try fixture.row(account.id)?["totp_secret"]
        let sealed = try #require(sealedValue)
        #expect(contents[0].firstRange(of: Array(sealed)) != nil || contents[1].firstRange(of: Array(sealed)) != nil)
        for path in files + [fixture.directory + "/accounts.key"] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)
            #expect(mode.intValue & 0o777 == 0o600, "\(path)")
        }
        #expect(try FileManager.default.contents(atPath: fixture.directory + "/accounts.key")?.count == 32)
    }

    @Test("Reopening uses the same key (the TOTP secret still opens); a database without its key is refused")
    func reopen() throws {
        let fixture = try Fixture()
        let admin = try fixture.admin()
        let reopened = try AccountService(store: try AccountStore(path: fixture.path), passwordParameters: try .init(logN: 10))
        let now = Self.start + 60_000
        _ = try reopened.login(username: admin.account.username, password: Self.strongPassword, totp: try code(admin.secret, at: now), now: now)
        try FileManager.default.removeItem(atPath: fixture.directory + "/accounts.key")
        #expect(Self.error { () throws(LedgerError) in try AccountStore(path: fixture.path) }?.code == .invalidConfiguration)
        #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/accounts.key"))
    }

    @Test("Descriptions hold no token, user name, hash or secret")
    func descriptions() throws {
        let fixture = try Fixture()
        let (_, password) = try fixture.create("alice@stmary.org")
        let outcome = try fixture.service.login(username: "alice@stmary.org", password: password, totp: nil, now: Self.start)
        guard case .session(let token, let account, _, _) = outcome else { Issue.record("no session"); return }
        let session = try fixture.service.authenticate(token: token, now: Self.start).session
        for text in ["\(outcome)", "\(account)", "\(session)", String(reflecting: outcome)] {
            #expect(!text.contains(token) && !text.contains("alice") && !text.contains("scrypt"))
        }
        #expect(!String(reflecting: session).contains(Secrets.digest(token).base64EncodedString()))
    }
}
