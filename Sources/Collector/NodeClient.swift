import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import LedgerCore

/// A minimal client of the node's HTTP API (what collectors and the CLI use).
public struct NodeClient: Sendable {
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
    let session: URLSession

    public init(baseURL: URL) {
        self.baseURL = baseURL
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

    func send<T: Decodable>(_ request: URLRequest) async throws -> T {
        let (data, response) = try await session.data(for: request)
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
