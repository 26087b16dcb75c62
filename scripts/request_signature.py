#!/usr/bin/env python3
"""Reference implementation of MedLedger signed API requests (docs/formats.md, "Signed API requests").

Independent of the Swift code: it is what a third party writes from the format description.

    python3 scripts/request_signature.py vector          # print the known-answer vector (JSON)
    python3 scripts/request_signature.py header KEY.pem NETWORK_ID GET '/v1/chain'

The second form prints an `Authorization:` line; the member fingerprint is SHA-256 of the DER of the
certificate next to the key (KEY.pem -> KEY.pem with .key replaced by .pem).
"""
import base64, hashlib, json, os, sys, time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography import x509

DOMAIN = "MedLedger-Request-v1"


def signed_text(network_hex, method, target, body, time_ms, nonce_hex):
    """The exact bytes signed: seven fields joined by a single LF, no trailing newline."""
    fields = [DOMAIN, network_hex, method, target, hashlib.sha256(body).hexdigest(), str(time_ms), nonce_hex]
    return "\n".join(fields).encode("utf-8")


def raw_signature(key, message):
    """ECDSA P-256 over SHA-256(message), as raw r||s (32 + 32 bytes, big-endian)."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def authorization(member_hex, time_ms, nonce_hex, signature):
    return "MedLedger-Signature member=%s,time=%d,nonce=%s,signature=%s" % (
        member_hex, time_ms, nonce_hex, base64.b64encode(signature).decode("ascii"))


def verify(public_key, message, signature):
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))


def vector():
    key = ec.derive_private_key(int("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721", 16), ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    network = "6d1c7a3b0e5f4c2d8a9b1e0f3c5d7e9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
    member = hashlib.sha256(b"example certificate DER").hexdigest()
    target = "/v1/devices?owner=st-mary&limit=3"
    time_ms = 1764633600000
    nonce = "00112233445566778899aabbccddeeff"
    message = signed_text(network, "GET", target, b"", time_ms, nonce)
    signature = raw_signature(key, message)
    verify(key.public_key(), message, signature)
    return {
        "private_key_scalar": "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
        "public_key_raw": numbers.x.to_bytes(32, "big").hex() + numbers.y.to_bytes(32, "big").hex(),
        "network_id": network, "member": member, "method": "GET", "target": target, "body_hex": "",
        "time": time_ms, "nonce": nonce,
        "signed_text_hex": message.hex(),
        "signed_text_sha256": hashlib.sha256(message).hexdigest(),
        "signature_base64": base64.b64encode(signature).decode("ascii"),
        "authorization": authorization(member, time_ms, nonce, signature),
    }


def main(argv):
    if len(argv) >= 2 and argv[1] == "vector":
        print(json.dumps(vector(), indent=2, sort_keys=True))
        return 0
    if len(argv) == 6 and argv[1] == "header":
        key_path, network, method, target = argv[2:6]
        key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
        certificate = x509.load_pem_x509_certificate(open(key_path[:-4] + ".pem", "rb").read())
        member = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        time_ms, nonce = int(time.time() * 1000), os.urandom(16).hex()
        signature = raw_signature(key, signed_text(network, method, target, b"", time_ms, nonce))
        print("Authorization: " + authorization(member, time_ms, nonce, signature))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
