import ArgumentParser

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
}
