"""The API contract (docs/openapi.json) checked against a real node with schemathesis.

Run through scripts/api-contract, which starts a demo node and sets:
    MEDLEDGER_API      the node's base URL (http://127.0.0.1:PORT)
    MEDLEDGER_NETWORK  the demo's directory (network.json, orgs/<org>/<member>.key|.pem)

Every generated request is signed like a real client's (scripts/request_signature.py) so that it
reaches the handlers, not only the authenticator: reads as the regulator's auditor (oversight sees
every route), record routes as St Mary's admin. Checks: no 5xx, every status, content type, header
and body as the document declares, schema-invalid input refused; plus, beside the generated cases,
an undeclared method on every path is 405 with Allow, and every signed route refuses an unsigned call.
"""
import hashlib, json, os, sys, time

import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_headers_conformance, response_schema_conformance, status_code_conformance)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from request_signature import authorization, raw_signature, signed_text  # noqa: E402

BASE = os.environ["MEDLEDGER_API"].rstrip("/")
NETWORK = os.environ["MEDLEDGER_NETWORK"]
NETWORK_ID = json.load(open(os.path.join(NETWORK, "network.json")))["network_id"]
EXAMPLES = int(os.environ.get("MEDLEDGER_CONTRACT_EXAMPLES", "60"))
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD"]


def member(name):
    org, who = name.split("/")
    base = os.path.join(NETWORK, "orgs", org, who)
    key = serialization.load_pem_private_key(open(base + ".key", "rb").read(), password=None)
    der = x509.load_pem_x509_certificate(open(base + ".pem", "rb").read()).public_bytes(serialization.Encoding.DER)
    return key, hashlib.sha256(der).hexdigest()


AUDITOR = member("device-regulator/auditor")
HOSPITAL_ADMIN = member("st-mary/admin")


class SigningAdapter(requests.adapters.HTTPAdapter):
    """Signs each request as it goes on the wire: the exact target and body bytes."""

    def __init__(self, identity=None):
        super().__init__()
        self.identity = identity

    def send(self, request, **kwargs):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        path = request.path_url
        key, fingerprint = self.identity or (HOSPITAL_ADMIN if path.startswith("/v1/records") else AUDITOR)
        if request.method == "POST" and path.split("?")[0] == "/v1/records":
            request.headers["MedLedger-Body-SHA256"] = hashlib.sha256(body).hexdigest()
        time_ms, nonce = int(time.time() * 1000), os.urandom(16).hex()
        signature = raw_signature(key, signed_text(NETWORK_ID, request.method, path, body, time_ms, nonce))
        request.headers["Authorization"] = authorization(fingerprint, time_ms, nonce, signature)
        return super().send(request, **kwargs)


def session(identity=None):
    result = requests.Session()
    result.mount("http://", SigningAdapter(identity))
    return result


signed = session()

# MEDLEDGER_OPENAPI_FILE: check against another document (to see that a wrong contract fails).
if os.environ.get("MEDLEDGER_OPENAPI_FILE"):
    schema = schemathesis.openapi.from_path(os.environ["MEDLEDGER_OPENAPI_FILE"])
    schema.config.update(base_url=BASE)
else:
    schema = schemathesis.openapi.from_url(BASE + "/openapi.json")
# Deterministic by default, so a CI failure replays; MEDLEDGER_CONTRACT_RANDOM=1 explores further.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES,
                                with_security_parameters=False,
                                deterministic=os.environ.get("MEDLEDGER_CONTRACT_RANDOM") != "1")
DOCUMENT = requests.get(BASE + "/openapi.json", timeout=10).json()
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


# /v1/events is a stream that stays open: it has its own test below.
@schema.exclude(path="/v1/events").parametrize()
def test_every_answer_matches_the_contract(case):
    case.call_and_validate(session=signed, checks=CHECKS, timeout=30)


def concrete(path):
    """A path of the document with each {parameter} filled in (64 hex digits, or a height)."""
    return "/".join("0" if part == "{height}" else "ab" * 32 if part.startswith("{") else part for part in path.split("/"))


def test_undeclared_methods_are_405_with_allow():
    for path, item in DOCUMENT["paths"].items():
        declared = sorted(method.upper() for method in item)
        for method in METHODS:
            if method in declared:
                continue
            answer = signed.request(method, BASE + concrete(path), timeout=10)
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert answer.headers.get("Allow") == ", ".join(declared), (method, path, answer.headers.get("Allow"))
            if method != "HEAD":
                assert answer.json()["error"]["code"] == "method_not_allowed"


def test_signed_routes_refuse_unsigned_calls():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue
            answer = requests.request(method.upper(), BASE + concrete(path), timeout=10)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.headers.get("WWW-Authenticate") == "MedLedger-Signature"
            assert answer.json()["error"]["code"] == "unauthenticated"


def test_the_event_stream_matches_the_contract():
    answer = signed.get(BASE + "/v1/events?from=0", stream=True, timeout=30)
    try:
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/x-ndjson"
        line = next(answer.iter_lines())
        event = json.loads(line)
        block_event = DOCUMENT["components"]["schemas"]["BlockEvent"]
        assert set(block_event["required"]) <= set(event), event.keys()
        assert event["height"] == 0
    finally:
        answer.close()


def test_answers_about_real_data_match_the_contract():
    """Generated ids are almost never on the ledger, so the 200 answers of most routes are checked
    here, with values read from the demo's ledger and as the member each route serves."""
    demo = json.load(open(os.path.join(NETWORK, "demo-patients.json")))
    patient = demo["patients"][0]
    record, pseudonym, granted = patient["records"][0], patient["pseudonym"], demo["granted"]
    transaction = signed.get(BASE + "/v1/blocks/1", timeout=10).json()["transactions"][0]["id"]
    udi = signed.get(BASE + "/v1/devices?limit=1", timeout=10).json()[0]["udi"]
    researcher = member("medtech-research/researcher")[1]
    clinician, patient_self = session(member("st-mary/clinician")), session(member("st-mary/" + patient["name"]))
    calls = [
        (signed, "GET", "/v1/chain", {}, {}, {}),
        (signed, "GET", "/v1/node", {}, {}, {}),
        (signed, "GET", "/metrics", {}, {}, {}),
        (signed, "GET", "/v1/chain/height-at", {}, {"time": int(time.time() * 1000)}, {}),
        (signed, "GET", "/v1/blocks/{height}", {"height": 1}, {}, {}),
        (signed, "GET", "/v1/blocks/{height}", {"height": 1}, {}, {"Accept": "application/vnd.medledger.block"}),
        (signed, "GET", "/v1/transactions/{id}", {"id": transaction}, {}, {}),
        (signed, "GET", "/v1/proofs/inclusion/{id}", {"id": transaction}, {}, {}),
        (signed, "GET", "/v1/proofs/consistency", {}, {"from": 1, "to": 3}, {}),
        (signed, "GET", "/v1/devices", {}, {"limit": 5}, {}),
        (signed, "GET", "/v1/device", {}, {"udi": udi}, {}),
        (signed, "GET", "/v1/device/history", {}, {"udi": udi}, {}),
        (signed, "GET", "/v1/refusals", {}, {}, {}),
        (signed, "GET", "/v1/research/budget/{member}", {"member": researcher}, {}, {}),
        (signed, "GET", "/v1/research/log", {}, {}, {}),
        (signed, "GET", "/v1/records/{id}", {"id": record}, {}, {}),
        (clinician, "GET", "/v1/records/{id}/decision", {"id": record}, {"decision": granted}, {}),
        (clinician, "GET", "/v1/records/{id}/key", {"id": record}, {"decision": granted}, {}),
        (clinician, "GET", "/v1/records/{id}/blob", {"id": record}, {"decision": granted}, {}),
        (patient_self, "GET", "/v1/patients/{pseudonym}/records", {"pseudonym": pseudonym}, {}, {}),
        (patient_self, "GET", "/v1/patients/{pseudonym}/consent", {"pseudonym": pseudonym}, {}, {}),
        (patient_self, "GET", "/v1/patients/{pseudonym}/consent", {"pseudonym": pseudonym}, {"format": "fhir"}, {}),
        (patient_self, "GET", "/v1/patients/{pseudonym}/disclosures", {"pseudonym": pseudonym}, {}, {}),
        (patient_self, "GET", "/v1/patients/{pseudonym}/disclosures", {"pseudonym": pseudonym}, {"format": "fhir"}, {}),
        (signed, "GET", "/v1/break-glass", {}, {}, {}),
        (session(HOSPITAL_ADMIN), "POST", "/v1/records/{id}/rotate", {"id": patient["records"][1]}, {}, {}),
    ]
    for client, method, path, parameters, query, headers in calls:
        case = schema[path][method].Case(path_parameters=parameters, query=query, headers=headers)
        response = case.call_and_validate(session=client, checks=CHECKS, timeout=30)
        assert 200 <= response.status_code < 300, (method, path, query, response.status_code, response.text[:300])
