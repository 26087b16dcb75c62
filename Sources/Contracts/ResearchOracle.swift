public import LedgerCore

/// What the research contract cannot compute from ledger state alone, supplied by the node that
/// executes it: the exact aggregate of a charged question over the node's device state, and the
/// noise derived from the network noise secret, which only nodes hold.
///
/// The answer it returns is a pure function of committed state (the block the question describes)
/// and of the secret, so every node that holds the secret returns the same answer, and the
/// contract's decision stays deterministic. See docs/privacy.md ("Checkable answers").
public protocol ResearchOracle: Sendable {
    /// Whether `answer` is the one every node must record for `record` under `noiseKey` (`false`:
    /// refused with `answer_mismatch`), or nil when this party cannot tell (it holds no secret of
    /// that epoch). Throws `storage_error` when it holds the secret but cannot evaluate the
    /// question: a node must stop rather than judge blindly.
    func check(_ answer: QueryAnswer, for record: QueryRecord, policy: ResearchPolicy, noiseKey: NoiseKeyEpoch,
               transaction: Hash256) throws(LedgerError) -> Bool?
}
