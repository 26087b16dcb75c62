import Crypto
import Foundation
import Logging
import ServiceLifecycle
import LedgerCore
import Node
import Server
import Collector

extension Bench {
    struct EncryptionResult: Encodable {
        var record_bytes: Int
        var records: Int
        /// Envelope encryption per record: a fresh data key, the AES-256-GCM seal (`MLR1`) and the
        /// HPKE wrap of the key (what `records put` does before uploading), MB/s on one core.
        var envelope_mb_per_s: Double
        /// Baseline, same run and bytes: AES-256-GCM under one key, nothing else.
        var plain_aes_gcm_mb_per_s: Double
        /// envelope / plain throughput (target ≥ 1/1.5 ≈ 0.67).
        var envelope_vs_plain: Double
        /// The per-record cost of the envelope beyond plain AES-GCM (key generation and HPKE wrap).
        var overhead_us_per_record: Double
        /// The parts, each timed alone: `SealedRecord.seal` under one key (MB/s), and the HPKE
        /// wrap of a data key (µs per record).
        var seal_only_mb_per_s: Double
        var wrap_us_per_record: Double
    }

    struct RecordsResult: Encodable {
        var encryption: [EncryptionResult]
        /// Bytes per record in the storage and decision phases (--record-bytes).
        var record_bytes: Int
        var records_stored: Int
        var records_stored_per_s: Double
        var store_clients: Int
        /// Access decisions at an offered rate: consent.request submitted → decision committed →
        /// data key re-wrapped for the reader and returned (GET /v1/records/{id}/key).
        var decision_rate: Double
        var decisions: Int
        var decisions_granted: Int
        var decision_p50_ms: Double
        var decision_p99_ms: Double
        var decision_max_ms: Double
        var batch_timeout_ms: UInt32
        var cores: Int
        /// Whether glibc malloc kept MiB buffers on the heap (``MedLedger/tuneAllocator()``).
        var allocator_tuned: Bool
    }

    /// `bench --records`: envelope encryption against plain AES-GCM in the same run, records stored
    /// per second, and access-decision latency at `--rate` requests/s (default 200).
    func runRecords() async throws {
        let (directory, definition, node, runner) = try startNetwork(NetworkConfig(batchSize: batchSize, batchTimeoutMilliseconds: batchTimeoutMs))
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }
        // 1. Encryption on one core: envelope vs plain, same payload, at four record sizes.
        let vault = P256.KeyAgreement.PrivateKey().publicKey
        let id = Hash256.of([1])
        var encryption: [EncryptionResult] = []
        for bytes in [4 << 10, 64 << 10, 1 << 20, 8 << 20] {
            let count = max(64, (128 << 20) / bytes)
            say("encrypting \(count) records of \(bytes) bytes (envelope, then plain AES-GCM)")
            let payload = [UInt8](repeating: 0x5A, count: bytes)
            var sink = 0
            let envelopeStart = ContinuousClock.now
            for _ in 0..<count {
                let key = SymmetricKey(size: .bits256)
                sink &+= try SealedRecord.seal(payload, key: key).count &+ KeyWrap.wrap(key, for: vault, info: KeyWrap.holderInfo(record: id)).count
            }
            let envelopeSeconds = Self.seconds(ContinuousClock.now - envelopeStart)
            let plainKey = SymmetricKey(size: .bits256)
            let plainStart = ContinuousClock.now
            for _ in 0..<count {
                let box = try AES.GCM.seal(payload, using: plainKey)
                sink &+= box.ciphertext.count &+ box.tag.count
            }
            let plainSeconds = Self.seconds(ContinuousClock.now - plainStart)
            let sealStart = ContinuousClock.now
            for _ in 0..<count { sink &+= try SealedRecord.seal(payload, key: plainKey).count }
            let sealSeconds = Self.seconds(ContinuousClock.now - sealStart)
            let wrapStart = ContinuousClock.now
            for _ in 0..<min(count, 512) { sink &+= try KeyWrap.wrap(plainKey, for: vault, info: KeyWrap.holderInfo(record: id)).count }
            let wrapSeconds = Self.seconds(ContinuousClock.now - wrapStart) / Double(min(count, 512))
            guard sink > 0 else { throw UserError("nothing was encrypted") }
            let megabytes = Double(bytes * count) / 1_048_576
            encryption.append(EncryptionResult(record_bytes: bytes, records: count, envelope_mb_per_s: megabytes / envelopeSeconds,
                                               plain_aes_gcm_mb_per_s: megabytes / plainSeconds, envelope_vs_plain: plainSeconds / envelopeSeconds,
                                               overhead_us_per_record: (envelopeSeconds - plainSeconds) / Double(count) * 1e6,
                                               seal_only_mb_per_s: megabytes / sealSeconds, wrap_us_per_record: wrapSeconds * 1e6))
        }
        let size = recordBytes
        let payload = [UInt8](repeating: 0x5A, count: size)

        // 2. Setup through the ledger (untimed): a patient, the reader's encryption key, consent.
        let server = try await APIUnderTest.start(node)
        let base = server.base
        func client(_ name: String) throws -> RecordClient {
            let identity = try definition.identity(named: name, directory: directory)
            return RecordClient(node: NodeClient(baseURL: base, signer: .init(identity: identity, network: node.network)), identity: identity,
                                network: node.network)
        }
        func commit(_ client: RecordClient, _ contract: String, _ action: String, _ arguments: [UInt8]) async throws -> Hash256 {
            let status = try await client.submit(contract: contract, action: action, arguments: arguments)
            guard status.status == "committed" else { throw UserError("setup \(contract).\(action): \(status.status) \(status.code ?? "") \(status.message ?? "")") }
            return status.id
        }
        let folder = NetworkDefinition.organizationPath("st-mary", in: directory)
        let authority = try OrganizationDirectory.authority(in: folder, organization: "st-mary")
        let patientKey = P256.Signing.PrivateKey()
        let patientCertificate = try authority.issue(name: "st-mary/bench-patient", role: .patient, publicKey: patientKey.publicKey)
        let patient = RecordClient(node: NodeClient(baseURL: base), identity: SigningIdentity(privateKey: patientKey, certificate: patientCertificate),
                                   network: node.network)
        let admin = try client("st-mary/admin")
        let pseudonym = Hash256.of(Array("bench patient".utf8))
        _ = try await commit(admin, "consent", "register", ConsentAction.register(certificate: patientCertificate.derBytes).arguments)
        _ = try await commit(admin, "consent", "enrol", ConsentAction.enrol(patient: pseudonym, member: patientCertificate.fingerprint).arguments)
        let reader = try client("st-mary/clinician")
        let readerKey = P256.KeyAgreement.PrivateKey()
        _ = try await commit(reader, "records", "register_key", RecordAction.registerKey(Array(readerKey.publicKey.x963Representation)).arguments)
        let terms = ConsentTerms(effect: .permit, grantee: .organization("st-mary"), purposes: [.treatment])
        _ = try await commit(patient, "consent", "grant", ConsentAction.grant(patient: pseudonym, terms: terms).arguments)

        // 3. Records stored per second: concurrent clients, each sealing, uploading and anchoring.
        let stored = 400
        let clients = 16
        say("storing \(stored) records through the API with \(clients) clients")
        let collector = try client("st-mary/collector")
        let storeStart = ContinuousClock.now
        let ids = try await withThrowingTaskGroup(of: [Hash256].self) { group in
            for worker in 0..<clients {
                group.addTask {
                    var ids: [Hash256] = []
                    for _ in stride(from: worker, to: stored, by: clients) {
                        let (id, status) = try await collector.put(payload, patient: pseudonym, category: "device_readings")
                        guard status.status == "committed" else { throw UserError("record not anchored: \(status.code ?? "")") }
                        ids.append(id)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let storeSeconds = Self.seconds(ContinuousClock.now - storeStart)

        // 4. Decisions at an offered rate, open loop: request, decision committed, key released.
        let offered = rate ?? 200
        let decisions = max(50, Int(offered * 10))
        say("\(decisions) access decisions at \(offered)/s")
        let interval = 1 / offered
        let started = ContinuousClock.now
        let outcomes = try await withThrowingTaskGroup(of: (Double, Bool).self) { group in
            for index in 0..<decisions {
                let due = started + .milliseconds(Int(Double(index) * interval * 1000))
                let record = ids[index % ids.count]
                group.addTask {
                    try await Task.sleep(until: due, clock: .continuous)
                    let request = ConsentAction.request(record: record, purpose: .treatment)
                    let status = try await reader.submit(contract: "consent", action: request.name, arguments: request.arguments)
                    guard status.status == "committed" else { return (Self.seconds(ContinuousClock.now - due) * 1000, false) }
                    let released: RecordClient.Released = try await reader.node.get("v1/records/\(record.hex)/key",
                                                                                     query: [URLQueryItem(name: "decision", value: status.id.hex)])
                    _ = try KeyWrap.unwrap(Hex.decode(released.wrapped_key) ?? [], with: readerKey,
                                           info: KeyWrap.readerInfo(record: record, decision: status.id))
                    return (Self.seconds(ContinuousClock.now - due) * 1000, true)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let latencies = outcomes.map(\.0).sorted()
        await server.stop()
        node.shutdown()
        try await runner.value

        let result = RecordsResult(
            encryption: encryption, record_bytes: size, records_stored: ids.count, records_stored_per_s: Double(ids.count) / storeSeconds, store_clients: clients,
            decision_rate: offered, decisions: outcomes.count, decisions_granted: outcomes.filter(\.1).count,
            decision_p50_ms: Self.percentile(latencies, 0.5), decision_p99_ms: Self.percentile(latencies, 0.99),
            decision_max_ms: latencies.last ?? 0, batch_timeout_ms: batchTimeoutMs, cores: ProcessInfo.processInfo.activeProcessorCount, allocator_tuned: MedLedger.allocatorTuned
        )
        Output.json(result, pretty: !json)
    }
}
