extension EtcdReplicatedLog {
    /// Status answers name the ordering: `GET /v1/node` says "etcd".
    public var orderingName: String { "etcd" }
}
