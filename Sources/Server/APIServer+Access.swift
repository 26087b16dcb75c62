import HTTPTypes
import Hummingbird
import LedgerCore
import Node

extension APIServer {
    /// Registers routes so that none runs before its caller is authenticated and the
    /// ``AccessPolicy`` allows the route: every handler is registered under an ``APIRoute``.
    struct GuardedRouter {
        let router: Router<BasicRequestContext>
        let authenticator: RequestAuthenticator
        let node: LedgerNode

        typealias Handler = @Sendable (Request, BasicRequestContext, Principal?) async throws -> Response

        func get(_ path: RouterPath, _ route: APIRoute, use handler: @escaping Handler) {
            on(path, method: .get, route, use: handler)
        }

        func post(_ path: RouterPath, _ route: APIRoute, use handler: @escaping Handler) {
            on(path, method: .post, route, use: handler)
        }

        func on(_ path: RouterPath, method: HTTPRequest.Method, _ route: APIRoute, use handler: @escaping Handler) {
            let (authenticator, node) = (self.authenticator, self.node)
            router.on(path, method: method) { request, context -> Response in
                if !route.answersWhenDiverged, let divergence = node.divergence {
                    return APIServer.error(LedgerError(.diverged, "this node disagrees with the network from height \(divergence.height) and serves no ledger data (why: GET /v1/node, signed by a member)"))
                }
                var request = request
                var caller: Principal?
                if route.authentication == .signedRequest {
                    // A record upload may be as large as this node's store takes.
                    let limit = route == .storeRecord ? max(node.records?.maxRecordBytes ?? 0, RequestAuthenticator.maxBodyBytes + 1) : route.bodyLimit
                    do throws(LedgerError) { caller = try await authenticator.authenticate(&request, bodyLimit: limit) } catch {
                        return unauthenticated(error)
                    }
                }
                switch AccessPolicy.decide(caller, route) {
                case .allow: return try await handler(request, context, caller)
                case .unauthenticated(let message): return unauthenticated(LedgerError(.unauthenticated, message))
                case .forbidden(let message): return APIServer.error(LedgerError(.forbidden, message))
                }
            }
        }
    }

    /// A refused authentication: 401 with the specific code, except an oversized body (413), a body
    /// on a GET (400) and a
    /// full replay cache (503). The credentials themselves are never logged or echoed.
    static func unauthenticated(_ error: LedgerError) -> Response {
        var response: Response
        switch error.code {
        case .payloadTooLarge, .overloaded, .invalidArgument: response = Self.error(error)
        default: response = json(ErrorBody(error: .init(code: error.code.rawValue, message: error.message)), status: .unauthorized)
        }
        if response.status == .unauthorized { response.headers[.wwwAuthenticate] = RequestSignature.scheme }
        return response
    }

    /// The caller's scope for `route` and `resource`, or a `forbidden` / `unauthenticated` error.
    @discardableResult
    static func require(_ caller: Principal?, _ route: APIRoute, _ resource: AccessResource) throws(LedgerError) -> AccessScope {
        switch AccessPolicy.decide(caller, route, resource) {
        case .allow(let scope): return scope
        case .unauthenticated(let message): throw LedgerError(.unauthenticated, message)
        case .forbidden(let message): throw LedgerError(.forbidden, message)
        }
    }
}
