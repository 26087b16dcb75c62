import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import LedgerCore

/// A minimal client of the node's HTTP API (what collectors and the CLI use).
///
/// With a `signer`, every read carries `Authorization: MedLedger-Signature …` signed with the
/// signer's member key for `network` (``RequestSignature``); submissions need no header, their
/// envelope is signed.
public struct NodeClient: Sendable {
    /// The identity reads are signed with, and the network they are for.
    public struct Signer: Sendable {
        public var identity: SigningIdentity
        public var network: Hash256
        public init(identity: SigningIdentity, network: Hash256) {
            self.identity = identity
            self.network = network
        }
    }

    public struct Status: Decodable, Sendable {
        public var id: Hash256
        public var status: String
        public var height: UInt64?
        public var code: String?
        public var message: String?

        public var isFinal: Bool { status == "committed" || status == "rejected" }
    }

    public struct Chain: Decodable, Sendable {
        public var network_id: Hash256
        public var network_name: String
        public var height: UInt64
        /// The configuration in force (changed only by governance).
        public var config: NetworkConfig
    }

    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    public let baseURL: URL
    public let signer: Signer?
    let session: URLSession

    public init(baseURL: URL, signer: Signer? = nil) {
        self.baseURL = baseURL
        self.signer = signer
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 120
        configuration.httpMaximumConnectionsPerHost = 64
        session = URLSession(configuration: configuration)
    }

    /// Submits an envelope; with `wait` the answer comes once it is committed or rejected.
    public func submit(_ envelope: [UInt8], wait: Int? = nil) async throws -> Status {
        var components = URLComponents(url: baseURL.appendingPathComponent("v1/transactions"), resolvingAgainstBaseURL: false)!
        if let wait { components.queryItems = [URLQueryItem(name: "wait", value: String(wait))] }
        var request = URLRequest(url: components.url!)
        request.httpMethod = "POST"
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(envelope)
        return try await send(request)
    }

    /// Submits up to ``EnvelopeBatch/maxCount`` envelopes in one request; one status per envelope,
    /// in order: `pending` (held by the ordering service) or `refused` with its code and message.
    public func submit(batch envelopes: [[UInt8]]) async throws -> [Status] {
        struct Answer: Decodable { var results: [Status] }
        var request = URLRequest(url: baseURL.appendingPathComponent("v1/transactions/batch"))
        request.httpMethod = "POST"
        request.setValue(EnvelopeBatch.mediaType, forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(EnvelopeBatch(envelopes).encoded)
        let answer: Answer = try await send(request)
        guard answer.results.count == envelopes.count else {
            throw LedgerError(.malformedEncoding, "the node answered \(answer.results.count) statuses for \(envelopes.count) envelopes")
        }
        return answer.results
    }

    public func status(_ id: Hash256, wait: Int? = nil) async throws -> Status {
        var components = URLComponents(url: baseURL.appendingPathComponent("v1/transactions/\(id.hex)"), resolvingAgainstBaseURL: false)!
        if let wait { components.queryItems = [URLQueryItem(name: "wait", value: String(wait))] }
        return try await send(URLRequest(url: components.url!))
    }

    public func chain() async throws -> Chain {
        try await send(URLRequest(url: baseURL.appendingPathComponent("v1/chain")))
    }

    /// GET `path` (relative to the base URL) and decode its JSON.
    public func get<T: Decodable>(_ path: String, query: [URLQueryItem] = []) async throws -> T {
        var components = URLComponents(url: baseURL.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { components.queryItems = query }
        return try await send(URLRequest(url: components.url!))
    }

    /// POST a binary envelope to `path` and decode the JSON answer.
    public func post<T: Decodable>(_ path: String, envelope: [UInt8]) async throws -> T {
        var request = URLRequest(url: baseURL.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(envelope)
        return try await send(request)
    }

    /// The request target as it goes on the wire: percent-encoded path and query.
    public static func target(of url: URL) -> String {
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: true) else { return url.path }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return components.percentEncodedQuery.map { path + "?" + $0 } ?? path
    }

    /// POST `body` to `path` with a signed `Authorization` header (the signature covers the body's
    /// hash) and decode the JSON answer.
    public func postSigned<T: Decodable>(_ path: String, body: [UInt8], contentType: String = "application/octet-stream") async throws -> T {
        guard let signer else { throw LedgerError(.unauthenticated, "a signed POST needs a signer") }
        let url = baseURL.appendingPathComponent(path)
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(body)
        // Lets the node check the signature before it reads a large body.
        request.setValue(Hash256.of(body).hex, forHTTPHeaderField: "MedLedger-Body-SHA256")
        request.setValue(RequestSignature.authorization(identity: signer.identity, network: signer.network, method: "POST",
                                                        target: Self.target(of: url), body: body), forHTTPHeaderField: "Authorization")
        return try await send(request)
    }

    /// Adds the signed `Authorization` header to a read (a fresh time and nonce each call).
    public func signed(_ request: URLRequest) -> URLRequest {
        guard let signer, let url = request.url, (request.httpMethod ?? "GET") == "GET" else { return request }
        var request = request
        let header = RequestSignature.authorization(identity: signer.identity, network: signer.network, method: "GET",
                                                    target: Self.target(of: url), body: request.httpBody.map { [UInt8]($0) } ?? [])
        request.setValue(header, forHTTPHeaderField: "Authorization")
        return request
    }

    /// GET `target` (path and query exactly as given, e.g. `/v1/devices?owner=st-mary`) and return
    /// the status and the body as received.
    public func raw(_ target: String, accept: String? = nil) async throws -> (status: Int, body: Data) {
        let (data, response) = try await session.data(for: try getRequest(target, accept: accept))
        guard let http = response as? HTTPURLResponse else { throw LedgerError(.io, "no HTTP response") }
        return (http.statusCode, data)
    }

    /// GET `target` from a party that may lie: the body may not exceed `limit` bytes (past it this
    /// throws ``LedgerError/Code/payloadTooLarge``) and a redirect is returned, not followed.
    public func raw(_ target: String, accept: String? = nil, limit: Int) async throws -> (status: Int, body: Data) {
        try await BoundedFetch.run(try getRequest(target, accept: accept), limit: limit, timeout: session.configuration.timeoutIntervalForRequest)
    }

    /// The signed GET of `target` (path and query exactly as given).
    func getRequest(_ target: String, accept: String?) throws(LedgerError) -> URLRequest {
        guard let url = URL(string: target, relativeTo: baseURL)?.absoluteURL else { throw LedgerError(.invalidArgument, "not a request target: \(target)") }
        var request = URLRequest(url: url)
        if let accept { request.setValue(accept, forHTTPHeaderField: "Accept") }
        return signed(request)
    }

    func send<T: Decodable>(_ request: URLRequest) async throws -> T {
        let (data, response) = try await session.data(for: signed(request))
        guard let http = response as? HTTPURLResponse else { throw LedgerError(.io, "no HTTP response") }
        guard (200..<300).contains(http.statusCode) else {
            if let body = try? JSONDecoder().decode(ErrorBody.self, from: data) {
                throw LedgerError(LedgerError.Code(rawValue: body.error.code), body.error.message)
            }
            throw LedgerError(.io, "HTTP \(http.statusCode) from \(request.url?.path ?? "")")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw LedgerError(.malformedEncoding, "unexpected response from the node: \(error)")
        }
    }
}
