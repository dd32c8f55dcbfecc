"""The SHACL shapes: each example is valid or invalid as intended, with the intended message."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdm_kg import validate_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

VALID = [
    "skin-predominant.ttl",
    "muscle-predominant.jsonld",
    "ild-predominant.ttl",
    "calcinosis-predominant.ttl",
    "refractory-multisystem.ttl",
    "no-jak-failure.ttl",
    "major-organ.ttl",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_examples_conform(name):
    report = validate_file(EXAMPLES / name)
    assert report.conforms, [i.message for i in report.issues]
    assert len(report.records) == 1


def _issues(name):
    return validate_file(EXAMPLES / "invalid" / name).issues


@pytest.mark.parametrize(
    "name, severity, field, value, words",
    [
        ("height-in-metres.ttl", "violation", "bodyHeight.value", "1.4", "metres"),
        ("height-in-metres.ttl", "violation", "bodyWeight.value", "35000", "grams"),
        ("unknown-drug-and-missing-outcome.ttl", "warning", "treatmentEpisode.drug", "anakinra", "kept as another medication"),
        ("unknown-drug-and-missing-outcome.ttl", "warning", "treatmentEpisode.outcome", None, "no outcome"),
        ("future-dates-and-adult.ttl", "violation", "treatmentEpisode.endDate", "2099-01-01", "future"),
        ("future-dates-and-adult.ttl", "violation", "treatmentEpisode.startDate", "2099-03-01", "not after endDate"),
        ("future-dates-and-adult.ttl", "warning", "birthDate", None, "juvenile"),
        ("typo-and-grams.jsonld", "violation", "bodyWeigth", None, "spelling"),
        ("typo-and-grams.jsonld", "violation", "bodyHeight.unit", "m", "cm"),
        ("typo-and-grams.jsonld", "violation", "sex", "girl", "female"),
        ("typo-and-grams.jsonld", "warning", "hasManifestation.manifestation", "Rash", "SkinDisease"),
        ("typo-and-grams.jsonld", "warning", "bodyWeight", None, "No body weight"),
    ],
)
def test_invalid_examples_name_record_field_value_and_fix(name, severity, field, value, words):
    matches = [i for i in _issues(name) if i.field == field and i.severity == severity and words in i.message]
    assert matches, [(i.severity, i.field, i.message) for i in _issues(name)]
    assert matches[0].value == value
    assert matches[0].record.startswith("P-BAD")


def test_missing_measures_are_warnings_not_violations():
    report = validate_file(EXAMPLES / "major-organ.ttl")
    assert report.conforms
    assert {i.field for i in report.issues if i.severity == "warning"} == {"bodyWeight", "bodyHeight"}


def _shacl_results(data):
    from pyshacl import validate as shacl_validate
    from rdflib import RDF, SH

    from jdm_kg.reasoning.validation import load_shapes

    _, results, _ = shacl_validate(
        data, shacl_graph=load_shapes(), inference="none", advanced=True, allow_warnings=True, inplace=True
    )  # in place, as jdm-kg runs it: on the graph given, not a copy
    return sorted(
        tuple(str(results.value(r, p)) for p in (SH.focusNode, SH.resultPath, SH.value, SH.resultSeverity, SH.resultMessage,
                                                 SH.sourceShape))
        for r in results.subjects(RDF.type, SH.ValidationResult)
    )


def _every_patient_graph():
    """Every example and fixture patient file that can be read, valid or not (the malformed
    examples give nothing to validate)."""
    from jdm_kg.errors import InputError
    from jdm_kg.inputs.loading import load_patient_file

    files = [p for p in sorted(EXAMPLES.rglob("*")) if p.suffix in {".ttl", ".jsonld", ".json"}]
    files += sorted((EXAMPLES.parent / "tests" / "fixtures" / "fhir").glob("*.json"))
    files += sorted((EXAMPLES.parent / "tests" / "fixtures" / "shapes").glob("*.ttl"))
    files += sorted((EXAMPLES.parent / "tests" / "fixtures" / "ehr").glob("*.json"))
    files += sorted((EXAMPLES.parent / "tests" / "fixtures" / "jsonld").glob("*.jsonld"))
    graphs = []
    for path in files:
        try:
            graphs.append(load_patient_file(path))
        except InputError:
            continue
    assert len(graphs) >= 16
    return graphs


def test_faster_pyshacl_gives_pyshacls_own_results():
    """The speed-ups to pySHACL (property shapes checked in bulk; sh:or alternatives tried in
    order until one conforms) change no SHACL result, on every example and fixture, valid or
    not, validated together; the fixture takes each branch of every sh:or, passing and failing."""
    from jdm_kg.knowledge.guideline import load_guideline, with_guideline
    from jdm_kg.reasoning._pyshacl_speedups import faster_pyshacl

    data = with_guideline(load_guideline(), *_every_patient_graph())
    own = _shacl_results(data)
    with faster_pyshacl():
        faster = _shacl_results(data)
    assert len(own) > 20 and faster == own
    messages = " ".join(r[4] for r in own)
    for failed_every_alternative in ("Body weight needs one numeric value", "Body height needs one numeric value",
                                     "Neither birthDate nor ageYears", "No manifestation is marked predominant",
                                     "ageYears must be one number"):
        assert failed_every_alternative in messages


def test_sparql_targets_and_constraints_answered_by_oxigraph_give_rdflibs_results(monkeypatch):
    """Validation runs on a graph whose SPARQL queries Oxigraph answers (pySHACL's SPARQL
    targets and constraints: a speed-up). On every example and fixture the SHACL results are
    those of rdflib's own evaluator, including the ones the SPARQL targets find (future dates,
    adults, JAK inhibitor episodes without an outcome) and the SPARQL constraints report."""
    from jdm_kg.knowledge.guideline import load_guideline, with_guideline
    from jdm_kg.reasoning.engines import OxigraphAnswered, OxigraphEngine, oxigraph_answered

    graphs = _every_patient_graph()
    guideline = load_guideline()
    by_rdflib = _shacl_results(with_guideline(guideline, *graphs))

    answered: list[str] = []
    result = OxigraphEngine.result

    def counting(self, text, bindings, prefixes):
        answered.append(text)
        return result(self, text, bindings, prefixes)

    monkeypatch.setattr(OxigraphEngine, "result", counting)
    data = oxigraph_answered(guideline, graphs)
    by_oxigraph = _shacl_results(data)
    assert by_oxigraph == by_rdflib
    messages = " ".join(r[4] for r in by_rdflib)
    for found_by_a_sparql_target in ("is in the future", "years old", "has no outcome", "Treatment has no drug",
                                     "kept as another medication", "a test for another condition"):
        assert found_by_a_sparql_target in messages
    assert sum("SPARQLTarget" in t or "SELECT ?this" in t or "SELECT DISTINCT ?this" in t for t in answered) >= 3
    assert any("importNote" in t for t in answered)  # a SPARQL constraint

    # A query that would reach the network is not Oxigraph's to run (rdflib's, with its guard).
    assert isinstance(data.store, OxigraphAnswered)
    with pytest.raises(NotImplementedError):
        data.store.query("SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }", {}, {}, None)
