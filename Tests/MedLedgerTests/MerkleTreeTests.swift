import Testing
import LedgerCore

/// RFC 6962/9162 known answers from transparency-dev/merkle (testonly/constants.go, proof/verify_test.go).
struct MerkleTreeTests {
    static let leafInputs = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .map { Hex.decode($0)! }
    static let roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ].map { Hash256(hex: $0)! }
    static let leafHashes = leafInputs.map(MerkleTree.leafHash)

    static func h(_ hex: String) -> Hash256 { Hash256(hex: hex)! }

    static let inclusion: [(index: UInt64, size: UInt64, path: [Hash256])] = [
        (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
        (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
        (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
        (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
        (0, 1, []),
    ]

    static let consistency: [(first: UInt64, second: UInt64, path: [Hash256])] = [
        (1, 1, []),
        (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
        (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
        (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
        (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    ]

    static func subtree(_ lo: UInt64, _ hi: UInt64) -> Hash256 {
        MerkleTree.root(leafHashes: Array(leafHashes[Int(lo)..<Int(hi)]))
    }

    @Test(arguments: 0...8)
    func rootsMatchKnownAnswers(size: Int) {
        #expect(MerkleTree.root(leafHashes: Array(Self.leafHashes.prefix(size))) == Self.roots[size])
    }

    @Test func frontierRecordsEveryCompletedNode() {
        var frontier = MerkleFrontier()
        var nodes: [String: Hash256] = [:]
        for leaf in Self.leafHashes {
            for node in frontier.append(leaf) { nodes["\(node.level)/\(node.index)"] = node.hash }
        }
        #expect(frontier.root == Self.roots[8])
        #expect(nodes["1/1"] == Self.h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"))
        #expect(nodes["2/1"] == Self.h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"))
        #expect(nodes["3/0"] == Self.roots[8])
        #expect(nodes.count == 15)
    }

    @Test func inclusionProofsMatchKnownAnswers() throws {
        for vector in Self.inclusion {
            let generated = try MerkleTree.inclusionProof(index: vector.index, size: vector.size, subtree: Self.subtree)
            #expect(generated == vector.path, "index \(vector.index) size \(vector.size)")
            #expect(MerkleTree.verifyInclusion(index: vector.index, size: vector.size, leafHash: Self.leafHashes[Int(vector.index)],
                                               path: vector.path, root: Self.roots[Int(vector.size)]))
        }
    }

    @Test func consistencyProofsMatchKnownAnswers() throws {
        for vector in Self.consistency {
            let generated = try MerkleTree.consistencyProof(first: vector.first, second: vector.second, subtree: Self.subtree)
            #expect(generated == vector.path, "\(vector.first) -> \(vector.second)")
            #expect(MerkleTree.verifyConsistency(first: vector.first, second: vector.second, firstRoot: Self.roots[Int(vector.first)],
                                                 secondRoot: Self.roots[Int(vector.second)], proof: vector.path))
        }
    }

    @Test func adversarialInclusionProofsAreRefused() {
        let good = Self.inclusion[1]  // leaf 5 of 8
        let leaf = Self.leafHashes[5]
        let root = Self.roots[8]
        #expect(MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: leaf, path: good.path, root: root))
        // Wrong tree size (against that size's root), wrong index, truncated and extended paths,
        // swapped siblings, wrong leaf, wrong root. (The root binds the size: tree heads sign both.)
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 7, leafHash: leaf, path: good.path, root: Self.roots[7]))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 9, leafHash: leaf, path: good.path, root: root))
        #expect(!MerkleTree.verifyInclusion(index: 4, size: 8, leafHash: leaf, path: good.path, root: root))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: leaf, path: Array(good.path.dropLast()), root: root))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: leaf, path: good.path + [root], root: root))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: leaf, path: [good.path[1], good.path[0], good.path[2]], root: root))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: Self.leafHashes[4], path: good.path, root: root))
        #expect(!MerkleTree.verifyInclusion(index: 5, size: 8, leafHash: leaf, path: good.path, root: Self.roots[7]))
        #expect(!MerkleTree.verifyInclusion(index: 8, size: 8, leafHash: leaf, path: good.path, root: root))
    }

    @Test func adversarialConsistencyProofsAreRefused() {
        let vector = Self.consistency[2]  // 6 -> 8
        let (r6, r8) = (Self.roots[6], Self.roots[8])
        #expect(MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: r6, secondRoot: r8, proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 5, second: 8, firstRoot: r6, secondRoot: r8, proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 7, firstRoot: r6, secondRoot: Self.roots[7], proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: r6, secondRoot: r8, proof: Array(vector.path.dropLast())))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: r6, secondRoot: r8, proof: [vector.path[1], vector.path[0], vector.path[2]]))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: Self.roots[5], secondRoot: r8, proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: r6, secondRoot: Self.roots[7], proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 8, second: 6, firstRoot: r8, secondRoot: r6, proof: vector.path))
        #expect(!MerkleTree.verifyConsistency(first: 6, second: 8, firstRoot: r6, secondRoot: r8, proof: []))
    }

    /// Every proof generated over larger random trees verifies, and flipping any bit of any path
    /// element breaks it.
    @Test func generatedProofsVerifyAndBreakOnAnyChange() throws {
        let leaves = (0..<70).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), UInt8($0 / 256)]) }
        func subtree(_ lo: UInt64, _ hi: UInt64) -> Hash256 { MerkleTree.root(leafHashes: Array(leaves[Int(lo)..<Int(hi)])) }
        for size in [1, 2, 3, 7, 8, 9, 31, 32, 33, 70] as [UInt64] {
            let root = subtree(0, size)
            for index in stride(from: 0, to: size, by: 3) {
                let path = try MerkleTree.inclusionProof(index: index, size: size, subtree: subtree)
                #expect(MerkleTree.verifyInclusion(index: index, size: size, leafHash: leaves[Int(index)], path: path, root: root))
                for position in path.indices {
                    var tampered = path
                    var bytes = tampered[position].bytes
                    bytes[position % 32] ^= 0x01
                    tampered[position] = Hash256(bytes: bytes)!
                    #expect(!MerkleTree.verifyInclusion(index: index, size: size, leafHash: leaves[Int(index)], path: tampered, root: root))
                }
            }
            for first in stride(from: 1, through: size, by: 4) {
                let proof = try MerkleTree.consistencyProof(first: first, second: size, subtree: subtree)
                #expect(MerkleTree.verifyConsistency(first: first, second: size, firstRoot: subtree(0, first), secondRoot: root, proof: proof))
            }
        }
    }
}
