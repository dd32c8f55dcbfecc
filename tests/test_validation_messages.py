"""Validation messages for the person who fixes the record (issue 23, part 4): every message
carries a line where the input has lines (Turtle, JSON-LD, FHIR JSON; the REST /validate too),
list items are numbered in file order, advice is given in the record's own format, a code keeps
its system, one field says one thing once; the Turtle report uses the guideline's prefixes,
names the shapes and links each result to its patient."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from helpers import ROOT, run
from rdflib import DCTERMS, SH, Graph, Literal, URIRef

from jdm_kg import load_patient_file, validate_file
from jdm_kg.inputs import source_map
from jdm_kg.reasoning import messages
from jdm_kg.reasoning.validation import validate_graph

EX = ROOT / "examples"
PREFIXES = """@prefix jdm:  <https://w3id.org/jdm-kg/vocab#> .
@prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
@prefix sct:  <http://snomed.info/id/> .
@prefix rxnorm: <http://purl.bioontology.org/ontology/RXNORM/> .
"""
# a record of our own: screenings without dates (the same values on several lines), treatments
# listed out of date order, codes the guideline does not map
RECORD = PREFIXES + """
<https://example.org/p/V1> a jdm:Patient ;
    jdm:patientId "V1" ;
    jdm:birthDate "2014-02-03"^^xsd:date ;
    jdm:recordDate "2026-11-01"^^xsd:date ;
    jdm:sex "female" ;
    jdm:diagnosis jdmg:JuvenileDermatomyositis ;
    jdm:hasManifestation [ jdm:manifestation sct:999999999 ; jdm:predominant true ] ;
    jdm:treatmentEpisode [ jdm:drug jdmg:prednisolone ; jdm:startDate "2025-09-01"^^xsd:date ;
                           jdm:outcome jdm:Ongoing ] ,
                         [ jdm:drug rxnorm:999999 ; jdm:startDate "2023-01-01"^^xsd:date ;
                           jdm:endDate "2024-01-01"^^xsd:date ; jdm:outcome jdm:StoppedOtherReason ] ;
    jdm:screening [ jdm:screenedFor jdmg:HepatitisB ; jdm:result jdm:Negative ] ,
                  [ jdm:screenedFor jdmg:Tuberculosis ; jdm:result jdm:Negative ] ,
                  [ jdm:screenedFor jdmg:HepatitisC ; jdm:result jdm:Negative ] .
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line(path: Path, *words: str) -> int:
    """The one line of ``path`` holding all of ``words``."""
    found = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if all(w in text for w in words)]
    assert len(found) == 1, (words, found)
    return found[0]


def test_every_message_of_a_turtle_record_has_its_line_screenings_too(tmp_path):
    path = _write(tmp_path, "v1.ttl", RECORD)
    report = validate_file(path)
    assert report.issues and all(i.source_line for i in report.issues), [i.line(str(path)) for i in report.issues]
    screenings = [i for i in report.issues if i.entry and i.entry.startswith("screening")]
    assert [(i.entry, i.source_line) for i in screenings] == [  # each on its own line (had none)
        ("screening 1 (HepatitisB)", _line(path, "jdmg:HepatitisB")),
        ("screening 2 (Tuberculosis)", _line(path, "jdmg:Tuberculosis")),
        ("screening 3 (HepatitisC)", _line(path, "jdmg:HepatitisC"))]
    weight = next(i for i in report.issues if i.field == "bodyWeight")  # a field the record lacks: its first line
    assert weight.source_line == _line(path, "<https://example.org/p/V1> a jdm:Patient")


def test_treatments_are_numbered_in_file_order_not_by_date(tmp_path):
    path = _write(tmp_path, "v1.ttl", RECORD)
    report = validate_file(path)
    drugs = {i.entry: i.source_line for i in report.issues if i.field == "treatmentEpisode.drug"}
    assert drugs == {"treatment 1 (prednisolone, from 2025-09-01)": _line(path, "jdmg:prednisolone"),
                     "treatment 2 (RxNorm 999999, from 2023-01-01)": _line(path, "rxnorm:999999")}


def test_a_code_keeps_its_system(tmp_path):
    path = _write(tmp_path, "v1.ttl", RECORD)
    report = validate_file(path)
    manifestation = next(i for i in report.issues if i.field == "hasManifestation.manifestation")
    assert manifestation.value == "SNOMED CT 999999999"  # was 999999999
    drug = next(i for i in report.issues if i.entry and "RxNorm" in i.entry)
    assert drug.message.startswith("RxNorm 999999 is not a drug the guideline graph knows")
    proc = run("validate", str(path), tmp_path=tmp_path)
    assert f"line {_line(path, 'sct:999999999')}: hasManifestation.manifestation: " in proc.stdout
    assert "(value: SNOMED CT 999999999)" in proc.stdout


def test_one_field_says_one_thing_once(tmp_path):
    path = _write(tmp_path, "dates.ttl", PREFIXES + """
<https://example.org/p/V2> a jdm:Patient ;
    jdm:patientId "V2" ;
    jdm:birthDate "2014-02-03"^^xsd:date ;
    jdm:sex "male" ;
    jdm:diagnosis jdmg:JuvenileDermatomyositis ;
    jdm:hasManifestation [ jdm:manifestation jdmg:SkinDisease ; jdm:predominant true ] ;
    jdm:treatmentEpisode [ jdm:drug jdmg:tofacitinib ; jdm:startDate "2099-03-01"^^xsd:date ;
                           jdm:endDate "2099-01-01"^^xsd:date ; jdm:outcome jdm:InadequateResponse ] .
""")
    report = validate_file(path)
    start = [i for i in report.issues if i.field == "treatmentEpisode.startDate"]
    assert len(start) == 1  # was two lines: "in the future" and "not after endDate"
    assert start[0].message == ("Date 2099-03-01 is in the future: correct the date (YYYY-MM-DD). startDate must be "
                                "one date (YYYY-MM-DD), not after endDate.")
    assert start[0].value == "2099-03-01" and start[0].source_line == _line(path, "2099-03-01")
    assert start[0].message.count("2099-03-01") == 1  # said once, and the value once


FHIR = {
    "resourceType": "Bundle", "type": "collection", "timestamp": "2026-11-01T00:00:00Z",
    "entry": [
        {"fullUrl": "https://example.org/fhir/Patient/F1",
         "resource": {"resourceType": "Patient", "id": "F1", "birthDate": "2014-02-03", "gender": "female",
                      "identifier": [{"value": "F1"}], "name": [{"family": "Example"}]}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/F1"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1212005"}]}}},
        {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/F1"},
                      "onsetDateTime": "2021-03-01",
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "999999999"}]}}},
        {"resource": {"resourceType": "MedicationStatement", "id": "m1", "status": "active",
                      "subject": {"reference": "Patient/F1"}, "effectivePeriod": {"start": "2025-09-01"},
                      "medicationCodeableConcept": {"text": "prednisolone 5 mg tablet"}}},
        {"resource": {"resourceType": "MedicationStatement", "id": "m2", "status": "active",
                      "subject": {"reference": "Patient/F1"}, "effectivePeriod": {"start": "2023-01-01"},
                      "medicationCodeableConcept": {"text": "hydroxychloroquine 200 mg"}}},
    ],
}


def test_a_fhir_record_gets_lines_and_advice_in_fhir_terms(tmp_path):
    path = _write(tmp_path, "f1.json", json.dumps(FHIR, indent=2))
    report = validate_file(path)
    assert all(i.source_line for i in report.issues), [i.line(str(path)) for i in report.issues]
    others = [i for i in report.issues if i.field == "treatmentEpisode.drug"]
    assert [(i.entry, i.source_line) for i in others] == [  # file order, each on its medication's text
        ("treatment 1 (prednisolone 5 mg tablet, from 2025-09-01)", _line(path, '"prednisolone 5 mg tablet"')),
        ("treatment 2 (hydroxychloroquine 200 mg, from 2023-01-01)", _line(path, '"hydroxychloroquine 200 mg"'))]
    for issue in others:  # a FHIR user is told how FHIR names the drug, not to write jdmg:tofacitinib
        assert "jdmg:" not in issue.message and "(e.g. tofacitinib (RxNorm 1357536))" in issue.message
    notes = {i.message.split(":")[0]: i.source_line for i in report.issues if i.field == "importNote"}
    assert notes["Patient/F1 name"] == _line(path, '"name"')  # the element's own line
    text = path.read_text(encoding="utf-8").splitlines()
    c2 = _line(path, '"id": "c2"')
    assert notes["Condition/c2 code"] == next(n for n in range(c2, len(text) + 1) if '"code": {' in text[n - 1])


def test_a_json_ld_record_is_told_the_json_ld_way(tmp_path):
    path = _write(tmp_path, "j1.jsonld", json.dumps({
        "@context": "https://w3id.org/jdm-kg/context.jsonld", "@id": "https://example.org/p/J9", "@type": "Patient",
        "patientId": "J9", "birthDate": "2014-02-03", "sex": "female", "diagnosis": "JuvenileDermatomyositis",
        "manifestations": [{"manifestation": "SkinDisease", "predominant": True}],
        "treatments": [{"drug": "prednisolone", "startDate": "2025-09-01", "outcome": "Ongoing"}],
        "screenings": [{"screenedFor": "Tuberculosis", "result": "Negative"}]}, indent=2))
    report = validate_file(path)
    assert all(i.source_line for i in report.issues)
    drug = next(i for i in report.issues if i.field == "treatmentEpisode.drug")
    assert 'name it (e.g. "tofacitinib")' in drug.message and drug.source_line == _line(path, '"prednisolone"')
    turtle = validate_file(_write(tmp_path, "t.ttl", RECORD))
    assert "(e.g. jdmg:tofacitinib)" in next(i for i in turtle.issues if i.entry and "prednisolone" in i.entry).message


def test_every_record_of_a_registry_file_gets_its_own_lines(tmp_path):
    """A file of several records is validated in slices: each record's messages point into it."""
    second = RECORD.split("\n<https://example.org/p/V1>", 1)[1].replace('"V1"', '"V2"')
    path = _write(tmp_path, "two.ttl", RECORD + "\n<https://example.org/p/V2>" + second)
    proc = run("validate", str(path), tmp_path=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert lines and all(": line " in line for line in lines), lines
    numbers = {line.split(": line ")[0].split()[-1]: [] for line in lines}
    for line in lines:
        numbers[line.split(": line ")[0].split()[-1]].append(int(line.split(": line ")[1].split(":")[0]))
    v1_end = _line(path, '"V2"')
    assert max(numbers["V1"]) < v1_end <= min(numbers["V2"]) + 1


def test_validate_graph_with_the_text_it_was_read_from(tmp_path):
    path = _write(tmp_path, "v1.ttl", RECORD)
    graph = load_patient_file(path)
    from_text = validate_graph(graph, "pasted record", text=RECORD)
    assert [(i.field, i.source_line) for i in from_text.issues] == [
        (i.field, i.source_line) for i in validate_file(path).issues]
    assert all(i.source_line is None for i in validate_graph(load_patient_file(path), "no text").issues)


def test_rest_validate_gives_source_line(tmp_path):
    from service_support import client

    api = client()
    body = RECORD.encode()
    answer = api.post("/validate", content=body, headers={"content-type": "text/turtle", "accept": "application/json"})
    assert answer.status_code == 200
    issues = answer.json()["issues"]
    assert issues and all(isinstance(i["source_line"], int) for i in issues), issues
    # ?source= names the record in messages; the service never reads a file of that name for lines
    elsewhere = api.post("/validate", content=body, params={"source": str(EX / "skin-predominant.ttl")},
                         headers={"content-type": "text/turtle", "accept": "application/json"})
    assert [i["source_line"] for i in elsewhere.json()["issues"]] == [i["source_line"] for i in issues]
    fhir = api.post("/validate", content=json.dumps(FHIR, indent=2).encode(),
                    headers={"content-type": "application/fhir+json", "accept": "application/json"})
    assert all(isinstance(i["source_line"], int) for i in fhir.json()["issues"])
    recommended = api.post("/recommend", content=body, headers={"content-type": "text/turtle",
                                                              "accept": "application/json"})
    assert all(isinstance(i["source_line"], int) for i in recommended.json()["validation"]["issues"])


# ---------------------------------------------------------------- the Turtle report


def test_the_turtle_report_uses_the_guideline_s_prefixes_names_shapes_and_links_patients(tmp_path):
    path = _write(tmp_path, "v1.ttl", RECORD)
    fhir = _write(tmp_path, "f1.json", json.dumps(FHIR, indent=2))
    proc = run("validate", str(path), str(fhir), "--format", "turtle", tmp_path=tmp_path)
    assert proc.returncode == 1
    text = proc.stdout
    assert "ns1:" not in text and "@prefix jdm: <https://w3id.org/jdm-kg/vocab#>" in text
    assert "@prefix jdmsh: <https://w3id.org/jdm-kg/shapes#>" in text and "sh:resultPath jdm:date" in text
    report = Graph().parse(data=text, format="turtle")
    results = list(report.subjects(SH.resultSeverity, None))
    assert len(results) >= 8
    for result in results:
        patient = report.value(result, DCTERMS.subject)  # each result names its patient record
        assert patient is not None and report.value(patient, URIRef("https://w3id.org/jdm-kg/vocab#patientId"))
        shape = report.value(result, SH.sourceShape)
        assert isinstance(shape, URIRef) or (None, SH.property, shape) in report  # named, or inside a named one
    names = {str(n) for n in report.objects(None, SH.name)}
    assert "jdm:date of jdmsh:ScreeningResultShape" in names
    # the FHIR record's messages are in FHIR terms in the report too
    messages_ = {str(m) for m in report.objects(None, SH.resultMessage)}
    assert any("(e.g. tofacitinib (RxNorm 1357536))" in m for m in messages_)
    assert any("(e.g. jdmg:tofacitinib)" in m for m in messages_)  # and the Turtle record's in Turtle terms
    again = run("validate", str(path), str(fhir), "--format", "turtle", tmp_path=tmp_path)
    assert again.stdout == text  # the same bytes every run


@pytest.mark.parametrize("module", [source_map, messages])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def test_a_file_that_cannot_be_placed_still_gives_its_messages(tmp_path):
    """Lines are an aid: a record whose parts the map cannot place keeps its messages."""
    smap = source_map.SourceMap.from_text("not turtle at all [[[ ]")
    assert smap.placed(Graph()) == {}
    path = _write(tmp_path, "v1.ttl", RECORD)
    graph = load_patient_file(path)
    report = validate_graph(graph, "x", text="# nothing here\n")
    assert report.issues and all(i.source_line is None for i in report.issues)
    assert Literal("V1") in set(graph.objects())
