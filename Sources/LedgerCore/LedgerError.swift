/// An error with a stable machine-readable ``Code``, a human message and the place it was raised.
///
/// Expected refusals (a bad signature, an unknown device) are values of this type; the code is what
/// clients match on, the message tells a person what was wrong and what to do.
public struct LedgerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable error code. New codes may be added; existing ones never change meaning.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Comparable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        public static func < (lhs: Code, rhs: Code) -> Bool { lhs.rawValue < rhs.rawValue }

        public static let malformedEncoding = Code(rawValue: "malformed_encoding")
        public static let badSignature = Code(rawValue: "bad_signature")
        public static let unknownMember = Code(rawValue: "unknown_member")
        public static let unknownOrganization = Code(rawValue: "unknown_organization")
        public static let certificateExpired = Code(rawValue: "certificate_expired")
        public static let certificateRevoked = Code(rawValue: "certificate_revoked")
        public static let invalidCertificate = Code(rawValue: "invalid_certificate")
        public static let forbidden = Code(rawValue: "forbidden")
        public static let payloadTooLarge = Code(rawValue: "payload_too_large")
        public static let duplicateTransaction = Code(rawValue: "duplicate_transaction")
        public static let timestampSkew = Code(rawValue: "timestamp_skew")
        public static let wrongNetwork = Code(rawValue: "wrong_network")
        public static let invalidUDI = Code(rawValue: "invalid_udi")
        public static let unknownDevice = Code(rawValue: "unknown_device")
        public static let deviceExists = Code(rawValue: "device_exists")
        public static let deviceDecommissioned = Code(rawValue: "device_decommissioned")
        public static let missingField = Code(rawValue: "missing_field")
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        public static let unknownAction = Code(rawValue: "unknown_action")
        public static let unknownProposal = Code(rawValue: "unknown_proposal")
        public static let proposalClosed = Code(rawValue: "proposal_closed")
        public static let alreadyApproved = Code(rawValue: "already_approved")
        public static let notFound = Code(rawValue: "not_found")
        /// HTTP only (never a ledger status): the path exists under other methods.
        public static let methodNotAllowed = Code(rawValue: "method_not_allowed")
        public static let overloaded = Code(rawValue: "overloaded")
        public static let verificationFailed = Code(rawValue: "verification_failed")
        public static let storage = Code(rawValue: "storage_error")
        public static let invalidConfiguration = Code(rawValue: "invalid_configuration")
        public static let budgetExhausted = Code(rawValue: "budget_exhausted")
        /// A research answer whose released values are not the ones every node computes.
        public static let answerMismatch = Code(rawValue: "answer_mismatch")
        /// A genesis whose approvals do not satisfy its approval policy (too few organisations).
        public static let insufficientApprovals = Code(rawValue: "insufficient_approvals")
        /// A genesis approval for another draft than the one being sealed (never a ledger status:
        /// on the ledger such an approval is simply a bad signature).
        public static let draftMismatch = Code(rawValue: "draft_mismatch")
        /// No record is anchored under this id.
        public static let unknownRecord = Code(rawValue: "unknown_record")
        /// A record with this id (the hash of its ciphertext) is already anchored.
        public static let recordExists = Code(rawValue: "record_exists")
        /// The record was erased (crypto-shredded): nothing about it is decided or served any more.
        public static let recordErased = Code(rawValue: "record_erased")
        /// No patient is enrolled under this pseudonym.
        public static let unknownPatient = Code(rawValue: "unknown_patient")
        public static let io = Code(rawValue: "io_error")
        public static let `internal` = Code(rawValue: "internal_error")
        /// An API request without valid request credentials (never a ledger status).
        public static let unauthenticated = Code(rawValue: "unauthenticated")
        /// An API request whose nonce was already used within the time window (never a ledger status).
        public static let replayedRequest = Code(rawValue: "replayed_request")
        /// The ordering service (etcd) did not acknowledge a submission in time (never a ledger status).
        public static let unavailable = Code(rawValue: "unavailable")
        /// This node found that it disagrees with the network and serves no ledger data (never a ledger status).
        public static let diverged = Code(rawValue: "diverged")
        /// A new web-account password that the password policy refuses (never a ledger status).
        public static let weakPassword = Code(rawValue: "weak_password")
        /// A web account locked after too many failed logins, until the time in the message (never a ledger status).
        public static let accountLocked = Code(rawValue: "account_locked")
        /// A web account that an administrator disabled (never a ledger status).
        public static let accountDisabled = Code(rawValue: "account_disabled")
        /// A new web account whose user name is taken, compared case-insensitively after NFKC (never a ledger status).
        public static let accountExists = Code(rawValue: "account_exists")

        /// The numeric status stored on the ledger for a transaction refused during execution.
        /// `0` means success. Numbers are part of the on-ledger format and never reused.
        /// Codes that are not in the table (storage and I/O faults, which never become ledger
        /// refusals) map to the status of ``internal``.
        public var ledgerStatus: UInt16 {
            let index = Code.statusTable.firstIndex(of: self) ?? Code.statusTable.firstIndex(of: .internal)!
            return UInt16(index + 1)
        }

        /// The code for a stored ledger status (inverse of ``ledgerStatus``).
        public init(ledgerStatus: UInt16) {
            let index = Int(ledgerStatus) - 1
            self = index >= 0 && index < Code.statusTable.count ? Code.statusTable[index] : Code(rawValue: "status_\(ledgerStatus)")
        }

        // Append only: the position is the on-ledger status number.
        static let statusTable: [Code] = [
            .malformedEncoding, .badSignature, .unknownMember, .unknownOrganization, .certificateExpired,
            .certificateRevoked, .invalidCertificate, .forbidden, .payloadTooLarge, .duplicateTransaction,
            .timestampSkew, .wrongNetwork, .invalidUDI, .unknownDevice, .deviceExists,
            .deviceDecommissioned, .missingField, .invalidArgument, .unknownAction, .unknownProposal,
            .proposalClosed, .alreadyApproved, .internal, .invalidConfiguration, .budgetExhausted, .notFound,
            .answerMismatch, .insufficientApprovals, .unknownRecord, .recordExists, .recordErased, .unknownPatient,
        ]
    }

    public var code: Code
    public var message: String
    public var file: String
    public var line: Int

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: LedgerError, rhs: LedgerError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }
}
