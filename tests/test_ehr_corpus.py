"""Patient data as hospitals send it: FHIR R4 bundles shaped like EHR exports
(``tests/fixtures/ehr/``) and hand-written JSON-LD records (``tests/fixtures/jsonld/``), each
with its expected outcome as data in ``<name>.expect.json``.

An expectation names: whether the record conforms and the violations (field, words, entry);
whether the guideline applies and the JAK inhibitor failures found; the treatment episodes,
manifestations and screening results in the graph; the import notes; and, where given, the
three-valued applicability (applies, does-not-apply, cannot-tell) with the data needed, the
options ranked first (for "cannot tell": those that would be), the screening gates, doses and
words of the text report (which weight, which predominance reading, which test); and "nothing dropped":
every fact in the file (FHIR: each element of each resource other than the record-keeping ones
in :data:`jdm_kg.inputs.fhir.ADMINISTRATIVE`; JSON-LD: each key of each object) is either used in the
record or named in a message. Nothing here depends on how options are ranked.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from helpers import run
from rdflib import RDF

from jdm_kg import load_guideline, load_patient_file
from jdm_kg.inputs.fhir import ADMINISTRATIVE, fhir_import
from jdm_kg.inputs.jsonld_context import bundled_context
from jdm_kg.knowledge.guideline import JDM
from jdm_kg.reasoning.recommend import recommend_graph

ROOT = Path(__file__).resolve().parent.parent
EHR = ROOT / "tests" / "fixtures" / "ehr"
JSONLD = ROOT / "tests" / "fixtures" / "jsonld"
TODAY = date(2026, 11, 24)


EXPECTED = ROOT / "tests" / "fixtures" / "expected"


def _cases(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.glob(f"*{suffix}"))


BUNDLES = _cases(EHR, ".json")
RECORDS = _cases(JSONLD, ".jsonld")


def _expect(path: Path) -> dict:
    return json.loads((EXPECTED / path.parent.name / f"{path.stem}.json").read_text(encoding="utf-8"))


def _local(node) -> str | None:
    return None if node is None else str(node).rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def test_the_ehr_corpus_is_varied_like_real_exports():
    bundles = [json.loads(p.read_text(encoding="utf-8")) for p in BUNDLES]
    assert len(bundles) >= 33
    assert {b["type"] for b in bundles} >= {"searchset", "transaction", "collection", "document"}
    text = "\n".join(p.read_text(encoding="utf-8") for p in BUNDLES)
    for shape in ("[lb_av]", '"g"', "[in_i]", "valueCodeableConcept", "interpretation", "effectivePeriod",
                  "MedicationRequest", "contained", "http://www.whocc.no/atc", "http://www.nlm.nih.gov/research/umls/rxnorm",
                  "http://hl7.org/fhir/sid/icd-10-cm", '"statusReason"', "prednisolone", "hydroxychloroquine",
                  '"link"', '"mode": "include"', '"mode": "outcome"', '"OperationOutcome"', '"Composition"', '"hasMember"',
                  '"severity"', '"note"', "71775-1", "71774-4", '"entered-in-error"', '"stopped"', '"completed"',
                  "Non-reactive", "Olumiant"):
        assert shape in text, shape
    assert len(RECORDS) >= 5
    for folder, cases in (("ehr", BUNDLES), ("jsonld", RECORDS)):  # every record has its expectation, and no more
        assert {p.stem for p in (EXPECTED / folder).glob("*.json")} == {p.stem for p in cases}


def _check_outcome(path: Path, graph, expect: dict) -> None:
    guideline = load_guideline()
    report, results = recommend_graph(graph, str(path), today=TODAY)
    violations = [i for i in report.issues if i.severity == "violation"]
    warnings = [i for i in report.issues if i.severity == "warning"]
    shown = [i.line(path.name) for i in report.issues]
    assert report.conforms == expect["conforms"], shown
    for wanted in expect.get("violations", []):
        assert any(i.field == wanted["field"] and wanted["contains"] in i.message
                   and (("entry" not in wanted) or i.entry == wanted["entry"]) for i in violations), (wanted, shown)
    assert len(violations) == len(expect.get("violations", [])), shown
    for words in expect.get("warnings", []):
        assert any(words in (i.entry or "") + " " + i.message for i in warnings), (words, shown)
    if expect["conforms"]:
        assert [r.applicable for r in results] == [expect["applicable"]], shown
    patient = next(graph.subjects(RDF.type, JDM.Patient))
    episodes = list(graph.objects(patient, JDM.treatmentEpisode))
    if "jak_failures" in expect:
        failed = sorted(
            _local(graph.value(e, JDM.drug)) for e in episodes
            if graph.value(e, JDM.drug) is not None  # (None would match any subject)
            and (graph.value(e, JDM.drug), RDF.type, JDM.JAKInhibitor) in guideline.graph
            and (graph.value(e, JDM.outcome), RDF.type, JDM.TreatmentFailure) in guideline.graph
        )
        assert failed == sorted(expect["jak_failures"])
    found = []
    for e in episodes:
        found.append({"drug": _local(graph.value(e, JDM.drug)), "outcome": _local(graph.value(e, JDM.outcome)),
                      "drugText": str(graph.value(e, JDM.drugText)) if graph.value(e, JDM.drugText) is not None else None,
                      "drugCode": str(graph.value(e, JDM.drugCode)) if graph.value(e, JDM.drugCode) is not None else None})
    assert len(found) == len(expect["episodes"]), found
    left = list(found)
    for wanted in expect["episodes"]:  # each expected episode matches its own episode of the graph
        match = next((f for f in left if {k: f[k] for k in wanted} == wanted), None)
        assert match is not None, (wanted, found)
        left.remove(match)
    manifestations = {_local(graph.value(f, JDM.manifestation)): graph.value(f, JDM.predominant)
                      for f in graph.objects(patient, JDM.hasManifestation)}
    assert {k: (None if v is None else v.toPython()) for k, v in manifestations.items()} == expect["manifestations"]
    screenings = sorted([_local(graph.value(s, JDM.screenedFor)), _local(graph.value(s, JDM.screeningTest)),
                         _local(graph.value(s, JDM.result)), str(graph.value(s, JDM.date))]
                        for s in graph.objects(patient, JDM.screening))
    assert screenings == sorted(expect["screenings"])
    for key, prop in (("weight_kg", JDM.bodyWeight), ("height_cm", JDM.bodyHeight)):
        if key in expect:
            value = Decimal(str(graph.value(graph.value(patient, prop), JDM.value)))
            assert value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize() == Decimal(expect[key]).normalize()
    notes = [str(n) for n in graph.objects(patient, JDM.importNote)]
    for words in expect.get("notes", []):
        assert sum(words in n for n in notes) == 1, (words, notes)
    assert len(notes) == len(expect.get("notes", [])), notes  # every note is expected: none is noise, none is missing
    if expect["conforms"]:
        _check_answer(path, results[0], expect)


def _check_answer(path: Path, result, expect: dict) -> None:
    """The answer itself: applicability in three values and the data needed, the options ranked
    first (for "cannot tell": those that would be), the screening gates, doses, report words."""
    from jdm_kg.outputs.report import results_text

    if "applicability" in expect:
        assert result.state == expect["applicability"], result.applicability
        assert result.as_dict()["applicability"] == expect["applicability"]
    needed = " ".join(d.text() for d in result.data_needed)
    for words in expect.get("data_needed", []):
        assert words in needed, (words, needed)
    assert bool(result.data_needed) == bool(expect.get("data_needed")), needed
    if "first" in expect:
        first = sorted(_local(o.option) for o in result.options if o.ranked and o.rank == 1)
        assert first == expect["first"], [(o.rank, o.label, o.status) for o in result.options]
    if "gates" in expect:
        assert {_local(g.condition): g.state for g in result.screening} == expect["gates"], [g.text for g in result.screening]
    for option, words in expect.get("doses", {}).items():
        doses = [d.summary() for o in result.options if _local(o.option) == option for d in o.doses]
        assert any(words in d for d in doses), (option, words, doses)
    text = results_text([result]) + "\n" + results_text([result], detail=True)  # one screen, or --details
    for words in expect.get("report", []):
        assert words in text, (words, text)
    if result.state == "cannot-tell":  # nothing is offered: every option that would be is marked conditional
        assert not any(o.is_offered for o in result.options)
        assert any(o.if_applies for o in result.options)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.stem)
def test_every_resource_of_every_bundle_is_strict_fhir_r4(bundle):
    """Each bundle and each of its resources parses with fhir.resources (R4B models, which read
    R4 JSON for these resources) in pydantic's strict mode: the corpus is valid FHIR."""
    from fhir.resources.R4B import get_fhir_model_class

    document = json.loads(bundle.read_text(encoding="utf-8"))
    get_fhir_model_class("Bundle").model_validate(document, strict=True)
    for entry in document["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource, strict=True)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.stem)
def test_each_ehr_bundle_gives_its_expected_outcome(bundle):
    _check_outcome(bundle, load_patient_file(bundle), _expect(bundle))


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.stem)
def test_nothing_in_an_ehr_bundle_is_dropped_without_a_message(bundle):
    """Facts in = facts used + facts reported, per resource element."""
    document = json.loads(bundle.read_text(encoding="utf-8"))
    graph, account = fhir_import(bundle.read_text(encoding="utf-8"), str(bundle))
    facts_in = sum(len(set(e["resource"]) - ADMINISTRATIVE) for e in document["entry"])
    counts = account.counts()
    assert counts["in"] == facts_in
    assert counts["used"] + counts["reported"] == facts_in, (account.used, account.noted)
    notes = [str(n) for n in graph.objects(None, JDM.importNote)] + [str(t) for t in graph.objects(None, JDM.issueText)]
    for where, elements in account.noted.items():
        assert not elements & account.used.get(where, set())
        said = [n for n in notes if n.startswith(where)]
        assert said, (where, notes)
        for element in elements:  # a note names the element, or says the whole resource is not used
            assert any(element in n.split(":")[0] or n.endswith("not used") for n in said), (where, element, said)


def test_the_cli_reads_an_ehr_bundle_and_names_the_episode(tmp_path):
    bundle = EHR / "08-misspelt-medication-text.json"
    proc = run("validate", str(bundle), tmp_path=tmp_path)
    assert proc.returncode == 1
    assert ("record MRN-p08: line 180: treatment 1 (tofacitnib 5 mg, from 2025-01-01): treatmentEpisode.drug: "
            "'tofacitnib 5 mg' is not a drug the guideline graph knows: did you mean tofacitinib?") in proc.stdout
    proc = run("recommend", str(EHR / "01-searchset-rxnorm-contained-text-reason.json"), "--format", "json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["applicable"] is True


def test_a_stop_reason_read_from_words_is_quoted_wherever_an_answer_rests_on_it():
    """'tapered off' read as stopped for another reason: the report's treatment line quotes the
    words and says the reading is jdm-kg's (a clinical review: a 'does not apply' resting on
    'switched to MMF' did not say so)."""
    from jdm_kg.outputs.report import results_text

    path = EHR / "26-medicationrequest-statuses-running-jak.json"
    [result] = recommend_graph(load_patient_file(path), str(path), today=TODAY)[1]
    [mtx] = [e for e in result.history if e.label.startswith("methotrexate")]
    assert mtx.outcome_label == "stopped for another reason" and mtx.as_dict()["stopReasonAsGiven"] == "tapered off"
    assert "stopped for another reason (stop reason 'tapered off', read so by jdm-kg)" in results_text([result])


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_each_jsonld_record_gives_its_expected_outcome(record):
    _check_outcome(record, load_patient_file(record), _expect(record))


def _json_facts(node) -> int:
    """(object, key) pairs of a JSON-LD document, keywords and the node's id and type aside."""
    if isinstance(node, list):
        return sum(_json_facts(item) for item in node)
    if not isinstance(node, dict):
        return 0
    known = bundled_context()  # a key that is not a field is one fact, named with its whole value in its message
    return sum(1 + (_json_facts(v) if k in known else 0)
               for k, v in node.items() if k not in ("@context", "id", "@id", "type", "@type"))


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_nothing_in_a_jsonld_record_is_dropped_without_a_message(record):
    """Facts in (each key of each object) = facts used ((entry, field) pairs in the graph; a
    drug read as drugText, an outcome kept as outcomeText, count as their field) + facts reported
    (violations, or notes of a word set aside, naming a field the graph does not have), less the
    predominant flags the reader added and said so."""
    graph = load_patient_file(record)
    names = {JDM.drugText: JDM.drug, JDM.outcomeText: JDM.outcome}  # a name kept in words counts as its field
    own = {JDM.inputIssue, JDM.inputNote, JDM.importNote, JDM.issuePath, JDM.issueText, JDM.issueValue,
           JDM.predominanceBasis}
    used = {(s, names.get(p, p)) for s, p, _ in graph if str(p).startswith(str(JDM)) and p not in own}
    reported = {(s, graph.value(i, JDM.issuePath)) for kind in (JDM.inputIssue, JDM.inputNote)  # violations and
                for s, i in graph.subject_objects(kind)} - used  # notes (a word set aside) naming the field
    added = sum("taken as predominant" in str(n) for n in graph.objects(None, JDM.importNote))
    facts_in = _json_facts(json.loads(record.read_text(encoding="utf-8")))
    assert len(used) - added + len(reported) == facts_in, (sorted(used), sorted(reported))
