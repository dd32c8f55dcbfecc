"""The CDS Hooks service and the command line give the same answer for the same patient data
(issue 20): the EHR corpus bundles split into the prefetch an EHR sends for the discovery
document's templates (a searchset per key; the Medications a statement or order points to come
with it by ``_include``, an OperationOutcome with the search) give, through the service, the same
result as the bundle read as a file; a client that ignores ``_include`` gets the same drug read from
the reference's display, and the report says so; "cannot tell" is a warning card, never no card."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from pathlib import Path

import pytest
from service_support import check_card, check_response, client

from jdm_kg import load_patient_file
from jdm_kg.outputs.report import results_text
from jdm_kg.reasoning.recommend import recommend_graph
from jdm_kg.service import cds_hooks

ROOT = Path(__file__).resolve().parent.parent
EHR = ROOT / "tests" / "fixtures" / "ehr"
AS_OF = date(2026, 11, 1)  # the corpus bundles' timestamp, and the test service's "today"
PV = "/cds-services/jdm-kg-patient-view"
KEYS = {"Condition": "conditions", "Observation": "observations", "MedicationStatement": "medicationStatements",
        "MedicationRequest": "medicationRequests"}
# an included Medication, contained or separate; text-only orders and conditions; statuses and a running JAK
# inhibitor; a Medication left out and an OperationOutcome; an unknown contained medication ("cannot tell").
# (Not the IPS document: it refers to its Patient by urn:uuid, as a document does and a server search does not.)
PARITY = ["22-epic-searchset-included-medication-brand", "23-cerner-text-orders-text-conditions-quantiferon",
          "26-medicationrequest-statuses-running-jak", "33-unit-slip-weight-missing-medication-withheld-results",
          "25-contained-unknown-medication-cannot-tell", "01-searchset-rxnorm-contained-text-reason"]


def _prefetch(name: str, include: bool = True) -> tuple[str, dict]:
    """(patientId, prefetch) for the discovery templates: the Patient, and a searchset per key; the
    medication searches carry the Medications their resources point to (search mode include)
    unless ``include`` is False, and the first search the bundle's OperationOutcomes."""
    bundle = json.loads((EHR / f"{name}.json").read_text(encoding="utf-8"))
    patient, by_key, medications, outcomes = None, {k: [] for k in KEYS.values()}, {}, []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "Patient":
            patient = resource
        elif kind == "Medication":
            medications[entry["fullUrl"]] = medications[f"Medication/{resource['id']}"] = entry
        elif kind == "OperationOutcome":
            outcomes.append({**entry, "search": {"mode": "outcome"}})
        elif kind in KEYS:
            by_key[KEYS[kind]].append({**entry, "search": {"mode": "match"}})
    assert patient is not None
    for key in ("medicationStatements", "medicationRequests"):
        refs = {e["resource"].get("medicationReference", {}).get("reference") for e in by_key[key]}
        if include:
            by_key[key] += [{**medications[r], "search": {"mode": "include"}} for r in sorted(r for r in refs if r in medications)]
    by_key["conditions"] += outcomes
    prefetch = {"patient": patient}
    prefetch.update({key: {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
                     for key, entries in by_key.items()})
    return patient["id"], prefetch


def _comparable(result) -> dict:
    data = result.as_dict()
    for key in ("source", "patient"):  # the file name, and the Patient's fullUrl (a prefetch 'patient' has none)
        data.pop(key)
    for issue in data["issues"]:  # the line and the entry's number in the file read (the bundle made from the
        issue.pop("source_line", None)  # prefetch has its own lines, and lists statements before requests)
        issue["entry"] = re.sub(r"^(treatment|screening result) \d+ ", r"\1 ", issue.get("entry") or "")
    return data


def _via_prefetch(tmp_path: Path, name: str, include: bool = True):
    patient_id, prefetch = _prefetch(name, include)
    path = tmp_path / f"{name}-prefetch.json"
    path.write_text(cds_hooks.prefetch_bundle(prefetch, patient_id, AS_OF), encoding="utf-8")
    return recommend_graph(load_patient_file(path), str(path), today=AS_OF)[1][0]


def _from_file(name: str):
    path = EHR / f"{name}.json"
    return recommend_graph(load_patient_file(path), str(path), today=AS_OF)[1][0]


def test_the_discovery_prefetch_includes_the_medication_a_statement_or_order_points_to():
    templates = cds_hooks.discovery()["services"][0]["prefetch"]
    assert templates["medicationStatements"].endswith("&_include=MedicationStatement:medication")
    assert templates["medicationRequests"].endswith("&_include=MedicationRequest:medication")


@pytest.mark.parametrize("name", PARITY)
def test_the_service_reads_the_prefetch_as_the_cli_reads_the_file(tmp_path, name):
    assert _comparable(_via_prefetch(tmp_path, name)) == _comparable(_from_file(name))


def test_without_the_included_medication_the_drug_is_read_from_the_display_and_the_report_says_so(tmp_path):
    name = "22-epic-searchset-included-medication-brand"
    without = _via_prefetch(tmp_path, name, include=False)
    assert without.state == "applies" and [f["drug"] for f in without.jak_failures] == ["baricitinib"]
    said = " ".join(i.message for i in without.issues)
    assert "'Medication/med-olumiant' is not a Medication with a code in this file: read from the reference's display" in said
    assert "_include=MedicationRequest:medication" in said


def _hook(name: str) -> dict:
    patient_id, prefetch = _prefetch(name)
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": "https://ehr.invalid/fhir",
            "context": {"userId": "Practitioner/1", "patientId": patient_id}, "prefetch": prefetch}


@pytest.fixture(scope="module")
def ehr():
    return client()


def test_cannot_tell_is_a_warning_card_with_the_datum_needed(ehr):
    response = ehr.post(PV, json=_hook("25-contained-unknown-medication-cannot-tell"))
    assert response.status_code == 200, response.text
    body = response.json()
    check_response(body)
    [card] = body["cards"]
    check_card(card)
    assert card["indicator"] == "warning" and "suggestions" not in card
    assert card["summary"].startswith("JDM guideline: cannot tell yet. Is 'Jyseleca 200 mg tablet' a JAK inhibitor")
    assert "Needed: Is 'Jyseleca 200 mg tablet' a JAK inhibitor" in card["detail"]
    assert "if so: #1 rituximab" in card["detail"]
    # a summary a clinician reads: cut at a word, never mid-word; the detail at most 15 lines, no
    # command-line hints and no integration notes (those are in the report the link opens)
    assert not card["summary"].endswith("\u2026") or card["summary"][-2] not in "abcdefghijklmnopqrstuvwxyz("
    lines = card["detail"].splitlines()
    assert len(lines) <= cds_hooks.DETAIL_LINES and lines[-1].startswith("[Full report")
    assert "--details" not in card["detail"] and "importNote" not in card["detail"]


def _with_subjects(name: str, reference: str) -> dict:
    """The hook request for a corpus bundle whose resources name the patient by ``reference``
    (``{id}``: the patient's id) instead of ``Patient/{id}``."""
    request = _hook(name)
    patient_id = request["context"]["patientId"]
    for key, value in request["prefetch"].items():
        for entry in (value.get("entry") or []) if key != "patient" else []:
            for field in ("subject", "patient"):
                if isinstance(entry["resource"].get(field), dict):
                    entry["resource"][field]["reference"] = reference.format(id=patient_id)
    return request


def test_a_prefetch_naming_the_patient_by_absolute_url_gives_the_same_card(ehr):
    """A server's search returns [base]/Patient/id references: the same patient as Patient/id (was:
    every resource set aside, no card at all for a child with a JAK inhibitor failure)."""
    name = "22-epic-searchset-included-medication-brand"
    relative = ehr.post(PV, json=_hook(name)).json()["cards"]
    absolute = ehr.post(PV, json=_with_subjects(name, "https://ehr.example.org/fhir/Patient/{id}/_history/2")).json()
    assert relative and [(c["summary"], c["indicator"]) for c in absolute["cards"]] == [
        (c["summary"], c["indicator"]) for c in relative]


def test_a_prefetch_whose_resources_name_no_patient_of_the_request_is_a_warning_card(ehr):
    """Resources the service cannot link to the patient (a urn:uuid subject with no such entry): a
    warning card saying so, never a silent empty answer."""
    body = ehr.post(PV, json=_with_subjects("22-epic-searchset-included-medication-brand",
                                            "urn:uuid:d51ae51c-7276-4fe7-89d5-67bcf163a288")).json()
    check_response(body)
    [card] = body["cards"]
    check_card(card)
    assert card["indicator"] == "warning" and "not linked to this patient" in card["summary"]
    assert "urn:uuid:d51ae51c-7276-4fe7-89d5-67bcf163a288' is not a Patient in this file" in card["detail"]
    assert len(card["detail"].splitlines()) <= cds_hooks.DETAIL_LINES


@pytest.mark.parametrize("name", ["22-epic-searchset-included-medication-brand", "30-contradictory-jak-episodes",
                                  "31-jak-ongoing-no-failure"])
def test_the_card_is_the_one_the_file_gives(ehr, name):
    body = ehr.post(PV, json=_hook(name)).json()
    expected = cds_hooks.patient_view_cards(_from_file(name), "http://testserver", "http://testserver/report/x")
    assert [(c["summary"], c["indicator"]) for c in body["cards"]] == [(c["summary"], c["indicator"]) for c in expected]
    if name.startswith("31"):
        assert body["cards"] == []  # the guideline truly does not apply: no card


def test_the_markdown_of_a_cannot_tell_result_says_it_first():
    text = results_text([_from_file("30-contradictory-jak-episodes")], markdown=True)
    body = text.split("\n## ", 1)[1].splitlines()
    assert body[2].startswith("> **Cannot tell whether the guideline applies")
    assert body[4].startswith("> **Needed: Did tofacitinib fail?")


def test_order_select_for_a_guideline_drug_when_jdm_kg_cannot_tell_is_a_warning_card(ehr):
    request = _hook("25-contained-unknown-medication-cannot-tell")
    order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "121191", "display": "rituximab"}]},
             "subject": {"reference": f"Patient/{request['context']['patientId']}"}}
    request.update(hook="order-select")
    request["context"].update(selections=["MedicationRequest/draft-1"],
                              draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    body = ehr.post("/cds-services/jdm-kg-order-select", json=request).json()
    [card] = body["cards"]
    assert card["indicator"] == "warning" and "suggestions" not in card  # no dose proposed on an unsettled datum
    assert "cannot tell yet" in card["summary"]


def test_the_web_page_says_cannot_tell_and_what_is_needed(ehr):
    page = ehr.post("/", files={"file": ("unknown.json", (EHR / "25-contained-unknown-medication-cannot-tell.json").read_bytes())})
    assert page.status_code == 200
    assert 'class="applicability cannot-tell"' in page.text
    assert "<strong>Needed:</strong> Is &#39;Jyseleca 200 mg tablet&#39; a JAK inhibitor" in page.text
