import ArgumentParser
import LedgerCore

/// The configuration options of a new network (`init`, `network draft`).
struct NetworkConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Most transactions per block.")
    var batchSize: UInt32 = 2000

    @Option(name: .long, help: "Longest wait before cutting a non-full block, in milliseconds.")
    var batchTimeoutMs: UInt32 = 20

    @Option(name: .long, help: "Largest accepted difference between a transaction's time and a node's clock or the block time, in milliseconds (1 s to 1 day).")
    var clockSkewMs: UInt64 = 5 * 60 * 1000

    @Option(name: .long, help: "Approval policy for the genesis and for governance proposals: majority, all, or a number of organisations.")
    var policy = "majority"

    func config() throws -> NetworkConfig {
        let approval: ApprovalPolicy
        switch policy {
        case "majority": approval = .majority
        case "all": approval = .all
        default:
            guard let n = UInt32(policy), n > 0 else { throw ValidationError("--policy must be majority, all or a positive number") }
            approval = .atLeast(n)
        }
        return NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs, clockSkewMilliseconds: clockSkewMs,
                             approvalPolicy: approval)
    }
}
