"""FHIR R4 input: the example bundles give the same recommendations as their Turtle twins; what
cannot be placed is reported by resource and field; the code mapping comes from the graph."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import run
from rdflib import Literal

from jdm_kg import InputError, load_patient_file
from jdm_kg.inputs.fhir import fhir_to_graph
from jdm_kg.knowledge.guideline import JDM, JDMG, compile_guideline, guideline_files
from jdm_kg.reasoning.recommend import recommend_graph
from jdm_kg.reasoning.validation import validate_graph

ROOT = Path(__file__).resolve().parent.parent
FHIR = ROOT / "examples" / "fhir"
FIXTURE = ROOT / "tests" / "fixtures" / "fhir" / "unplaceable.json"
TODAY = date(2026, 11, 24)


def _comparable(value):
    """Results without what names the file, the patient, the line or the node a fact came from (these
    differ by design: a FHIR twin is the same child exported under a patient IRI of its own), nor the
    screening test's name (the FHIR twins' LOINC codes name it; the Turtle twins do not)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()
                if k not in ("source", "node", "episode", "test", "patient", "source_line")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _twin(bundle: Path) -> Path:
    return next(p for p in (ROOT / "examples").glob(f"{bundle.stem}.*") if p.suffix in (".ttl", ".jsonld"))


@pytest.mark.parametrize("bundle", sorted(FHIR.glob("*.json")), ids=lambda p: p.stem)
def test_fhir_example_gives_the_same_recommendations_as_its_turtle_twin(bundle):
    twin = _twin(bundle)
    report_f, from_fhir = recommend_graph(load_patient_file(bundle), str(bundle), today=TODAY)
    report_t, from_turtle = recommend_graph(load_patient_file(twin), str(twin), today=TODAY)
    assert [r.patient_id for r in report_f.records] == [r.patient_id for r in report_t.records]
    assert [(i.severity, i.field, i.message) for i in report_f.issues] == [
        (i.severity, i.field, i.message) for i in report_t.issues
    ]
    assert _comparable([r.as_dict() for r in from_fhir]) == _comparable([r.as_dict() for r in from_turtle])
    assert any(o.status == "offered" for r in from_fhir for o in r.options) or not from_fhir[0].applicable


def test_every_turtle_example_with_a_birth_date_has_a_fhir_twin():
    stems = {p.stem for p in FHIR.glob("*.json")}
    for path in (ROOT / "examples").glob("*.ttl"):
        has_birth = "birthDate" in path.read_text(encoding="utf-8")
        assert (path.stem in stems) == has_birth, path  # FHIR Patient has no age field, only birthDate


def _notes(graph) -> list[str]:
    return sorted(str(n) for n in graph.objects(None, JDM.importNote))


def test_unplaceable_resources_are_reported_by_id_and_field_never_dropped():
    graph = load_patient_file(FIXTURE)
    notes = _notes(graph)
    expected = {
        "Observation/h-ft valueQuantity.code": "'[ft_i]' cannot be converted to cm",
        "Condition/c-dm code": "SNOMED CT 396230008 is broader than",
        "MedicationStatement/ms-orphan": "'Patient/nobody' is not a Patient in this file",
        "Procedure/proc-1": "not read by jdm-kg",
        "Observation/ck code": "LOINC 2157-6 is not mapped",
        "Condition/c-resolved clinicalStatus": "resolved",
        "Observation/w-old valueQuantity": "an older body weight (30 kg, 2026-01-10)",
    }
    for where, what in expected.items():
        assert any(n.startswith(where + ":") and what in n for n in notes), (where, notes)
    assert len(notes) == len(expected)
    report = validate_graph(graph, str(FIXTURE))
    warnings = [i for i in report.issues if i.field == "importNote"]
    assert len(warnings) == len(expected) and all(i.severity == "warning" for i in warnings)
    assert all(i.message in notes and i.value is None for i in warnings)  # the note itself, no boilerplate around it
    # a drug the graph does not know is kept as another medication, with its text and code, and a warning
    kept = next(graph.subjects(JDM.drugText, Literal("mystery drug")))
    assert str(graph.value(kept, JDM.drugCode)) == "http://www.nlm.nih.gov/research/umls/rxnorm|999999"
    other = [i for i in report.issues if i.field == "treatmentEpisode.drug"]
    assert [(i.severity, i.value, i.entry) for i in other] == [("warning", "mystery drug", "treatment 2 (mystery drug)")]
    assert report.conforms


def test_fhir_codes_units_and_outcomes_are_placed():
    graph = load_patient_file(FIXTURE)
    patient = next(graph.subjects(JDM.patientId, Literal("p1")))
    assert graph.value(patient, JDM.diagnosis) == JDMG.JuvenileDermatomyositis  # ICD-10-CM M33.02 (narrow match)
    finding = graph.value(patient, JDM.hasManifestation)
    assert graph.value(finding, JDM.manifestation) == JDMG.SkinDisease  # HPO Gottron's papules (narrow match)
    assert graph.value(finding, JDM.predominant) == Literal(True)
    weight = graph.value(patient, JDM.bodyWeight)
    assert Decimal(str(graph.value(weight, JDM.value))) == Decimal("88") * Decimal("0.45359237")  # [lb_av] -> kg
    assert str(graph.value(weight, JDM.unit)) == "kg"
    episode = graph.value(patient, JDM.treatmentEpisode)
    assert graph.value(episode, JDM.drug) == JDMG.tofacitinib  # ATC L04AF01
    assert graph.value(episode, JDM.outcome) == JDM.LossOfResponse  # statusReason, jdm-kg vocabulary code
    screening = graph.value(patient, JDM.screening)
    assert graph.value(screening, JDM.screenedFor) == JDMG.Tuberculosis  # LOINC 71773-6 (related match)
    assert graph.value(screening, JDM.result) == JDM.Positive  # v3 interpretation POS
    _, results = recommend_graph(graph, str(FIXTURE), today=TODAY)
    assert results[0].applicable and any(o.status == "blocked" for o in results[0].options)


def test_a_mapping_added_in_turtle_extends_the_importer(tmp_path):
    folder = tmp_path / "ontology"
    shutil.copytree(ROOT / "ontology", folder)
    # A made-up local code, only for this test: the importer must learn it from the graph alone.
    (folder / "local-mapping.ttl").write_text(
        "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
        "@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .\n"
        "<https://w3id.org/jdm-kg/guideline/cs-local> a jdm:CodeSystem ;\n"
        '  jdm:fhirSystem "urn:example:local-codes" ; jdm:iriPrefix "urn:example:local-codes:" .\n'
        "<https://w3id.org/jdm-kg/guideline/Calcinosis> skos:exactMatch <urn:example:local-codes:CALC> .\n",
        encoding="utf-8",
    )
    bundle = json.loads(FIXTURE.read_text(encoding="utf-8"))
    bundle["entry"].append({"resource": {
        "resourceType": "Condition", "id": "c-local", "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "urn:example:local-codes", "code": "CALC"}]}}})
    text = json.dumps(bundle)
    before = fhir_to_graph(text, "bundle.json")
    assert any(n.startswith("Condition/c-local code") for n in _notes(before))
    after = fhir_to_graph(text, "bundle.json", compile_guideline(guideline_files(folder)))
    assert JDMG.Calcinosis in set(after.objects(None, JDM.manifestation))
    assert not any(n.startswith("Condition/c-local") for n in _notes(after))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Observation", "id": "w1", "status": "final", "code": {"text": "weight"},
                          "valueQuantity": {"value": "heavy"}}}]},
         "not valid FHIR R4: Observation/w1 valueQuantity.value"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Observation", "id": "w1", "status": "final", "code": {"text": "x"}}}]},
         "no FHIR Patient resource"),
        ({"resourceType": "Spaceship", "id": "x"}, "resourceType 'Spaceship' is not a FHIR R4 resource"),
    ],
)
def test_bad_fhir_is_an_input_error_naming_the_resource(document, message):
    with pytest.raises(InputError) as err:
        fhir_to_graph(json.dumps(document), "bad.json")
    assert message in str(err.value)


def test_cli_reads_fhir_and_reports_bad_fhir(tmp_path):
    proc = run("recommend", str(FHIR / "skin-predominant.json"), "--format", "json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)[0]
    assert result["patientId"] == "P-SKIN" and result["options"][0]["status"] == "offered"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}), encoding="utf-8")
    proc = run("validate", str(bad), str(FIXTURE), tmp_path=tmp_path)
    assert proc.returncode == 2  # one unusable file; the other is still validated and printed
    assert "bad.json: no FHIR Patient resource" in proc.stderr
    assert "record p1: line 15: importNote: Condition/c-dm code: " in proc.stdout  # the line of the resource's element
