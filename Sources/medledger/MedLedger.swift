import ArgumentParser
import CAllocatorTuning

@main
struct MedLedger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medledger",
        abstract: "A permissioned ledger for medical-device data and patient-data access.",
        discussion: """
            Start with `medledger demo`: it creates a demo network, runs a node with simulated hospital \
            collectors and serves the API on http://127.0.0.1:8080.
            """,
        version: "0.1.0",
        subcommands: [
            Demo.self, Init.self, Org.self, Network.self, Node.self, Collector.self, DeviceCommand.self, Verify.self, Proof.self, VerifyProof.self,
            Governance.self, Issue.self, Export.self, Query.self, RecordsCommand.self, ConsentCommand.self, AccessCommand.self, PrivacyCommand.self, APICommand.self, AuthHeader.self, Bench.self,
        ]
    )

    static func main() async {
        tuneAllocator()
        await main(nil)
    }

    /// glibc's malloc hands buffers of 128 KiB and more back to the kernel on free (an unmapping,
    /// or trimming the heap top) and takes them again, zeroed page by page, on the next
    /// allocation. Sealing, uploading and serving records of a few MiB then spent more time in page
    /// faults than in AES-GCM (`bench --records`: 1 MiB sealed at 560 MB/s against 9,600 MB/s with
    /// these settings). Buffers up to 32 MiB come from the heap, and up to 64 MiB of freed heap
    /// per malloc arena is kept for reuse rather than returned at once (a bound on what stays
    /// resident after a burst of large records; a red-team observation on the 128 MiB first
    /// chosen; 32 MiB brought the page faults back for 8 MiB records: performance.md).
    static func tuneAllocator() {
        allocatorTuned = medledger_tune_allocator(32 << 20, 64 << 20) == 1
    }

    /// Whether ``tuneAllocator()`` applied (glibc only); `bench` reports it.
    nonisolated(unsafe) static var allocatorTuned = false
}
