import GRPCCore

extension EtcdClient {
    /// One member's view of itself and the cluster.
    public struct Status: Sendable, Hashable {
        /// The answering member's id.
        public var member: UInt64
        /// The member it believes leads (0: none known).
        public var leader: UInt64
        public var raftTerm: UInt64
        public var raftIndex: UInt64
        /// Bytes the backend database occupies on disk, and bytes of it in use (the difference is
        /// what ``defragment(endpoint:)`` gives back).
        public var dbSize: Int64
        public var dbSizeInUse: Int64
        /// The store's current revision.
        public var revision: Int64
        public var version: String
        /// Alarms (such as `NOSPACE`), empty when healthy.
        public var errors: [String]

        /// Whether the answering member is the leader.
        public var isLeader: Bool { leader != 0 && leader == member }
    }

    public struct Member: Sendable, Hashable {
        public var id: UInt64
        public var name: String
        public var peerURLs: [String]
        public var clientURLs: [String]
        public var isLearner: Bool
    }

    /// The status of the member at `endpoint` (one of the client's endpoints), asked of that
    /// member only.
    public func status(endpoint: String) async throws -> Status {
        let response = try await call("status", endpoint: endpoint) { connection, options in
            try await connection.maintenance.status(Etcdserverpb_StatusRequest(), options: options)
        }
        return Status(
            member: response.header.memberID, leader: response.leader, raftTerm: response.raftTerm,
            raftIndex: response.raftIndex, dbSize: response.dbSize, dbSizeInUse: response.dbSizeInUse,
            revision: response.header.revision, version: response.version, errors: response.errors
        )
    }

    /// Defragments the backend database of the member at `endpoint`, giving back the space that
    /// compaction freed. The member does not serve requests meanwhile: defragment one member at
    /// a time.
    public func defragment(endpoint: String) async throws {
        // Defragmenting a large database takes longer than an ordinary request.
        let timeout = max(requestTimeout, .seconds(60))
        _ = try await call("defragment", endpoint: endpoint) { connection, options in
            var options = options
            options.timeout = timeout
            return try await connection.maintenance.defragment(Etcdserverpb_DefragmentRequest(), options: options)
        }
    }

    /// The cluster's members. Retried on another endpoint when one fails.
    public func memberList() async throws -> [Member] {
        let response = try await call("member list", idempotent: true) { connection, options in
            try await connection.cluster.memberList(Etcdserverpb_MemberListRequest(), options: options)
        }
        return response.members.map { member in
            Member(id: member.id, name: member.name, peerURLs: member.peerUrls, clientURLs: member.clientUrls, isLearner: member.isLearner)
        }
    }
}
