/// What a member may do. Carried in the certificate's OU and in the on-ledger member record.
public enum Role: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    /// Organisation administrator: proposes and approves governance changes.
    case admin
    /// A ledger node: seals blocks and signs checkpoints; submits no transactions.
    case node
    /// A hospital collector: turns device inventory and telemetry into signed transactions.
    case collector
    /// A device holding its own key: may update only itself.
    case device
    case researcher
    case auditor
    case clinician
    case patient
    /// Acts for a patient (a parent, a guardian): grants and revokes consent, reads their records.
    case delegate

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The kind of a member organisation.
public enum OrganizationKind: String, Sendable, Hashable, CaseIterable, Codable {
    case hospital
    case research
    case regulator
    case manufacturer
}
