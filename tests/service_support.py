"""Helpers for the service tests: one app per configuration (the guideline is compiled once per
app), the EHR's side of CDS Hooks (prefetch from the bundled FHIR examples, signed JWTs), and
the CDS Hooks 2.0 JSON shapes the responses must have."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FHIR_EXAMPLES = ROOT / "examples" / "fhir"
AS_OF = date(2026, 11, 1)  # the bundled examples' record date
BASE = "http://testserver"


@cache
def app(**options: Any) -> Any:
    from jdm_kg.service import ServiceConfig, create_app

    options.setdefault("today", AS_OF)
    options.setdefault("workers", 0)  # in-process: tests/test_service_limits.py runs real servers with workers
    options.setdefault("audience", BASE)
    if "jwks" not in options:
        options.setdefault("insecure_dev", True)
    return create_app(ServiceConfig(**options))


def client(**options: Any) -> Any:
    from starlette.testclient import TestClient

    return TestClient(app(**options), raise_server_exceptions=False)


def prefetch(example: str) -> tuple[str, dict[str, Any]]:
    """(patientId, prefetch) as an EHR would send them for a bundled FHIR example: the Patient,
    and a searchset Bundle per resource type."""
    bundle = json.loads((FHIR_EXAMPLES / example).read_text())
    by_type: dict[str, list[dict[str, Any]]] = {}
    patient = None
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            patient = resource
        else:
            by_type.setdefault(resource["resourceType"], []).append({"fullUrl": entry.get("fullUrl"), "resource": resource})
    assert patient is not None

    def searchset(kind: str) -> dict[str, Any]:
        entries = by_type.get(kind, [])
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    return patient["id"], {
        "patient": patient,
        "conditions": searchset("Condition"),
        "observations": searchset("Observation"),
        "medicationStatements": searchset("MedicationStatement"),
        "medicationRequests": searchset("MedicationRequest"),
    }


def hook_request(hook: str, example: str, **context: Any) -> dict[str, Any]:
    patient_id, data = prefetch(example)
    return check_request({
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://ehr.invalid/fhir",  # never contacted: everything comes as prefetch
        "context": {"userId": "Practitioner/1", "patientId": patient_id, **context},
        "prefetch": data,
    })


def draft_order(order_id: str, system: str, code: str, display: str, patient_id: str) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": order_id, "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": system, "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{patient_id}"}}


# ----------------------------------------------------------------------------- JWT (the EHR's keys)


@cache
def ehr_key(kind: str = "rsa") -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "ec":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_file(tmp: Path, kid: str = "ehr-1") -> Path:
    import jwt

    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ehr_key().public_key()))
    jwk.update(kid=kid, use="sig", alg="RS384")
    path = tmp / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def token(aud: str, kid: str = "ehr-1", key: Any = None, alg: str = "RS384", **claims: Any) -> str:
    import jwt

    now = int(time.time())
    body = {"iss": "https://ehr.example.org", "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
            "sub": "client-1", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key or ehr_key(), algorithm=alg,
                      headers={"kid": kid})


# ----------------------------------------------------------------------------- CDS Hooks 2.0 shapes


def check_request(request: dict[str, Any]) -> dict[str, Any]:
    """The EHR side plays by the spec's request shape ("HTTP Request"): hook, hookInstance (a
    UUID), context with the hook's required fields, prefetch keyed as discovery says."""
    assert set(request) <= {"hook", "hookInstance", "fhirServer", "fhirAuthorization", "context", "prefetch"}
    assert isinstance(request["hook"], str)
    uuid.UUID(request["hookInstance"])
    context = request["context"]
    assert isinstance(context["userId"], str) and isinstance(context["patientId"], str)
    if request["hook"] == "order-select":
        assert isinstance(context["selections"], list) and context["draftOrders"]["resourceType"] == "Bundle"
    for value in request.get("prefetch", {}).values():
        assert value is None or "resourceType" in value
    return request


def check_discovery(doc: Any) -> None:
    assert isinstance(doc, dict) and isinstance(doc["services"], list) and doc["services"]
    for service in doc["services"]:
        for key in ("hook", "id", "description"):
            assert isinstance(service[key], str) and service[key], key
        for key, template in service.get("prefetch", {}).items():
            assert isinstance(key, str) and isinstance(template, str) and "{{context.patientId}}" in template


def check_response(body: Any) -> None:
    assert isinstance(body, dict) and isinstance(body["cards"], list)
    assert isinstance(body.get("systemActions", []), list)
    for card in body["cards"]:
        check_card(card)


def check_card(card: dict[str, Any]) -> None:
    allowed = {"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
               "overrideReasons", "links"}
    assert set(card) <= allowed, set(card) - allowed
    uuid.UUID(card["uuid"])
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"], dict) and isinstance(card["source"]["label"], str)
    if "detail" in card:
        assert isinstance(card["detail"], str)
    for link in card.get("links", []):
        assert set(link) >= {"label", "url", "type"} and link["type"] in ("absolute", "smart")
    suggestions = card.get("suggestions", [])
    if suggestions:
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for suggestion in suggestions:
        assert isinstance(suggestion["label"], str)
        uuid.UUID(suggestion["uuid"])
        assert isinstance(suggestion.get("isRecommended", False), bool)
        for action in suggestion["actions"]:
            assert action["type"] in ("create", "update", "delete")
            assert isinstance(action["description"], str)
            if action["type"] in ("create", "update"):
                assert isinstance(action["resource"], dict) and "resourceType" in action["resource"]


def check_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body  # type: ignore[no-any-return]
