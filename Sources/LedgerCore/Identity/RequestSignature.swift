import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The signed-request scheme that authenticates every read of the node's HTTP API
/// (docs/formats.md, "Signed API requests").
///
/// A member signs one line-separated text naming the network, the method, the exact request target
/// and the SHA-256 of the body, with a time and a fresh nonce, using the key of its member
/// certificate; the node looks the certificate up by fingerprint among the registered members.
///
/// ```swift
/// let header = RequestSignature.authorization(identity: signer, network: networkID, method: "GET",
///                                             target: "/v1/devices?limit=3")
/// request.setValue(header, forHTTPHeaderField: "Authorization")
/// ```
public enum RequestSignature {
    /// The `Authorization` scheme name.
    public static let scheme = "MedLedger-Signature"
    /// The first line of every signed text: binds a signature to this scheme and version only.
    public static let domain = "MedLedger-Request-v1"
    /// Longest `Authorization` value accepted (a valid one is about 240 characters).
    public static let maxHeaderLength = 512

    /// The parameters carried in the header.
    public struct Credentials: Sendable, Hashable {
        /// SHA-256 of the signer's DER certificate.
        public var member: Hash256
        /// Milliseconds since the Unix epoch when the request was signed.
        public var time: Int64
        /// 16 random bytes, fresh for every request.
        public var nonce: [UInt8]
        /// Raw `r‖s` P-256 signature (64 bytes) over SHA-256 of ``RequestSignature/message(network:method:target:bodyHash:time:nonce:)``.
        public var signature: [UInt8]

        public init(member: Hash256, time: Int64, nonce: [UInt8], signature: [UInt8]) {
            self.member = member
            self.time = time
            self.nonce = nonce
            self.signature = signature
        }

        /// The header value: `MedLedger-Signature member=…,time=…,nonce=…,signature=…`.
        public var headerValue: String {
            "\(RequestSignature.scheme) member=\(member.hex),time=\(time),nonce=\(Hex.encode(nonce)),signature=\(Data(signature).base64EncodedString())"
        }
    }

    /// The exact bytes that are signed (UTF-8, fields separated by a single `\n`, no trailing newline):
    ///
    ///     MedLedger-Request-v1
    ///     <network id, 64 lower-case hex>
    ///     <method, upper case>
    ///     <request target as sent: path and query, byte for byte>
    ///     <SHA-256 of the body, 64 lower-case hex; the hash of no bytes for an empty body>
    ///     <time, decimal ms since the epoch>
    ///     <nonce, 32 lower-case hex>
    public static func message(network: Hash256, method: String, target: String, bodyHash: Hash256, time: Int64, nonce: [UInt8]) -> [UInt8] {
        Array([domain, network.hex, method, target, bodyHash.hex, String(time), Hex.encode(nonce)].joined(separator: "\n").utf8)
    }

    /// Signs a request and returns its credentials.
    public static func sign(
        identity: SigningIdentity, network: Hash256, method: String, target: String, body: [UInt8] = [],
        time: Int64 = Clock.nowMilliseconds(), nonce: [UInt8] = SigningIdentity.randomNonce()
    ) -> Credentials {
        let text = message(network: network, method: method, target: target, bodyHash: Hash256.of(body), time: time, nonce: nonce)
        return Credentials(member: identity.fingerprint, time: time, nonce: nonce, signature: identity.sign(text))
    }

    /// The `Authorization` header value for a request.
    public static func authorization(identity: SigningIdentity, network: Hash256, method: String, target: String, body: [UInt8] = []) -> String {
        sign(identity: identity, network: network, method: method, target: target, body: body).headerValue
    }

    /// Parses an `Authorization` value strictly: the scheme, then exactly the four parameters
    /// `member`, `time`, `nonce`, `signature` (each once, any order, no spaces around `=` or `,`).
    public static func parse(_ value: String) throws(LedgerError) -> Credentials {
        guard value.utf8.count <= maxHeaderLength else {
            throw LedgerError(.unauthenticated, "Authorization header is longer than \(maxHeaderLength) bytes")
        }
        let prefix = scheme + " "
        guard value.hasPrefix(prefix) else {
            throw LedgerError(.unauthenticated, "Authorization must use the \(scheme) scheme (docs/formats.md)")
        }
        var fields: [String: String] = [:]
        for part in value.dropFirst(prefix.count).split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = part.firstIndex(of: "=") else {
                throw LedgerError(.unauthenticated, "Authorization parameters must be name=value")
            }
            let name = String(part[..<equals])
            guard ["member", "time", "nonce", "signature"].contains(name), fields[name] == nil else {
                throw LedgerError(.unauthenticated, "Authorization must carry member, time, nonce and signature exactly once")
            }
            fields[name] = String(part[part.index(after: equals)...])
        }
        guard let memberText = fields["member"], isLowerHex(memberText, count: 64), let member = Hash256(hex: memberText) else {
            throw LedgerError(.unauthenticated, "member must be the certificate fingerprint in 64 lower-case hex digits")
        }
        guard let timeText = fields["time"], (1...15).contains(timeText.utf8.count), timeText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let time = Int64(timeText), String(time) == timeText else {
            throw LedgerError(.unauthenticated, "time must be milliseconds since the epoch, in decimal without leading zeros")
        }
        guard let nonceText = fields["nonce"], isLowerHex(nonceText, count: 32), let nonce = Hex.decode(nonceText) else {
            throw LedgerError(.unauthenticated, "nonce must be 32 lower-case hex digits")
        }
        guard let signatureText = fields["signature"], signatureText.utf8.count == 88,
              let signature = Data(base64Encoded: signatureText), signature.count == 64,
              // Canonical only: base64 decoders ignore the unused low bits of the last character.
              signature.base64EncodedString() == signatureText else {
            throw LedgerError(.unauthenticated, "signature must be the base64 of a raw 64-byte P-256 signature")
        }
        return Credentials(member: member, time: time, nonce: nonce, signature: Array(signature))
    }

    static func isLowerHex(_ text: String, count: Int) -> Bool {
        text.utf8.count == count && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
