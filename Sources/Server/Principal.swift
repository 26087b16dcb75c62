public import LedgerCore

/// Who is calling the API, as established by an authenticator.
///
/// Today the only authenticator is ``RequestAuthenticator`` (a request signed with a registered
/// member certificate). Human accounts of the web app (with MFA sessions) are meant to be another
/// authenticator producing a `Principal` for the member certificate the account is bound to; the
/// ``AccessPolicy`` decides on the principal alone and never sees how it was authenticated.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    /// How the principal was authenticated (for audit; the policy does not depend on it).
    public enum Method: String, Sendable, Hashable {
        case signedRequest = "signed_request"
    }

    /// SHA-256 of the member's DER certificate.
    public var member: Hash256
    public var organization: String
    public var organizationKind: OrganizationKind
    public var role: Role
    /// The certificate's common name, e.g. `st-mary/collector`.
    public var name: String
    public var method: Method

    public init(member: Hash256, organization: String, organizationKind: OrganizationKind, role: Role, name: String,
                method: Method = .signedRequest) {
        self.member = member
        self.organization = organization
        self.organizationKind = organizationKind
        self.role = role
        self.name = name
        self.method = method
    }

    /// Name and role only: no key material.
    public var description: String { "\(name) [\(role.rawValue) of \(organizationKind.rawValue) \(organization)]" }
}
