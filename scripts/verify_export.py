#!/usr/bin/env python3
"""Independent verifier for MedLedger exports (format "medledger-export/1").

    python3 scripts/verify_export.py EXPORT.json [--network DIR] [--tip HASH] [--allow-invalid-refused]

Written from docs/formats.md only, with the Python standard library and the `cryptography`
package. It never re-serializes what it verifies: every hash and signature is computed over the
exact bytes found in the export.

Besides the chain (hashes, signatures, log, state roots) it checks every committed transaction
against what its contract allows without replaying the device state (docs/formats.md §14). The
genesis write set is recomputed from the genesis configuration. Research queries take two
node-signed transactions: for `research.charge` it checks the researcher's embedded, signed
`research.ask` and the query against the research policy; for `research.answer` that the question
was charged by the same node and not yet answered, and the answer's noise against the query. Since
the research state (rqa/, rq/, rspent/) is written by nothing else, it rebuilds that state from the
export to decide duplicate asks, free repeats, pending and answered questions and budget usage, and
recomputes both transactions' write sets. The genesis must carry approvals of its exact draft bytes by
admins of distinct founding organisations that satisfy the draft's approval policy.

On success it prints one JSON line {"ok": true, "blocks": N, "transactions": M, ...} and exits 0.
On the first failure it prints one JSON line {"ok": false, "block": h, "transaction": i, "error": ...}
(plus a readable line on stderr) and exits 1.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import struct
import sys
import time
import unicodedata

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

FORMAT = "medledger-export/1"
ZERO = bytes(32)


def sha256(data):
    return hashlib.sha256(data).digest()


# SHA-256 of the empty write set (u32 count 0): the write-set hash of every refused transaction.
EMPTY_WRITE_SET_HASH = sha256(b"\x00\x00\x00\x00")

# On-ledger status numbers: 0 = committed, 1 + index in this table otherwise (LedgerError.swift).
STATUS_TABLE = [
    "malformed_encoding", "bad_signature", "unknown_member", "unknown_organization", "certificate_expired",
    "certificate_revoked", "invalid_certificate", "forbidden", "payload_too_large", "duplicate_transaction",
    "timestamp_skew", "wrong_network", "invalid_udi", "unknown_device", "device_exists",
    "device_decommissioned", "missing_field", "invalid_argument", "unknown_action", "unknown_proposal",
    "proposal_closed", "already_approved", "internal_error", "invalid_configuration", "budget_exhausted",
    "not_found", "answer_mismatch", "insufficient_approvals", "unknown_record", "record_exists", "record_erased",
    "unknown_patient",
]
STATUS_DUPLICATE = 1 + STATUS_TABLE.index("duplicate_transaction")

ROLES = {"admin", "node", "collector", "device", "researcher", "auditor", "clinician", "patient", "delegate"}
KINDS = {"hospital", "research", "regulator", "manufacturer"}
DEVICE_WRITERS = {"admin", "collector"}
MAX_CLOCK_SKEW = 86_400_000  # NetworkConfig.validate upper bound for clockSkewMilliseconds


def status_code_name(status):
    """The `code` an export writes for a stored status (LedgerError.Code(ledgerStatus:))."""
    if status == 0:
        return None
    index = status - 1
    return STATUS_TABLE[index] if 0 <= index < len(STATUS_TABLE) else "status_%d" % status


class Failure(Exception):
    def __init__(self, message, **where):
        super().__init__(message)
        self.message = message
        self.where = where


class DecodeError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# Binary decoding (BinaryReader.swift): big-endian integers, u32-length-prefixed bytes/strings.
# ----------------------------------------------------------------------------------------------

class Reader:
    __slots__ = ("b", "o")
    MAX_FIELD = 16 << 20

    def __init__(self, data):
        self.b = data
        self.o = 0

    def remaining(self):
        return len(self.b) - self.o

    def raw(self, n, field):
        if n < 0 or n > len(self.b) - self.o:
            raise DecodeError(f"{field}: input ends early at byte {self.o} of {len(self.b)}")
        value = self.b[self.o:self.o + n]
        self.o += n
        return value

    def u8(self, field):
        return self.raw(1, field)[0]

    def u16(self, field):
        return struct.unpack(">H", self.raw(2, field))[0]

    def u32(self, field):
        return struct.unpack(">I", self.raw(4, field))[0]

    def u64(self, field):
        return struct.unpack(">Q", self.raw(8, field))[0]

    def i64(self, field):
        return struct.unpack(">q", self.raw(8, field))[0]

    def boolean(self, field):
        v = self.u8(field)
        if v > 1:
            raise DecodeError(f"{field}: boolean byte must be 0 or 1, got {v}")
        return v == 1

    def bytes_(self, field, max_len=MAX_FIELD):
        n = self.u32(field)
        if n > max_len:
            raise DecodeError(f"{field}: length {n} exceeds the limit of {max_len} bytes")
        return self.raw(n, field)

    def string(self, field, max_len=4096):
        raw = self.bytes_(field, max_len)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"{field}: not valid UTF-8") from None

    def hash(self, field):
        return self.raw(32, field)

    def opt_string(self, field, max_len=4096):
        return self.string(field, max_len) if self.boolean(field) else None

    def opt_i64(self, field):
        return self.i64(field) if self.boolean(field) else None

    def count(self, field, max_count=10_000):
        n = self.u32(field)
        if n > max_count or n > self.remaining():
            raise DecodeError(f"{field}: {n} elements exceeds the limit")
        return n

    def enum(self, field, allowed):
        s = self.string(field, 64)
        if s not in allowed:
            raise DecodeError(f"{field}: unknown value {s}")
        return s

    def end(self, what):
        if self.o != len(self.b):
            raise DecodeError(f"{what}: {len(self.b) - self.o} unexpected trailing bytes")


# BlockHeader: "MLB2" u64 height, previousHash, i64 timestamp, u32 transactionCount, transactionRoot,
# u64 logSize, logRoot, stateRoot, proposer, u64 epoch  -> always exactly 200 bytes.
HEADER = struct.Struct(">4sQ32sqI32sQ32s32s32sQ")
assert HEADER.size == 200


def decode_header(data):
    if len(data) < 4 or data[:4] != b"MLB2":
        raise DecodeError("block header: expected magic MLB2")
    if len(data) < HEADER.size:
        raise DecodeError(f"block header: input ends early ({len(data)} of {HEADER.size} bytes)")
    if len(data) > HEADER.size:
        raise DecodeError(f"BlockHeader: {len(data) - HEADER.size} unexpected trailing bytes")
    (_, height, previous, timestamp, count, tx_root, log_size, log_root, state_root, proposer, epoch) = HEADER.unpack(data)
    return {"height": height, "previous": previous, "timestamp": timestamp, "count": count, "tx_root": tx_root,
            "log_size": log_size, "log_root": log_root, "state_root": state_root, "proposer": proposer, "epoch": epoch}


def read_envelope(r):
    """Envelope: u8 version (1) | bytes payload (<= 1 MiB) | bytes signature (<= 128, must be 64)."""
    version = r.u8("envelope version")
    if version != 1:
        raise DecodeError(f"envelope: unsupported version {version}, expected 1")
    payload = r.bytes_("envelope payload", 1 << 20)
    signature = r.bytes_("envelope signature", 128)
    if len(signature) != 64:
        raise DecodeError(f"envelope: signature must be 64 bytes (raw P-256 r||s), got {len(signature)}")
    return payload, signature


def decode_envelope(data):
    r = Reader(data)
    payload, signature = read_envelope(r)
    r.end("Envelope")
    return payload, signature


def decode_payload(data):
    """TransactionPayload: "MLP1" network creator nonce[16] i64 timestamp string contract string action bytes arguments."""
    r = Reader(data)
    if r.raw(4, "payload magic") != b"MLP1":
        raise DecodeError("payload: expected magic MLP1")
    p = {
        "network": r.hash("payload network"),
        "creator": r.hash("payload creator"),
        "nonce": r.raw(16, "payload nonce"),
        "timestamp": r.i64("payload timestamp"),
        "contract": r.string("payload contract", 64),
        "action": r.string("payload action", 64),
        "arguments": r.bytes_("payload arguments"),
    }
    r.end("TransactionPayload")
    return p


def read_policy(r):
    kind = r.u8("policy kind")
    if kind == 1:
        return ("majority",)
    if kind == 2:
        return ("all",)
    if kind == 3:
        n = r.u32("policy n")
        if n == 0:
            raise DecodeError("policy: atLeast needs n >= 1")
        return ("atLeast", n)
    raise DecodeError(f"policy: unknown kind {kind}")


# QueryField raw values (QuerySpec.swift) -> categorical?
QUERY_FIELDS = {
    "hospital": True, "manufacturer": True, "model": True, "firmware_version": True, "device_type": True,
    "category": True, "speciality": True, "location": True, "active": True, "status": True,
    "production_date": False, "last_service_date": False, "warranty_expiry": False, "usage_hours": False,
    "battery_level": False, "sync_frequency_seconds": False, "last_sync": False, "updated_at": False,
    "age_days": False, "warranty_days": False,
}
INHERENTLY_CLOSED = {"hospital", "active", "status"}  # QueryRequest.inherentlyClosed
MIN_EPSILON_MICROS = 1000                             # QueryRequest.minimumEpsilonMicros (ε 0.001)
MAX_FILTERS, MAX_VALUES, MAX_BINS = 16, 256, 100      # QuerySpec limits
LAPLACE, GAUSSIAN = 1, 2                              # NoiseMechanism raw values
MECHANISM_NAMES = {LAPLACE: "laplace", GAUSSIAN: "gaussian"}


def read_budget(r, what="budget"):
    """PrivacyBudget: u64 epsilonMicros | u64 deltaPicos."""
    return (r.u64(f"{what} epsilon"), r.u64(f"{what} delta"))


def read_research_policy(r):
    """ResearchPolicy (ResearchPolicy.swift)."""
    roles = []
    for _ in range(r.count("research roles", 16)):
        role = r.string("research roles")
        if role not in ROLES:
            raise DecodeError(f"research: unknown role {role}")
        roles.append(role)
    p = {"allowed_roles": roles,
         "max_epsilon": r.u64("research max epsilon"),
         "delta_per_query": r.u64("research delta per query"),
         "budget": read_budget(r),
         "period": r.u64("research period")}
    p["bounds"] = [(r.enum("bounds field", QUERY_FIELDS), r.i64("bounds lower"), r.i64("bounds upper"))
                   for _ in range(r.count("research bounds", 64))]
    domains = []
    for _ in range(r.count("research domains", 64)):
        field = r.enum("domain field", QUERY_FIELDS)
        domains.append((field, [r.string("domain values") for _ in range(r.count("domain values", 256))]))
    p["domains"] = domains
    p["max_groups"] = r.u32("research max groups")
    return p


# ResearchPolicy.validate(): budget periods from a minute to ten years (10 x 366 days).
MIN_PERIOD, MAX_PERIOD = 60_000, 10 * 366 * 86_400_000
# Labels a closed grouped count adds to a declared domain; a domain may not contain them. Swift's
# `contains` compares by canonical equivalence, hence _canonical.
RESERVED_LABELS = {"(other)", "(none)"}


def _canonical(value):
    """Swift String equality is Unicode canonical equivalence: compare NFD forms."""
    return unicodedata.normalize("NFD", value)


def _utf8_increasing(values):
    b = [v.encode("utf-8") for v in values]
    return all(x < y for x, y in zip(b, b[1:]))


def research_policy_error(p):
    """ResearchPolicy.validate()."""
    roles = p["allowed_roles"]
    if not roles or roles != sorted(set(roles)):
        return "research.allowedRoles must be non-empty, sorted and distinct"
    if not MIN_EPSILON_MICROS <= p["max_epsilon"] <= 100_000_000:
        return "research.maxEpsilonPerQuery must be 0.001...100"
    if not 2 <= p["delta_per_query"] <= 10_000_000_000:
        return "research.deltaPerQuery must be 2e-12...0.01 (it may be split in two)"
    if not MIN_PERIOD <= p["period"] <= MAX_PERIOD:
        return "research.period must be a minute to ten years"
    bounds = p["bounds"]
    if not _utf8_increasing([f for f, _, _ in bounds]) or not all(
            not QUERY_FIELDS[f] and lo < hi and abs(lo) <= 1_000_000_000 and abs(hi) <= 1_000_000_000 for f, lo, hi in bounds):
        return "research.bounds: one entry per numeric field, sorted, lower < upper, |bound| <= 1e9"
    domains = p["domains"]
    if not _utf8_increasing([f for f, _ in domains]) or not all(
            QUERY_FIELDS[f] and 1 <= len(values) <= 256 and _utf8_increasing(values)
            and not any(_canonical(v) in RESERVED_LABELS for v in values) for f, values in domains):
        return ("research.domains: one entry per categorical field, sorted, 1...256 sorted distinct values, "
                "none of them (other) or (none)")
    if not 1 <= p["max_groups"] <= 10_000:
        return "research.maxGroups must be 1...10000"
    return None


def read_config(r):
    """NetworkConfig; "encoded" keeps the exact bytes it was decoded from (the value of state key cfg)."""
    start = r.o
    c = {
        "batch_size": r.u32("config batchSize"),
        "batch_timeout": r.u32("config batchTimeout"),
        "max_transaction_bytes": r.u32("config maxTransactionBytes"),
        "clock_skew": r.u64("config clockSkew"),
        "policy": read_policy(r),
        "research": read_research_policy(r),
    }
    c["encoded"] = r.b[start:r.o]
    return c


def config_error(c):
    """NetworkConfig.validate(); returns the first problem or None."""
    if not 1 <= c["batch_size"] <= 10_000:
        return "batchSize must be 1...10000"
    if not 1 <= c["batch_timeout"] <= 60_000:
        return "batchTimeoutMilliseconds must be 1...60000"
    if not 1024 <= c["max_transaction_bytes"] <= (1 << 20):
        return "maxTransactionBytes must be 1 KiB...1 MiB"
    if not 1000 <= c["clock_skew"] <= 86_400_000:
        return "clockSkewMilliseconds must be 1 s...1 day"
    return research_policy_error(c["research"])


def read_organization(r):
    return {
        "id": r.string("organization id", 64),
        "name": r.string("organization name", 256),
        "kind": r.enum("organization kind", KINDS),
        "root": r.bytes_("organization root", 16_384),
        "active": r.boolean("organization active"),
    }


def read_registration(r):
    return {"certificate": r.bytes_("registration certificate", 16_384),
            "device_udi": r.opt_string("registration deviceUDI", 128)}


def read_proposal_action(r):
    kind = r.u8("proposal action")
    if kind == 1:
        org = read_organization(r)
        n = r.count("proposal members", 1000)
        return ("addOrganization", org, [read_registration(r) for _ in range(n)])
    if kind == 2:
        return ("addMember", read_registration(r))
    if kind == 3:
        return ("revokeCertificate", r.hash("proposal fingerprint"))
    if kind == 4:
        return ("updateConfig", read_config(r))
    if kind == 5:
        member = r.hash("proposal member")
        return ("setResearchBudget", member, read_budget(r) if r.boolean("proposal budget present") else None)
    if kind == 6:
        return ("rotateNoiseKey", read_noise_key(r))
    raise DecodeError(f"proposal: unknown action {kind}")


def read_noise_key(r):
    """NoiseKeyEpoch: u32 epoch, 32-byte commitment, u32 count, then per box 32-byte recipient,
    65-byte ephemeral P-256 key (x9.63), 60-byte ChaCha20-Poly1305 box; "encoded" keeps the bytes."""
    start = r.o
    epoch = r.u32("noise key epoch")
    commitment = r.raw(32, "noise key commitment")
    n = r.count("noise key boxes", 1000)
    boxes = []
    for _ in range(n):
        boxes.append((r.raw(32, "wrapped key recipient"), r.raw(65, "wrapped key ephemeral public key"), r.raw(60, "wrapped key box")))
    return {"epoch": epoch, "commitment": commitment, "recipients": [b[0] for b in boxes], "encoded": r.b[start:r.o]}


def noise_key_error(noise, certificates):
    """NoiseKeyEpoch.validate() and GovernanceContract.checkNoiseKey's recipient check (roles from
    the exported certificates; the epoch sequence is not followed here)."""
    if noise["epoch"] < 1:
        return "noise key epochs start at 1"
    if not noise["recipients"]:
        return "a noise key must be wrapped to at least one node"
    if any(a >= b for a, b in zip(noise["recipients"], noise["recipients"][1:])):
        return "noise key boxes must be sorted by recipient, each recipient once"
    for fp in noise["recipients"]:
        member = certificates.get(fp)
        if member is None or member.role != "node":
            return f"noise key box for {fp.hex()}, which is not a registered node"
    return None


def decode_genesis_config(data):
    """GenesisConfig: the draft the founding admins approved."""
    r = Reader(data)
    name = r.string("genesis name", 256)
    config = read_config(r)
    orgs = [read_organization(r) for _ in range(r.count("genesis organizations", 1000))]
    members = [read_registration(r) for _ in range(r.count("genesis members", 100_000))]
    noise = read_noise_key(r) if r.remaining() else None
    r.end("genesis draft")
    return {"name": name, "config": config, "organizations": orgs, "members": members, "noise_key": noise}


def decode_genesis_charter(data):
    """GenesisCharter, the genesis arguments: "MLG2" | bytes draft (<= 1 MiB) | array<GenesisApproval> (<= 1000),
    an approval being hash approver | raw[64] signature over "MLA1" | SHA-256(draft)."""
    r = Reader(data)
    if r.raw(4, "genesis magic") != b"MLG2":
        raise DecodeError("genesis arguments must start with MLG2 (an approved draft)")
    draft = r.bytes_("genesis draft", 1 << 20)
    approvals = [(r.raw(32, "approval approver"), r.raw(64, "approval signature"))
                 for _ in range(r.count("genesis approvals", 1000))]
    r.end("genesis arguments")
    return draft, approvals


def required_approvals(policy, organizations):
    """ApprovalPolicy.required(organizations:), never fewer than one for a genesis."""
    if policy[0] == "majority":
        n = organizations // 2 + 1
    elif policy[0] == "all":
        n = organizations
    else:
        n = min(policy[1], organizations)
    return max(1, n)


STRING_TAGS = {1: "manufacturer", 2: "model", 3: "firmware_version", 4: "device_type", 5: "category",
               6: "speciality", 7: "location", 16: "lot"}
INTEGER_TAGS = {8: "production_date", 9: "last_service_date", 10: "warranty_expiry", 11: "usage_hours",
                12: "battery_level", 13: "sync_frequency_seconds", 14: "last_sync", 17: "expiry_date"}
REQUIRED_ATTRIBUTES = ["manufacturer", "model", "device_type", "category", "speciality", "production_date"]


def read_attributes(r):
    count = r.u8("attributes count")
    attrs = {}
    last = 0
    for _ in range(count):
        tag = r.u8("attribute tag")
        if tag <= last:
            raise DecodeError("attributes: tags must be strictly increasing")
        last = tag
        if tag in STRING_TAGS:
            attrs[STRING_TAGS[tag]] = r.string("attribute", 200)
        elif tag in INTEGER_TAGS:
            attrs[INTEGER_TAGS[tag]] = r.i64("attribute")
        elif tag == 15:
            attrs["active"] = r.boolean("attribute active")
        else:
            raise DecodeError(f"attributes: unknown tag {tag}")
    return attrs


def attributes_error(a):
    """DeviceAttributes.validate()."""
    for name in STRING_TAGS.values():
        if name in a and (a[name] == "" or len(a[name].encode()) > 200):
            return f"{name} must be 1...200 bytes"
    if "battery_level" in a and not 0 <= a["battery_level"] <= 100:
        return "battery_level must be 0...100"
    if "usage_hours" in a and a["usage_hours"] < 0:
        return "usage_hours must not be negative"
    if "sync_frequency_seconds" in a and a["sync_frequency_seconds"] <= 0:
        return "sync_frequency_seconds must be positive"
    for name in ("production_date", "last_service_date", "warranty_expiry", "expiry_date"):
        if name in a and not -25_567 <= a[name] <= 84_006:
            return f"{name} is out of range"
    return None


def decode_device_action(action, arguments):
    r = Reader(arguments)
    udi = r.string("udi", 128)
    if action == "register":
        result = {"udi": udi, "attributes": read_attributes(r)}
    elif action == "update":
        event = r.string("event", 64)
        result = {"udi": udi, "event": event, "changes": read_attributes(r)}
    elif action == "transfer":
        result = {"udi": udi, "to": r.string("to", 64)}
    elif action == "accept_transfer":
        result = {"udi": udi}
    elif action == "decommission":
        result = {"udi": udi, "reason": r.string("reason", 512)}
    else:
        raise DecodeError(f"devices contract has no action {action}")
    r.end(f"devices.{action} arguments")
    return result


# -- patient data (docs/formats.md §17; RecordsContract.swift, ConsentContract.swift) --------------

RECORD_WRITERS = {"admin", "collector", "clinician"}
RECORD_READERS = {"admin", "clinician", "researcher", "auditor", "patient", "delegate"}
PURPOSES = ["COC", "ETREAT", "HOPERAT", "HPAYMT", "HRESCH", "PATRQT", "PUBHLTH", "TREAT"]
SEALED_RECORD_OVERHEAD = 4 + 12 + 16
MAX_RECORD_SIZE = 1 << 30


def p256_point_valid(data):
    if len(data) != 65 or data[0] != 4:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(data))
        return True
    except ValueError:
        return False


def valid_category(c):
    return 1 <= len(c.encode()) <= 64 and all(ch in "abcdefghijklmnopqrstuvwxyz0123456789_" for ch in c)


def read_consent_terms(r):
    effect = r.enum("consent effect", {"permit", "deny"})
    tag = r.u8("grantee tag")
    if tag == 1:
        grantee = ("organization", r.string("grantee organization", 64))
    elif tag == 2:
        grantee = ("role", r.enum("grantee role", ROLES), r.opt_string("grantee organization", 64))
    elif tag == 3:
        grantee = ("member", r.hash("grantee member"))
    else:
        raise DecodeError(f"grantee: unknown tag {tag}")
    categories = [r.string("consent categories") for _ in range(r.count("consent categories", 32))]
    devices = [r.string("consent devices") for _ in range(r.count("consent devices", 32))]
    purposes = [r.enum("consent purposes", set(PURPOSES)) for _ in range(r.count("consent purposes", len(PURPOSES)))]
    expires = r.opt_i64("consent expiresAt")
    return {"effect": effect, "grantee": grantee, "categories": categories, "devices": devices, "purposes": purposes,
            "expires_at": expires}


def decode_record_put(r):
    return {"id": r.hash("record id"), "size": r.u64("record size"), "category": r.string("record category", 64),
            "device": r.opt_string("record device", 128), "patient": r.hash("record patient"),
            "holder_key": r.raw(65, "record holder key"), "wrapped_key": r.raw(65 + 32 + 16, "record wrapped key")}


def decode_records_action(action, arguments):
    r = Reader(arguments)
    if action == "register_key":
        result = {"key": r.raw(65, "encryption key")}
    elif action == "put":
        result = decode_record_put(r)
    elif action == "erase":
        result = {"record": r.hash("record id"), "reason": r.string("erase reason", 512)}
    elif action == "rotate":
        result = {"record": r.hash("record id"), **decode_record_put(r)}
    else:
        raise DecodeError(f"records contract has no action {action}")
    r.end(f"records.{action} arguments")
    return result


def decode_consent_action(action, arguments):
    r = Reader(arguments)
    if action == "register":
        result = {"certificate": r.bytes_("certificate", 16_384)}
    elif action == "enrol":
        result = {"patient": r.hash("patient"), "member": r.hash("member")}
    elif action == "delegate":
        result = {"patient": r.hash("patient"), "member": r.hash("member"), "add": r.boolean("add")}
    elif action == "grant":
        result = {"patient": r.hash("patient"), "terms": read_consent_terms(r)}
    elif action == "revoke":
        result = {"patient": r.hash("patient"), "rule": r.hash("rule")}
    elif action == "request":
        result = {"record": r.hash("record"), "purpose": r.enum("purpose", set(PURPOSES))}
    elif action == "break_glass":
        result = {"record": r.hash("record"), "reason": r.string("reason", 512)}
    elif action == "review":
        result = {"patient": r.hash("patient"), "decision": r.hash("decision"), "note": r.string("note", 512)}
    else:
        raise DecodeError(f"consent contract has no action {action}")
    r.end(f"consent.{action} arguments")
    return result


def has_reason(text):
    return any(not ch.isspace() for ch in text)


def valid_event(event):
    b = event.encode()
    return 0 < len(b) <= 64 and all(97 <= c <= 122 or c == 95 for c in b)


def valid_org_id(i):
    return 0 < len(i) <= 64 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in i)


# ----------------------------------------------------------------------------------------------
# Research queries (QuerySpec.swift, Noise.swift, QueryAnswer.swift, QueryRequest+Policy.swift)
# ----------------------------------------------------------------------------------------------

def read_query_spec(r):
    """QuerySpec: u8 kind [+ fields] | u32 filter count (<= 16) | filters."""
    tag = r.u8("query kind")
    if tag == 1:
        kind = ("count",)
    elif tag == 2:
        kind = ("grouped_field", r.enum("query group field", QUERY_FIELDS))
    elif tag == 3:
        field = r.enum("query bin field", QUERY_FIELDS)
        n = r.u32("query bin count")
        if n > MAX_BINS:
            raise DecodeError("query: too many bin edges")
        kind = ("grouped_bins", field, [r.i64("query bin edge") for _ in range(n)])
    elif tag == 4:
        kind = ("sum", r.enum("query sum field", QUERY_FIELDS))
    elif tag == 5:
        kind = ("average", r.enum("query average field", QUERY_FIELDS))
    else:
        raise DecodeError(f"query: unknown kind {tag}")
    n = r.u32("query filter count")
    if n > MAX_FILTERS:
        raise DecodeError("query: too many filters")
    filters = []
    for _ in range(n):
        ftag = r.u8("query filter kind")
        field = r.enum("query filter field", QUERY_FIELDS)
        if ftag == 1:
            filters.append(("one_of", field, [r.string("query filter values") for _ in range(r.count("query filter values", MAX_VALUES))]))
        elif ftag == 2:
            filters.append(("range", field, r.opt_i64("query filter lower"), r.opt_i64("query filter upper")))
        elif ftag == 3:
            filters.append(("prefix", field, r.string("query filter prefix", 200)))
        else:
            raise DecodeError(f"query: unknown filter kind {ftag}")
    return {"kind": kind, "filters": filters}


def decode_query_request(data):
    """QueryRequest: QuerySpec | u8 mechanism | u64 epsilonMicros | optional<u64> asOfHeight; no trailing bytes.
    "key_prefix" is the exact bytes spec | mechanism | epsilon that the MLQ1 question key hashes."""
    r = Reader(data)
    spec = read_query_spec(r)
    mechanism = r.u8("query mechanism")
    if mechanism not in MECHANISM_NAMES:
        raise DecodeError("query: unknown mechanism")
    epsilon = r.u64("query epsilon")
    key_prefix = data[:r.o]
    as_of = r.u64("query asOf") if r.boolean("query asOf present") else None
    r.end("QueryRequest")
    return {"spec": spec, "mechanism": mechanism, "epsilon": epsilon, "as_of": as_of, "key_prefix": key_prefix}


def query_key(request, height):
    """QueryRequest.key(height:) = H("MLQ1" | spec | u8 mechanism | u64 epsilon | u64 height), over the request's own bytes."""
    return sha256(b"MLQ1" + request["key_prefix"] + struct.pack(">Q", height))


def read_noise(r):
    """NoiseDescription: u8 mechanism | u64 sensitivity, epsilonMicros, deltaPicos, scaleNumerator, scaleDenominator (> 0), halfWidth95."""
    mechanism = r.u8("noise mechanism")
    if mechanism not in MECHANISM_NAMES:
        raise DecodeError("noise: unknown mechanism")
    n = {"mechanism": mechanism, "sensitivity": r.u64("noise sensitivity"), "epsilon": r.u64("noise epsilon"),
         "delta": r.u64("noise delta"), "scale_numerator": r.u64("noise scale numerator"),
         "scale_denominator": r.u64("noise scale denominator")}
    if n["scale_denominator"] == 0:
        raise DecodeError("noise: zero scale denominator")
    n["half_width95"] = r.u64("noise half width")
    return n


def read_noisy_value(r):
    return {"value": r.i64("noisy value"), "noise": read_noise(r)}


def read_query_answer(r):
    """QueryAnswer: u64 height | i64 referenceTime | u8 kind | result."""
    a = {"height": r.u64("answer height"), "reference_time": r.i64("answer reference time")}
    kind = r.u8("answer kind")
    if kind == 1:
        a["result"] = ("count", read_noisy_value(r))
    elif kind == 2:
        a["result"] = ("sum", read_noisy_value(r), r.i64("answer lower"), r.i64("answer upper"))
    elif kind == 3:
        a["result"] = ("average", read_noisy_value(r), read_noisy_value(r), r.i64("answer center"),
                       r.i64("answer lower"), r.i64("answer upper"))  # centeredSum, count, center, lower, upper
    elif kind == 4:
        groups = [(r.string("group label", 256), r.i64("group value")) for _ in range(r.count("answer groups", 10_000))]
        a["result"] = ("grouped", groups, read_noise(r), r.opt_i64("answer threshold"))
    else:
        raise DecodeError(f"answer: unknown kind {kind}")
    return a


def decode_research_charge(data):
    """ResearchCharge (arguments of research.charge): Envelope (the researcher's research.ask, byte for
    byte) | u64 height; no trailing bytes. Returns the ask's payload and signature and the height."""
    r = Reader(data)
    ask_payload, ask_signature = read_envelope(r)
    height = r.u64("charge height")
    r.end("ResearchCharge")
    return ask_payload, ask_signature, height


def decode_research_answer(data):
    """ResearchAnswer (arguments of research.answer): hash key | QueryAnswer; no trailing bytes.
    Returns the key and the answer with its exact bytes ("encoded": what rq/ records and hashes)."""
    r = Reader(data)
    key = r.hash("answer key")
    answer = read_query_answer(r)
    r.end("ResearchAnswer")
    answer["encoded"] = data[32:]
    return key, answer


def _canonically_distinct(values):
    """Swift compares Strings by canonical equivalence (Set, ==): NFC-equal values are duplicates."""
    return len({unicodedata.normalize("NFC", v) for v in values}) == len(values)


def query_spec_error(spec):
    """QuerySpec.validate(): canonical form (filters strictly increasing by field, set values strictly
    increasing by UTF-8 bytes and distinct), field kinds, sizes."""
    filters = spec["filters"]
    fields = [f[1] for f in filters]
    if any(a.encode() > b.encode() for a, b in zip(fields, fields[1:])) or any(
            f[0] == "one_of" and (not _utf8_increasing(f[2]) or not _canonically_distinct(f[2])) for f in filters):
        return "query is not in canonical form (filters sorted by field, values sorted and distinct)"
    if len(filters) > MAX_FILTERS:
        return f"at most {MAX_FILTERS} filters"
    for a, b in zip(fields, fields[1:]):
        if a == b:
            return f"at most one filter per field ({a} appears twice)"
    for f in filters:
        field = f[1]
        if f[0] == "one_of":
            if not QUERY_FIELDS[field]:
                return f"{field} is numeric: filter it with a range"
            if not 1 <= len(f[2]) <= MAX_VALUES or not all(0 < len(v.encode()) <= 200 for v in f[2]):
                return f"{field}: give 1...{MAX_VALUES} values of 1...200 bytes"
        elif f[0] == "range":
            if QUERY_FIELDS[field]:
                return f"{field} is categorical: filter it with values or a prefix"
            if f[2] is None and f[3] is None:
                return f"{field}: a range needs a bound"
            if f[2] is not None and f[3] is not None and f[2] > f[3]:
                return f"{field}: lower bound above upper bound"
        else:
            if not QUERY_FIELDS[field]:
                return f"{field} is numeric: filter it with a range"
            if not 0 < len(f[2].encode()) <= 200:
                return f"{field}: prefix must be 1...200 bytes"
    kind = spec["kind"]
    if kind[0] == "grouped_field" and not QUERY_FIELDS[kind[1]]:
        return f"group {kind[1]} in bins: it is numeric"
    if kind[0] == "grouped_bins":
        if QUERY_FIELDS[kind[1]]:
            return f"{kind[1]} is categorical: group by the field itself"
        edges = kind[2]
        if not 1 <= len(edges) <= MAX_BINS or not all(a < b for a, b in zip(edges, edges[1:])):
            return f"bins need 1...{MAX_BINS} strictly increasing edges"
    if kind[0] in ("sum", "average") and QUERY_FIELDS[kind[1]]:
        return f"{kind[1]} is categorical: it has no sum or average"
    return None


def _bounds_of(policy, field):
    for f, lo, hi in policy["bounds"]:
        if f == field:
            return lo, hi
    return None


def query_request_error(request, policy):
    """QueryRequest.validate(policy:)."""
    problem = query_spec_error(request["spec"])
    if problem:
        return problem
    eps, kind = request["epsilon"], request["spec"]["kind"]
    if eps < MIN_EPSILON_MICROS:
        return "ε must be at least 0.001"
    if kind[0] == "average" and eps < 2 * MIN_EPSILON_MICROS:
        return "an average splits ε between its sum and its count: ε must be at least 0.002"
    if eps > policy["max_epsilon"]:
        return f"ε {eps / 1e6:g} exceeds the per-query maximum {policy['max_epsilon'] / 1e6:g}"
    if kind[0] in ("sum", "average") and _bounds_of(policy, kind[1]) is None:
        return f"{kind[1]} has no declared clamping bounds"
    return None


def is_open_domain(request, policy):
    kind = request["spec"]["kind"]
    return (kind[0] == "grouped_field" and kind[1] not in INHERENTLY_CLOSED
            and all(f != kind[1] for f, _ in policy["domains"]))


def query_cost(request, policy):
    """QueryRequest.cost(policy:): (ε, δ) — δ only for Gaussian noise or open-domain partition selection."""
    needs_delta = request["mechanism"] == GAUSSIAN or is_open_domain(request, policy)
    return request["epsilon"], policy["delta_per_query"] if needs_delta else 0


def query_split(request, policy):
    """QueryRequest.split(policy:) -> (count share, sum share)."""
    eps, delta = query_cost(request, policy)
    kind = request["spec"]["kind"][0]
    if kind == "average":
        return (eps // 2, delta // 2), (eps - eps // 2, delta - delta // 2)
    if kind in ("grouped_field", "grouped_bins") and request["mechanism"] == GAUSSIAN and is_open_domain(request, policy):
        return (eps, delta // 2), (0, 0)
    return (eps, delta), (0, 0)


def answer_structure_error(answer, request, policy):
    """ResearchContract.checkStructure: the answer spends exactly the request's ε/δ shares, with its
    mechanism and the sensitivities the policy's bounds imply, and a Laplace noise has exactly the
    scale b = Δ/ε. (A Gaussian's variance is calibrated in floating point by the node; the contract
    does not re-derive it, and neither does this verifier.)"""
    first, second = query_split(request, policy)

    def noise_error(noise, share, sensitivity):
        if (noise["mechanism"] != request["mechanism"] or (noise["epsilon"], noise["delta"]) != share
                or noise["sensitivity"] != sensitivity):
            return ("the answer's noise does not match the request (mechanism %s/%s, ε/δ %d/%d for a share of %d/%d, "
                    "sensitivity %d for %d)" % (MECHANISM_NAMES[noise["mechanism"]], MECHANISM_NAMES[request["mechanism"]],
                                                noise["epsilon"], noise["delta"], share[0], share[1],
                                                noise["sensitivity"], sensitivity))
        if noise["mechanism"] == LAPLACE:
            # scaleNumerator·ε_micros == Δ·10⁶·scaleDenominator in 128-bit arithmetic; Δ·10⁶ must fit in u64.
            scaled = sensitivity * 1_000_000
            if scaled >= 1 << 64 or noise["scale_numerator"] * share[0] != scaled * noise["scale_denominator"]:
                return ("the answer's Laplace scale is not Δ/ε (scale %d/%d, Δ %d, ε %d µ)"
                        % (noise["scale_numerator"], noise["scale_denominator"], sensitivity, share[0]))
        return None

    kind, result = request["spec"]["kind"], answer["result"]
    if kind[0] == "count" and result[0] == "count":
        return noise_error(result[1]["noise"], first, 1)
    if kind[0] == "sum" and result[0] == "sum":
        lower, upper = result[2], result[3]
        if _bounds_of(policy, kind[1]) != (lower, upper):
            return "the answer's clamping bounds are not the policy's"
        return noise_error(result[1]["noise"], first, max(abs(lower), abs(upper)))
    if kind[0] == "average" and result[0] == "average":
        total, count, center, lower, upper = result[1:]
        if _bounds_of(policy, kind[1]) != (lower, upper) or center != lower + (upper - lower) // 2:
            return "the answer's clamping bounds are not the policy's"
        return (noise_error(count["noise"], first, 1)
                or noise_error(total["noise"], second, max(upper - center, center - lower)))
    if kind[0] in ("grouped_field", "grouped_bins") and result[0] == "grouped":
        groups, noise, threshold = result[1:]
        problem = noise_error(noise, first, 1)
        if problem:
            return problem
        open_domain = is_open_domain(request, policy)
        if (threshold is not None) != open_domain:
            return "an open-domain grouped count needs a release threshold, a closed one must not have one"
        if len(groups) > (policy["max_groups"] if open_domain else MAX_BINS + 260):
            return "the answer releases too many groups"
        return None
    return "the answer is not of the kind the query asks for"


# ----------------------------------------------------------------------------------------------
# UDI syntax (UDI.swift)
# ----------------------------------------------------------------------------------------------

def _digit(c):
    return 48 <= c <= 57


def _upper(c):
    return 65 <= c <= 90


def gs1_check_digit(digits):
    total = 0
    for position, d in enumerate(reversed(digits)):
        total += (d - 48) * (3 if position % 2 == 0 else 1)
    return (10 - total % 10) % 10 + 48


class UDIError(Exception):
    pass


def _gtin14(digits):
    if len(digits) not in (8, 12, 13, 14) or not all(_digit(c) for c in digits):
        raise UDIError("a GTIN has 8, 12, 13 or 14 digits")
    if digits[-1] != gs1_check_digit(digits[:-1]):
        raise UDIError("GTIN check digit is wrong")
    return "0" * (14 - len(digits)) + digits.decode()


def _days_in(month, year):
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


def label_year(yy):
    """UDI.labelYear: the GS1 sliding window (General Specifications 7.12) as of 2026, fixed."""
    return 2000 + yy if yy <= 76 else 1900 + yy


def _label_date(year, month, day, month_only=False):
    """(first day number, last day number) of a label date; day 0 = the whole month."""
    if not 1 <= month <= 12 or not (0 if month_only else 1) <= day <= _days_in(month, year):
        raise UDIError("not a date")
    if day == 0:
        nxt = civil_days(year + 1, 1, 1) if month == 12 else civil_days(year, month + 1, 1)
        return (civil_days(year, month, 1), nxt - 1)
    d = civil_days(year, month, day)
    return (d, d)


def civil_days(y, m, d):
    """Days since 1970-01-01 (proleptic Gregorian), independently of CivilDate."""
    import datetime
    return (datetime.date(y, m, d) - datetime.date(1970, 1, 1)).days


_GS1_VALUE = set(b"!\"%&'*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
GS = 0x1D


def _gs1_hr_elements(b):
    elements, i = [], 0
    while i < len(b):
        close = b.find(b")", i)
        if b[i:i + 1] != b"(" or close < 0:
            raise UDIError("GS1 UDI: expected (AI)")
        nxt = b.find(b"(", close + 1)
        end = nxt if nxt >= 0 else len(b)
        elements.append((b[i + 1:close].decode(), b[close + 1:end]))
        i = end
    return elements


def _gs1_raw_elements(b):
    i = 0
    if b[:1] == b"]":
        if b[:3] not in (b"]C1", b"]d2", b"]e0", b"]Q3"):
            raise UDIError("symbology identifier does not carry GS1 data")
        i = 3
    if i < len(b) and b[i] == GS:
        i += 1
    elements = []
    while i < len(b):
        ai = b[i:i + 2]
        if len(ai) != 2 or not all(_digit(c) for c in ai):
            raise UDIError("expected a two-digit AI")
        ai = ai.decode()
        i += 2
        if ai == "01":
            end = i + 14
        elif ai in ("11", "17"):
            end = i + 6
        elif ai in ("10", "21"):
            g = b.find(bytes([GS]), i)
            end = g if g >= 0 else len(b)
        else:
            raise UDIError(f"AI ({ai}) is not a UDI identifier")
        if end > len(b):
            raise UDIError(f"({ai}) is cut short")
        elements.append((ai, b[i:end]))
        i = end
        if i < len(b) and b[i] == GS:
            i += 1
    return elements


def _gs1_date(v):
    if len(v) != 6 or not all(_digit(c) for c in v):
        raise UDIError("GS1 date must be YYMMDD")
    return _label_date(label_year(int(v[0:2])), int(v[2:4]), int(v[4:6]), month_only=True)


def _gs1(elements):
    udi = {"agency": "gs1", "di": None, "serial": None, "lot": None, "production": None, "expiry": None}
    seen = set()
    for ai, v in elements:
        if ai in seen:
            raise UDIError(f"GS1 UDI repeats ({ai})")
        seen.add(ai)
        if ai == "01":
            udi["di"] = _gtin14(v)
        elif ai == "11":
            udi["production"] = _gs1_date(v)
        elif ai == "17":
            udi["expiry"] = _gs1_date(v)
        elif ai in ("10", "21"):
            if not 1 <= len(v) <= 20 or not all(c in _GS1_VALUE for c in v):
                raise UDIError(f"GS1 ({ai}) must be 1...20 characters of CSET 82 without parentheses")
            udi["lot" if ai == "10" else "serial"] = v.decode()
        else:
            raise UDIError(f"GS1 UDI: application identifier ({ai}) is not a UDI identifier")
    if udi["di"] is None:
        raise UDIError("GS1 UDI must carry (01)")
    return udi


HIBCC_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%"


def hibcc_check(body):
    total = 0
    for c in body:
        v = HIBCC_ALPHABET.find(bytes([c]))
        if v < 0:
            return None
        total += v
    return HIBCC_ALPHABET[total % 43]


def _alnum(v):
    return all(_upper(c) or _digit(c) for c in v)


def _hibcc_value(v):
    if not 1 <= len(v) <= 18 or not _alnum(v):
        raise UDIError("HIBCC lot/serial must be 1...18 characters 0-9 A-Z")
    return v.decode()


def _hibcc_julian(v):
    if len(v) != 5 or not all(_digit(c) for c in v):
        raise UDIError("HIBCC Julian date must be YYJJJ")
    year, doy = label_year(int(v[:2])), int(v[2:])
    if not 1 <= doy <= (366 if _days_in(2, year) == 29 else 365):
        raise UDIError("not a day of the year")
    d = civil_days(year, 1, 1) + doy - 1
    return (d, d)


def _hibcc_flagged_date(rest):
    """The expiry after $$ / $$+; returns (date or None, remaining bytes)."""
    if not rest or not _digit(rest[0]):
        raise UDIError("HIBCC $$ needs a date format digit")
    flag = chr(rest[0])

    def digits(n, off):
        v = rest[off:off + n]
        if len(v) != n or not all(_digit(c) for c in v):
            raise UDIError("HIBCC date is cut short")
        return [c - 48 for c in v]
    if flag in "01":
        d = digits(4, 0)
        return _label_date(label_year(d[2] * 10 + d[3]), d[0] * 10 + d[1], 0, month_only=True), rest[4:]
    if flag == "2":
        d = digits(6, 1)
        return _label_date(label_year(d[4] * 10 + d[5]), d[0] * 10 + d[1], d[2] * 10 + d[3]), rest[7:]
    if flag in "34":
        hours = flag == "4"
        d = digits(8 if hours else 6, 1)
        if hours and d[6] * 10 + d[7] > 23:
            raise UDIError("hour")
        return _label_date(label_year(d[0] * 10 + d[1]), d[2] * 10 + d[3], d[4] * 10 + d[5]), rest[9 if hours else 7:]
    if flag in "56":
        hours = flag == "6"
        d = digits(7 if hours else 5, 1)
        if hours and d[5] * 10 + d[6] > 23:
            raise UDIError("hour")
        return _hibcc_julian(rest[1:6]), rest[8 if hours else 6:]
    if flag == "7":
        return None, rest[1:]
    raise UDIError("HIBCC quantity formats are not accepted")


def _hibcc(b):
    if len(b) < 8:
        raise UDIError("HIBCC UDI is too short")
    body = b[:-1]
    check = hibcc_check(body)
    if check is None:
        raise UDIError("HIBCC UDI contains a character outside the alphabet")
    if b[-1] != check:
        raise UDIError("HIBCC check character is wrong")
    fields = body[1:].split(b"/")
    primary = fields[0]
    lic = primary[:4]
    if len(lic) != 4 or not _upper(lic[0]) or not _alnum(lic):
        raise UDIError("HIBCC labeler id must be 4 alphanumeric characters starting with a letter")
    rest = primary[4:]
    if not 2 <= len(rest) <= 19 or not _digit(rest[-1]) or not _alnum(rest[:-1]):
        raise UDIError("HIBCC product number must be 1...18 alphanumeric characters followed by a unit-of-measure digit")
    udi = {"agency": "hibcc", "di": primary.decode(), "serial": None, "lot": None, "production": None, "expiry": None}
    if len(fields) > 1:
        s, is_serial = fields[1], False
        if s.startswith(b"$$+"):
            udi["expiry"], s = _hibcc_flagged_date(s[3:])
            is_serial = True
        elif s.startswith(b"$$"):
            udi["expiry"], s = _hibcc_flagged_date(s[2:])
        elif s.startswith(b"$+"):
            s, is_serial = s[2:], True
        elif s.startswith(b"$"):
            s = s[1:]
        elif len(s) >= 5 and all(_digit(c) for c in s[:5]):
            udi["expiry"], s = _hibcc_julian(s[:5]), s[5:]
        else:
            raise UDIError("HIBCC secondary data must start with $, $+, $$, $$+ or YYJJJ")
        udi["serial" if is_serial else "lot"] = _hibcc_value(s)
    for f in fields[2:]:
        if f.startswith(b"S"):
            if udi["serial"] is not None:
                raise UDIError("HIBCC serial twice")
            udi["serial"] = _hibcc_value(f[1:])
            continue
        ident, v = f[:3], f[3:]
        if ident not in (b"14D", b"16D"):
            raise UDIError("HIBCC supplemental field is not /S, /14D or /16D")
        if len(v) != 8 or not all(_digit(c) for c in v):
            raise UDIError("HIBCC date must be YYYYMMDD")
        if not 1900 <= int(v[:4]) <= 2199:
            raise UDIError("HIBCC year must be 1900...2199")
        date = _label_date(int(v[:4]), int(v[4:6]), int(v[6:8]))
        slot = "expiry" if ident == b"14D" else "production"
        if udi[slot] is not None:
            raise UDIError("HIBCC date twice")
        udi[slot] = date
    return udi


def parse_udi(text):
    """UDI.parse: raises UDIError; returns agency, normalised device identifier, serial, lot and
    (first day, last day) production/expiry dates."""
    b = text.encode()
    if not b or len(b) > 128:
        raise UDIError("UDI must be 1...128 characters")
    if b[0:1] == b"+":
        return _hibcc(b)
    if b[0:1] == b"(":
        return _gs1(_gs1_hr_elements(b))
    if len(b) in (8, 12, 13, 14) and all(_digit(c) for c in b):
        return {"agency": "gs1", "di": _gtin14(b), "serial": None, "lot": None, "production": None, "expiry": None}
    if _digit(b[0]) or b[0:1] == b"]" or b[0] == GS:
        return _gs1(_gs1_raw_elements(b))
    raise UDIError("neither a GS1 nor an HIBCC UDI")


def canonical_udi(udi):
    """UDI.Parsed.canonical."""
    if udi["agency"] == "gs1":
        return "(01)" + udi["di"] + ("" if udi["serial"] is None else "(21)" + udi["serial"])
    body = "+" + udi["di"] + ("" if udi["serial"] is None else "/$+" + udi["serial"])
    return body + chr(hibcc_check(body.encode()))


def udi_error(text):
    try:
        parse_udi(text)
    except UDIError as err:
        return str(err)
    return None


def registration_attributes(udi, a):
    """UDI.Parsed.registrationAttributes: the label's production identifiers filled in, or a problem."""
    a = dict(a)
    if udi["lot"] is not None:
        if a.get("lot") not in (None, udi["lot"]):
            return None, "lot disagrees with the UDI's lot"
        a["lot"] = udi["lot"]
    for name, slot, pick in (("production_date", "production", 0), ("expiry_date", "expiry", 1)):
        if udi[slot] is not None:
            if name in a:
                if not udi[slot][0] <= a[name] <= udi[slot][1]:
                    return None, f"{name} disagrees with the UDI's date"
            else:
                a[name] = udi[slot][pick]
    return a, None


# ----------------------------------------------------------------------------------------------
# RFC 9162 Merkle trees (MerkleTree.swift)
# ----------------------------------------------------------------------------------------------

def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


class Frontier:
    """Right edge of an append-only RFC 9162 tree: one perfect-subtree hash per set bit of size."""
    __slots__ = ("size", "hashes")

    def __init__(self):
        self.size = 0
        self.hashes = []

    def append(self, h):
        position = self.size
        hashes = self.hashes
        while position & 1:
            h = node_hash(hashes.pop(), h)
            position >>= 1
        hashes.append(h)
        self.size += 1

    def root(self):
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            result = node_hash(h, result)
        return result


def merkle_root(leaf_hashes):
    f = Frontier()
    for h in leaf_hashes:
        f.append(h)
    return f.root()


def root_from_inclusion_proof(index, size, leaf, path):
    """RFC 9162 §2.1.3.2; None when the proof is malformed for these sizes."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index, size, leaf, path, root):
    return root_from_inclusion_proof(index, size, leaf, path) == root


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162 §2.1.4.2."""
    if first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# ----------------------------------------------------------------------------------------------
# Certificates (MemberCertificate.swift, GovernanceContract.rootCertificate)
# ----------------------------------------------------------------------------------------------

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_STRING_TYPES = {12, 19, 22}  # UTF8String, PrintableString, IA5String (ASN.1 universal tags)


def ecdsa_valid(public_key, raw_signature, message):
    """Raw 64-byte r||s P-256 ECDSA signature over SHA-256(message)."""
    if len(raw_signature) != 64:
        return False
    r = int.from_bytes(raw_signature[:32], "big")
    s = int.from_bytes(raw_signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        public_key.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
        return True
    except InvalidSignature:
        return False


def _attribute_description(attribute):
    """swift-certificates' RelativeDistinguishedName.Attribute.Value.description: the string with
    RFC 4514 escaping of , + " \\ < > ; (anywhere), leading space/# and trailing spaces.
    None when the value is not a UTF8/Printable/IA5 string (Swift then prints an ASN1Any dump)."""
    asn1_type = getattr(attribute, "_type", None)
    type_value = getattr(asn1_type, "value", None)
    if not isinstance(attribute.value, str) or (type_value is not None and type_value not in _STRING_TYPES):
        return None
    b = attribute.value.encode("utf-8")
    lead = 0
    while lead < len(b) and b[lead] in b" #":
        lead += 1
    trail = 0
    while trail < len(b) - lead and b[len(b) - 1 - trail] == 0x20:
        trail += 1
    out = bytearray()
    for c in b[:lead]:
        out += b"\\" + bytes([c])
    for c in b[lead:len(b) - trail]:
        if c in b',+"\\<>;':
            out += b"\\"
        out.append(c)
    for c in b[len(b) - trail:]:
        out += b"\\" + bytes([c])
    return out.decode("utf-8", errors="replace")


def _milliseconds(dt):
    delta = dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(us / 1000) if us < 0 else us // 1000  # Swift Int64(Double) truncates toward zero


class CertificateError(Exception):
    pass


class MemberFacts:
    __slots__ = ("der", "fingerprint", "cert", "key", "raw_key", "organization", "role", "name",
                 "not_before", "not_after", "revoked_at")


def parse_certificate(der):
    try:
        return x509.load_der_x509_certificate(der)
    except Exception:
        raise CertificateError("certificate is not valid DER X.509") from None


def member_facts(der, root=None, expected_org=None):
    """MemberCertificate(der:root:organization:)."""
    cert = parse_certificate(der)
    try:
        key = cert.public_key()
    except Exception:
        raise CertificateError("certificate key must be ECDSA P-256") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError("certificate key must be ECDSA P-256")
    # Every subject attribute in order; a later O/OU/CN replaces an earlier one (as in Swift).
    found = {}
    for rdn in cert.subject.rdns:
        for attribute in rdn:
            if attribute.oid in (NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME):
                found[attribute.oid] = _attribute_description(attribute)
    organization = found.get(NameOID.ORGANIZATION_NAME)
    unit = found.get(NameOID.ORGANIZATIONAL_UNIT_NAME)
    common = found.get(NameOID.COMMON_NAME)
    if organization is None or NameOID.COMMON_NAME not in found:
        raise CertificateError("certificate subject must carry O (organisation) and CN (member name)")
    if unit not in ROLES:
        raise CertificateError("certificate OU must name a role")
    if expected_org is not None and organization != expected_org:
        raise CertificateError(f"certificate names organisation {organization}, expected {expected_org}")
    if root is not None:
        try:
            cert.verify_directly_issued_by(root)
        except Exception:
            raise CertificateError(f"certificate for {common} was not issued by the {organization} root CA") from None
    f = MemberFacts()
    f.der = der
    f.fingerprint = sha256(der)
    f.cert = cert
    f.key = key
    f.raw_key = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)[1:]
    f.organization = organization
    f.role = unit
    f.name = common  # None when Swift's rendering cannot be reproduced (non-string ASN.1 type)
    f.not_before = _milliseconds(cert.not_valid_before_utc)
    f.not_after = _milliseconds(cert.not_valid_after_utc)
    return f


def root_certificate(der, org_id):
    """GovernanceContract.rootCertificate: valid DER, issuer == subject, self-signature verifies."""
    try:
        root = parse_certificate(der)
    except CertificateError:
        raise CertificateError(f"root certificate of {org_id} is not valid DER X.509") from None
    try:
        root.verify_directly_issued_by(root)
    except Exception:
        raise CertificateError(f"root certificate of {org_id} must be self-signed") from None
    return root


def encode_string(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def encode_bytes(b):
    return struct.pack(">I", len(b)) + b


def encode_member(f, revoked_at=None, device_udi=None):
    """Member state value (Governance.swift), used to recompute the genesis write set."""
    out = encode_bytes(f.der) + encode_string(f.organization) + encode_string(f.role) + encode_string(f.name)
    out += f.raw_key + struct.pack(">qq", f.not_before, f.not_after)
    out += b"\x00" if revoked_at is None else b"\x01" + struct.pack(">q", revoked_at)
    out += b"\x00" if device_udi is None else b"\x01" + encode_string(device_udi)
    return out


def encode_write_set(entries):
    """WriteSet.encoded: u32 count | (string key | u8 present | [bytes value])* sorted by UTF-8 key bytes."""
    out = [struct.pack(">I", len(entries))]
    for key in sorted(entries, key=lambda k: k.encode("utf-8")):
        value = entries[key]
        out.append(encode_string(key))
        out.append(b"\x00" if value is None else b"\x01" + encode_bytes(value))
    return b"".join(out)


# ----------------------------------------------------------------------------------------------
# The verifier
# ----------------------------------------------------------------------------------------------

def b64(value, what, **where):
    if not isinstance(value, str):
        raise Failure(f"{what} must be a base64 string", **where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Failure(f"{what} is not valid base64", **where) from None


def hex32(value, what, **where):
    if not isinstance(value, str) or len(value) != 64:
        raise Failure(f"{what} must be 64 hex digits", **where)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise Failure(f"{what} must be 64 hex digits", **where)
    return raw


def integer(value, what, lo, hi, **where):
    if type(value) is not int or not lo <= value <= hi:
        raise Failure(f"{what} must be an integer in {lo}...{hi}", **where)
    return value


class Verifier:
    def __init__(self, export, allow_invalid_refused=False):
        self.export = export
        self.lenient = allow_invalid_refused
        self.stats = {"committed": 0, "refused": 0, "refused_invalid_envelope": 0, "research_charges": 0,
                      "research_free_repeats": 0, "research_answers": 0, "research_answers_refused": 0,
                      "research_write_sets_recomputed": 0}

    # -- top level, organisations and certificates -------------------------------------------------

    def load_directory(self):
        e = self.export
        if not isinstance(e, dict) or e.get("format") != FORMAT:
            raise Failure(f"not a {FORMAT} export (format field is {e.get('format') if isinstance(e, dict) else None!r})")
        self.network_id = hex32(e.get("network_id"), "network_id")
        for field in ("organizations", "certificates", "blocks"):
            if not isinstance(e.get(field), list):
                raise Failure(f"{field} must be a list")
        self.organizations = {}
        for entry in e["organizations"]:
            org_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(org_id, str) or org_id in self.organizations:
                raise Failure(f"organisation entry with missing or duplicate id {org_id!r}", organization=org_id)
            if entry.get("kind") not in KINDS or not isinstance(entry.get("active"), bool) or not isinstance(entry.get("name"), str):
                raise Failure("organisation entry has a bad name, kind or active flag", organization=org_id)
            der = b64(entry.get("root_certificate"), "root_certificate", organization=org_id)
            try:
                root = root_certificate(der, org_id)
            except CertificateError as err:
                raise Failure(str(err), organization=org_id) from None
            self.organizations[org_id] = {"id": org_id, "name": entry["name"], "kind": entry["kind"],
                                          "active": entry["active"], "root_der": der, "root": root}
        self.certificates = {}
        for entry in e["certificates"]:
            fp_hex = entry.get("fingerprint") if isinstance(entry, dict) else None
            fp = hex32(fp_hex, "certificate fingerprint", certificate=fp_hex)
            where = {"certificate": fp_hex}
            if fp in self.certificates:
                raise Failure("certificate listed twice", **where)
            der = b64(entry.get("certificate"), "certificate", **where)
            if sha256(der) != fp:
                raise Failure("fingerprint is not SHA-256 of the certificate DER", **where)
            org = self.organizations.get(entry.get("organization"))
            if org is None:
                raise Failure(f"certificate names organisation {entry.get('organization')!r}, which is not in the export", **where)
            try:
                facts = member_facts(der, root=org["root"], expected_org=org["id"])
            except CertificateError as err:
                raise Failure(str(err), **where) from None
            if entry.get("role") != facts.role:
                raise Failure(f"role {entry.get('role')!r} differs from the certificate OU {facts.role!r}", **where)
            if facts.name is not None and entry.get("name") != facts.name:
                raise Failure(f"name {entry.get('name')!r} differs from the certificate CN {facts.name!r}", **where)
            revoked = entry.get("revoked_at")
            if revoked is not None and type(revoked) is not int:
                raise Failure("revoked_at must be null or an integer", **where)
            facts.revoked_at = revoked
            self.certificates[fp] = facts

    # -- blocks -----------------------------------------------------------------------------------------

    def run(self):
        started = time.time()
        self.load_directory()
        e = self.export
        blocks = e["blocks"]
        if not blocks:
            raise Failure("the export holds no blocks")
        tip = integer(e.get("height"), "height", 0, 2**64 - 1)
        if tip != len(blocks) - 1:
            raise Failure(f"height is {tip} but the export holds {len(blocks)} block entries (heights 0...{tip} expected)")

        self.frontier = Frontier()
        self.seen_ids = set()
        self.proposals = {}           # id of a committed propose -> ProposalAction
        self.skew_bound = MAX_CLOCK_SKEW
        # Configurations that may be in force: genesis, then every committed updateConfig proposal
        # (whether one took effect depends on votes, which this verifier does not count).
        self.configs = []
        self.budget_overrides = {}    # fingerprint -> budgets of committed setResearchBudget proposals (None = default)
        # Research state, complete from the export because only committed research.charge and
        # research.answer transactions write it (and nothing deletes it):
        self.asks = {}                # rqa/<ask id>: ask id -> key of the question it was charged as
        self.questions = {}           # rq/<key>: key -> Question (charged; pending or answered)
        self.usage = {}               # rspent/<fp>: fingerprint -> (period, ε, δ, queries)
        self.usage_known = True       # false once the period or a cost depends on which configuration is in force
        self.genesis = None
        previous_hash = ZERO
        previous_state = ZERO
        previous_time = None
        previous_epoch = 0
        total = 0
        for expected_height, block in enumerate(blocks):
            where = {"block": expected_height}
            if not isinstance(block, dict) or block.get("height") != expected_height:
                raise Failure(f"block entry {expected_height} has height {block.get('height') if isinstance(block, dict) else None!r}", **where)
            header_bytes = b64(block.get("header"), "header", **where)
            try:
                h = decode_header(header_bytes)
            except DecodeError as err:
                raise Failure(str(err), **where) from None
            block_hash = sha256(header_bytes)
            if block.get("hash") != block_hash.hex():
                raise Failure("hash is not SHA-256 of the header bytes", **where)
            if h["height"] != expected_height:
                raise Failure(f"header height is {h['height']}", **where)
            if h["previous"] != previous_hash:
                raise Failure("previousHash does not match the hash of the previous block's header", **where)
            if previous_time is not None and h["timestamp"] < previous_time:
                raise Failure("block timestamp goes backwards", **where)
            if h["epoch"] < previous_epoch:
                raise Failure("leader epoch goes backwards", **where)
            if expected_height == 0 and block_hash != self.network_id:
                raise Failure("network_id is not the hash of block 0's header", **where)

            signature = b64(block.get("signature"), "signature", **where)
            proposer = self.certificates.get(h["proposer"])
            if proposer is None:
                raise Failure(f"proposer {h['proposer'].hex()} is not in certificates", **where)
            if proposer.role != "node":
                raise Failure(f"proposer has role {proposer.role}, not node", **where)
            # ChainVerifier: the proposer must not be revoked at block time (revokedAt <= T, as of the
            # state before this block). Only the final revoked_at is exported, so equality is ambiguous
            # (revoked inside this very block) and accepted.
            if proposer.revoked_at is not None and proposer.revoked_at < h["timestamp"]:
                raise Failure("proposer's certificate was revoked before this block", **where)
            if len(signature) != 64 or not ecdsa_valid(proposer.key, signature, header_bytes):
                raise Failure("proposer signature does not verify over the header bytes", **where)

            txs = block.get("transactions")
            if not isinstance(txs, list) or len(txs) != h["count"]:
                raise Failure(f"header transactionCount is {h['count']} but the block lists "
                              f"{len(txs) if isinstance(txs, list) else 'no'} transactions", **where)
            leaves, write_set_hashes = self.verify_transactions(expected_height, h, txs)

            if merkle_root(leaves) != h["tx_root"]:
                raise Failure("transactionRoot does not match the block's log leaves", **where)
            for leaf in leaves:
                self.frontier.append(leaf)
            if h["log_size"] != self.frontier.size:
                raise Failure(f"logSize is {h['log_size']}, expected {self.frontier.size}", **where)
            if h["log_root"] != self.frontier.root():
                raise Failure("logRoot does not match the global log after this block", **where)
            block_write_set_hash = sha256(b"".join(write_set_hashes))
            state_root = sha256(b"MLS1" + previous_state + block_write_set_hash)
            if h["state_root"] != state_root:
                raise Failure("stateRoot does not match SHA-256(\"MLS1\" || previous stateRoot || block write-set hash)", **where)
            if expected_height == 0:
                self.check_genesis_block(h)
            previous_hash, previous_state, previous_time, previous_epoch = block_hash, state_root, h["timestamp"], h["epoch"]
            total += len(txs)

        if integer(e.get("log_size"), "log_size", 0, 2**64 - 1) != self.frontier.size:
            raise Failure(f"log_size is {e.get('log_size')}, the last header says {self.frontier.size}")
        if e.get("log_root") != self.frontier.root().hex():
            raise Failure("log_root does not match the last header")
        if e.get("network_name") != self.genesis["name"]:
            raise Failure(f"network_name {e.get('network_name')!r} differs from the genesis configuration {self.genesis['name']!r}")
        return {
            "ok": True,
            "format": FORMAT,
            "network_id": self.network_id.hex(),
            "network_name": self.genesis["name"],
            "genesis_approved_by": self.genesis["approved_by"],
            "blocks": len(blocks),
            "transactions": total,
            "committed": self.stats["committed"],
            "refused": self.stats["refused"],
            "refused_invalid_envelope": self.stats["refused_invalid_envelope"],
            "research_charges": self.stats["research_charges"],
            "research_free_repeats": self.stats["research_free_repeats"],
            "research_answers": self.stats["research_answers"],
            "research_answers_refused": self.stats["research_answers_refused"],
            "research_write_sets_recomputed": self.stats["research_write_sets_recomputed"],
            "organizations": len(self.organizations),
            "certificates": len(self.certificates),
            "log_size": self.frontier.size,
            "log_root": self.frontier.root().hex(),
            "state_root": previous_state.hex(),
            "tip_hash": previous_hash.hex(),
            "seconds": round(time.time() - started, 2),
        }

    def verify_transactions(self, height, h, txs):
        leaves = []
        write_set_hashes = []
        first_sequence = self.frontier.size
        network = ZERO if height == 0 else self.network_id
        block_time = h["timestamp"]
        for index, tx in enumerate(txs):
            where = {"block": height, "transaction": index}
            if not isinstance(tx, dict):
                raise Failure("transaction entry is not an object", **where)
            where["tx_id"] = tx.get("id")
            envelope = b64(tx.get("envelope"), "envelope", **where)
            status = integer(tx.get("status"), "status", 0, 65535, **where)
            if tx.get("code") != status_code_name(status):
                raise Failure(f"code {tx.get('code')!r} does not match status {status}", **where)
            write_set_hash = hex32(tx.get("write_set_hash"), "write_set_hash", **where)
            if tx.get("sequence") != first_sequence + index:
                raise Failure(f"sequence is {tx.get('sequence')!r}, expected {first_sequence + index}", **where)
            if status != 0 and write_set_hash != EMPTY_WRITE_SET_HASH:
                raise Failure("a refused transaction must carry the empty write set's hash", **where)
            if height == 0 and status != 0:
                raise Failure("the genesis block holds a refused transaction", **where)

            payload_bytes = payload = None
            defect = None
            try:
                payload_bytes, signature = decode_envelope(envelope)
                tx_id = sha256(payload_bytes)
                payload = decode_payload(payload_bytes)
            except DecodeError as err:
                defect = str(err)
                tx_id = sha256(envelope) if payload_bytes is None else sha256(payload_bytes)
            if tx.get("id") != tx_id.hex():
                raise Failure("id is not SHA-256 of the payload bytes", **where)
            creator = None
            if defect is None:
                if payload["network"] != network:
                    defect = "payload network is not " + ("zero (genesis)" if height == 0 else "network_id")
                elif height > 0:
                    creator = self.certificates.get(payload["creator"])
                    if creator is None:
                        defect = f"creator certificate {payload['creator'].hex()} is not in certificates"
                    elif not ecdsa_valid(creator.key, signature, payload_bytes):
                        defect = "signature does not verify against the creator's certificate"
            if defect is not None:
                if status == 0 or not self.lenient:
                    raise Failure(defect, **where)
                self.stats["refused_invalid_envelope"] += 1

            if tx_id in self.seen_ids and not (defect is not None and status != 0):
                if status != STATUS_DUPLICATE:
                    raise Failure("transaction id appears earlier in the chain but is not refused as duplicate_transaction", **where)
            self.seen_ids.add(tx_id)

            if status == 0:
                self.stats["committed"] += 1
                if height == 0:
                    self.check_genesis_transaction(payload, payload_bytes, signature, write_set_hash, tx_id, block_time, where)
                else:
                    self.check_committed(payload, creator, height, block_time, tx_id, write_set_hash, where)
            else:
                self.stats["refused"] += 1
                if defect is None and payload["contract"] == "research" and payload["action"] == "answer":
                    # Nothing to check, but worth counting: a refused answer still carries a noisy value
                    # in its block that is not the question's recorded answer (docs/formats.md §16).
                    self.stats["research_answers_refused"] += 1

            leaf = struct.pack(">BQI32s32sH32s", 1, height, index, tx_id, sha256(envelope), status, write_set_hash)
            leaves.append(sha256(b"\x00" + leaf))
            write_set_hashes.append(write_set_hash)
        if height == 0 and len(txs) != 1:
            raise Failure(f"the genesis block must hold exactly one transaction, it holds {len(txs)}", block=0)
        return leaves, write_set_hashes

    # -- genesis -------------------------------------------------------------------------------------------

    def check_genesis_transaction(self, payload, payload_bytes, signature, write_set_hash, tx_id, block_time, where):
        if payload["contract"] != "governance" or payload["action"] != "genesis":
            raise Failure("block 0 may only hold the governance.genesis transaction", **where)
        try:
            draft, approvals = decode_genesis_charter(payload["arguments"])
            g = decode_genesis_config(draft)
        except DecodeError as err:
            raise Failure(f"genesis arguments: {err}", **where) from None
        problem = config_error(g["config"])
        if problem:
            raise Failure(f"genesis configuration: {problem}", **where)
        if not g["organizations"]:
            raise Failure("genesis needs at least one organisation", **where)
        writes = {}
        roots = {}
        for org in g["organizations"]:
            if not valid_org_id(org["id"]) or org["id"] in roots or not org["name"]:
                raise Failure(f"genesis organisation {org['id']!r} has an invalid or duplicate id or an empty name", **where)
            if not org["active"]:
                raise Failure(f"founding organisation {org['id']} must be active", **where)
            try:
                roots[org["id"]] = root_certificate(org["root"], org["id"])
            except CertificateError as err:
                raise Failure(f"genesis: {err}", **where) from None
            exported = self.organizations.get(org["id"])
            if exported is None or (exported["name"], exported["kind"], exported["active"], exported["root_der"]) != \
                    (org["name"], org["kind"], org["active"], org["root"]):
                raise Failure(f"genesis organisation {org['id']} differs from the export's organisations", **where)
            writes["org/" + org["id"]] = (encode_string(org["id"]) + encode_string(org["name"]) + encode_string(org["kind"])
                                          + encode_bytes(org["root"]) + (b"\x01" if org["active"] else b"\x00"))
        ids = sorted(roots, key=lambda s: s.encode())
        writes["orgs"] = struct.pack(">I", len(ids)) + b"".join(encode_string(i) for i in ids)
        c = g["config"]
        # The cfg value is the NetworkConfig encoding, i.e. exactly the bytes of the genesis draft
        # it was decoded from (the encoding is canonical; nothing is re-serialised here).
        writes["cfg"] = c["encoded"]
        writes["net"] = struct.pack(">I", 1) + encode_string(g["name"])
        members = {}
        for registration in g["members"]:
            try:
                parsed = member_facts(registration["certificate"])
                root = roots.get(parsed.organization)
                if root is None:
                    raise CertificateError(f"member certificate names unknown organisation {parsed.organization}")
                facts = member_facts(registration["certificate"], root=root, expected_org=parsed.organization)
            except CertificateError as err:
                raise Failure(f"genesis member: {err}", **where) from None
            if facts.fingerprint in members:
                raise Failure("genesis registers a certificate twice", **where)
            if facts.fingerprint not in self.certificates:
                raise Failure(f"genesis member {facts.fingerprint.hex()} is missing from certificates", **where)
            if facts.name is None:
                raise Failure("genesis member CN is not a UTF8/Printable/IA5 string; cannot recompute its state", **where)
            members[facts.fingerprint] = facts
            writes["mem/" + facts.fingerprint.hex()] = encode_member(facts, None, registration["device_udi"])
        for org_id in roots:
            if not any(m.organization == org_id and m.role == "admin" for m in members.values()):
                raise Failure(f"founding organisation {org_id} registers no admin", **where)
        nodes = {fp for fp, m in members.items() if m.role == "node"}
        if not nodes:
            raise Failure("genesis registers no node", **where)
        noise = g["noise_key"]
        if noise is not None:
            problem = noise_key_error(noise, {fp: m for fp, m in members.items()})
            if problem is None and noise["epoch"] != 1:
                problem = f"the next noise key epoch is 1, not {noise['epoch']}"
            if problem is None and set(noise["recipients"]) != nodes:
                problem = "the noise key is not wrapped to every node the genesis registers"
            if problem:
                raise Failure(f"genesis noise key: {problem}", **where)
            writes["rnk"] = noise["encoded"]  # NoiseKeyEpoch, exactly as in the genesis draft
        sealer = members.get(payload["creator"])
        if sealer is None or sealer.role != "node":
            raise Failure("the genesis transaction must be signed by one of the nodes it registers", **where)
        if not ecdsa_valid(sealer.key, signature, payload_bytes):
            raise Failure("genesis signature does not verify against the sealing node's certificate", **where)
        # The founding admins' approvals of the exact draft bytes (GenesisCharter.approvingOrganizations).
        message = b"MLA1" + sha256(draft)
        approving = {}
        previous = None
        for approver, approval_signature in approvals:
            if previous is not None and previous >= approver:
                raise Failure("genesis approvals must be sorted by approver fingerprint, each approver once", **where)
            previous = approver
            admin = members.get(approver)
            if admin is None or admin.role != "admin":
                raise Failure(f"genesis approval by {approver.hex()}, which is not a founding admin", **where)
            if not admin.not_before <= block_time <= admin.not_after:
                raise Failure(f"genesis approval by {admin.name}: the certificate is not valid at block time", **where)
            if not ecdsa_valid(admin.key, approval_signature, message):
                raise Failure(f"genesis approval by {admin.name} does not verify over SHA-256 of the draft", **where)
            if admin.organization in approving:
                raise Failure(f"{admin.organization} approved the genesis twice", **where)
            approving[admin.organization] = approver
        required = required_approvals(c["policy"], len(g["organizations"]))
        if len(approving) < required:
            raise Failure(f"the genesis needs approvals from {required} organisations, it has {len(approving)}", **where)
        if sha256(encode_write_set(writes)) != write_set_hash:
            raise Failure("genesis write_set_hash differs from the write set recomputed from the genesis configuration", **where)
        self.genesis = {"name": g["name"], "config": c, "members": members, "approved_by": sorted(approving)}
        self.skew_bound = c["clock_skew"]
        self.configs = [c]

    def check_genesis_block(self, h):
        proposer = self.genesis["members"].get(h["proposer"])
        if proposer is None or proposer.role != "node":
            raise Failure("genesis block is not sealed by a node it registers", block=0)

    # -- committed transactions (checks that need no ledger state) ---------------------------------

    def check_committed(self, p, creator, height, block_time, tx_id, write_set_hash, where):
        org = self.organizations.get(creator.organization)
        if org is None or not org["active"]:
            raise Failure(f"committed, but the creator's organisation {creator.organization} is not an active member", **where)
        if creator.revoked_at is not None and creator.revoked_at < block_time:
            raise Failure("committed after the creator's certificate was revoked", **where)
        if not creator.not_before <= block_time <= creator.not_after:
            raise Failure("committed, but the creator's certificate is not valid at block time", **where)
        if abs(p["timestamp"] - block_time) > self.skew_bound:
            raise Failure(f"committed, but the transaction time differs from block time by more than {self.skew_bound} ms", **where)
        contract, action = p["contract"], p["action"]
        try:
            if contract == "devices":
                self.check_device(p, creator, where)
            elif contract == "governance":
                self.check_governance(p, creator, block_time, tx_id, where)
            elif contract == "research":
                self.check_research(p, creator, height, block_time, tx_id, write_set_hash, where)
            elif contract == "records":
                self.check_records(p, creator, where)
            elif contract == "consent":
                self.check_consent(p, creator, block_time, where)
            else:
                raise Failure(f"committed, but there is no contract named {contract!r}", **where)
        except DecodeError as err:
            raise Failure(f"committed, but its arguments do not decode: {err}", **where) from None

    def check_device(self, p, creator, where):
        a = decode_device_action(p["action"], p["arguments"])
        action = p["action"]
        if creator.role not in DEVICE_WRITERS and creator.role != "device":
            raise Failure(f"committed, but role {creator.role} may not write device records", **where)
        if creator.role == "device" and action == "register":
            raise Failure(f"committed, but a device key may not {action}", **where)
        if creator.role != "admin" and action in ("transfer", "decommission", "accept_transfer"):
            raise Failure(f"committed, but only an admin may {action} (not a {creator.role})", **where)
        problem = udi_error(a["udi"])
        if action == "register":
            attributes = a["attributes"]
            if not problem:
                udi = parse_udi(a["udi"])
                if udi["serial"] is None:
                    problem = "a UDI without a serial names a model, not a unit"
                else:
                    attributes, problem = registration_attributes(udi, attributes)
                    problem = problem or attributes_error(attributes)
            if self.organizations[creator.organization]["kind"] != "hospital":
                problem = "only hospitals register devices"
            missing = [f for f in REQUIRED_ATTRIBUTES if (attributes or {}).get(f) in (None, "")]
            if missing and not problem:
                problem = "registration is missing " + ", ".join(missing)
        elif problem:
            pass
        elif action == "update":
            if not valid_event(a["event"]):
                problem = "bad event name"
            elif not a["changes"]:
                problem = "an update must change at least one field"
            else:
                problem = attributes_error(a["changes"])
        elif action == "transfer":
            target = self.organizations.get(a["to"])
            if target is None or not target["active"] or target["kind"] != "hospital":
                problem = f"transfer target {a['to']!r} is not an active hospital"
        elif action == "decommission" and a["reason"] == "":
            problem = "decommissioning needs a reason"
        if problem:
            raise Failure(f"committed, but devices.{action} would be refused: {problem}", **where)

    def check_records(self, p, creator, where):
        """RecordsContract.validate: what a committed records transaction must satisfy without state."""
        a = decode_records_action(p["action"], p["arguments"])
        action = p["action"]
        if action == "register_key" and not p256_point_valid(a["key"]):
            raise Failure("committed records.register_key with a key that is not a P-256 point", **where)
        if action == "rotate" and creator.role != "admin":
            raise Failure(f"committed records.rotate by a {creator.role}, not an admin of the holder", **where)
        if action in ("put", "rotate"):
            if creator.role not in RECORD_WRITERS or self.organizations[creator.organization]["kind"] != "hospital":
                raise Failure(f"committed records.{action} by a {creator.role} of a non-hospital or a role that stores no records", **where)
            if not valid_category(a["category"]):
                raise Failure(f"committed records.{action} with an invalid category", **where)
            if not SEALED_RECORD_OVERHEAD <= a["size"] <= MAX_RECORD_SIZE:
                raise Failure(f"committed records.{action} with an impossible size", **where)
            if not p256_point_valid(a["holder_key"]) or not p256_point_valid(a["wrapped_key"][:65]):
                raise Failure(f"committed records.{action} whose holder key or encapsulated key is not a P-256 point", **where)
            if a["device"] is not None and udi_error(a["device"]):
                raise Failure(f"committed records.{action} naming an invalid device UDI", **where)
        if action == "erase" and not has_reason(a["reason"]):
            raise Failure("committed records.erase without a reason", **where)

    def check_consent(self, p, creator, block_time, where):
        """ConsentContract.validate, and the registered certificate's chain for consent.register."""
        a = decode_consent_action(p["action"], p["arguments"])
        action, role = p["action"], creator.role
        kind = self.organizations[creator.organization]["kind"]
        if action in ("register", "enrol"):
            if role != "admin" or kind != "hospital":
                raise Failure(f"committed consent.{action} by a {role} of a {kind}", **where)
            if action == "register":
                try:
                    facts = member_facts(a["certificate"], root=self.organizations[creator.organization]["root"],
                                         expected_org=creator.organization)
                except CertificateError as err:
                    raise Failure(f"committed consent.register: {err}", **where) from None
                if facts.role not in ("patient", "delegate"):
                    raise Failure(f"committed consent.register of a {facts.role}", **where)
        elif action == "delegate":
            if role not in ("admin", "patient"):
                raise Failure(f"committed consent.delegate by a {role}", **where)
        elif action in ("grant", "revoke"):
            if role not in ("patient", "delegate"):
                raise Failure(f"committed consent.{action} by a {role}", **where)
            if action == "grant":
                t = a["terms"]
                if not t["purposes"] or t["purposes"] != sorted(set(t["purposes"])) or "ETREAT" in t["purposes"]:
                    raise Failure("committed consent.grant with purposes that are empty, unsorted, repeated or ETREAT", **where)
                if t["categories"] != sorted(set(t["categories"]), key=lambda c: c.encode()) or not all(map(valid_category, t["categories"])):
                    raise Failure("committed consent.grant with invalid categories", **where)
                if any(udi_error(d) for d in t["devices"]) or len(set(t["devices"])) != len(t["devices"]):
                    raise Failure("committed consent.grant with invalid or repeated devices", **where)
                if t["expires_at"] is not None and t["expires_at"] <= block_time:
                    raise Failure("committed consent.grant that had expired at block time", **where)
        elif action == "request":
            if role not in RECORD_READERS or a["purpose"] == "ETREAT":
                raise Failure(f"committed consent.request by a {role} or for ETREAT", **where)
        elif action == "break_glass":
            if role != "clinician" or kind != "hospital" or not has_reason(a["reason"]):
                raise Failure("committed consent.break_glass by someone other than a hospital clinician, or without a reason", **where)
        elif action == "review":
            if role != "admin" or not has_reason(a["note"]):
                raise Failure("committed consent.review by a non-admin or without a note", **where)

    def check_governance(self, p, creator, block_time, tx_id, where):
        action = p["action"]
        r = Reader(p["arguments"])
        if action == "genesis":
            raise Failure("committed governance.genesis outside block 0", **where)
        if creator.role != "admin":
            raise Failure(f"committed, but role {creator.role} may not use governance", **where)
        if action == "propose":
            proposal = read_proposal_action(r)
            r.end("propose arguments")
            self.check_proposal(proposal, where)
            self.proposals[tx_id] = proposal
        elif action == "approve":
            proposal_id = r.hash("proposal id")
            r.end("approve arguments")
            proposal = self.proposals.get(proposal_id)
            if proposal is None:
                raise Failure(f"committed approval of {proposal_id.hex()}, which no committed propose created", **where)
            self.check_proposal(proposal, where)
        elif action == "revoke":
            fingerprint = r.hash("fingerprint")
            r.end("revoke arguments")
            target = self.certificates.get(fingerprint)
            if target is None:
                raise Failure("committed revoke of a certificate that is not in certificates", **where)
            if target.organization != creator.organization:
                raise Failure("committed revoke of another organisation's certificate", **where)
            if target.revoked_at != block_time:
                raise Failure("committed revoke, but the certificate's revoked_at is not this block's time", **where)
        else:
            raise Failure(f"committed, but governance has no action {action!r}", **where)

    def check_proposal(self, proposal, where):
        kind = proposal[0]
        try:
            if kind == "updateConfig":
                problem = config_error(proposal[1])
                if problem:
                    raise Failure(f"committed proposal with an invalid configuration: {problem}", **where)
                # It may have taken effect: from here on only the larger skew is a safe bound.
                self.skew_bound = max(self.skew_bound, proposal[1]["clock_skew"])
                if proposal[1] not in self.configs:
                    self.configs.append(proposal[1])
            elif kind == "rotateNoiseKey":
                # GovernanceContract.checkNoiseKey: boxes sorted, each for a registered node. Whether
                # they hold the committed secret needs a node's key; the epoch sequence is not followed.
                problem = noise_key_error(proposal[1], self.certificates)
                if problem:
                    raise Failure(f"committed rotateNoiseKey proposal: {problem}", **where)
            elif kind == "setResearchBudget":
                # GovernanceContract.validate: the member exists and has a role the research policy allows.
                member = self.certificates.get(proposal[1])
                if member is None:
                    raise Failure("committed setResearchBudget for a certificate that is not in certificates", **where)
                if not any(member.role in c["research"]["allowed_roles"] for c in self.configs):
                    raise Failure(f"committed setResearchBudget for a member with role {member.role}, "
                                  "which the research policy does not allow to ask queries", **where)
                overrides = self.budget_overrides.setdefault(proposal[1], [])
                if proposal[2] not in overrides:
                    overrides.append(proposal[2])
            elif kind == "addOrganization":
                org, registrations = proposal[1], proposal[2]
                if not valid_org_id(org["id"]) or not org["name"]:
                    raise Failure("committed proposal adds an organisation with an invalid id or empty name", **where)
                root = root_certificate(org["root"], org["id"])
                roles = [member_facts(reg["certificate"], root=root, expected_org=org["id"]).role for reg in registrations]
                if "admin" not in roles:
                    raise Failure("committed proposal adds an organisation without an admin member", **where)
            elif kind == "addMember":
                reg = proposal[1]
                parsed = member_facts(reg["certificate"])
                org = self.organizations.get(parsed.organization)
                if org is None or not org["active"]:
                    raise Failure(f"committed proposal adds a member of unknown organisation {parsed.organization}", **where)
                facts = member_facts(reg["certificate"], root=org["root"], expected_org=org["id"])
                if facts.role == "device":
                    if reg["device_udi"] is None or udi_error(reg["device_udi"]):
                        raise Failure("committed proposal adds a device member without a valid UDI", **where)
                elif reg["device_udi"] is not None:
                    raise Failure("committed proposal binds a non-device member to a UDI", **where)
            elif kind == "revokeCertificate":
                if proposal[1] not in self.certificates:
                    raise Failure("committed proposal revokes a certificate that is not in certificates", **where)
        except CertificateError as err:
            raise Failure(f"committed proposal: {err}", **where) from None

    # -- research (ResearchContract.swift) -------------------------------------------------------------
    #
    # The research state (rqa/, rq/, rspent/) is written by committed research.charge and
    # research.answer transactions only and never deleted, so it is rebuilt here from the export:
    # which asks were charged, which questions were charged (by which node, at what cost) and whether
    # they are answered, and each researcher's spending. That decides duplicates, free repeats,
    # pending/answered questions and budget usage exactly, and lets both transactions' write sets be
    # recomputed. What depends on governance votes, which this verifier does not count (the
    # configuration in force, rbud/ overrides), is handled as everywhere else in this script: a check
    # passes if it passes under some configuration that may be in force (genesis or a committed
    # updateConfig proposal) and some budget that may apply; spending is followed only while the
    # budget period and the cost of each charge do not depend on that choice.

    def check_research(self, p, creator, height, block_time, tx_id, write_set_hash, where):
        """ResearchContract.execute: only `charge` and `answer` can commit, and only from a node."""
        action = p["action"]
        if action not in ("charge", "answer"):
            raise Failure(f"committed research.{action}: the research contract refuses every action but charge and answer "
                          "(forbidden: a researcher's research.ask is given to a node, which charges and answers it)", **where)
        if creator.role != "node":
            raise Failure(f"committed research.{action}, but role {creator.role} may not charge or answer research queries "
                          "(only node)", **where)
        if action == "charge":
            self.check_research_charge(p, creator, height, block_time, tx_id, write_set_hash, where)
        else:
            self.check_research_answer(p, creator, height, block_time, tx_id, write_set_hash, where)

    def check_research_charge(self, p, creator, height, block_time, tx_id, write_set_hash, where):
        """ResearchContract.charge for a committed research.charge at height h, block time T.

        Checked: the arguments decode exactly (a whole research.ask Envelope, then u64 height); the ask
        decodes, is a research.ask for this network, and its creator's certificate (from `certificates`)
        verifies its signature; the asker's organisation is active, the certificate is valid and not
        revoked at T and its role is allowed; the ask's time is within the clock skew of T; the request
        is canonical and valid under the policy (ε within [0.001 (0.002 for averages),
        maxEpsilonPerQuery], declared bounds); the ask was not charged before (rqa/); asOfHeight, when
        given, is the charge's height, which is below h. Then, from the rebuilt state: if the question
        (rq/<key>) was charged before, pending or answered, this is a free repeat and writes rqa/ only;
        otherwise the budget (policy default or a governance override) covers the new spending and the
        charge writes rqa/, rspent/ and the pending rq/ record naming this node. The write set is
        recomputed and compared with the exported write_set_hash (always for a free repeat; otherwise
        while spending can be followed).

        Not checked: that the asker was already registered when the charge executed (the export does
        not say when a certificate was registered).
        """
        what = "committed research.charge"
        ask_bytes, ask_signature, charge_height = decode_research_charge(p["arguments"])
        try:
            ask = decode_payload(ask_bytes)
        except DecodeError as err:
            raise Failure(f"{what}, but its ask does not decode: {err}", **where) from None
        ask_id = sha256(ask_bytes)
        where = dict(where, ask_id=ask_id.hex())
        if ask["network"] != p["network"]:
            raise Failure(f"{what} for an ask of another network (wrong_network)", **where)
        if ask["contract"] != "research" or ask["action"] != "ask":
            raise Failure(f"{what}, but the embedded transaction is {ask['contract']}.{ask['action']}, not research.ask", **where)
        try:
            request = decode_query_request(ask["arguments"])
        except DecodeError as err:
            raise Failure(f"{what}, but the ask's query does not decode: {err}", **where) from None

        asker = self.certificates.get(ask["creator"])
        if asker is None:
            raise Failure(f"{what}, but the asker {ask['creator'].hex()} is not in certificates", **where)
        org = self.organizations.get(asker.organization)
        if org is None or not org["active"]:
            raise Failure(f"{what}, but the asker's organisation {asker.organization} is not an active member", **where)
        # The contract refuses revokedAt <= T; only the final revoked_at is exported and a revocation
        # later in this same block has revokedAt == T, so equality is accepted (as for creators).
        if asker.revoked_at is not None and asker.revoked_at < block_time:
            raise Failure(f"{what} for an asker whose certificate was revoked before the block", **where)
        if not asker.not_before <= block_time <= asker.not_after:
            raise Failure(f"{what}, but the asker's certificate is not valid at block time", **where)
        if not any(asker.role in c["research"]["allowed_roles"] for c in self.configs):
            raise Failure(f"{what} for an asker with role {asker.role}, which the research policy does not allow "
                          "to ask queries", **where)
        if not ecdsa_valid(asker.key, ask_signature, ask_bytes):
            raise Failure(f"{what}, but the ask's signature does not verify against the asker's certificate", **where)
        if abs(ask["timestamp"] - block_time) > self.skew_bound:
            raise Failure(f"{what}, but the ask was signed more than {self.skew_bound} ms from block time", **where)
        problems = []
        for c in self.configs:
            policy = c["research"]
            if asker.role not in policy["allowed_roles"]:
                problems.append(f"role {asker.role} may not ask research queries")
            else:
                problems.append(query_request_error(request, policy))
        fitting = [c for c, problem in zip(self.configs, problems) if problem is None]
        if not fitting:
            scope = "" if len(self.configs) == 1 else f" (under each of the {len(self.configs)} configurations that may be in force)"
            raise Failure(f"{what} would be refused{scope}: {problems[-1]}", **where)
        if ask_id in self.asks:
            raise Failure(f"{what} for an ask that was already charged (duplicate_transaction)", **where)
        if request["as_of"] is not None and request["as_of"] != charge_height:
            raise Failure(f"{what}: the query asks about block {request['as_of']}, the charge is for block {charge_height}", **where)
        if charge_height >= height:
            raise Failure(f"{what} for block {charge_height}, which is not below this block", **where)

        # ResearchContract.describedHeight: the block asked about, else the one before this charge's.
        described = request["as_of"] if request["as_of"] is not None else height - 1
        key = query_key(request, described)
        self.stats["research_charges"] += 1
        self.asks[ask_id] = key
        writes = {"rqa/" + ask_id.hex(): key + tx_id}  # QueryAskRecord: key | charge transaction id
        if key in self.questions:
            # The same question about the same block was charged before (pending or answered): free.
            self.stats["research_free_repeats"] += 1
        else:
            costs = {query_cost(request, c["research"]) for c in fitting}
            periods = {c["research"]["period"] for c in fitting}
            fp = asker.fingerprint
            q = Question(key, fp, ask_id, ask["arguments"], request, described,
                         next(iter(costs)) if len(costs) == 1 else None, creator.fingerprint, block_time, height)
            self.questions[key] = q
            if len(costs) != 1 or len(periods) != 1:
                self.usage_known = False
            if not self.usage_known:
                writes = None  # rspent/ now depends on which configuration was in force: not recomputed.
            else:
                (period_ms,), cost = periods, q.cost
                period = max(block_time, 0) // period_ms
                previous = self.usage.get(fp)
                if previous is None or previous[0] != period:
                    previous = (period, 0, 0, 0)
                spent = (previous[1] + cost[0], previous[2] + cost[1])
                limits = [c["research"]["budget"] for c in fitting] + [b for b in self.budget_overrides.get(fp, []) if b is not None]
                if max(spent) >= 1 << 64 or not any(spent[0] <= lim[0] and spent[1] <= lim[1] for lim in limits):
                    raise Failure(f"{what} would exceed the asker's privacy budget (budget_exhausted): "
                                  f"spent ε {spent[0] / 1e6:g}, δ {spent[1] / 1e12:g} this period", **where)
                usage = (period, spent[0], spent[1], previous[3] + 1)
                self.usage[fp] = usage
                writes["rspent/" + fp.hex()] = struct.pack(">QQQQ", *usage)  # BudgetUsage
                writes["rq/" + key.hex()] = encode_query_record(q)          # pending QueryRecord
        self.compare_research_write_set(writes, write_set_hash, where)

    def check_research_answer(self, p, creator, height, block_time, tx_id, write_set_hash, where):
        """ResearchContract.answer for a committed research.answer at height h, block time T.

        Checked: the arguments decode exactly (32-byte key, then a QueryAnswer); from the rebuilt state,
        an earlier committed charge recorded the question rq/<key> (else the contract refuses:
        not_found), it is not answered yet (duplicate_transaction), this transaction's creator is the
        node that charged it (forbidden), and the answer is about the charged block (invalid_argument);
        the answer's structure matches the request under the policy (mechanism, exact ε/δ shares, which
        sum to the request's ε, sensitivities, clamping bounds, the exact Laplace scale Δ/ε, threshold
        presence, group count); and the write set: rq/<key> rewritten as answered, with the answer as
        the exact bytes of this transaction, its SHA-256, this transaction's id and T.

        Not checked: the released values, the Gaussian variance, the answer's referenceTime and the
        order of released groups. Nodes check all of them (they recompute the answer from the device
        state and the network noise secret, and refuse any other with answer_mismatch); this script
        has neither the secret nor the device state at each block. The write set is not recomputed when the
        charge's cost depended on which configuration was in force (the record embeds the cost).
        """
        what = "committed research.answer"
        key, answer = decode_research_answer(p["arguments"])
        where = dict(where, question=key.hex())
        q = self.questions.get(key)
        if q is None:
            raise Failure(f"{what} for a question that no earlier committed research.charge charged "
                          "(the contract refuses it: not_found)", **where)
        where["ask_id"] = q.ask_id.hex()
        if q.answered_block is not None:
            raise Failure(f"{what} for a question already answered in block {q.answered_block} (duplicate_transaction)", **where)
        if creator.fingerprint != q.node:
            raise Failure(f"{what} signed by node {creator.fingerprint.hex()}, but the question was charged in block "
                          f"{q.charge_block} by node {q.node.hex()}; only the charging node answers (forbidden)", **where)
        if q.charge_block >= height:
            raise Failure(f"{what} in the block that charged its question (invalid_argument: answers come in a later block)", **where)
        if answer["height"] != q.height:
            raise Failure(f"{what} about block {answer['height']}, but the question was charged for block {q.height}", **where)
        problems = [answer_structure_error(answer, q.request, c["research"]) for c in self.configs]
        if all(problems):
            scope = "" if len(self.configs) == 1 else f" (under each of the {len(self.configs)} configurations that may be in force)"
            raise Failure(f"{what} would be refused{scope}: {problems[-1]}", **where)
        q.answered_block = height
        self.stats["research_answers"] += 1
        writes = None
        if q.cost is not None:
            writes = {"rq/" + key.hex(): encode_query_record(q, answer["encoded"], tx_id, block_time)}
        self.compare_research_write_set(writes, write_set_hash, where)

    def compare_research_write_set(self, writes, write_set_hash, where):
        if writes is None:
            return
        if sha256(encode_write_set(writes)) != write_set_hash:
            raise Failure("write_set_hash differs from the research write set recomputed from the export ("
                          + ", ".join(sorted(k.split("/")[0] + "/" for k in writes)) + ")", **where)
        self.stats["research_write_sets_recomputed"] += 1


class Question:
    """A question charged by a committed research.charge: what rq/<key> records (QueryRecord)."""
    __slots__ = ("key", "asker", "ask_id", "request_bytes", "request", "height", "cost", "node", "charged_at",
                 "charge_block", "answered_block")

    def __init__(self, key, asker, ask_id, request_bytes, request, height, cost, node, charged_at, charge_block):
        self.key, self.asker, self.ask_id = key, asker, ask_id
        self.request_bytes, self.request, self.height = request_bytes, request, height
        self.cost = cost  # (ε, δ) debited, or None when it depended on which configuration was in force
        self.node, self.charged_at, self.charge_block = node, charged_at, charge_block
        self.answered_block = None


def encode_query_record(q, answer=None, answer_transaction=None, answered_at=None):
    """QueryRecord: key | asker | askID | request | u64 height | cost | node | i64 chargedAt | bool answered
    [| answer | H(answer) | answerTransaction | i64 answeredAt]; the request and the answer are the exact
    bytes found in the transactions (the encodings are canonical, so they are what the contract wrote)."""
    out = (q.key + q.asker + q.ask_id + q.request_bytes + struct.pack(">QQQ", q.height, q.cost[0], q.cost[1])
           + q.node + struct.pack(">q", q.charged_at))
    if answer is None:
        return out + b"\x00"
    return out + b"\x01" + answer + sha256(answer) + answer_transaction + struct.pack(">q", answered_at)


# ----------------------------------------------------------------------------------------------
# Optional cross-checks against a network directory (network.json, genesis.block)
# ----------------------------------------------------------------------------------------------

def decode_block_file(data):
    """genesis.block: "MLK1" | bytes header (<= 1024) | bytes signature (<= 128) | u32 count | (bytes envelope)*"""
    r = Reader(data)
    if r.raw(4, "block magic") != b"MLK1":
        raise DecodeError("block: expected magic MLK1")
    header = r.bytes_("block header", 1024)
    h = decode_header(header)
    signature = r.bytes_("block signature", 128)
    count = r.u32("block count")
    if count != h["count"] or count > r.remaining():
        raise DecodeError("block: transaction count does not match the header")
    envelopes = [r.bytes_("block envelope", 1 << 20) for _ in range(count)]
    r.end("Block")
    return header, signature, envelopes


def check_network_directory(export, directory):
    path = os.path.join(directory, "network.json")
    with open(path, "rb") as fh:
        definition = json.load(fh)
    if definition.get("network_id") != export.get("network_id"):
        raise Failure(f"{path}: network_id {definition.get('network_id')} differs from the export's")
    genesis_path = os.path.join(directory, "genesis.block")
    if os.path.exists(genesis_path):
        with open(genesis_path, "rb") as fh:
            try:
                header, signature, envelopes = decode_block_file(fh.read())
            except DecodeError as err:
                raise Failure(f"{genesis_path}: {err}") from None
        block0 = export["blocks"][0]
        if (base64.b64encode(header).decode() != block0.get("header")
                or base64.b64encode(signature).decode() != block0.get("signature")
                or [base64.b64encode(e).decode() for e in envelopes] != [t.get("envelope") for t in block0.get("transactions", [])]):
            raise Failure(f"{genesis_path} differs from block 0 of the export", block=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Independently verify a MedLedger export (medledger-export/1).")
    parser.add_argument("export", help="path of the JSON written by `medledger export`")
    parser.add_argument("--network", metavar="DIR", help="also check DIR/network.json and DIR/genesis.block against the export")
    parser.add_argument("--tip", metavar="HASH", help="expected hash of the last block, from a trusted source (detects truncation)")
    parser.add_argument("--allow-invalid-refused", action="store_true",
                        help="accept refused transactions whose envelope does not decode or verify (executor semantics); "
                             "by default every envelope must be valid, as the reference node's admission guarantees")
    args = parser.parse_args(argv)

    def fail(failure):
        report = {"ok": False}
        report.update({k: v for k, v in failure.where.items() if v is not None})
        report["error"] = failure.message
        print(json.dumps(report))
        place = " ".join(f"{k} {v}" for k, v in failure.where.items() if v is not None)
        print(f"FAILED{(' at ' + place) if place else ''}: {failure.message}", file=sys.stderr)
        return 1

    try:
        with open(args.export, "rb") as fh:
            export = json.load(fh)
    except (OSError, ValueError) as err:
        return fail(Failure(f"cannot read {args.export}: {err}"))
    try:
        summary = Verifier(export, allow_invalid_refused=args.allow_invalid_refused).run()
        if args.tip is not None and summary["tip_hash"] != args.tip.lower():
            raise Failure(f"the last block's hash is {summary['tip_hash']}, expected {args.tip.lower()}",
                          block=summary["blocks"] - 1)
        if args.network:
            check_network_directory(export, args.network)
    except Failure as failure:
        return fail(failure)
    except OSError as err:
        return fail(Failure(str(err)))
    except Exception as err:  # malformed JSON shapes (wrong types) end up here
        import traceback
        traceback.print_exc(file=sys.stderr)
        return fail(Failure(f"malformed export ({type(err).__name__}: {err})"))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
