import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import LedgerCore

/// One request whose response body may not exceed a limit and whose redirects are not followed:
/// for answers from parties that may lie (a peer node serving blocks). URLSession's
/// completion-handler API buffers a body of any size and follows redirects; this runs the task
/// through a delegate instead, cancels it past the limit, and hands back a 3xx as it came.
final class BoundedFetch: NSObject, URLSessionDataDelegate, Sendable {
    private struct State {
        var body = Data()
        var status = 0
        var failure: LedgerError?
        var continuation: CheckedContinuation<(status: Int, body: Data), any Error>?
    }

    private let limit: Int
    private let state = Mutex(State())

    private init(limit: Int) { self.limit = limit }

    static func run(_ request: URLRequest, limit: Int, timeout: TimeInterval) async throws -> (status: Int, body: Data) {
        let fetch = BoundedFetch(limit: limit)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration, delegate: fetch, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                fetch.state.withLock { $0.continuation = continuation }
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
    }

    private func finish(_ error: (any Error)?) {
        let (continuation, result) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, (state.failure.map { $0 as any Error } ?? error).map { Result<(status: Int, body: Data), any Error>.failure($0) }
                ?? .success((state.status, state.body)))
        }
        continuation?.resume(with: result)
    }

    private func refuse(_ task: URLSessionTask, _ message: String) {
        state.withLock { $0.failure = $0.failure ?? LedgerError(.payloadTooLarge, message) }
        task.cancel()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        state.withLock { $0.status = status }
        if response.expectedContentLength > Int64(limit) {
            refuse(dataTask, "the response announces \(response.expectedContentLength) bytes; at most \(limit) are accepted")
            completionHandler(.cancel)
            return
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let over = state.withLock { state -> Bool in
            guard state.body.count + data.count <= limit else { return true }
            state.body.append(data)
            return false
        }
        if over { refuse(dataTask, "the response is larger than \(limit) bytes") }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        // The 3xx itself is the answer: a peer must not point this node at another address.
        completionHandler(nil)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        finish(error)
    }
}
