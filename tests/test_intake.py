"""What every patient file goes through whatever its format (jdm_kg/inputs/intake.py): drugs outside
the guideline kept, misspellings caught, names read, the predominant feature settled, result and
reason codes read from the graph, and the messages that name the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run
from rdflib import Literal

from jdm_kg import load_patient_file, recommend_file, validate_file
from jdm_kg.knowledge.guideline import JDM, JDMG

ROOT = Path(__file__).resolve().parent.parent
SKIN_FHIR = ROOT / "examples" / "fhir" / "skin-predominant.json"
MISTAKES = ROOT / "tests" / "fixtures" / "jsonld" / "01-the-issue-mistakes.jsonld"

TURTLE = """@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .
@prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<https://example.org/p/X> a jdm:Patient ; jdm:patientId "X" ; jdm:birthDate "2013-01-01"^^xsd:date ;
  jdm:recordDate "2026-11-01"^^xsd:date ; jdm:sex "female" ; jdm:diagnosis jdmg:JuvenileDermatomyositis ;
  jdm:hasManifestation [ jdm:manifestation jdmg:SkinDisease {predominant}] ;
  jdm:treatmentEpisode [ jdm:drug jdmg:{drug} ; jdm:startDate "2025-09-01"^^xsd:date ; jdm:outcome jdm:Ongoing ] .
"""

JSONLD = {"@context": "https://w3id.org/jdm-kg/context.jsonld", "id": "https://example.org/p/X", "type": "Patient",
          "patientId": "X", "birthDate": "2013-01-01", "recordDate": "2026-11-01", "sex": "female",
          "diagnosis": "JuvenileDermatomyositis", "manifestations": [{"manifestation": "SkinDisease"}],
          "treatments": [{"drug": "DRUG", "startDate": "2025-09-01", "outcome": "Ongoing"}]}


def _fhir(drug_text: str, predominant: bool | None = None) -> dict:
    condition = {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/X"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1212005"}]}}
    skin = {"resourceType": "Condition", "id": "c3", "subject": {"reference": "Patient/X"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.4"}]}}
    if predominant is not None:
        skin["extension"] = [{"url": "https://w3id.org/jdm-kg/fhir/StructureDefinition/predominant", "valueBoolean": predominant}]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-11-01T00:00:00Z", "entry": [
        {"fullUrl": "https://example.org/p/X", "resource": {"resourceType": "Patient", "id": "X", "birthDate": "2013-01-01",
                                                             "gender": "female"}},
        {"resource": condition}, {"resource": skin},
        {"resource": {"resourceType": "MedicationStatement", "id": "ms1", "status": "active", "subject": {"reference": "Patient/X"},
                      "medicationCodeableConcept": {"text": drug_text}, "effectivePeriod": {"start": "2025-09-01"}}}]}


def _write_all(tmp_path: Path, drug: str, predominant: bool | None = None) -> list[Path]:
    flag = "" if predominant is None else f"; jdm:predominant {str(predominant).lower()} "
    ttl = tmp_path / "x.ttl"
    ttl.write_text(TURTLE.replace("{drug}", drug).replace("{predominant}", flag), encoding="utf-8")
    record = json.loads(json.dumps(JSONLD).replace("DRUG", drug))
    if predominant is not None:
        record["manifestations"][0]["predominant"] = predominant
    jsonld = tmp_path / "x.jsonld"
    jsonld.write_text(json.dumps(record), encoding="utf-8")
    fhir = tmp_path / "x.json"
    fhir.write_text(json.dumps(_fhir(drug, predominant)), encoding="utf-8")
    return [ttl, jsonld, fhir]


def _drug_issues(path: Path) -> list[tuple]:
    return [(i.severity, i.field, i.value, i.message, i.entry) for i in validate_file(path).issues
            if i.field == "treatmentEpisode.drug"]


def test_a_drug_outside_the_guideline_is_kept_with_the_same_warning_in_every_format(tmp_path):
    """The same warning, its advice written as each format names a drug (issue 23: FHIR users are
    not told to write jdmg:tofacitinib)."""
    found = []
    for path in _write_all(tmp_path, "prednisolone"):
        report = validate_file(path)
        assert report.conforms, [i.line(str(path)) for i in report.issues]
        graph = load_patient_file(path)
        assert str(graph.value(next(graph.subjects(JDM.drugText, None)), JDM.drugText)) == "prednisolone"
        found.append(_drug_issues(path))
    for issues, written in zip(found, ("jdmg:tofacitinib", '"tofacitinib"', "tofacitinib (RxNorm 1357536)")):
        assert issues == [(
            "warning", "treatmentEpisode.drug", "prednisolone",
            ("prednisolone is not a drug the guideline graph knows: the treatment is kept as another medication (in the "
             f"record and its history) but not reasoned about. If it is one of the guideline's drugs, name it (e.g. {written})."),
            "treatment 1 (prednisolone, from 2025-09-01)")]


def test_a_misspelt_guideline_drug_is_a_violation_with_did_you_mean_in_every_format(tmp_path):
    for path in _write_all(tmp_path, "tofacitnib"):
        issues = _drug_issues(path)
        assert [(i[0], i[2]) for i in issues] == [("violation", "tofacitnib")], (path, issues)
        assert "did you mean tofacitinib?" in issues[0][3] and issues[0][4] == "treatment 1 (tofacitnib, from 2025-09-01)"


@pytest.mark.parametrize("given, expected", [(None, True), (False, False), (True, True)])
def test_the_only_manifestation_is_taken_as_predominant_unless_it_says_otherwise(tmp_path, given, expected):
    for path in _write_all(tmp_path, "methotrexate", given):
        graph = load_patient_file(path)
        findings = [f for f in graph.objects(None, JDM.hasManifestation) if graph.value(f, JDM.manifestation) == JDMG.SkinDisease]
        assert [graph.value(f, JDM.predominant) for f in findings] == [Literal(expected)], path
        notes = [str(n) for n in graph.objects(None, JDM.importNote) if "taken as predominant" in str(n)]
        if path.suffix == ".json":  # the FHIR twin also records JDM and skin as two Conditions: skin is the one manifestation
            assert len(notes) == (1 if given is None else 0)
        else:
            assert notes == (["hasManifestation: the only manifestation recorded (skin disease) is taken as predominant "
                              "(jdm-kg policy: a sole manifestation is the predominant one)"]
                             if given is None else [])


def test_predominant_option_on_the_command_line_and_in_the_api(tmp_path):
    bundle = json.loads(SKIN_FHIR.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        entry["resource"].pop("extension", None)
    path = tmp_path / "no-extension.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    proc = run("validate", str(path), tmp_path=tmp_path)
    assert "No manifestation is marked predominant" in proc.stdout and "--predominant FEATURE" in proc.stdout
    proc = run("validate", str(path), "--predominant", "skin disease", tmp_path=tmp_path)
    assert proc.returncode == 0 and "No manifestation is marked predominant" not in proc.stdout
    proc = run("recommend", str(path), "--predominant", "Calcinosis,SkinDisease", "--format", "json", tmp_path=tmp_path)
    assert proc.returncode == 0
    issues = [i["message"] for i in json.loads(proc.stdout)[0]["issues"]]
    assert "--predominant Calcinosis: the record has no calcinosis manifestation; not applied" in issues
    proc = run("explain", str(path), "--predominant", "skn", tmp_path=tmp_path)
    assert proc.returncode == 2 and "'skn' is not a manifestation the guideline knows; nearest: skin disease (SkinDisease)" in proc.stderr
    report = validate_file(path, predominant=["SkinDisease"])
    assert not any("predominant" in i.message for i in report.issues)
    _, results = recommend_file(str(path), predominant=("skin disease",))
    assert results[0].applicable


def test_jsonld_mistakes_give_clean_messages_on_the_command_line(tmp_path):
    proc = run("validate", str(MISTAKES), tmp_path=tmp_path)  # run() fails on any traceback (rdflib's log included)
    assert proc.returncode == 1
    assert "record J1: line 6: birthDate: not a valid date: write a date that exists, as YYYY-MM-DD (e.g. 2024-02-29) (value: 2012-13-40)" in proc.stdout
    assert "Neither birthDate nor ageYears" not in proc.stdout  # it was given, only not valid
    assert ("warning: record J1: line 17: treatment 2 (methotrexate, from 2023-01-01): treatmentEpisode.outcome: The stop "
            "reason 'stopped - liver toxicity' names no treatment outcome jdm-kg reads: the episode is kept without an "
            "outcome. For this drug it changes nothing") in proc.stdout  # words never block a record
    proc = run("recommend", str(MISTAKES), "--engine", "rdflib", tmp_path=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def _screening_bundle(interpretation=None, value=None) -> str:
    observation = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/X"},
                   "effectiveDateTime": "2026-10-01", "code": {"coding": [{"system": "http://loinc.org", "code": "5196-1"}]}}
    if interpretation:
        observation["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                                      "code": interpretation}]}]
    if value:
        observation["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": value}]}
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "X", "birthDate": "2013-01-01"}}, {"resource": observation}]})


@pytest.mark.parametrize("interpretation, value, expected", [
    ("POS", None, "Positive"), ("NEG", None, "Negative"), ("IND", None, "Indeterminate"), ("E", None, "Indeterminate"),
    ("N", None, "Negative"), ("A", None, "Positive"), ("DET", None, "Positive"), ("ND", None, "Negative"),
    (None, "10828004", "Positive"), (None, "260385009", "Negative"), (None, "82334004", "Indeterminate"),
    (None, "42425007", "Indeterminate"), ("NEG", "260385009", "Negative"), ("POS", "260385009", None),
])
def test_result_codes_are_read_from_the_graph(interpretation, value, expected):
    from jdm_kg.inputs.fhir import fhir_to_graph

    graph = fhir_to_graph(_screening_bundle(interpretation, value), "b.json")
    results = [graph.value(s, JDM.result) for s in graph.objects(None, JDM.screening)]
    assert results == ([JDM[expected]] if expected else [])
    if expected:
        screening = next(graph.objects(None, JDM.screening))
        assert graph.value(screening, JDM.screeningTest) == JDMG.HBsAgTest
        assert graph.value(screening, JDM.screenedFor) == JDMG.HepatitisB
    else:
        assert any("contradictory" in str(n) for n in graph.objects(None, JDM.importNote))


def test_converted_values_are_shown_rounded_and_kept_exact(tmp_path):
    bundle = json.loads(SKIN_FHIR.read_text(encoding="utf-8"))
    for entry in bundle["entry"]:
        quantity = entry["resource"].get("valueQuantity")
        if quantity and quantity.get("code") == "kg":
            quantity.update(value=1, unit="lb", code="[lb_av]")  # 0.45359237 kg: a slip the shapes catch
    path = tmp_path / "light.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    issue = next(i for i in validate_file(path).issues if i.field == "bodyWeight.value")
    assert issue.value == "~0.45"
    graph = load_patient_file(path)
    assert str(graph.value(next(graph.objects(None, JDM.bodyWeight)), JDM.value)) == "0.45359237"


def test_a_turtle_field_the_model_does_not_have_is_reported_with_the_nearest_field(tmp_path):
    path = tmp_path / "typo.ttl"
    path.write_text(TURTLE.replace("{drug}", "methotrexate").replace("{predominant}", "; jdm:predominnt true ")
                    .replace("jdm:sex", "jdm:bodyWeigth [ jdm:value 35 ; jdm:unit \"kg\" ] ; jdm:sex"), encoding="utf-8")
    issues = [(i.severity, i.field, i.source_line) for i in validate_file(path).issues if "is not a field" in i.message]
    assert issues == [("violation", "bodyWeigth", 5), ("violation", "hasManifestation.predominnt", 6)]
    messages = " ".join(i.message for i in validate_file(path).issues)
    assert "did you mean bodyWeight?" in messages and "did you mean predominant?" in messages


def test_conditions_and_tests_are_matched_by_their_whole_name_only_drugs_and_reasons_among_words():
    from jdm_kg.inputs.fhir import fhir_to_graph

    def bundle(*resources):
        return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "X", "birthDate": "2013-01-01"}}] + [{"resource": r} for r in resources]})

    subject = {"reference": "Patient/X"}
    graph = fhir_to_graph(bundle(
        {"resourceType": "Condition", "id": "c1", "subject": subject, "code": {"text": "no calcinosis"}},
        {"resourceType": "Condition", "id": "c2", "subject": subject, "code": {"text": "Calcinosis"}},
        {"resourceType": "Observation", "id": "o1", "status": "final", "subject": subject, "effectiveDateTime": "2026-10-01",
         "code": {"text": "Hepatitis B surface antibody"}, "interpretation": [{"text": "Positive"}]},
        {"resourceType": "MedicationStatement", "id": "m1", "status": "stopped", "subject": subject,
         "medicationCodeableConcept": {"text": "Xeljanz XR 11 mg tablet"}, "statusReason": [{"text": "stopped for side effects"}]},
    ), "b.json")
    assert [graph.value(f, JDM.manifestation) for f in graph.objects(None, JDM.hasManifestation)] == [JDMG.Calcinosis]
    assert list(graph.objects(None, JDM.screening)) == []
    episode = next(graph.objects(None, JDM.treatmentEpisode))
    assert (graph.value(episode, JDM.drug), graph.value(episode, JDM.outcome)) == (JDMG.tofacitinib, JDM.Intolerance)
    notes = sorted(str(n) for n in graph.objects(None, JDM.importNote))
    assert "Condition/c1 code: no coding (text 'no calcinosis' only); not used" in notes
    assert any(n.startswith("Observation/o1 code: no coding") for n in notes)
    assert "MedicationStatement/m1 medicationCodeableConcept: matched 'Xeljanz XR 11 mg tablet' to tofacitinib by name" in notes
    assert "MedicationStatement/m1 statusReason: matched 'stopped for side effects' to intolerance or adverse event by name" in notes
