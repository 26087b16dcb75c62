import Testing
import Foundation
import LedgerCore
import LedgerTesting
@testable import Node

/// Red team: anyone with etcd access writes `nodes/`; a node catching up asked every entry in
/// fingerprint order, whatever its scheme (an invented `nodes/0000…` was always asked first).
struct CatchUpPeerTests {
    @Test func onlyCurrentNodesHTTPAddressesAreAsked() async throws {
        let log = MemoryReplicatedLog()
        let harness = try ReplicatedHarness(log: log)
        let (me, other, third) = (harness.node(harness.names[0]), harness.node(harness.names[1]), harness.node(harness.names[2]))
        try await log.advertise(node: Hash256.of([0]), endpoint: "http://127.0.0.1:1")
        try await log.advertise(node: other.identity.fingerprint, endpoint: "file:///etc/passwd")
        try await log.advertise(node: third.identity.fingerprint, endpoint: "http://127.0.0.1:2")
        try await log.advertise(node: me.identity.fingerprint, endpoint: "http://127.0.0.1:3")
        let peers = try await me.peerClients(try #require(me.replication))
        #expect(peers.map(\.baseURL.absoluteString) == ["http://127.0.0.1:2"])
        await harness.stopAll()
    }
}
