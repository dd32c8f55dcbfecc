"""CDS Hooks 2.0: the tests play the EHR against the ASGI app (discovery, patient-view,
order-select, feedback, prefetch errors, JWT authentication)."""

from __future__ import annotations

import json
import logging

import pytest
from service_support import (
    BASE,
    check_card,
    check_discovery,
    check_problem,
    check_response,
    client,
    draft_order,
    ehr_key,
    hook_request,
    jwks_file,
    token,
)

PV = "/cds-services/jdm-kg-patient-view"
OS = "/cds-services/jdm-kg-order-select"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.fixture(scope="module")
def ehr():
    return client()


def test_discovery_lists_both_services_with_prefetch_templates(ehr):
    response = ehr.get("/cds-services")
    assert response.status_code == 200
    doc = response.json()
    check_discovery(doc)
    hooks = {s["hook"]: s for s in doc["services"]}
    assert set(hooks) == {"patient-view", "order-select"}
    for service in hooks.values():
        assert set(service["prefetch"]) == {"patient", "conditions", "observations", "medicationStatements",
                                            "medicationRequests"}
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        observations = service["prefetch"]["observations"]
        assert observations.startswith("Observation?patient={{context.patientId}}&code=")
        for code in ("29463-7", "8302-2", "71773-6", "13952-7", "13955-0"):  # weight, height, TB, hepatitis B, C
            assert f"http://loinc.org|{code}" in observations


@pytest.mark.parametrize("example, first, indicator, words", [
    ("muscle-predominant.json", "rituximab first (#1)", "warning", "screen first: tuberculosis"),
    ("calcinosis-predominant.json", "no biologic named for calcinosis: expert centre; 5 bDMARDs tie", "warning",
     "retest: tuberculosis"),
    ("skin-predominant.json", "adalimumab or infliximab (tie, #1)", "info", "screening passed"),
    ("refractory-multisystem.json", "adalimumab or infliximab (tie, #1)", "info", "screening passed"),
    ("ild-predominant.json", "rituximab first (#1)", "critical", "blocked: hepatitis B positive"),
])
def test_patient_view_card_for_each_bundled_example(ehr, example, first, indicator, words):
    response = ehr.post(PV, json=hook_request("patient-view", example))
    assert response.status_code == 200, response.text
    body = response.json()
    check_response(body)
    assert len(body["cards"]) == 1
    card = body["cards"][0]
    assert card["indicator"] == indicator
    assert first in card["summary"] and words in card["summary"]  # ties and gaps said, never one tied option alone
    assert "ranks first" not in card["summary"]
    detail = card["detail"].splitlines()  # read in 20 seconds: at most 15 lines, the last a link to the full report
    assert len(detail) <= 15 and detail[0].startswith("- The guideline applies")
    assert "guideline v" in card["source"]["label"]
    link = card["links"][0]
    assert link["type"] == "absolute" and link["url"].startswith(f"{BASE}/report/")
    assert detail[-1].endswith(f"({link['url']})")
    page = ehr.get(link["url"][len(BASE):])
    assert page.status_code == 200 and "Decision support, not a prescription." in page.text


def test_patient_view_no_card_when_the_guideline_does_not_apply(ehr):
    response = ehr.post(PV, json=hook_request("patient-view", "no-jak-failure.json"))
    assert response.status_code == 200
    assert response.json()["cards"] == []


def test_order_select_rituximab_updates_the_draft_order_with_the_childs_dose(ehr):
    from fhir.resources.R4B.medicationrequest import MedicationRequest

    order = draft_order("draft-1", RXNORM, "121191", "rituximab", "P-MUSCLE")
    request = hook_request("order-select", "muscle-predominant.json", selections=["MedicationRequest/draft-1"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    response = ehr.post(OS, json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    check_response(body)
    [card] = body["cards"]
    assert card["summary"] == "rituximab: #1 (preferred for the predominant feature); screen first: tuberculosis"
    assert card["indicator"] == "warning"  # tuberculosis screening still required
    [suggestion] = card["suggestions"]  # one suggestion, an update: no second order
    assert suggestion["isRecommended"] is False and "502.3 mg" in suggestion["label"]
    assert suggestion["label"].startswith("After tuberculosis screening: ")
    [action] = suggestion["actions"]
    assert action["type"] == "update"
    resource = action["resource"]
    checked = MedicationRequest.model_validate(resource)  # valid FHIR R4
    assert (checked.id, checked.intent, checked.status) == ("draft-1", "order", "draft")  # the order being signed
    assert "patientInstruction" not in json.dumps(resource)
    dose = resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose == {"value": 502.3, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    assert resource["dosageInstruction"][0]["timing"]["repeat"]["count"] == 4


def test_order_select_no_suggestion_where_the_guideline_gives_no_dose(ehr):
    order = draft_order("draft-2", RXNORM, "327361", "adalimumab", "P-MUSCLE")
    request = hook_request("order-select", "muscle-predominant.json", selections=["MedicationRequest/draft-2"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    [card] = ehr.post(OS, json=request).json()["cards"]
    check_card(card)
    assert card["summary"].startswith("adalimumab: #4")
    assert "suggestions" not in card


def test_order_select_a_drug_that_already_failed_says_so(ehr):
    order = draft_order("draft-3", "http://www.whocc.no/atc", "L01FA01", "rituximab", "P-REFRACTORY")
    request = hook_request("order-select", "refractory-multisystem.json", selections=["MedicationRequest/draft-3"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    [card] = ehr.post(OS, json=request).json()["cards"]
    check_card(card)
    assert card["summary"] == "rituximab: not offered (already failed)"
    assert card["indicator"] == "warning" and "suggestions" not in card
    assert "inadequate response" in card["detail"]  # the episode that failed, from the explanation


def test_order_select_only_the_selected_orders_count(ehr):
    chosen = draft_order("draft-5", RXNORM, "121191", "rituximab", "P-MUSCLE")
    other = draft_order("draft-6", RXNORM, "191831", "infliximab", "P-MUSCLE")
    request = hook_request("order-select", "muscle-predominant.json", selections=["MedicationRequest/draft-6"],
                           draftOrders={"resourceType": "Bundle", "type": "collection",
                                        "entry": [{"resource": chosen}, {"resource": other}]})
    [card] = ehr.post(OS, json=request).json()["cards"]
    assert card["summary"].startswith("infliximab: #4")
    [suggestion] = card["suggestions"]
    dose = suggestion["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseRange"]
    assert (dose["low"]["value"], dose["high"]["value"]) == (127.5, 212.5)


def test_order_select_ignores_drugs_outside_the_guideline(ehr):
    order = draft_order("draft-4", RXNORM, "161", "acetaminophen", "P-MUSCLE")
    request = hook_request("order-select", "muscle-predominant.json", selections=["MedicationRequest/draft-4"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    response = ehr.post(OS, json=request)
    assert response.status_code == 200 and response.json()["cards"] == []


@pytest.mark.parametrize("drop", ["patient", "observations", "medicationStatements"])
def test_missing_prefetch_is_412_with_the_keys_named(ehr, drop):
    request = hook_request("patient-view", "muscle-predominant.json")
    del request["prefetch"][drop]
    body = check_problem(ehr.post(PV, json=request), 412)
    assert drop in body["detail"] and body["missingPrefetch"] == [drop]


def test_null_prefetch_is_412(ehr):
    request = hook_request("patient-view", "muscle-predominant.json")
    request["prefetch"]["conditions"] = None
    check_problem(ehr.post(PV, json=request), 412)


@pytest.mark.parametrize("mutate, status", [
    (lambda r: r.update(hook="order-sign"), 400),
    (lambda r: r.pop("hookInstance"), 400),
    (lambda r: r["context"].pop("patientId"), 400),
    (lambda r: r["prefetch"].update(patient={"resourceType": "Observation"}), 400),
    (lambda r: r["prefetch"]["observations"]["entry"].append({"resource": {"resourceType": "Observation",
                                                                            "status": 12}}), 400),
])
def test_malformed_requests_get_problems_and_the_service_keeps_working(ehr, mutate, status):
    request = hook_request("patient-view", "muscle-predominant.json")
    mutate(request)
    check_problem(ehr.post(PV, json=request), status)
    assert ehr.get("/health").status_code == 200


def test_not_json_and_unknown_service(ehr):
    check_problem(ehr.post(PV, content=b"{not json", headers={"content-type": "application/json"}), 400)
    check_problem(ehr.post(PV, content=b"<xml/>", headers={"content-type": "application/xml"}), 415)
    check_problem(ehr.post("/cds-services/nope", json={}), 404)


def test_feedback_is_accepted_and_logged_without_patient_data(ehr, caplog):
    caplog.set_level(logging.INFO, logger="jdm_kg.service")
    card = ehr.post(PV, json=hook_request("patient-view", "muscle-predominant.json")).json()["cards"][0]
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-01T10:00:00Z",
                              "overrideReason": {"reason": {"code": "x", "display": "patient declined"}}}]}
    response = ehr.post(f"{PV}/feedback", json=feedback)
    assert response.status_code == 200
    check_problem(ehr.post(f"{PV}/feedback", json={"feedback": [{"outcome": "maybe"}]}), 400)
    text = caplog.text
    assert "feedback jdm-kg-patient-view: 1 entries (0 accepted, 1 overridden)" in text
    for private in ("P-MUSCLE", "2012-02-03", "42.5", "baricitinib", "declined"):
        assert private not in text
    assert "POST /cds-services/jdm-kg-patient-view 200" in text


# ----------------------------------------------------------------------------- JWT


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    return client(jwks=str(jwks_file(tmp_path_factory.mktemp("jwks"))))


def _call(secured, authorization):
    headers = {"authorization": authorization} if authorization else {}
    return secured.post(PV, json=hook_request("patient-view", "muscle-predominant.json"), headers=headers)


def test_jwt_signed_by_the_configured_key_is_accepted(secured):
    response = _call(secured, "Bearer " + token(f"{BASE}{PV}"))
    assert response.status_code == 200, response.text
    assert len(response.json()["cards"]) == 1


def _unsigned(aud):
    import base64

    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'ehr-1'})}.{part({'iss': 'x', 'aud': aud, 'exp': 4102444800, 'iat': 0, 'jti': 'u'})}."


@pytest.mark.parametrize("case", ["missing", "unsigned", "expired", "wrong-audience", "unknown-key", "other-key",
                                  "no-jti", "hmac"])
def test_jwt_failures_are_401(secured, case):
    import time

    aud = f"{BASE}{PV}"
    authorization = {
        "missing": None,
        "unsigned": lambda: "Bearer " + _unsigned(aud),
        "expired": lambda: "Bearer " + token(aud, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000),
        "wrong-audience": lambda: "Bearer " + token("https://elsewhere.example.org/cds-services/x"),
        "unknown-key": lambda: "Bearer " + token(aud, kid="someone-else"),
        "other-key": lambda: "Bearer " + token(aud, key=ehr_key("ec"), alg="ES384"),
        "no-jti": lambda: "Bearer " + token(aud, jti=None),
        "hmac": lambda: "Bearer " + __import__("jwt").encode({"aud": aud}, "secret" * 6, algorithm="HS256",
                                                             headers={"kid": "ehr-1"}),
    }[case]
    response = _call(secured, authorization() if authorization else None)
    body = check_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "eyJ" not in body["detail"]  # the token itself is never echoed


def test_jwt_replayed_jti_is_401(secured):
    bearer = "Bearer " + token(f"{BASE}{PV}")
    assert _call(secured, bearer).status_code == 200
    body = check_problem(_call(secured, bearer), 401)
    assert "replayed" in body["detail"]


def test_without_jwks_and_without_insecure_dev_calls_are_refused():
    from service_support import AS_OF

    closed = client(insecure_dev=False, today=AS_OF, max_concurrent=7)  # a distinct app: no JWKS configured
    check_problem(closed.post(PV, json=hook_request("patient-view", "muscle-predominant.json")), 401)
    assert closed.get("/cds-services").status_code == 200  # discovery stays open


_ATTEMPTS: list[str] = []
_WATCHING = {"on": False}


def _watch(event, args):
    if _WATCHING["on"] and event in ("socket.connect", "socket.getaddrinfo"):
        _ATTEMPTS.append(event)


def test_no_hook_call_reaches_out_even_with_a_fhir_server_named(ehr):
    import sys

    if _watch not in getattr(test_no_hook_call_reaches_out_even_with_a_fhir_server_named, "hooked", []):
        sys.addaudithook(_watch)  # records only; never raises
        test_no_hook_call_reaches_out_even_with_a_fhir_server_named.hooked = [_watch]
    request = hook_request("patient-view", "skin-predominant.json")
    request["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "x",
                                    "subject": "jdm-kg"}
    _WATCHING["on"] = True
    try:
        assert ehr.post(PV, json=request).status_code == 200
        request = hook_request("patient-view", "skin-predominant.json")
        del request["prefetch"]["conditions"]
        assert ehr.post(PV, json=request).status_code == 412  # missing prefetch: refused, never fetched
    finally:
        _WATCHING["on"] = False
    assert _ATTEMPTS == []


def test_a_record_that_fails_validation_gets_a_warning_card_and_no_proposal(ehr):
    request = hook_request("order-select", "muscle-predominant.json", selections=["MedicationRequest/draft-7"],
                           draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [
                               {"resource": draft_order("draft-7", RXNORM, "121191", "rituximab", "P-MUSCLE")}]})
    for entry in request["prefetch"]["observations"]["entry"]:
        codes = [c["code"] for c in entry["resource"]["code"]["coding"]]
        if "8302-2" in codes:  # height entered in metres
            entry["resource"]["valueQuantity"].update(value=1.52, unit="cm", code="cm")
    [card] = ehr.post(OS, json=request).json()["cards"]
    check_card(card)
    assert card["indicator"] == "warning" and "record incomplete" in card["summary"]
    assert "suggestions" not in card and "metres" in card["detail"]


@pytest.mark.parametrize("drop", ["all conditions and treatments", "the JDM diagnosis"])
def test_a_chart_without_jdm_gets_no_card(ehr, drop):
    request = hook_request("patient-view", "muscle-predominant.json")
    conditions = request["prefetch"]["conditions"]["entry"]
    if drop == "the JDM diagnosis":
        request["prefetch"]["conditions"]["entry"] = [e for e in conditions if "1212005" not in json.dumps(e)]
    else:
        request["prefetch"]["conditions"]["entry"] = []
        request["prefetch"]["medicationStatements"]["entry"] = []
    response = ehr.post(PV, json=request)
    assert response.status_code == 200 and response.json()["cards"] == []
