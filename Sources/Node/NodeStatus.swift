public import LedgerCore

/// What `GET /v1/node` answers: this node's identity, its committed tip, its part in the ordering,
/// its certificate's expiry and whether it disagrees with the network. `medledger network status`
/// reads it from every node.
///
/// Absent values are encoded as JSON `null` (not left out), so a reader sees every field.
public struct NodeStatus: Sendable, Codable, Equatable {
    /// SHA-256 of the node's certificate (DER).
    public var fingerprint: Hash256
    public var organization: String
    public var networkID: Hash256
    /// "solo", or "etcd" for a node ordering through an etcd cluster.
    public var ordering: String
    public var height: UInt64
    public var blockHash: Hash256
    public var stateRoot: Hash256
    public var logRoot: Hash256
    public var logSize: UInt64
    /// The epoch in the tip's header (the epoch of the leader that sealed it).
    public var tipEpoch: UInt64
    /// The epoch this node leads in; nil unless it leads now.
    public var leaderEpoch: UInt64?
    /// The highest block the replicated log holds, as this node last asked (nil for solo, or when
    /// the log did not answer within a second).
    public var logHeight: UInt64?
    /// The node certificate's notAfter, Unix seconds.
    public var certificateNotAfter: Int64
    /// Set once the node found that it disagrees with the network (it has stopped following).
    public var divergence: Divergence?
    /// The other nodes' latest published checkpoints and this node's verdict on each.
    public var peers: [PeerCheckpoint] = []

    public init(fingerprint: Hash256, organization: String, networkID: Hash256, ordering: String, height: UInt64, blockHash: Hash256,
                stateRoot: Hash256, logRoot: Hash256, logSize: UInt64, tipEpoch: UInt64, leaderEpoch: UInt64?, logHeight: UInt64?,
                certificateNotAfter: Int64, divergence: Divergence?) {
        self.fingerprint = fingerprint
        self.organization = organization
        self.networkID = networkID
        self.ordering = ordering
        self.height = height
        self.blockHash = blockHash
        self.stateRoot = stateRoot
        self.logRoot = logRoot
        self.logSize = logSize
        self.tipEpoch = tipEpoch
        self.leaderEpoch = leaderEpoch
        self.logHeight = logHeight
        self.certificateNotAfter = certificateNotAfter
        self.divergence = divergence
    }

    enum CodingKeys: String, CodingKey {
        case fingerprint, organization, ordering, height, divergence, peers
        case networkID = "network_id"
        case blockHash = "block_hash"
        case stateRoot = "state_root"
        case logRoot = "log_root"
        case logSize = "log_size"
        case tipEpoch = "tip_epoch"
        case leaderEpoch = "leader_epoch"
        case logHeight = "log_height"
        case certificateNotAfter = "certificate_not_after"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(fingerprint, forKey: .fingerprint)
        try container.encode(organization, forKey: .organization)
        try container.encode(networkID, forKey: .networkID)
        try container.encode(ordering, forKey: .ordering)
        try container.encode(height, forKey: .height)
        try container.encode(blockHash, forKey: .blockHash)
        try container.encode(stateRoot, forKey: .stateRoot)
        try container.encode(logRoot, forKey: .logRoot)
        try container.encode(logSize, forKey: .logSize)
        try container.encode(tipEpoch, forKey: .tipEpoch)
        try container.encode(leaderEpoch, forKey: .leaderEpoch)
        try container.encode(logHeight, forKey: .logHeight)
        try container.encode(certificateNotAfter, forKey: .certificateNotAfter)
        try container.encode(divergence, forKey: .divergence)
        try container.encode(peers, forKey: .peers)
    }
}
