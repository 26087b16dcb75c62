import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A member's private key and certificate: what signs transactions, block headers and checkpoints.
public struct SigningIdentity: Sendable {
    public let privateKey: P256.Signing.PrivateKey
    public let certificate: Certificate
    public let fingerprint: Hash256

    public init(privateKey: P256.Signing.PrivateKey, certificate: Certificate) {
        self.privateKey = privateKey
        self.certificate = certificate
        self.fingerprint = certificate.fingerprint
    }

    /// Raw 64-byte `r‖s` ECDSA P-256 signature over SHA-256(`message`).
    public func sign(_ message: [UInt8]) -> [UInt8] {
        // Signing with an in-memory P-256 key only fails on allocation failure.
        Array(try! privateKey.signature(for: message).rawRepresentation)
    }

    /// Builds and signs a transaction.
    public func transaction(
        network: Hash256, contract: String, action: String, arguments: [UInt8],
        timestamp: Int64 = Clock.nowMilliseconds(), nonce: [UInt8]? = nil
    ) -> (id: Hash256, envelope: Envelope) {
        let payload = TransactionPayload(
            network: network, creator: fingerprint, nonce: nonce ?? Self.randomNonce(), timestamp: timestamp,
            contract: contract, action: action, arguments: arguments
        )
        let bytes = payload.encoded
        let envelope = Envelope(payloadBytes: bytes, signature: sign(bytes))
        return (envelope.id, envelope)
    }

    public static func randomNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Loads a PEM private key and PEM certificate.
    public init(keyPEM: String, certificatePEM: String) throws {
        self.init(
            privateKey: try P256.Signing.PrivateKey(pemRepresentation: keyPEM),
            certificate: try Certificate(pemEncoded: certificatePEM)
        )
    }
}

/// Verifies raw P-256 signatures; keys are parsed once and cached by the caller.
public enum SignatureCheck {
    public static func isValid(signature: [UInt8], message: [UInt8], publicKey: P256.Signing.PublicKey) -> Bool {
        guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
        return publicKey.isValidSignature(signature, for: message)
    }
}

/// Wall-clock helpers for the shell (never for contract code, which uses block time).
public enum Clock {
    public static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
