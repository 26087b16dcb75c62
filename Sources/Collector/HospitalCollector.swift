import Foundation
import Synchronization
public import Logging
public import LedgerCore

/// A hospital's collector: registers its devices, then turns device events into signed
/// transactions, sent through a durable ``Outbox`` to the node's HTTP API.
public final class HospitalCollector: Sendable {
    public struct Statistics: Sendable, Codable {
        public var submitted = 0
        public var committed = 0
        public var rejected = 0
        public var refused = 0
    }

    let identity: SigningIdentity
    let network: Hash256
    let client: NodeClient
    let outbox: Outbox
    let logger: Logger
    let simulator: Mutex<DeviceSimulator>
    let devices = Mutex<[(udi: String, attributes: DeviceAttributes)]>([])
    let stats = Mutex(Statistics())
    let stopping = Mutex(false)

    public init(hospital: String, identity: SigningIdentity, network: Hash256, client: NodeClient, outbox: Outbox, seed: UInt64, logger: Logger) {
        self.identity = identity
        self.network = network
        self.client = client
        self.outbox = outbox
        self.logger = logger
        simulator = Mutex(DeviceSimulator(hospital: hospital, seed: seed))
    }

    public var statistics: Statistics { stats.withLock { $0 } }

    /// Asks ``run(deviceCount:interval:until:concurrency:)`` to return after the requests in flight
    /// complete. (Cancelling an HTTP request mid-flight is avoided on purpose: the answer would be
    /// lost and the transaction left for the outbox to resend.)
    public func stop() {
        stopping.withLock { $0 = true }
    }

    var isStopping: Bool { stopping.withLock { $0 } || Task.isCancelled }

    /// Sends what a previous run left in the outbox, registers `deviceCount` devices, then sends
    /// one event every `interval` until cancelled or `until` passes.
    public func run(deviceCount: Int, interval: Duration, until deadline: ContinuousClock.Instant? = nil, concurrency: Int = 16) async throws {
        try await resendPending()
        let now = Clock.nowMilliseconds()
        let today = now / 86_400_000
        let fresh = simulator.withLock { simulator in (0..<deviceCount).map { _ in simulator.newDevice(today: today) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for device in fresh {
                if isStopping { break }
                if inFlight >= concurrency {
                    try await group.next()
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    let action = DeviceAction.register(udi: device.udi, attributes: device.attributes)
                    if try await self.send(action) {
                        self.devices.withLock { $0.append((device.udi, device.attributes)) }
                    }
                }
            }
            try await group.waitForAll()
        }
        logger.info("devices registered", metadata: ["count": "\(devices.withLock { $0.count })"])
        while !isStopping {
            if let deadline, ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: interval)
            if isStopping { break }
            try await sendOneEvent()
        }
    }

    func sendOneEvent() async throws {
        let count = devices.withLock { $0.count }
        guard count > 0 else { return }
        let now = Clock.nowMilliseconds()
        let (index, udi, event, changes) = simulator.withLock { simulator in
            let index = Int(simulator.random.next() % UInt64(count))
            let device = devices.withLock { $0[index] }
            let (event, changes) = simulator.nextEvent(for: device.attributes, now: now, today: now / 86_400_000)
            return (index, device.udi, event, changes)
        }
        if try await send(.update(udi: udi, event: event, changes: changes)) {
            devices.withLock { $0[index].attributes = $0[index].attributes.merging(changes) }
        }
    }

    /// Signs, stores in the outbox, submits and waits for the outcome. True when committed.
    @discardableResult
    public func send(_ action: DeviceAction) async throws -> Bool {
        let (id, envelope) = identity.transaction(network: network, contract: "devices", action: action.name, arguments: action.arguments)
        let bytes = envelope.encoded
        try outbox.add(id: id, envelope: bytes)
        return try await deliver(id: id, bytes: bytes)
    }

    func deliver(id: Hash256, bytes: [UInt8]) async throws -> Bool {
        stats.withLock { $0.submitted += 1 }
        let status: NodeClient.Status
        do {
            status = try await client.submit(bytes, wait: 30)
        } catch let error as LedgerError where error.code == .duplicateTransaction {
            status = try await client.status(id, wait: 30)
        } catch let error as LedgerError where !Self.transient.contains(error.code) {
            try settle(id: id, refused: error)
            return false
        }
        return try settle(id: id, status: status)
    }

    /// Refused at admission: final, nothing was ordered.
    func settle(id: Hash256, refused error: LedgerError) throws {
        stats.withLock { $0.refused += 1 }
        try outbox.complete(id: id, status: "refused", code: error.code.rawValue, height: nil)
        logger.warning("transaction refused", metadata: ["code": "\(error.code)", "message": "\(error.message)"])
    }

    /// Records a final status and takes the transaction out of the outbox; a status that is not
    /// final leaves it there, to be resent on the next start. True when committed.
    func settle(id: Hash256, status: NodeClient.Status) throws -> Bool {
        guard status.isFinal else { return false }
        try outbox.complete(id: id, status: status.status, code: status.code, height: status.height)
        if status.status == "committed" {
            stats.withLock { $0.committed += 1 }
            return true
        }
        stats.withLock { $0.rejected += 1 }
        logger.warning("transaction rejected", metadata: ["code": "\(status.code ?? "")"])
        return false
    }

    /// Sends what a previous run left in the outbox, many envelopes per request (a node that was
    /// down for long leaves thousands), then settles each one's outcome.
    func resendPending() async throws {
        let pending = try outbox.pending()
        if !pending.isEmpty { logger.info("resending outbox", metadata: ["count": "\(pending.count)"]) }
        for start in stride(from: 0, to: pending.count, by: Self.resendBatch) where !isStopping {
            let chunk = pending[start..<min(start + Self.resendBatch, pending.count)]
            let answers = try await client.submit(batch: chunk.map(\.envelope))
            for (entry, answer) in zip(chunk, answers) {
                stats.withLock { $0.submitted += 1 }
                switch answer.code.map(LedgerError.Code.init(rawValue:)) {
                case nil, LedgerError.Code.duplicateTransaction?:
                    // Held for ordering, or already known: its outcome decides.
                    _ = try settle(id: entry.id, status: try await client.status(entry.id, wait: 30))
                case let code? where Self.transient.contains(code):
                    continue  // stays in the outbox for the next start
                case let code?:
                    try settle(id: entry.id, refused: LedgerError(code, answer.message ?? code.rawValue))
                }
            }
        }
    }

    /// Refusals that say nothing about the transaction (the node or its ordering service could not
    /// take it now; `unavailable` may even mean it is ordered after all): it stays in the outbox.
    static let transient: Set<LedgerError.Code> = [.io, .overloaded, .unavailable]

    /// Envelopes per request when the outbox is resent.
    static let resendBatch = 500
}
