"""Issue 20: three answers (applies, does not apply, cannot tell) in every output; words as an EHR
writes them (stop reasons, result words, brand names, condition names) read from the graph's
labels, never blocking a record; hepatitis B as two tests; predominance read from a note or a
severity, each a jdm-kg policy the report names."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from helpers import run

from jdm_kg import load_patient_file
from jdm_kg.reasoning.recommend import recommend_graph

ROOT = Path(__file__).resolve().parent.parent
EHR = ROOT / "tests" / "fixtures" / "ehr"
UNKNOWN = EHR / "25-contained-unknown-medication-cannot-tell.json"
AS_OF = date(2026, 11, 1)
RX, SCT, LOINC = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://snomed.info/sct", "http://loinc.org"


def _bundle(*resources: dict, patient: str = "t1") -> dict:
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r} for i, r in enumerate([
        {"resourceType": "Patient", "id": patient, "birthDate": "2014-01-01", "gender": "female"},
        {"resourceType": "Condition", "id": "jdm", "code": {"coding": [{"system": SCT, "code": "1212005"}]},
         "subject": {"reference": f"Patient/{patient}"}},
        *resources], start=1)]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-11-01T00:00:00Z", "entry": entries}


def _statement(sid: str, medication: dict, status: str = "stopped", reason: str | None = None,
               start: str = "2025-01-01", end: str | None = "2026-01-01") -> dict:
    out = {"resourceType": "MedicationStatement", "id": sid, "status": status, "medicationCodeableConcept": medication,
           "subject": {"reference": "Patient/t1"}, "effectivePeriod": {"start": start, **({"end": end} if end else {})}}
    if reason:
        out["statusReason"] = [{"text": reason}]
    return out


def _condition(cid: str, code: dict, **more: object) -> dict:
    return {"resourceType": "Condition", "id": cid, "code": code, "subject": {"reference": "Patient/t1"}, **more}


def _lab(oid: str, loinc: str, **value: object) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": "Patient/t1"}, "effectiveDateTime": "2026-10-01", **value}


def _result(tmp_path: Path, bundle: dict, name: str = "t.json"):
    path = tmp_path / name
    path.write_text(json.dumps(bundle), encoding="utf-8")
    graph = load_patient_file(path)
    report, results = recommend_graph(graph, str(path), today=AS_OF)
    return graph, report, results[0]


SKIN = _condition("skin", {"text": "Heliotrope rash"})


# ---------------------------------------------------------------------------- every output


def test_an_unknown_possible_jak_inhibitor_is_cannot_tell_in_every_output_format(tmp_path):
    text = run("recommend", str(UNKNOWN), tmp_path=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1].startswith("Patient MRN-p25") and lines[2].startswith("! Cannot tell whether the guideline applies")
    assert lines[3].startswith("! Needed: Is 'Jyseleca 200 mg tablet' a JAK inhibitor")
    assert "if so: #1 rituximab" in text.stdout

    markdown = run("recommend", str(UNKNOWN), "--format", "markdown", tmp_path=tmp_path).stdout
    assert "\n> **Cannot tell whether the guideline applies" in markdown.split("\n### ", 1)[0]

    data = json.loads(run("recommend", str(UNKNOWN), "--format", "json", tmp_path=tmp_path).stdout)[0]
    assert data["applicability"] == "cannot-tell" and data["applicable"] is False
    assert data["applicabilityText"].startswith("Cannot tell whether the guideline applies")
    [needed] = data["dataNeeded"]
    assert needed["datum"] == "medication" and needed["resourceType"] == "MedicationStatement"
    assert "Jyseleca" in needed["question"] and "rituximab ranks first" in needed["changes"]
    statuses = {o["option"].rsplit("/", 1)[1]: (o["status"], o.get("ifApplies")) for o in data["options"]}
    assert statuses["rituximab"] == ("cannot-tell", "offered")

    fhir = json.loads(run("recommend", str(UNKNOWN), "--format", "fhir", tmp_path=tmp_path).stdout)
    kinds = [e["resource"]["resourceType"] for e in fhir["entry"]]
    assert "MedicationRequest" not in kinds  # nothing is proposed on a datum jdm-kg could not read
    response = next(e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "GuidanceResponse")
    assert response["status"] == "data-required"
    assert response["dataRequirement"] == [{"type": "MedicationStatement", "mustSupport": ["medication", "status", "statusReason"]}]
    assert any(n["text"].startswith("Data needed: Is 'Jyseleca 200 mg tablet'") for n in response["note"])
    outcome = next(e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    assert any(i["code"] == "incomplete" and "cannot tell" in i["diagnostics"] for i in outcome["issue"])

    prov = run("recommend", str(UNKNOWN), "--format", "turtle", tmp_path=tmp_path).stdout
    assert 'jdm:status "cannot tell"' in prov


def test_a_running_summary_counts_cannot_tell(tmp_path):
    proc = run("recommend", str(UNKNOWN), str(EHR / "31-jak-ongoing-no-failure.json"), "--summary", "--format", "none",
               tmp_path=tmp_path)
    assert "guideline does not apply: 1" in proc.stderr + proc.stdout
    assert "cannot tell (data needed): 1" in proc.stderr + proc.stdout


# ---------------------------------------------------------------------------- words as written


@pytest.mark.parametrize("reason, outcome", [
    ("lack of efficacy", "InadequateResponse"), ("Insufficient response", "InadequateResponse"),
    ("no response", "InadequateResponse"), ("PRIMARY NON-RESPONSE", "InadequateResponse"),
    ("treatment failure", "InadequateResponse"), ("secondary failure", "LossOfResponse"),
    ("flare on treatment", "LossOfResponse"), ("lost response", "LossOfResponse"),
    ("adverse event", "Intolerance"), ("GI intolerance", "Intolerance"), ("not tolerated", "Intolerance"),
    ("course completed", "StoppedOtherReason"), ("tapered off", "StoppedOtherReason"),
    ("remission", "StoppedOtherReason"), ("switched to MMF for ILD", "StoppedOtherReason"),
    ("patient preference", "StoppedOtherReason"), ("cost", "StoppedOtherReason"), ("insurance", "StoppedOtherReason"),
])
def test_the_sheets_stop_reasons_are_read_from_the_graphs_labels(tmp_path, reason, outcome):
    graph, report, result = _result(tmp_path, _bundle(SKIN, _statement(
        "m", {"coding": [{"system": RX, "code": "1357536"}]}, reason=reason)))
    assert report.conforms
    assert [e.outcome.rsplit("#", 1)[1] for e in result.history if e.outcome] == [outcome]
    assert result.state == ("applies" if outcome != "StoppedOtherReason" else "does-not-apply")


@pytest.mark.parametrize("text, drug", [
    ("Olumiant 2 mg tablet", "baricitinib"), ("XELJANZ 5 MG TABS", "tofacitinib"), ("Rinvoq 15 mg", "upadacitinib"),
    ("Jakavi 5 mg Tabletten", "ruxolitinib"), ("Truxima 500 mg/50 mL", "rituximab"), ("MabThera 500 mg", "rituximab"),
    ("Inflectra 100 mg vial", "infliximab"), ("Hyrimoz 40 mg pen", "adalimumab"), ("Enbrel 50 mg", "etanercept"),
    ("RoActemra 162 mg", "tocilizumab"), ("Immune globulin IV (Privigen)", "ivig"), ("Metoject 15 mg", "methotrexate"),
])
def test_brand_and_biosimilar_names_with_strength_and_form_are_read_as_their_drug(tmp_path, text, drug):
    graph, report, result = _result(tmp_path, _bundle(SKIN, _statement("m", {"text": text}, reason="side effects")))
    assert [e.drug.rsplit("/", 1)[1] for e in result.history] == [drug]
    assert any(f"matched {text!r} to" in i.message for i in report.issues)  # read among other words: said


@pytest.mark.parametrize("text, drug", [("MabThera", "rituximab"), ("MABTHERA", "rituximab"), ("Gamunex-C", "ivig"),
                                        ("RoActemra", "tocilizumab")])
def test_a_brand_name_alone_is_read_whatever_its_case(tmp_path, text, drug):
    graph, report, result = _result(tmp_path, _bundle(SKIN, _statement("m", {"text": text}, reason="side effects")))
    assert [e.drug.rsplit("/", 1)[1] for e in result.history] == [drug]


def test_an_unread_reason_blocks_nothing_and_for_a_co_medication_changes_nothing(tmp_path):
    graph, report, result = _result(tmp_path, _bundle(
        SKIN, _statement("jak", {"coding": [{"system": RX, "code": "1357536"}]}, reason="lack of efficacy"),
        _statement("pred", {"text": "prednisolone 10 mg"}, reason="moved house"),
        _statement("mtx", {"coding": [{"system": RX, "code": "6851"}]}, reason="family holiday")))
    assert report.conforms and result.state == "applies"
    assert sum("names no treatment outcome jdm-kg reads" in i.message for i in report.issues) == 2


def test_a_jak_inhibitor_stopped_for_an_unread_reason_is_cannot_tell_and_asks_why(tmp_path):
    graph, report, result = _result(tmp_path, _bundle(SKIN, _statement(
        "jak", {"coding": [{"system": RX, "code": "2047232"}]}, reason="family moved abroad")))
    assert report.conforms and result.state == "cannot-tell"
    assert result.data_needed[0].question.startswith("Why was baricitinib stopped (2025-01-01 to 2026-01-01)? "
                                                     "The stop reason 'family moved abroad' names no outcome")


@pytest.mark.parametrize("value, result", [
    ({"valueString": "NON-REACTIVE"}, "Negative"), ({"valueString": "Not Detected"}, "Negative"),
    ({"valueString": "neg"}, "Negative"), ({"valueCodeableConcept": {"text": "Non-reactive"}}, "Negative"),
    ({"interpretation": [{"text": "negative"}]}, "Negative"), ({"valueString": "Reactive"}, "Positive"),
    ({"valueString": "DETECTED"}, "Positive"), ({"interpretation": [{"text": "Pos"}]}, "Positive"),
    ({"valueString": "Borderline"}, "Indeterminate"), ({"valueCodeableConcept": {"text": "equivocal"}}, "Indeterminate"),
])
def test_result_words_in_any_case_and_field(tmp_path, value, result):
    graph, report, _ = _result(tmp_path, _bundle(SKIN, _lab("hcv", "13955-0", **value)))
    from jdm_kg.knowledge.guideline import JDM

    assert [str(o).rsplit("#", 1)[1] for o in graph.objects(None, JDM.result)] == [result]


def test_a_turtle_record_naming_a_brand_iri_or_a_name_gets_the_drug_with_a_note(tmp_path):
    path = tmp_path / "brand.ttl"
    path.write_text("""@prefix jdm: <https://w3id.org/jdm-kg/vocab#> . @prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<https://example.org/p/B1> a jdm:Patient ; jdm:patientId "B1" ; jdm:birthDate "2014-01-01"^^xsd:date ;
  jdm:recordDate "2026-11-01"^^xsd:date ; jdm:sex "male" ; jdm:diagnosis jdmg:JuvenileDermatomyositis ;
  jdm:hasManifestation [ jdm:manifestation jdmg:MuscleWeakness ; jdm:predominant true ] ;
  jdm:treatmentEpisode [ jdm:drug jdmg:Xeljanz ; jdm:startDate "2025-01-01"^^xsd:date ;
                         jdm:endDate "2025-09-01"^^xsd:date ; jdm:outcome "lack of efficacy" ] ,
                       [ jdm:drug "Olumiant 4 mg tablet" ; jdm:startDate "2025-10-01"^^xsd:date ; jdm:outcome jdm:Ongoing ] .
""", encoding="utf-8")
    report, results = recommend_graph(load_patient_file(path), str(path), today=AS_OF)
    assert report.conforms, [i.message for i in report.issues]
    said = [i.message for i in report.issues]
    assert "drug Xeljanz is read as tofacitinib (a name of it in the guideline graph); name it jdmg:tofacitinib." in said
    assert "matched 'Olumiant 4 mg tablet' to baricitinib by name" in said
    assert "stop reason 'lack of efficacy' read as inadequate response" in said
    assert results[0].state == "applies"
    assert "Note: baricitinib is still recorded as ongoing (from 2025-10-01)" in results[0].applicability


def test_text_only_conditions_are_read_from_labels_and_synonyms_with_a_note(tmp_path):
    graph, report, result = _result(tmp_path, _bundle(
        _condition("c1", {"text": "Proximal muscle weakness"}), _condition("c2", {"text": "Gottron's papules"}),
        _condition("c3", {"text": "no calcinosis"}),
        _statement("jak", {"coding": [{"system": RX, "code": "1357536"}]}, reason="side effects")))
    assert sorted(f.label for f in result.features) == ["muscle weakness", "skin disease"]
    said = " ".join(i.message for i in report.issues)
    assert "matched 'Proximal muscle weakness' to muscle weakness by name" in said
    assert "matched \"Gottron's papules\" to skin disease by name" in said
    assert "no coding (text 'no calcinosis' only)" in said  # not read as calcinosis: a whole name only


# ---------------------------------------------------------------------------- predominance


def test_a_note_calls_a_feature_predominant_and_a_negated_one_does_not(tmp_path):
    graph, report, result = _result(tmp_path, _bundle(
        _condition("c1", {"text": "heliotrope rash"}, note=[{"text": "not predominant"}]),
        _condition("c2", {"text": "proximal muscle weakness"}, note=[{"text": "Muscle disease predominates (CMAS 30)"}]),
        _statement("jak", {"coding": [{"system": RX, "code": "1357536"}]}, reason="side effects")))
    assert [(f.label, f.predominant) for f in result.features] == [("muscle weakness", True), ("skin disease", False)]
    assert result.features[0].text() == ("muscle weakness (predominant: jdm-kg policy: a note that calls a "
                                         "manifestation predominant marks it)")
    assert "a note that calls a manifestation predominant marks it" in [p.label for p in result.policies]


SEVERE = {"coding": [{"system": SCT, "code": "24484000", "display": "Severe"}]}
MILD = {"coding": [{"system": SCT, "code": "255604002", "display": "Mild"}]}


def test_the_one_most_severe_feature_is_predominant_unless_the_run_says_otherwise(tmp_path):
    bundle = _bundle(_condition("c1", {"text": "heliotrope rash"}, severity=MILD),
                     _condition("c2", {"coding": [{"system": SCT, "code": "233703007"}]}, severity=SEVERE),
                     _statement("jak", {"coding": [{"system": RX, "code": "1357536"}]}, reason="side effects"))
    graph, report, result = _result(tmp_path, bundle)
    assert [f.label for f in result.features if f.predominant] == ["interstitial lung disease (ILD)"]
    assert any(o.rank == 1 and o.label == "rituximab" for o in result.options)
    path = tmp_path / "t.json"
    proc = run("recommend", str(path), "--predominant", "SkinDisease", "--format", "json", tmp_path=tmp_path)
    features = json.loads(proc.stdout)[0]["features"]
    assert [f["manifestation"] for f in features if f["predominant"]] == ["skin disease"]  # the run's word counts


# ---------------------------------------------------------------------------- hepatitis B


def test_hbsag_alone_leaves_hepatitis_b_required_anti_hbc(tmp_path):
    _, _, result = _result(tmp_path, _bundle(SKIN, _lab("hbs", "5196-1", valueString="Negative"),
                                             _statement("j", {"coding": [{"system": RX, "code": "1357536"}]}, reason="no response")))
    gate = next(g for g in result.screening if g.condition_label == "hepatitis B")
    assert gate.state == "required"
    assert "HBsAg negative 2026-10-01; required: anti-HBc" in gate.text
    assert "jdm-kg policy: hepatitis B screening is HBsAg and anti-HBc" in gate.text


def test_a_positive_anti_hbc_blocks_like_a_positive_hbsag(tmp_path):
    _, _, result = _result(tmp_path, _bundle(SKIN, _lab("hbs", "5196-1", valueString="Negative"),
                                             _lab("hbc", "13952-7", valueString="Reactive"),
                                             _statement("j", {"coding": [{"system": RX, "code": "1357536"}]}, reason="no response")))
    assert next(g for g in result.screening if g.condition_label == "hepatitis B").state == "blocking"
    assert all(o.status == "blocked" for o in result.options if o.ranked)


def test_a_hepatitis_b_result_of_unknown_test_counts_as_neither(tmp_path):
    path = tmp_path / "hb.jsonld"
    path.write_text(json.dumps({
        "@context": "https://w3id.org/jdm-kg/context.jsonld", "id": "https://example.org/p/H1", "type": "Patient",
        "patientId": "H1", "birthDate": "2014-01-01", "recordDate": "2026-11-01", "sex": "female",
        "diagnosis": "JuvenileDermatomyositis", "manifestations": [{"manifestation": "SkinDisease", "predominant": True}],
        "treatments": [{"drug": "tofacitinib", "startDate": "2025-01-01", "endDate": "2026-01-01", "outcome": "no response"}],
        "screenings": [{"screenedFor": "HepatitisB", "result": "Negative", "date": "2026-10-01"},
                       {"screenedFor": "HepatitisB", "screeningTest": "HBsAgTest", "result": "Negative", "date": "2026-10-01"}]}),
        encoding="utf-8")
    report, results = recommend_graph(load_patient_file(path), str(path), today=AS_OF)
    gate = next(g for g in results[0].screening if g.condition_label == "hepatitis B")
    assert gate.state == "required"
    assert "required: anti-HBc; test unknown, counted as neither: negative 2026-10-01" in gate.text


# ---------------------------------------------------------------------------- contradictions


def test_an_option_the_record_contradicts_itself_about_is_cannot_tell(tmp_path):
    rtx = {"coding": [{"system": RX, "code": "121191"}]}
    _, report, result = _result(tmp_path, _bundle(
        SKIN, _statement("j", {"coding": [{"system": RX, "code": "1357536"}]}, reason="no response"),
        _statement("r1", rtx, status="active", start="2025-06-01", end=None),
        _statement("r2", rtx, reason="side effects", start="2025-06-01", end="2026-02-01")))
    assert result.state == "applies"
    rituximab = next(o for o in result.options if o.label == "rituximab")
    assert rituximab.status == "cannot-tell" and rituximab.if_applies is None
    assert rituximab.summary.startswith("the record contradicts itself: ")
    assert any(n.text.startswith("Contradictory record for rituximab") for n in result.notices)


def test_a_new_course_after_another_ended_is_no_contradiction(tmp_path):
    tofa = {"coding": [{"system": RX, "code": "1357536"}]}
    _, _, result = _result(tmp_path, _bundle(
        SKIN, _statement("a", tofa, reason="side effects", start="2024-01-01", end="2024-06-01"),
        _statement("b", tofa, status="active", start="2025-01-01", end=None)))
    assert result.state == "applies" and not any("Contradictory" in n.text for n in result.notices)
