import Crypto
import HTTPTypes
public import Hummingbird
import NIOCore
public import LedgerCore
public import Node

/// Turns an `Authorization: MedLedger-Signature …` header into a ``Principal`` (docs/formats.md).
///
/// Checks, cheapest first: header syntax; time within the window; the certificate is a registered
/// member (from the node's in-memory membership cache, key already parsed), not revoked, of an
/// active organisation, valid now; the signature over the exact method, target, body hash, time,
/// nonce and network; and only then the nonce, so unsigned junk cannot fill the replay cache.
/// A request costs one SHA-256 of the body and one P-256 verification.
public final class RequestAuthenticator: Sendable {
    /// The most a request may be off the node's clock: the network's clock skew, at most 5 minutes.
    public static let maxWindowMilliseconds: Int64 = 5 * 60 * 1000
    /// Largest body a signed request may carry (reads have none).
    public static let maxBodyBytes = 64 * 1024

    let node: LedgerNode
    let replays: ReplayCache

    public init(node: LedgerNode, replayCapacity: Int = 500_000) {
        self.node = node
        self.replays = ReplayCache(capacity: replayCapacity)
    }

    var windowMilliseconds: Int64 { min(Int64(clamping: node.config.clockSkewMilliseconds), Self.maxWindowMilliseconds) }

    /// The principal of `request`, nil when it carries no `Authorization` header.
    /// Collects the body (at most ``maxBodyBytes``) into the request to hash it.
    ///
    /// A route that takes larger bodies (`bodyLimit` above ``maxBodyBytes``: record uploads) reads
    /// one only from a registered, current member whose declared length fits, so an outsider
    /// cannot make the node buffer megabytes before its signature is checked.
    public func authenticate(_ request: inout Request, bodyLimit: Int = RequestAuthenticator.maxBodyBytes) async throws(LedgerError) -> Principal? {
        let values = request.headers[values: .authorization]
        guard !values.isEmpty else { return nil }
        guard values.count == 1 else { throw LedgerError(.unauthenticated, "send exactly one Authorization header") }
        let credentials = try RequestSignature.parse(values[0])
        if bodyLimit > Self.maxBodyBytes {
            // Red-team finding: naming a real member's (public) fingerprint with a junk signature
            // made the node read megabytes before the signature failed. A large body's hash is
            // declared up front and the signature checked over it before a byte is read; the
            // handler reads the body (after the route is authorised), hashing it as it streams to
            // disk and keeping it only if it is the body whose hash was signed.
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > bodyLimit {
                throw LedgerError(.payloadTooLarge, "this request body may be at most \(bodyLimit) bytes")
            }
            guard let declared = request.headers[Self.bodyHashField].flatMap({ Hash256(hex: $0) }) else {
                throw LedgerError(.unauthenticated, "a large signed body declares its SHA-256 in \(Self.bodyHashField) (64 hex digits)")
            }
            return try verify(credentials, method: request.method.rawValue, target: request.head.path ?? "", bodyHash: declared,
                              now: Clock.nowMilliseconds())
        }
        let bodyHash: Hash256
        if request.method == .get || request.method == .head {
            // A GET carries no body: it is never collected, so the request keeps the connection's
            // inbound stream (the event stream watches it to see the client leave).
            guard request.headers[.contentLength].map({ $0 == "0" }) ?? true, request.headers[.transferEncoding] == nil else {
                throw LedgerError(.invalidArgument, "a \(request.method.rawValue) request carries no body")
            }
            bodyHash = Hash256.of([UInt8]())
        } else {
            do { bodyHash = Hash256.of(try await request.collectBody(upTo: max(bodyLimit, Self.maxBodyBytes)).readableBytesView) } catch {
                throw LedgerError(.payloadTooLarge, "this request body may be at most \(max(bodyLimit, Self.maxBodyBytes)) bytes")
            }
        }
        return try verify(credentials, method: request.method.rawValue, target: request.head.path ?? "",
                          bodyHash: bodyHash, now: Clock.nowMilliseconds())
    }

    /// `MedLedger-Body-SHA256`: the hash of a large signed body, declared so that the signature is
    /// checked before the body is read (docs/formats.md §3.1).
    public static let bodyHashField = HTTPField.Name("MedLedger-Body-SHA256")!

    /// The principal's certificate is still registered, unrevoked, of an active organisation and
    /// valid at `now` (for responses that outlive their request, such as the event stream).
    public static func isCurrent(_ principal: Principal, node: LedgerNode, now: Int64) -> Bool {
        guard let credential = node.credential(for: principal.member) else { return false }
        return isCurrent(credential.member, active: credential.organizationActive, now: now)
    }

    static func isCurrent(_ member: Member, active: Bool, now: Int64) -> Bool {
        active && member.revokedAt == nil && member.certificate.notBefore <= now && now <= member.certificate.notAfter
    }

    /// The checks after parsing; `now` is the node's clock in ms since the epoch.
    public func verify(_ credentials: RequestSignature.Credentials, method: String, target: String, bodyHash: Hash256,
                now: Int64) throws(LedgerError) -> Principal {
        let window = windowMilliseconds
        let (difference, overflow) = credentials.time.subtractingReportingOverflow(now)
        guard !overflow, difference.magnitude <= window else {
            throw LedgerError(.timestampSkew, "request time is more than \(window / 1000) s from this node's clock; sign again (check the client's clock)")
        }
        guard let credential = node.credential(for: credentials.member) else {
            throw LedgerError(.unknownMember, "certificate \(credentials.member.hex.prefix(16))… is not a registered member of this network")
        }
        let member = credential.member
        guard credential.organizationActive, let kind = credential.organizationKind else {
            throw LedgerError(.unknownOrganization, "organisation \(member.organization) is not an active member")
        }
        if member.revokedAt != nil { throw LedgerError(.certificateRevoked, "certificate has been revoked") }
        guard member.certificate.notBefore <= now, now <= member.certificate.notAfter else {
            throw LedgerError(.certificateExpired, "certificate is not valid now")
        }
        let message = RequestSignature.message(network: node.network, method: method, target: target, bodyHash: bodyHash,
                                               time: credentials.time, nonce: credentials.nonce)
        guard SignatureCheck.isValid(signature: credentials.signature, message: message, publicKey: credential.key) else {
            throw LedgerError(.badSignature, "request signature does not verify for this network, method, target, body, time and nonce")
        }
        switch replays.insert(member: credentials.member, nonce: credentials.nonce, expiry: credentials.time + window, now: now) {
        case .fresh: break
        case .replayed: throw LedgerError(.replayedRequest, "this request's nonce was already used; sign every request afresh")
        case .full: throw LedgerError(.overloaded, "too many signed requests in the replay window; retry later")
        }
        return Principal(member: member.fingerprint, organization: member.organization, organizationKind: kind, role: member.role,
                         name: member.certificate.name)
    }
}
