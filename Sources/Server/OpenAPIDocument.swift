import HTTPTypes
import Hummingbird
import LedgerCore
import NIOCore

/// The API contract: docs/openapi.json (OpenAPI 3.1), written by hand and embedded by
/// scripts/generate-openapi. The server is tested against it, not generated from it
/// (docs/architecture.md, "The API contract"): `OpenAPIContractTests` checks that its operations are
/// exactly the ``APIRoute`` table, and schemathesis (scripts/api-contract) checks every answer of a
/// real node against it.
public enum OpenAPIDocument {
    static func response() -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

/// What the router answers for a request no route matched: 405 with `Allow` when the path is a
/// route's under another method, else 404; both as the API's JSON errors.
struct UnmatchedRouteMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each template's path segments (`{…}` matches any one segment) and its methods.
    let templates: [(segments: [Substring], methods: [String])]

    init(routes: [APIRoute] = APIRoute.allCases) {
        var table: [(segments: [Substring], methods: [String])] = []
        for route in routes {
            let parts = route.template.split(separator: " ", maxSplits: 1)
            let segments = parts[1].split(separator: "/")
            if let index = table.firstIndex(where: { $0.segments == segments }) {
                table[index].methods.append(String(parts[0]))
            } else {
                table.append((segments, [String(parts[0])]))
            }
        }
        templates = table
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            // As the router does, a literal segment wins over a parameter: POST /v1/transactions/batch
            // is not GET /v1/transactions/{id}.
            let allowed = Self.allowed(segments, in: templates)
            guard !allowed.isEmpty else {
                return APIServer.error(LedgerError(.notFound, "no route \(request.uri.path.prefix(128)) (the API: GET /openapi.json)"))
            }
            let methods = Set(allowed).sorted().joined(separator: ", ")
            var response = APIServer.json(ErrorBody(error: .init(code: LedgerError.Code.methodNotAllowed.rawValue,
                                                                 message: "\(request.method.rawValue.prefix(16)) is not a method of this path; it takes \(methods)")),
                                          status: .methodNotAllowed)
            response.headers[.allow] = methods
            return response
        }
    }

    /// The methods of the templates `path` matches; as in the router, a literal segment wins over a
    /// parameter (`/v1/transactions/batch` is not `/v1/transactions/{id}`).
    static func allowed(_ path: [Substring], in templates: [(segments: [Substring], methods: [String])]) -> [String] {
        func literals(_ segments: [Substring]) -> Int { segments.filter { $0.first != "{" }.count }
        let matching = templates.filter { matches($0.segments, path) }
        let most = matching.map { literals($0.segments) }.max()
        return matching.filter { literals($0.segments) == most }.flatMap(\.methods)
    }

    static func matches(_ template: [Substring], _ path: [Substring]) -> Bool {
        template.count == path.count && zip(template, path).allSatisfy { $0.first == "{" || $0 == $1 }
    }
}
