import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Limits that keep one client, or many, from stopping the node: every one is enforced below the
/// point where the process would run out of file descriptors, memory or threads.
public struct ServerLimits: Sendable {
    /// Connections served at once; further ones wait in the listen backlog (then the kernel refuses).
    public var maxConnections = 1_000
    /// A connection that sends no complete request part (a half-sent header, an idle keep-alive)
    /// for this long is closed.
    public var idleTimeout: Duration = .seconds(15)
    /// One request's head and body must arrive within this, however slowly the client trickles it.
    public var requestReadTimeout: Duration = .seconds(30)
    /// Header limits (NIO's decoder answers larger ones with 431 / closes).
    public var maxHeaderFieldSize = 16 * 1024
    public var maxHeaderListSize = 32 * 1024
    public var maxHeaderFieldCount = 100

    public init() {}

    var http1: HTTP1Channel.Configuration {
        let readTimeout = TimeAmount(requestReadTimeout)
        return HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestReadDeadline(timeout: readTimeout)],
            idleTimeout: TimeAmount(idleTimeout),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: maxHeaderFieldSize, maxHeaderListSize: maxHeaderListSize,
                                            maxHeaderFieldCount: maxHeaderFieldCount)
        )
    }
}

/// Closes a connection whose current request has not been fully received within `timeout` of its
/// head (the idle timeout alone is reset by every body chunk, so a trickled body would hold the
/// connection for ever).
final class RequestReadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeout: TimeAmount
    var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension RequestReadDeadline: Sendable {}
