#!/usr/bin/env python3
"""Validates FHIR R4B Bundles with the `fhir.resources` models (pinned in scripts/test).

    python3 scripts/validate_fhir.py BUNDLE.json [BUNDLE.json …]

Each file must be a Bundle whose every entry is a valid AuditEvent or Consent (the resources
MedLedger exports: GET /v1/patients/{pseudonym}/disclosures?format=fhir and …/consent?format=fhir).
Prints one JSON line {"ok": true, "resources": {"AuditEvent": n, "Consent": m}} and exits 0, or
{"ok": false, "file": …, "error": …} and exits 1.
"""
import json
import sys

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent

MODELS = {"AuditEvent": AuditEvent, "Consent": Consent}


def main(paths):
    counts = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            Bundle.model_validate(data)
            for entry in data.get("entry", []):
                resource = entry["resource"]
                kind = resource.get("resourceType")
                if kind not in MODELS:
                    raise ValueError(f"unexpected resource type {kind!r}")
                MODELS[kind].model_validate(resource)
                counts[kind] = counts.get(kind, 0) + 1
        except Exception as error:  # noqa: BLE001 — every failure is reported the same way
            print(json.dumps({"ok": False, "file": path, "error": str(error)[:2000]}))
            return 1
    print(json.dumps({"ok": True, "resources": counts}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
