import Foundation
import Testing
import LedgerCore
@testable import Accounts

/// Red-team findings against the web-account library: each test is an attack that currently
/// succeeds, and states what should happen instead. Built on ``AccountStoreTests/Fixture``
/// (temporary directory, cheap scrypt, explicit `now`).
@Suite("Account attacks")
struct AccountAttackTests {
    typealias Fixture = AccountStoreTests.Fixture
    static let start = AccountStoreTests.start
    static let minute = AccountStoreTests.minute
    static let strongPassword = AccountStoreTests.strongPassword

    /// Attack: an attacker who knows an administrator's password (after the one-time password was
    /// changed) logs in while the administrator has not enrolled TOTP yet, and keeps that session
    /// (`needsTOTPEnrolment`, never MFA-verified). The administrator then enrols and confirms TOTP in
    /// their own session. `confirmTOTPEnrolment` rotates only the confirming session
    /// (`revokingAll: false`), so the attacker's pre-MFA session stays live, now belongs to an account
    /// with `totpConfirmed` (so `needsTOTPEnrolment` is false), and passes `requireAdministrator`
    /// for every administrative action, without a second factor ever being checked for it.
    ///
    /// Should: confirming a second factor ends every other session of the account (as a password
    /// change does), so no session that never passed MFA survives the enrolment.
    @Test("Confirming TOTP ends the account's other, never-MFA-verified sessions")
    func enrolmentEndsOtherSessions() throws {
        let fixture = try Fixture()
        let name = "ada@stmary.org"
        let (admin, oneTime) = try fixture.create(name, role: .admin)
        let first = try fixture.token(name, oneTime)
        let own = try fixture.service.changePassword(token: first, current: oneTime, new: Self.strongPassword, now: Self.start)
        // The attacker logs in with the (stolen) password before the administrator enrols.
        let attacker = try fixture.token(name, Self.strongPassword, now: Self.start + Self.minute)
        let (secret, _) = try fixture.service.beginTOTPEnrolment(token: own, password: Self.strongPassword, now: Self.start + 2 * Self.minute)
        let bytes = try Base32.decode(secret)
        _ = try fixture.service.confirmTOTPEnrolment(token: own, code: try AccountStoreTests.code(bytes, at: Self.start + 2 * Self.minute),
                                                     now: Self.start + 2 * Self.minute)
        let survivor = try? fixture.service.authenticate(token: attacker, now: Self.start + 3 * Self.minute)
        #expect(survivor == nil, "the attacker's pre-enrolment session survived the TOTP confirmation")
        if let (account, session) = survivor {
            // What it is: a session that never passed MFA, of an account that no longer needs enrolment.
            #expect(!(account.totpConfirmed && !account.needsTOTPEnrolment && !session.mfaVerified),
                    "a never-MFA-verified session acts for administrator \(admin.id) with TOTP confirmed")
        }
    }

    /// Attack: an outsider with a stolen session cookie (no password) of an account without TOTP
    /// binds their own authenticator: `beginTOTPEnrolment` and `confirmTOTPEnrolment` ask for the
    /// session token only. From then on every login of the account needs the attacker's codes: the
    /// owner, who knows the password, is locked out and the attacker holds the only second factor
    /// (a stolen cookie becomes a lasting takeover once the attacker also learns the password).
    ///
    /// Should: binding an authenticator re-authenticates (the current password, as
    /// `changePassword` asks), so a stolen token alone cannot enrol one; the owner's password still logs in.
    @Test("A stolen session token alone cannot enrol the attacker's TOTP authenticator")
    func stolenTokenCannotEnrolTOTP() throws {
        let fixture = try Fixture()
        let name = "alice@stmary.org"
        let (_, oneTime) = try fixture.create(name, role: .clinician)
        let first = try fixture.token(name, oneTime)
        let stolen = try fixture.service.changePassword(token: first, current: oneTime, new: Self.strongPassword, now: Self.start)
        let now = Self.start + 5 * Self.minute
        let enrolled: Bool
        do {
            let (secret, _) = try fixture.service.beginTOTPEnrolment(token: stolen, password: "a guess at the password", now: now)
            let bytes = try Base32.decode(secret)
            _ = try fixture.service.confirmTOTPEnrolment(token: stolen, code: try AccountStoreTests.code(bytes, at: now), now: now)
            enrolled = true
        } catch {
            enrolled = false
        }
        #expect(!enrolled, "the token alone bound a new second factor")
        let outcome = try fixture.service.login(username: name, password: Self.strongPassword, totp: nil, now: now + Self.minute)
        #expect(outcome != .totpRequired, "the owner's password no longer logs in: the attacker's authenticator is required")
    }

    /// Attack (user-name confusion): user names are documented as unique "case-insensitively after
    /// NFKC", but the key is `nfkc.lowercased()`, not a case fold. `STRASSE` is the upper case of
    /// `straße`, and `ΟΔΟΣ` of `οδος`, yet their keys differ (`strasse`/`straße`, `οδοσ`/`οδος`): a
    /// second account is created under the other case of an existing user name, and the owner of
    /// the first, typing their name in capitals, reaches the second account (or none).
    ///
    /// Should: the second creation is `account_exists`, and a login with the other case finds the first account.
    @Test("A case variant of an existing user name (full case folding) is the same user name",
          arguments: [("straße@stmary.org", "STRASSE@STMARY.ORG"), ("οδος@stmary.org", "ΟΔΟΣ@STMARY.ORG")])
    func caseFoldedUsernames(existing: String, variant: String) throws {
        let fixture = try Fixture()
        let (first, password) = try fixture.create(existing)
        #expect(existing.uppercased() == variant)
        let error = AccountStoreTests.error { () throws(LedgerError) in try fixture.create(variant) }
        #expect(error?.code == .accountExists, "a second account was created under the upper case of \(existing)")
        let found = try? fixture.service.login(username: variant, password: password, totp: nil, now: Self.start)
        guard case .session(_, let account, _, _)? = found else {
            Issue.record("the owner of \(existing) cannot log in with their name in capitals")
            return
        }
        #expect(account.id == first.id)
    }

    /// Attack (careless user, self-lockout): `changePassword` accepts a password by its NFKC length
    /// (at most 128 code points), but `login` refuses, unhashed, any password over 1,024 UTF-8
    /// bytes *as typed*. A Korean passphrase of 128 syllables typed as conjoining jamo (NFD, as some
    /// input methods and macOS text produce) is 384 scalars and 1,152 bytes: the policy accepts it,
    /// it is hashed, and then the very same string never logs in again.
    ///
    /// Should: a password that `changePassword` accepts logs in when typed the same way (the limits
    /// agree: refuse it at the change, or measure the login's limit after NFKC).
    @Test("A password accepted by changePassword logs in when typed the same way (decomposed Hangul)")
    func acceptedPasswordLogsIn() throws {
        let fixture = try Fixture()
        let name = "jimin@stmary.org"
        let (_, oneTime) = try fixture.create(name)
        let token = try fixture.token(name, oneTime)
        // 128 distinct-looking syllables, each with a final consonant, written as L + V + T jamo.
        var scalars: [Unicode.Scalar] = []
        var seed: UInt32 = 12_345
        for _ in 0..<128 {
            seed = seed &* 1_103_515_245 &+ 12_345
            let l = (seed >> 8) % 19, v = (seed >> 16) % 21, t = 1 + (seed >> 24) % 27
            scalars += [Unicode.Scalar(0x1100 + l)!, Unicode.Scalar(0x1161 + v)!, Unicode.Scalar(0x11A7 + t)!]
        }
        var typed = ""
        typed.unicodeScalars.append(contentsOf: scalars)
        #expect(typed.utf8.count > AccountService.maximumLoginInputBytes)
        #expect(typed.nfkc.unicodeScalars.count <= fixture.service.policy.maximumLength)
        do {
            _ = try fixture.service.changePassword(token: token, current: oneTime, new: typed, now: Self.start)
        } catch {
            #expect(error.code == .weakPassword)  // refused at the change: fine
            return
        }
        let outcome = try? fixture.service.login(username: name, password: typed, totp: nil, now: Self.start + Self.minute)
        #expect(outcome != nil, "the password just accepted is refused at every login")
    }

    /// Attack (careless operator): a service configured with `PasswordPolicy(maximumLength: 2000)`
    /// (long passphrases welcome) accepts a 1,100-character password at `changePassword`, but
    /// `login` silently refuses any password over 1,024 bytes: the account can never log in again
    /// and every attempt counts towards a lockout.
    ///
    /// Should: the service refuses (at `init` or at the change) a policy whose maximum exceeds what
    /// a login reads, or the two limits are the same.
    @Test("A policy maximum above the login's limit is refused, or its passwords log in")
    func policyLongerThanLogin() throws {
        let fixture = try Fixture()
        let service: AccountService
        do {
            service = try AccountService(store: fixture.store, passwordParameters: try .init(logN: 10),
                                         policy: PasswordPolicy(maximumLength: 2000))
        } catch {
            return // refused at configuration: fine
        }
        let name = "long@stmary.org"
        let (_, oneTime) = try service.createAccount(organization: "St Mary", username: name, role: .researcher, createdBy: nil,
                                                     now: Self.start)
        guard case .session(let token, _, _, _) = try service.login(username: name, password: oneTime, totp: nil, now: Self.start) else {
            Issue.record("no session"); return
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789 ")
        var seed: UInt64 = 42
        let long = String((0..<1100).map { _ in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return letters[Int((seed >> 33) % UInt64(letters.count))]
        })
        let changed = try? service.changePassword(token: token, current: oneTime, new: long, now: Self.start)
        guard changed != nil else { return } // refused at the change: fine
        let outcome = try? service.login(username: name, password: long, totp: nil, now: Self.start + Self.minute)
        #expect(outcome != nil, "a password the policy accepted can never log in")
    }
}
