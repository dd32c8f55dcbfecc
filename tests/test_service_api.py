"""REST API, FHIR output, read-only SPARQL endpoint, web form and limits, through the ASGI test
client."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from rdflib import Graph
from service_support import AS_OF, ROOT, check_problem, client

from jdm_kg.knowledge.queries import bundled_queries

EXAMPLES = ROOT / "examples"
FHIR = "application/fhir+json"


@pytest.fixture(scope="module")
def api():
    return client()


def _post(api, path, example, content_type, accept="application/json", **params):
    return api.post(path, content=(EXAMPLES / example).read_bytes(), params=params,
                    headers={"content-type": content_type, "accept": accept})


# ----------------------------------------------------------------------------- REST


def test_health_and_guideline(api):
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["guidelineVersion"].startswith("v")
    summary = api.get("/guideline").json()
    assert summary["version"] == health["guidelineVersion"]
    labels = {o["label"] for o in summary["options"]}
    assert {"rituximab", "abatacept", "tocilizumab"} <= labels
    assert summary["statements"] and all(s["statement"].startswith("https://") for s in summary["statements"])
    turtle = api.get("/guideline", headers={"accept": "text/turtle"})
    assert turtle.status_code == 200 and len(Graph().parse(data=turtle.text, format="turtle")) > 100


@pytest.mark.parametrize("example, content_type", [
    ("muscle-predominant.jsonld", "application/ld+json"),
    ("fhir/muscle-predominant.json", FHIR),
    ("fhir/muscle-predominant.json", "application/json"),  # FHIR recognised by its resourceType
])
def test_recommend_reads_each_input_format(api, example, content_type):
    response = _post(api, "/recommend", example, content_type)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["validation"]["conforms"] is True
    [result] = body["results"]
    first = result["options"][0]
    assert first["label"] == "rituximab" and first["rank"] == 1
    assert first["doses"][0]["low"] == "502.3"


def test_recommend_turtle_in_each_output_format(api):
    markdown = _post(api, "/recommend", "skin-predominant.ttl", "text/turtle", "text/markdown")
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# jdm-kg recommendations") and "P-SKIN" in markdown.text
    detailed = _post(api, "/recommend", "skin-predominant.ttl", "text/turtle", "text/markdown", details="true")
    assert len(detailed.text) > len(markdown.text)
    prov = _post(api, "/recommend", "skin-predominant.ttl", "text/turtle", "text/turtle")
    graph = Graph().parse(data=prov.text, format="turtle")
    assert any("prov#" in str(p) for p in graph.predicates())
    bundle = _post(api, "/recommend", "skin-predominant.ttl", "text/turtle", FHIR)
    assert bundle.headers["content-type"].startswith(FHIR)
    _check_bundle(bundle.json())


def _check_bundle(data):
    from fhir.resources.R4B.bundle import Bundle

    bundle = Bundle.model_validate(data)
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds[0] == "OperationOutcome" and "GuidanceResponse" in kinds and "RequestGroup" in kinds
    return bundle


def test_fhir_output_proposes_only_computed_doses(api):
    data = _post(api, "/recommend", "fhir/muscle-predominant.json", FHIR, FHIR).json()
    bundle = _check_bundle(data)
    resources = {e.fullUrl: e.resource for e in bundle.entry}
    group = next(r for r in resources.values() if r.get_resource_type() == "RequestGroup")
    guidance = next(r for r in resources.values() if r.get_resource_type() == "GuidanceResponse")
    assert guidance.result.reference in resources and guidance.status == "success"
    # tuberculosis screening is pending: its action comes first, and the options depend on it (issue 21);
    # the options stand under their report sections, as in the PlanDefinition (issue 23)
    screen, sections = group.action[0], group.action[1:]
    assert screen.title == "Screen first: tuberculosis"
    assert screen.id == "screen-Tuberculosis" and screen.requiredBehavior == "must"
    options = [a for section in sections for a in section.action]
    titles = [a.title for a in options]
    assert titles[:1] == ["rituximab"] and options[0].prefix == "#1"
    assert "intravenous immunoglobulin (IVIG)" in titles  # adjuncts and escalation are actions too
    rituximab = options[0]
    assert [(r.actionId, r.relationship) for r in rituximab.relatedAction] == [("screen-Tuberculosis", "after-end")]
    assert any(d.display and "Particularly effective for muscle involvement" in d.display for d in rituximab.documentation)
    assert any(d.type == "derived-from" for d in rituximab.documentation)  # the guideline as relatedArtifact
    requests = [r for r in resources.values() if r.get_resource_type() == "MedicationRequest"]
    drugs = sorted(r.medicationCodeableConcept.text for r in requests)
    assert drugs == ["infliximab", "rituximab"]  # the two with a dose in the guideline; none for the others
    assert all(r.intent == "proposal" and r.status == "draft" for r in requests)
    referenced = {a.resource.reference for a in options if a.resource}
    assert referenced == {f"urn:uuid:{r.id}" for r in requests}
    infliximab = next(r for r in requests if r.medicationCodeableConcept.text == "infliximab")
    rng = infliximab.dosageInstruction[0].doseAndRate[0].doseRange
    assert (float(rng.low.value), float(rng.high.value), rng.low.code) == (127.5, 212.5, "mg")
    repeat = infliximab.dosageInstruction[0].timing.repeat
    assert (float(repeat.period), float(repeat.periodMax), repeat.periodUnit) == (4, 8, "wk")


def test_fhir_output_validation_problems_as_operation_outcome(api):
    data = _post(api, "/recommend", "invalid/height-in-metres.ttl", "text/turtle", FHIR).json()
    bundle = _check_bundle(data)
    outcome = bundle.entry[0].resource
    assert outcome.issue and all(i.severity in ("error", "warning") for i in outcome.issue)
    assert all(i.expression and i.expression[0] for i in outcome.issue)
    assert {i.expression[0] for i in outcome.issue} == {"Observation.where(code.coding.code = '8302-2').value",
                                                        "Observation.where(code.coding.code = '29463-7').value"}
    guidance = next(e.resource for e in bundle.entry if e.resource.get_resource_type() == "GuidanceResponse")
    assert guidance.status == "data-required"
    assert not [e for e in bundle.entry if e.resource.get_resource_type() == "MedicationRequest"]
    validate = _post(api, "/validate", "invalid/height-in-metres.ttl", "text/turtle", FHIR)
    assert validate.json()["resourceType"] == "OperationOutcome"


def test_validate_in_each_output_format(api):
    body = _post(api, "/validate", "invalid/height-in-metres.ttl", "text/turtle").json()
    assert body["conforms"] is False
    text = _post(api, "/validate", "invalid/height-in-metres.ttl", "text/turtle", "text/plain").text
    assert "violation" in text
    turtle = _post(api, "/validate", "skin-predominant.ttl", "text/turtle", "text/turtle")
    assert "conforms" in turtle.text.lower()


def test_cli_recommend_format_fhir(tmp_path):
    from helpers import run

    proc = run("recommend", "--format", "fhir", "examples/fhir/muscle-predominant.json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check_bundle(json.loads(proc.stdout))
    assert proc.net_attempts == []


@pytest.mark.parametrize("body, content_type, status, words", [
    (b"@prefix broken", "text/turtle", 400, "not valid turtle"),
    (b"{not json", FHIR, 400, "not valid JSON"),
    (b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Condition"}}]}',
     FHIR, 400, "not valid FHIR R4: Condition/0 subject"),
    (b"", "text/turtle", 400, "empty"),
    (b"\xff\xfe", "text/turtle", 400, "UTF-8"),
    (b"x", "application/pdf", 415, "is not read"),
    (b'{"@context": "https://example.org/remote.jsonld", "@id": "urn:x"}', "application/ld+json", 400, ""),
    (b"[" * 100000, "application/json", 400, ""),
])
def test_bad_input_gets_problem_details_and_the_service_keeps_working(api, body, content_type, status, words):
    response = api.post("/recommend", content=body, headers={"content-type": content_type})
    problem = check_problem(response, status)
    assert words in problem["detail"]
    assert response.headers["x-request-id"]
    assert api.get("/health").status_code == 200


def test_not_acceptable_not_found_method(api):
    check_problem(_post(api, "/recommend", "skin-predominant.ttl", "text/turtle", "image/png"), 406)
    check_problem(api.get("/nowhere"), 404)
    check_problem(api.get("/recommend"), 405)


def test_body_size_limit():
    small = client(max_body_bytes=200)
    check_problem(small.post("/recommend", content=(EXAMPLES / "skin-predominant.ttl").read_bytes(),
                             headers={"content-type": "text/turtle"}), 413)

    def chunks():  # no Content-Length: the limit is counted on the bytes read
        for _ in range(10):
            yield b"# padding padding padding padding padding\n"

    check_problem(small.post("/recommend", content=chunks(), headers={"content-type": "text/turtle"}), 413)
    assert small.get("/health").status_code == 200


def test_request_time_limit():
    slow = client(request_timeout=0.0001)
    check_problem(_post(slow, "/recommend", "fhir/muscle-predominant.json", FHIR), 503)


def test_concurrency_cap():
    import asyncio

    from jdm_kg.service.problems import Problem

    core = client(max_concurrent=1).app.app.state.core
    core._admitted = 1  # one request already being worked on
    try:
        with pytest.raises(Problem) as err:
            asyncio.run(core.run(lambda: None))
        assert err.value.kind == "busy"
    finally:
        core._admitted = 0


def test_logs_carry_no_patient_data(api, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="jdm_kg.service")
    _post(api, "/recommend", "fhir/muscle-predominant.json", FHIR)
    api.post("/recommend", content=b"@prefix P-SECRET", headers={"content-type": "text/turtle"})
    assert "POST /recommend 200" in caplog.text and "POST /recommend 400" in caplog.text
    for private in ("P-MUSCLE", "P-SECRET", "2012-02-03", "baricitinib"):
        assert private not in caplog.text


def test_openapi_document_lists_every_route(api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/health", "/guideline", "/validate", "/recommend", "/cds-services", "/cds-services/{service_id}",
            "/cds-services/{service_id}/feedback", "/sparql"} <= set(doc["paths"])


# ----------------------------------------------------------------------------- SPARQL

SELECT = """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
SELECT ?drug ?label WHERE { ?drug a jdm:Drug ; rdfs:label ?label } ORDER BY ?label"""


@pytest.mark.parametrize("accept", ["application/sparql-results+json", "application/sparql-results+xml", "text/csv",
                                    "text/tab-separated-values"])
def test_sparql_select_in_each_format(api, accept):
    response = api.get("/sparql", params={"query": SELECT}, headers={"accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(accept)
    if accept.endswith("json"):
        labels = [b["label"]["value"] for b in response.json()["results"]["bindings"]]
    elif accept.endswith("xml"):
        ns = {"s": "http://www.w3.org/2005/sparql-results#"}
        root = ET.fromstring(response.content)
        labels = [b.find("s:literal", ns).text for b in root.iterfind(".//s:binding[@name='label']", ns)]
    elif accept == "text/csv":
        labels = [row["label"] for row in csv.DictReader(io.StringIO(response.text))]
    else:
        lines = response.text.strip().splitlines()
        assert lines[0].split("\t") == ["?drug", "?label"]
        labels = [line.split("\t")[1].rsplit('"', 1)[0].lstrip('"') for line in lines[1:]]
    assert "rituximab" in labels and labels == sorted(labels)


def test_sparql_post_forms_ask_and_construct(api):
    form = api.post("/sparql", data={"query": SELECT}, headers={"accept": "application/sparql-results+json"})
    direct = api.post("/sparql", content=SELECT, headers={"content-type": "application/sparql-query",
                                                          "accept": "application/sparql-results+json"})
    assert form.json() == direct.json()
    ask = api.get("/sparql", params={"query": "ASK { ?s ?p ?o }"})
    assert ask.json()["boolean"] is True
    construct = api.get("/sparql", params={"query": "CONSTRUCT { ?d a <urn:x:Drug> } WHERE { ?d a "
                                                    "<https://w3id.org/jdm-kg/vocab#Drug> }"},
                        headers={"accept": "text/turtle"})
    assert construct.headers["content-type"].startswith("text/turtle")
    assert len(Graph().parse(data=construct.text, format="turtle")) >= 10


def test_sparql_answers_the_bundled_queries(api):
    answered = 0
    for name, path in sorted(bundled_queries().items()):
        response = api.post("/sparql", content=path.read_text(), headers={"content-type": "application/sparql-query"})
        assert response.status_code == 200, (name, response.text)
        answered += 1
    assert answered >= 5


@pytest.mark.parametrize("how, status, words", [
    ({"params": {"query": "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }"}}, 403, "SERVICE"),
    ({"params": {"query": "SELECT * FROM <http://example.org/g> WHERE { ?s ?p ?o }"}}, 403, "FROM"),
    ({"params": {"query": "LOAD <http://example.org/data.ttl>"}}, 403, "read-only"),
    ({"params": {"query": "INSERT DATA { <urn:a> <urn:b> <urn:c> }"}}, 403, "read-only"),
    ({"params": {"query": "DROP ALL"}}, 403, "read-only"),
    ({"params": {"update": "INSERT DATA { <urn:a> <urn:b> <urn:c> }"}}, 403, "read-only"),
    ({"content": "CLEAR ALL", "headers": {"content-type": "application/sparql-update"}, "method": "POST"}, 403,
     "read-only"),
    ({"data": {"update": "LOAD <http://example.org/x>"}, "method": "POST"}, 403, "read-only"),
    ({"params": {"query": "SELECT * WHERE { ?s ?p ?o }", "default-graph-uri": "http://example.org/g"}}, 403,
     "default-graph-uri"),
    ({"params": {"query": "SELEKT nonsense"}}, 400, "not a valid SPARQL query"),
    ({"params": {}}, 400, "no query"),
])
def test_sparql_refusals(api, how, status, words):
    how = dict(how)
    method = how.pop("method", "GET")
    response = api.request(method, "/sparql", **how)
    assert words in check_problem(response, status)["detail"]


def test_sparql_row_limit_and_patient_data():
    limited = client(sparql_max_rows=3, data=(str(EXAMPLES / "skin-predominant.ttl"),
                                              str(EXAMPLES / "fhir" / "muscle-predominant.json")))
    response = limited.get("/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"},
                           headers={"accept": "application/sparql-results+json"})
    assert len(response.json()["results"]["bindings"]) == 3
    assert response.headers["x-jdm-kg-truncated"].startswith("true")
    ids = limited.get("/sparql", params={"query": "SELECT ?id WHERE { ?p <https://w3id.org/jdm-kg/vocab#patientId> ?id }"},
                      headers={"accept": "text/csv"})
    assert set(ids.text.split()) >= {"id", "P-SKIN", "P-MUSCLE"}


# ----------------------------------------------------------------------------- web page (no browser)

MUSCLE_FORM = {
    "patientId": "WEB-1", "birthDate": "2012-02-03", "sex": "male", "recordDate": "2026-11-01",
    "weightKg": "42.5", "heightCm": "152", "measuredOn": "2026-10-28",
    "manifestation": "https://w3id.org/jdm-kg/guideline/MuscleWeakness",
    "predominant": "https://w3id.org/jdm-kg/guideline/MuscleWeakness",
    "drug0": "https://w3id.org/jdm-kg/guideline/baricitinib", "start0": "2025-11-01", "end0": "2026-09-20",
    "outcome0": "https://w3id.org/jdm-kg/vocab#LossOfResponse",
    "drug1": "https://w3id.org/jdm-kg/guideline/methotrexate", "start1": "2023-06-01",
    "outcome1": "https://w3id.org/jdm-kg/vocab#Ongoing",
    "screen-HepatitisB": "https://w3id.org/jdm-kg/vocab#Negative", "screenDate-HepatitisB": "2026-10-01",
    "screen-HepatitisC": "https://w3id.org/jdm-kg/vocab#Negative", "screenDate-HepatitisC": "2026-10-01",
}


def test_web_form_gives_the_same_recommendation_as_the_file(api):
    page = api.get("/")
    assert page.status_code == 200 and 'for="weightKg"' in page.text and "cdn" not in page.text.lower()
    response = api.post("/", data=MUSCLE_FORM, files={"file": ("", b"")})
    assert response.status_code == 200, response.text
    first = response.text.index('class="option')
    assert "rituximab" in response.text[first:first + 800] and "502.3 mg" in response.text


def test_web_upload_and_form_errors(api):
    upload = api.post("/", files={"file": ("skin.ttl", (EXAMPLES / "skin-predominant.ttl").read_bytes())})
    assert upload.status_code == 200 and "P-SKIN" in upload.text
    broken = api.post("/", files={"file": ("bad.ttl", b"@prefix broken")})
    assert broken.status_code == 400 and "not valid turtle" in broken.text
    wrong = api.post("/", files={"file": ("x.pdf", b"%PDF")})
    assert wrong.status_code == 422
    bad = api.post("/", data={**MUSCLE_FORM, "birthDate": "", "weightKg": "heavy", "drug0": "urn:x:poison"},
                   files={"file": ("", b"")})
    assert bad.status_code == 422
    for words in ("Age or birth date", "Weight: &#39;heavy&#39; is not a number", "not one of the guideline"):
        assert words in bad.text
    assert "<script>" not in api.post("/", data={**MUSCLE_FORM, "weightKg": "<script>"}, files={"file": ("", b"")}).text


def test_static_and_docs_are_served(api):
    assert api.get("/static/style.css").status_code == 200
    docs = api.get("/docs/index.html")
    assert docs.status_code == 200 and "<html" in docs.text.lower()
    gone = api.get("/report/not-a-token")
    assert gone.status_code == 404


def test_identical_requests_are_answered_from_the_result_cache():
    cached = client(result_cache=4)
    before = cached.get("/health").json()["cacheHits"]
    first = _post(cached, "/recommend", "fhir/skin-predominant.json", FHIR).json()
    second = _post(cached, "/recommend", "fhir/skin-predominant.json", FHIR).json()
    assert first == second
    assert cached.get("/health").json()["cacheHits"] == before + 1
    uncached = client(result_cache=0)
    _post(uncached, "/recommend", "fhir/skin-predominant.json", FHIR)
    _post(uncached, "/recommend", "fhir/skin-predominant.json", FHIR)
    assert uncached.get("/health").json()["cacheHits"] == 0


# ----------------------------------------------------------------------------- the command


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jdm_kg_serve_starts_answers_and_stops(tmp_path):
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jdm_kg.cli", "serve", "--port", str(port), "--insecure-dev"],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        assert health.json()["authentication"] == "off (insecure dev)"
        answer = httpx.post(f"http://127.0.0.1:{port}/recommend", content=(EXAMPLES / "skin-predominant.ttl").read_bytes(),
                            headers={"content-type": "text/turtle", "accept": "text/markdown"}, timeout=60)
        assert answer.status_code == 200 and "P-SKIN" in answer.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "NOT authenticated" in err  # --insecure-dev says so loudly
    assert "Traceback" not in err
    assert "P-SKIN" not in err  # the log: request id, route, status, duration only


def test_jdm_kg_serve_refuses_an_unusable_jwks(tmp_path):
    from helpers import run

    bad = tmp_path / "jwks.json"
    bad.write_text('{"keys": []}')
    port = _free_port()
    proc = run("serve", "--jwks", str(bad), "--port", str(port), "--audience", f"http://127.0.0.1:{port}",
               tmp_path=tmp_path)
    assert proc.returncode == 2 and "--jwks" in proc.stderr


def test_jdm_kg_serve_with_a_jwks_needs_its_public_url(tmp_path):
    """The JWT audience is the configured service URL, never the Host header a request names:
    with --jwks, --audience is required (exit 2 naming it, before anything starts)."""
    from helpers import run
    from service_support import jwks_file

    proc = run("serve", "--jwks", str(jwks_file(tmp_path)), "--port", str(_free_port()), tmp_path=tmp_path)
    assert proc.returncode == 2 and "--audience" in proc.stderr and "Host header" in proc.stderr


def test_security_headers_and_cors():
    plain = client()
    page = plain.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in plain.get("/cds-services", headers={"origin": "https://x.org"}).headers
    open_to = client(cors_origins=("https://sandbox.cds-hooks.org",))
    preflight = open_to.options("/cds-services/jdm-kg-patient-view", headers={
        "origin": "https://sandbox.cds-hooks.org", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://sandbox.cds-hooks.org"
    other = open_to.get("/cds-services", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_sparql_time_limit():
    hurried = client(sparql_timeout=1e-9)
    response = hurried.get("/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"})
    assert "longer than" in check_problem(response, 503)["detail"]
    assert response.headers["retry-after"] == "1"


def test_sparql_query_too_long(api):
    response = api.post("/sparql", content="ASK {}" + " " * 100_001, headers={"content-type": "application/sparql-query"})
    assert "limit is 100000" in check_problem(response, 400)["detail"]


def test_concurrent_mixed_requests_all_succeed():
    """Parsing, cache look-ups, SPARQL and rendering run outside the evaluation lock: many at once
    through the ASGI transport, each answer right."""
    import asyncio

    import httpx
    from service_support import app, hook_request

    asgi = app(max_concurrent=64, result_cache=0)
    fhir = (EXAMPLES / "fhir" / "muscle-predominant.json").read_bytes()
    turtle = (EXAMPLES / "skin-predominant.ttl").read_bytes()

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://testserver") as http:
            calls = []
            for i in range(8):
                calls.append(http.post("/recommend", content=fhir, headers={"content-type": FHIR}))
                calls.append(http.post("/recommend", content=turtle, headers={"content-type": "text/turtle",
                                                                             "accept": "text/markdown"}))
                calls.append(http.post("/cds-services/jdm-kg-patient-view",
                                       json=hook_request("patient-view", "ild-predominant.json")))
                calls.append(http.get("/sparql", params={"query": SELECT}))
                calls.append(http.post("/recommend", content=b"@prefix broken", headers={"content-type": "text/turtle"}))
            return await asyncio.gather(*calls)

    responses = asyncio.run(main())
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 400] * 8
    for i in range(8):
        muscle, skin, card, rows, _ = responses[5 * i: 5 * i + 5]
        assert muscle.json()["results"][0]["options"][0]["label"] == "rituximab"
        assert "P-SKIN" in skin.text
        assert card.json()["cards"][0]["indicator"] == "critical"
        assert len(rows.json()["results"]["bindings"]) >= 10


def test_an_app_served_again_after_its_lifespan_ended_still_answers():
    """The same app served twice (a test client entering and leaving it, then another): the
    second lifespan reopens what the first closed (was: 'cannot schedule new futures after
    shutdown', an internal error on every evaluation)."""
    from service_support import hook_request

    first = client(today=AS_OF, result_cache=0)
    with first:
        assert first.get("/health").status_code == 200
    for _ in range(2):
        with client(today=AS_OF, result_cache=0) as again:
            answer = again.post("/cds-services/jdm-kg-patient-view", json=hook_request("patient-view", "muscle-predominant.json"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["cards"]
    after = client(today=AS_OF, result_cache=0)  # and outside any lifespan, as most tests use it
    answer = after.post("/cds-services/jdm-kg-patient-view", json=hook_request("patient-view", "muscle-predominant.json"))
    assert answer.status_code == 200, answer.text
