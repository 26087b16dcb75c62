import Crypto
import Synchronization
public import LedgerCore

/// A registered member as the API authenticator needs it: the record, its parsed key and the
/// state of its organisation, all from the node's in-memory membership cache.
public struct MemberCredential: Sendable {
    public let member: Member
    public let key: P256.Signing.PublicKey
    public let organizationActive: Bool
    public let organizationKind: OrganizationKind?
}

extension LedgerNode {
    /// The registered member with certificate `fingerprint`, revoked or not (the caller checks).
    /// One dictionary lookup under the chain lock; no database read, no key parsing.
    public func credential(for fingerprint: Hash256) -> MemberCredential? {
        chain.withLock { state in
            state.members[fingerprint].map {
                MemberCredential(member: $0.member, key: $0.key, organizationActive: $0.organizationActive,
                                 organizationKind: $0.organizationKind)
            }
        }
    }
}
