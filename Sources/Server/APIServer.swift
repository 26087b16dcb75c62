import Foundation
public import Hummingbird
import HTTPTypes
import HummingbirdCore
import NIOCore
public import Logging
import LedgerCore
import LedgerStore
public import Node
import Contracts

/// The node's HTTP API. Routes are documented in README.md ("HTTP API").
public enum APIServer {
    /// Builds the HTTP application for `node`, bound to `host:port` (loopback by default).
    public static func application(
        node: LedgerNode, host: String = "127.0.0.1", port: Int = 8080, limits: ServerLimits = .init(), logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        addRoutes(to: router, node: node)
        return Application(
            router: router,
            server: .http1(configuration: limits.http1),
            configuration: .init(address: .hostname(host, port: port), serverName: "medledger", backlog: 256,
                                 availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                         body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The 202 of a submission, `{"id":"<hex>","status":"pending"}`: exactly what ``json(_:status:)``
    /// gives for `StatusView(id:status: .pending)`, written directly (the one answer of every
    /// submission; JSONEncoder cost ~3% of a node's CPU under load).
    static func pendingResponse(_ id: Hash256) -> Response {
        Response(status: .accepted, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: "{\"id\":\"\(id.hex)\",\"status\":\"pending\"}")))
    }

    static func error(_ error: LedgerError) -> Response {
        json(ErrorBody(error: .init(code: error.code.rawValue, message: error.message)), status: httpStatus(error.code))
    }

    static func httpStatus(_ code: LedgerError.Code) -> HTTPResponse.Status {
        switch code {
        case .malformedEncoding, .invalidUDI, .invalidArgument, .missingField, .unknownAction, .wrongNetwork, .timestampSkew,
             .invalidConfiguration, .invalidCertificate:
            .badRequest
        case .badSignature, .unauthenticated, .replayedRequest: .unauthorized
        case .unknownMember, .unknownOrganization, .certificateExpired, .certificateRevoked, .forbidden: .forbidden
        case .notFound, .unknownDevice, .unknownProposal, .unknownRecord, .unknownPatient: .notFound
        case .duplicateTransaction, .deviceExists, .alreadyApproved, .proposalClosed, .deviceDecommissioned, .recordExists: .conflict
        case .methodNotAllowed: .methodNotAllowed
        case .recordErased: .gone
        case .payloadTooLarge: .contentTooLarge
        case .budgetExhausted: .tooManyRequests
        case .overloaded, .unavailable, .diverged: .serviceUnavailable
        default: .internalServerError
        }
    }

    static func hash(_ text: Substring?, _ what: String) throws(LedgerError) -> Hash256 {
        guard let text, let hash = Hash256(hex: String(text)) else {
            throw LedgerError(.invalidArgument, "\(what) must be 64 hex digits")
        }
        return hash
    }

    /// `?wait=S`: whole seconds, 0–60 (0 or absent: do not wait).
    static func waitDuration(_ request: Request) throws(LedgerError) -> Duration? {
        guard let seconds = try Parameters.integer(request, "wait", in: 0...60), seconds > 0 else { return nil }
        return .seconds(seconds)
    }

    /// Runs `body`, turning a ``LedgerError`` into its JSON error response.
    static func handle(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as LedgerError {
            return Self.error(error)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            return Self.error(LedgerError(.payloadTooLarge, "the request body is larger than this route accepts"))
        } catch {
            return Self.error(LedgerError(.internal, "internal error"))
        }
    }

    /// Every route but `/health` and `/openapi.json` is registered through ``GuardedRouter`` under its ``APIRoute``:
    /// authenticated (a signed request, or the envelope's own signature for submissions) and
    /// authorised by ``AccessPolicy`` before the handler runs.
    static func addRoutes(to router: Router<BasicRequestContext>, node: LedgerNode) {
        // First: a middleware wraps only the routes added after it (and the router's not-found answer).
        router.add(middleware: UnmatchedRouteMiddleware())
        let api = GuardedRouter(router: router, authenticator: RequestAuthenticator(node: node), node: node)
        router.get("/openapi.json") { _, _ in OpenAPIDocument.response() }
        router.get("/health") { _, _ in
            if let divergence = node.divergence {
                // The reason (hashes, fingerprints) is for the network's members: `GET /v1/node` and the log.
                return json(["status": "diverged", "height": String(node.tip.height), "network_id": node.network.hex,
                             "diverged_at": String(divergence.height)], status: .serviceUnavailable)
            }
            return json(["status": "ok", "height": String(node.tip.height), "network_id": node.network.hex])
        }
        api.get("/metrics", .metrics) { _, _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: node.metrics.render())))
        }
        api.get("/v1/chain", .chain) { _, _, _ in
            let tip = node.tip
            return json(ChainView(networkID: node.network, networkName: node.networkName, height: tip.height, hash: tip.hash,
                                  timestamp: tip.timestamp, logSize: tip.logSize, logRoot: tip.logRoot, stateRoot: tip.stateRoot,
                                  pending: node.pendingCount, config: node.config))
        }

        // Answered also after a divergence: it is how an operator learns why the node stopped.
        api.get("/v1/node", .node) { _, _, _ in
            json(await node.status())
        }

        // Submit: binary envelope (application/octet-stream) or {"envelope": "<base64>"}.
        api.post("/v1/transactions", .submitTransaction) { request, _, _ in
            await handle {
                var request = request
                let bytes = try await envelope(&request, node: node)
                let id = try node.submit(bytes)
                // 202 means the ordering service holds it: with etcd ordering, replicated in the queue.
                try await node.acknowledgement(of: id)
                if let wait = try waitDuration(request) {
                    let status = try await node.waitForCommit(id, timeout: wait)
                    return json(StatusView(id: id, status: status), status: status.isFinal ? .ok : .accepted)
                }
                return pendingResponse(id)
            }
        }
        // Submit many: an `EnvelopeBatch` (docs/formats.md §4.3), each envelope admitted on its own
        // exactly as if submitted alone (refusals coded and audited one by one); the answer comes
        // once every admitted one is held by the ordering service, in body order.
        api.post("/v1/transactions/batch", .submitTransactions) { request, _, _ in
            await handle {
                var request = request
                let envelopes = try await batch(&request, node: node)
                var results: [StatusView] = []
                results.reserveCapacity(envelopes.count)
                for bytes in envelopes {
                    do throws(LedgerError) {
                        results.append(StatusView(id: try node.submit(bytes), status: .pending))
                    } catch {
                        results.append(StatusView(refused: (try? Envelope(decoding: bytes).id) ?? Hash256.of(bytes), error))
                    }
                }
                for index in results.indices where results[index].code == nil {
                    do throws(LedgerError) { try await node.acknowledgement(of: results[index].id) } catch {
                        results[index] = StatusView(refused: results[index].id, error)
                    }
                }
                return json(BatchView(results: results))
            }
        }
        api.get("/v1/transactions/:id", .transactionStatus) { request, context, caller in
            await handle {
                let id = try hash(context.parameters.get("id").map { Substring($0) }, "transaction id")
                let status: TransactionStatus
                if let wait = try waitDuration(request) {
                    status = try await node.waitForCommit(id, timeout: wait)
                } else {
                    status = try node.status(of: id)
                }
                guard status != .unknown else { throw LedgerError(.notFound, "no transaction \(id.hex) is known to this node") }
                try require(caller, .transactionStatus, .transactionCreatedBy(organization: try creatorOrganization(of: id, node: node)))
                return json(StatusView(id: id, status: status))
            }
        }
        api.get("/v1/blocks/:height", .block) { request, context, _ in
            await handle {
                let height = try Parameters.height(context.parameters.get("height"), "height")
                guard let block = try node.store.block(at: height) else { throw LedgerError(.notFound, "no block \(height)") }
                if request.headers[.accept]?.contains(LedgerNode.blockMediaType) == true {
                    // The block as sealed (MLK1), for a node catching up, which checks it all again.
                    let sealed = Block(header: block.header, signature: block.signature, envelopes: block.transactions.map(\.envelope))
                    return Response(status: .ok, headers: [.contentType: LedgerNode.blockMediaType],
                                    body: .init(byteBuffer: ByteBuffer(bytes: sealed.encoded)))
                }
                return json(BlockView(block))
            }
        }
        api.get("/v1/device", .device) { request, _, caller in
            await handle {
                let udi = try udiParameter(request)
                guard let bytes = try node.store.value(forKey: StateKey.device(udi)) else {
                    throw LedgerError(.unknownDevice, "no device \(udi)")
                }
                let record = try DeviceRecord(decoding: bytes)
                try require(caller, .device, .deviceOwnedBy(record.owner))
                return json(DeviceView(record))
            }
        }
        api.get("/v1/device/history", .deviceHistory) { request, _, caller in
            await handle {
                let udi = try udiParameter(request)
                // Visible only to those who may read the device as it is now (its current owner).
                let current = try node.store.value(forKey: StateKey.device(udi)).map { try DeviceRecord(decoding: $0) }
                if let current {
                    try require(caller, .deviceHistory, .deviceOwnedBy(current.owner))
                } else if try require(caller, .deviceHistory, .route) != .everything {
                    throw LedgerError(.unknownDevice, "no device \(udi)")
                }
                // A busy device has thousands of versions: pages of at most 1,000, oldest first.
                let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 1000
                let offset = try Parameters.integer(request, "offset", in: 0...Parameters.maxOffset) ?? 0
                let entries = try node.store.history(key: StateKey.device(udi), limit: limit, offset: offset)
                guard !entries.isEmpty || offset > 0 else { throw LedgerError(.unknownDevice, "no device \(udi)") }
                return json(try entries.map { entry in
                    let record = try entry.value.map { try DeviceRecord(decoding: $0) }
                    let creator = node.member(entry.transaction.creator)
                    return DeviceVersionView(
                        version: record?.version, event: record?.lastEvent, action: entry.transaction.action,
                        device: record.map(DeviceView.init), transactionID: entry.transaction.id, block: entry.transaction.height,
                        index: entry.transaction.index, blockTime: entry.blockTime, submittedAt: entry.transaction.timestamp,
                        creator: .init(fingerprint: entry.transaction.creator, organization: creator?.organization,
                                       name: creator?.certificate.name, role: creator?.role.rawValue)
                    )
                })
            }
        }
        api.get("/v1/devices", .devices) { request, _, caller in
            await handle {
                var owner = try Parameters.text(request, "owner")
                // Hospital staff see their own organisation's devices: owner defaults to it.
                if case .organization(let own) = try require(caller, .devices, .deviceOwnerFilter(owner)) { owner = own }
                let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 100
                let offset = try Parameters.integer(request, "offset", in: 0...Parameters.maxOffset) ?? 0
                let udis = try node.store.deviceUDIs(owner: owner, limit: limit, offset: offset)
                let devices = try udis.compactMap { udi in
                    try node.store.value(forKey: StateKey.device(udi)).map { DeviceView(try DeviceRecord(decoding: $0)) }
                }
                return json(devices)
            }
        }
        api.get("/v1/proofs/inclusion/:id", .inclusionProof) { _, context, caller in
            await handle {
                let id = try hash(context.parameters.get("id").map { Substring($0) }, "transaction id")
                try require(caller, .inclusionProof, .transactionCreatedBy(organization: try creatorOrganization(of: id, node: node)))
                var proof = try Proofs.inclusion(store: node.store, transaction: id)
                try Proofs.cosign(&proof, store: node.store, checkpoints: node.agreeingCheckpoints)
                return json(proof)
            }
        }
        api.get("/v1/proofs/consistency", .consistencyProof) { request, _, _ in
            await handle {
                guard let from = try Parameters.integer(request, "from", in: 0...Parameters.maxHeight) else {
                    throw LedgerError(.invalidArgument, "from=<block height> is required")
                }
                let to = try Parameters.integer(request, "to", in: 0...Parameters.maxHeight)
                return json(try Proofs.consistency(store: node.store, from: from, to: to))
            }
        }
        addResearchRoutes(to: api, node: node)
        addRecordRoutes(to: api, node: node)
        api.get("/v1/refusals", .refusals) { request, _, caller in
            await handle {
                let limit = try Parameters.integer(request, "limit", in: 1...1000) ?? 100
                let refusals: [Refusal]
                if case .organization(let organization) = try require(caller, .refusals, .route) {
                    // Only refusals of transactions its own members signed (a verified creator).
                    refusals = Array(try node.store.recentRefusals(limit: 20_000)
                        .filter { $0.creator.flatMap { node.member($0)?.organization } == organization }
                        .prefix(limit))
                } else {
                    refusals = try node.store.recentRefusals(limit: limit)
                }
                struct View: Codable {
                    var time: Int64
                    var transaction_id: Hash256?
                    var creator: Hash256?
                    var code: String
                    var message: String
                }
                return json(refusals.map {
                    View(time: $0.time, transaction_id: $0.transactionID, creator: $0.creator, code: $0.code.rawValue, message: $0.message)
                })
            }
        }
        // Committed blocks as newline-delimited JSON, from ?from=HEIGHT (default: live only).
        // A client that stops reading holds its slot (bounded per member and in total), not memory;
        // one that disconnects frees it at once (the inbound side closing ends the stream).
        api.get("/v1/events", .events) { request, _, caller in
            await handle {
                guard let caller else { throw LedgerError(.unauthenticated, "sign the request") }
                let from = try Parameters.integer(request, "from", in: 0...Parameters.maxHeight)
                let events = try node.events(from: from, client: caller.member.hex)
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                    defer { events.close() }
                    // The authenticator never collects a GET's body, so the request's inbound
                    // stream is still the connection's: its closing is the client leaving.
                    try await request.body.consumeWithInboundCloseHandler { _ in
                        for await event in events {
                            // A stream outlives its request: it ends once the caller's certificate may no longer read.
                            guard RequestAuthenticator.isCurrent(caller, node: node, now: Clock.nowMilliseconds()) else { break }
                            var data = (try? encoder.encode(event)) ?? Data()
                            data.append(UInt8(ascii: "\n"))
                            try await writer.write(ByteBuffer(bytes: data))
                        }
                    } onInboundClosed: {
                        events.close()
                    }
                    try await writer.finish(nil)
                })
            }
        }
    }

    /// The organisation of the member that created a stored transaction (nil while only pending).
    static func creatorOrganization(of id: Hash256, node: LedgerNode) throws -> String? {
        guard let stored = try node.store.transaction(id: id) else { return nil }
        // The genesis block's creator is a founding admin; every creator is a registered member.
        return node.member(stored.creator)?.organization ?? ""
    }

    static func udiParameter(_ request: Request) throws(LedgerError) -> String {
        guard let udi = try Parameters.text(request, "udi") else {
            throw LedgerError(.invalidArgument, "udi=<device identifier> is required (URL-encode it)")
        }
        return try UDI.canonicalKey(udi)  // any spelling of a device's UDI finds it
    }
}
