public import LedgerCore
public import Contracts

/// Executes a batch and derives everything the header commits to. Shared by the sealing node and
/// by `medledger verify`, so that what is checked is exactly what was built.
public struct AssembledBlock: Sendable {
    public var header: BlockHeader
    public var execution: BlockExecution
    public var leaves: [LogLeaf]
    public var merkleNodes: [(level: Int, index: UInt64, hash: Hash256)]
    public var frontier: MerkleFrontier
}

public enum BlockAssembler {
    /// - Parameters:
    ///   - previous: the previous header (`nil` for genesis).
    ///   - frontier: the global log's frontier after `previous`.
    public static func assemble(
        _ transactions: [PreparedTransaction], network: Hash256, previous: BlockHeader?, blockTime: Int64,
        proposer: Hash256, epoch: UInt64 = 0, frontier: MerkleFrontier, base: any LedgerView, executor: BlockExecutor
    ) throws(LedgerError) -> AssembledBlock {
        let height = previous.map { $0.height + 1 } ?? 0
        let execution = try executor.execute(transactions, network: network, height: height, blockTime: blockTime, base: base)
        var leaves: [LogLeaf] = []
        leaves.reserveCapacity(transactions.count)
        var blockLeafHashes: [Hash256] = []
        var frontier = frontier
        var nodes: [(level: Int, index: UInt64, hash: Hash256)] = []
        for (index, (transaction, result)) in zip(transactions, execution.results).enumerated() {
            let leaf = LogLeaf(height: height, index: UInt32(index), transactionID: transaction.id,
                               envelopeHash: Hash256.of(transaction.bytes), result: result)
            let leafHash = leaf.leafHash
            leaves.append(leaf)
            blockLeafHashes.append(leafHash)
            nodes.append(contentsOf: frontier.append(leafHash))
        }
        let header = BlockHeader(
            height: height,
            previousHash: previous?.hash ?? .zero,
            timestamp: blockTime,
            transactionCount: UInt32(transactions.count),
            transactionRoot: MerkleTree.root(leafHashes: blockLeafHashes),
            logSize: frontier.size,
            logRoot: frontier.root,
            stateRoot: BlockHeader.nextStateRoot(previous: previous?.stateRoot ?? .zero, blockWriteSetHash: execution.writeSetHash),
            proposer: proposer,
            epoch: epoch
        )
        return AssembledBlock(header: header, execution: execution, leaves: leaves, merkleNodes: nodes, frontier: frontier)
    }
}
