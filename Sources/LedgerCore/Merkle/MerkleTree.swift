import Crypto

/// RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing and proofs.
///
/// Leaf hash `SHA-256(0x00 ‖ data)`, interior node `SHA-256(0x01 ‖ left ‖ right)`, empty tree
/// `SHA-256()`. Proof generation takes a `subtree` function giving `MTH(D[lo..<hi])` so that
/// callers can serve it from stored nodes; verification needs only hashes.
public enum MerkleTree {
    public static let emptyRoot = Hash256.of([UInt8]())

    public static func leafHash(_ data: [UInt8]) -> Hash256 {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: data)
        return Hash256(unchecked: Array(hasher.finalize()))
    }

    public static func nodeHash(_ left: Hash256, _ right: Hash256) -> Hash256 {
        var hasher = SHA256()
        hasher.update(data: [0x01])
        hasher.update(data: left.bytes)
        hasher.update(data: right.bytes)
        return Hash256(unchecked: Array(hasher.finalize()))
    }

    /// `MTH(D[n])` computed directly from leaf hashes.
    public static func root(leafHashes: [Hash256]) -> Hash256 {
        var frontier = MerkleFrontier()
        for leaf in leafHashes { frontier.append(leaf) }
        return frontier.root
    }

    /// The largest power of two strictly less than `n` (n ≥ 2).
    static func split(_ n: UInt64) -> UInt64 {
        var k: UInt64 = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    // MARK: Proof generation (RFC 9162 §2.1.3.1, §2.1.4.1)

    /// The audit path for leaf `index` in the tree of the first `size` leaves.
    public static func inclusionProof(
        index: UInt64, size: UInt64, subtree: (UInt64, UInt64) throws -> Hash256
    ) throws -> [Hash256] {
        precondition(index < size)
        return try path(index, 0, size, subtree)
    }

    private static func path(_ m: UInt64, _ lo: UInt64, _ hi: UInt64, _ subtree: (UInt64, UInt64) throws -> Hash256) throws -> [Hash256] {
        let n = hi - lo
        if n <= 1 { return [] }
        let k = split(n)
        if m < k {
            return try path(m, lo, lo + k, subtree) + [subtree(lo + k, hi)]
        } else {
            return try path(m - k, lo + k, hi, subtree) + [subtree(lo, lo + k)]
        }
    }

    /// The consistency proof between tree sizes `first` ≤ `second`.
    public static func consistencyProof(
        first: UInt64, second: UInt64, subtree: (UInt64, UInt64) throws -> Hash256
    ) throws -> [Hash256] {
        precondition(first <= second)
        if first == 0 || first == second { return [] }
        return try subproof(first, 0, second, true, subtree)
    }

    private static func subproof(_ m: UInt64, _ lo: UInt64, _ hi: UInt64, _ complete: Bool, _ subtree: (UInt64, UInt64) throws -> Hash256) throws -> [Hash256] {
        let n = hi - lo
        if m == n { return complete ? [] : [try subtree(lo, hi)] }
        let k = split(n)
        if m <= k {
            return try subproof(m, lo, lo + k, complete, subtree) + [subtree(lo + k, hi)]
        } else {
            return try subproof(m - k, lo + k, hi, false, subtree) + [subtree(lo, lo + k)]
        }
    }

    // MARK: Verification (RFC 9162 §2.1.3.2, §2.1.4.2)

    /// The root implied by an inclusion proof, or `nil` when the proof is malformed for these sizes.
    public static func rootFromInclusionProof(index: UInt64, size: UInt64, leafHash: Hash256, path: [Hash256]) -> Hash256? {
        guard index < size else { return nil }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in path {
            if sn == 0 { return nil }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    public static func verifyInclusion(index: UInt64, size: UInt64, leafHash: Hash256, path: [Hash256], root: Hash256) -> Bool {
        rootFromInclusionProof(index: index, size: size, leafHash: leafHash, path: path) == root
    }

    /// Checks that the tree of `second` leaves with root `secondRoot` extends the tree of `first`
    /// leaves with root `firstRoot`.
    public static func verifyConsistency(first: UInt64, second: UInt64, firstRoot: Hash256, secondRoot: Hash256, proof: [Hash256]) -> Bool {
        if first > second { return false }
        if first == second { return proof.isEmpty && firstRoot == secondRoot }
        if first == 0 { return proof.isEmpty }
        if proof.isEmpty { return false }
        var path = proof
        if first & (first - 1) == 0 { path.insert(firstRoot, at: 0) }
        var fn = first - 1
        var sn = second - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == firstRoot && sr == secondRoot && sn == 0
    }
}

/// The right edge of an append-only Merkle tree: one perfect-subtree hash per set bit of `size`,
/// largest first. Enough to append and to compute the root in O(log n).
public struct MerkleFrontier: Sendable, Hashable {
    public private(set) var size: UInt64 = 0
    public private(set) var hashes: [Hash256] = []

    public init() {}

    /// Rebuilds the frontier of a tree of `size` leaves from its perfect subtrees, largest first.
    public init(size: UInt64, hashes: [Hash256]) {
        precondition(hashes.count == size.nonzeroBitCount)
        self.size = size
        self.hashes = hashes
    }

    /// The (level, index) of the perfect subtrees forming the frontier of a tree of `size` leaves, largest first.
    public static func subtrees(ofSize size: UInt64) -> [(level: Int, index: UInt64)] {
        var result: [(Int, UInt64)] = []
        for level in stride(from: 63, through: 0, by: -1) where size >> UInt64(level) & 1 == 1 {
            result.append((level, (size >> UInt64(level)) - 1))
        }
        return result
    }

    /// Appends a leaf hash and returns every node completed by it, the leaf included:
    /// `(level, index, hash)` where the node covers leaves `index·2^level ..< (index+1)·2^level`.
    @discardableResult
    public mutating func append(_ leafHash: Hash256) -> [(level: Int, index: UInt64, hash: Hash256)] {
        var created: [(level: Int, index: UInt64, hash: Hash256)] = [(0, size, leafHash)]
        var hash = leafHash
        var level = 0
        var position = size
        while position & 1 == 1 {
            hash = MerkleTree.nodeHash(hashes.removeLast(), hash)
            level += 1
            position >>= 1
            created.append((level, position, hash))
        }
        hashes.append(hash)
        size += 1
        return created
    }

    public var root: Hash256 {
        guard var result = hashes.last else { return MerkleTree.emptyRoot }
        for hash in hashes.dropLast().reversed() {
            result = MerkleTree.nodeHash(hash, result)
        }
        return result
    }
}
