import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import Hummingbird
import LedgerCore
@testable import Server

/// docs/openapi.json is the API contract: these tests hold the router to it (the route table, who
/// authenticates how, 405 for undeclared methods); scripts/api-contract runs schemathesis against a
/// real node for the answers themselves.
@Suite struct OpenAPIContractTests {
    static let documentURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/openapi.json")

    static func document() throws -> [String: Any] {
        let data = try Data(contentsOf: documentURL)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func operations(_ document: [String: Any]) throws -> [String: [String: Any]] {
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var operations: [String: [String: Any]] = [:]
        for (path, item) in paths {
            for (method, operation) in item {
                operations["\(method.uppercased()) \(path)"] = try #require(operation as? [String: Any])
            }
        }
        return operations
    }

    @Test func theServedDocumentIsDocsOpenAPIJSON() throws {
        let file = try String(contentsOf: Self.documentURL, encoding: .utf8)
        // Drift between the file and what the server embeds: run scripts/generate-openapi.
        #expect(OpenAPIDocument.json + "\n" == file, "docs/openapi.json changed: run scripts/generate-openapi")
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
    }

    @Test func everyRouteIsAnOperationAndNothingElse() throws {
        let operations = try Self.operations(Self.document())
        let routes = Set(APIRoute.allCases.map(\.template))
        #expect(Set(operations.keys) == routes)
        #expect(routes.count == APIRoute.allCases.count)
        // operationId is the route's case name, so a client's names match the server's.
        for route in APIRoute.allCases {
            #expect(operations[route.template]?["operationId"] as? String == "\(route)")
        }
    }

    @Test func securityMatchesHowEachRouteAuthenticates() throws {
        let document = try Self.document()
        let global = try #require(document["security"] as? [[String: Any]])
        #expect(global.count == 1 && global[0]["memberSignature"] != nil)
        let operations = try Self.operations(document)
        for route in APIRoute.allCases {
            let operation = try #require(operations[route.template])
            let responses = try #require(operation["responses"] as? [String: Any])
            switch route.authentication {
            case .signedRequest:
                #expect(operation["security"] == nil, "\(route) overrides the signed-request scheme")
                #expect(responses["401"] != nil && responses["403"] != nil, "\(route) declares no 401/403")
            case .envelope:
                #expect((operation["security"] as? [Any])?.isEmpty == true, "\(route): the envelope in the body authenticates")
                #expect(operation["x-medledger-authentication"] as? String == "envelope")
                #expect(responses["401"] != nil)
            case .none:
                #expect((operation["security"] as? [Any])?.isEmpty == true, "\(route) is open")
                #expect(responses["401"] == nil)
            }
            // No operation declares a server error: a 500 is always a bug.
            #expect(responses["500"] == nil && responses["default"] == nil)
        }
    }

    @Test func everyReferenceResolves() throws {
        let document = try Self.document()
        let data = try JSONSerialization.data(withJSONObject: document)
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
        let components = try #require(document["components"] as? [String: [String: Any]])
        var references = 0
        var rest = Substring(text)
        while let range = rest.range(of: "\"#/components/") {
            let tail = rest[range.upperBound...]
            let end = try #require(tail.firstIndex(of: "\""))
            let parts = tail[..<end].split(separator: "/")
            #expect(parts.count == 2 && components[String(parts[0])]?[String(parts[1])] != nil, "dangling $ref \(tail[..<end])")
            references += 1
            rest = tail[end...]
        }
        #expect(references > 30)
    }

    @Test func unmatchedMethodsAre405WithAllowAndUnknownPaths404() throws {
        let middleware = UnmatchedRouteMiddleware<BasicRequestContext>.init()
        let templates = middleware.templates
        func allowed(_ path: String) -> [String] {
            let segments = path.split(separator: "/")
            return UnmatchedRouteMiddleware<BasicRequestContext>.allowed(segments, in: templates)
        }
        #expect(allowed("/v1/chain") == ["GET"])
        #expect(allowed("/v1/transactions/batch") == ["POST"])  // the literal wins, as in the router
        #expect(allowed("/v1/transactions/\(Hash256.zero.hex)") == ["GET"])
        #expect(allowed("/v1/records/abc/rotate") == ["POST"])
        #expect(allowed("/v1/records") == ["POST"])
        #expect(allowed("/v1/nowhere").isEmpty)
        #expect(allowed("/v1/records/a/b/c").isEmpty)
    }

    /// Over HTTP, against a node: the open document, 405 with Allow, JSON 404s.
    @Test func theNodeServesTheDocumentAndAnswersUndeclaredMethods405() async throws {
        let harness = try NodeHarness()
        let api = try await APIHarness(harness)
        let served = try await api.send("/openapi.json")
        #expect(served.status == 200)
        #expect(served.text + "\n" == (try String(contentsOf: Self.documentURL, encoding: .utf8)))
        for (method, target, allow) in [("PUT", "/v1/chain", "GET"), ("DELETE", "/health", "GET"), ("GET", "/v1/records", "POST"),
                                        ("PATCH", "/v1/records/\(Hash256.zero.hex)", "GET"), ("POST", "/openapi.json", "GET"),
                                        ("DELETE", "/v1/transactions/batch", "POST"), ("GET", "/v1/transactions/batch", "POST")] {
            var request = URLRequest(url: URL(string: api.base.absoluteString + target)!)
            request.httpMethod = method
            let (data, response) = try await api.session.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            #expect(http.statusCode == 405, "\(method) \(target)")
            #expect(http.value(forHTTPHeaderField: "Allow") == allow, "\(method) \(target)")
            #expect(APIHarness.Answer(status: 405, body: data).code == "method_not_allowed")
        }
        let unknown = try await api.send("/v1/nowhere")
        #expect(unknown.status == 404 && unknown.code == "not_found")
        await api.stop()
        try await harness.stop()
    }
}
