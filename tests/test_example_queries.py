"""The vocabulary's example queries (``queries/examples/*.rq``, issue 14 item 6): each names its
class and what it shows, stays local (no SERVICE, no FROM), and returns the rows it should on
the bundled guideline and, for patient classes, on the example patients (checked against what
``recommend`` finds); analysts run them with ``jdm-kg query examples/NAME``, and get the same
bytes on every run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, run
from rdflib import OWL, RDF, Graph

from jdm_kg import load_patient_file, recommend_graph
from jdm_kg.knowledge.guideline import JDM, JDMG, with_guideline
from jdm_kg.knowledge.queries import check_query, example_queries, query_catalogue
from jdm_kg.outputs.report import results_graph

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "ontology" / "jak-failure-jdm-guideline.txt").read_text(encoding="utf-8")
EXAMPLE_PATIENTS = sorted([p for p in (ROOT / "examples").glob("*.*")] + list((ROOT / "examples" / "fhir").glob("*.json")))
#: The main classes an analyst asks about first; each has at least one example query.
MAIN_CLASSES = {"PreferenceStatement", "ComparativeStatement", "DoseRegimen", "Drug", "Manifestation", "GuidelineGap",
                "Policy", "RankingBand", "BibliographicSource", "Patient", "ScreeningTest", "ScreeningResult",
                "OptionAssessment"}


def rows(name: str, data: Graph) -> list[dict[str, str]]:
    """The example's rows over ``data``, every value as text ('' when unbound)."""
    path = example_queries()[f"examples/{name}"]
    result = data.query(check_query(path.read_text(encoding="utf-8"), str(path)))
    names = [str(v) for v in result.vars]
    return [{n: "" if row[i] is None else str(row[i]) for i, n in enumerate(names)} for row in result]


@pytest.fixture(scope="module")
def g(guideline) -> Graph:
    return guideline.graph


@pytest.fixture(scope="module")
def patients(guideline):
    """(path, patient graph, recommend's results) for every example patient file."""
    out = []
    for path in EXAMPLE_PATIENTS:
        graph = load_patient_file(path)
        out.append((path, graph, recommend_graph(graph, str(path), guideline)[1]))
    return out


def test_every_example_names_its_class_says_what_it_shows_and_stays_local(guideline):
    examples = [q for q in query_catalogue() if q.name.startswith("examples/")]
    assert len(examples) >= 13
    classes = set()
    for q in examples:
        assert q.description and q.parameters and q.headers.get("data"), q.name
        cls = q.headers["class"]
        assert cls.startswith("jdm:") and (JDM[cls[4:]], RDF.type, OWL.Class) in guideline.asserted, q.name
        classes.add(cls[4:])
        text = q.path.read_text(encoding="utf-8")
        check_query(text, q.name)  # refuses SERVICE and FROM
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).upper()
        assert not re.search(r"\bSERVICE\b|\bFROM\s+(NAMED\s+)?<", body), q.name
        projected = {str(v) for v in check_query(text, q.name).algebra.get("PV", [])}
        if projected & {"option", "optionLabel"}:  # rows that name options say what they are
            assert (q.not_a_recommendation is None) != (q.agrees_with is None), q.name
    assert MAIN_CLASSES <= classes, sorted(MAIN_CLASSES - classes)


def test_preference_statements(g):
    got = rows("preference-statements", g)
    triples = {(r["manifestationLabel"], r["optionLabel"], r["levelLabel"]) for r in got}
    assert len(got) == 10
    assert {("muscle weakness", "rituximab", "particularly effective or useful for"),
            ("interstitial lung disease (ILD)", "rituximab", "particularly effective or useful for"),
            ("skin disease", "intravenous immunoglobulin (IVIG)", "particularly effective or useful for"),
            ("calcinosis", "intravenous immunoglobulin (IVIG)", "to consider for")} <= triples
    assert {r["optionLabel"] for r in got if r["manifestationLabel"] == "refractory disease with multiple manifestations"
            and r["levelLabel"] == "named among the options for"} == {
        "rituximab", "infliximab", "adalimumab", "combination: high-dose MTX + ciclosporin + IVIG"}
    assert {r["statement"] for r in got} == {str(s) for s in g.subjects(RDF.type, JDM.PreferenceStatement)}
    assert all(r["quote"] in TEXT for r in got)


def test_comparative_statements(g):
    got = rows("comparative-statements", g)
    assert [(r["optionLabel"], r["betterFor"], r["lessWellFor"]) for r in got] == [
        ("adalimumab", "skin disease", "muscle weakness"), ("infliximab", "skin disease", "muscle weakness")]
    assert {r["quote"] for r in got} == {"More effective for skin manifestations than muscle disease"}


def test_dose_regimens(g):
    got = {r["drugLabel"]: r for r in rows("dose-regimens", g)}
    assert len(got) == 8
    rituximab = got["rituximab"]
    assert (rituximab["doseMin"], rituximab["doseMax"], rituximab["doseUnit"], rituximab["numberOfDoses"]) == (
        "375.0", "375.0", "mg/m2", "4")
    assert rituximab["basisLabel"] == "per m² body surface area" and rituximab["gapLabel"] == "No route for rituximab"
    assert (got["infliximab"]["intervalMin"], got["infliximab"]["intervalMax"], got["infliximab"]["intervalUnit"]) == (
        "4.0", "8.0", "wk")
    assert {d for d, r in got.items() if r["doseGiven"] == "false"} == {"abatacept", "adalimumab", "ciclosporin", "tocilizumab"}
    assert got["tocilizumab"]["gapLabel"] == "No dose for tocilizumab (IL-6 inhibitor)" and got["tocilizumab"]["doseMin"] == ""


def test_treatment_options(g):
    got = {r["optionLabel"]: r for r in rows("treatment-options", g)}
    assert len(got) == 14
    assert (got["etanercept"]["roleLabel"], got["etanercept"]["codes"]) == ("", "RxNorm 214555; WHO ATC L04AB01")  # known, no role
    assert {o for o, r in got.items() if r["roleLabel"] == "next-line bDMARD"} == {
        "abatacept", "adalimumab", "infliximab", "rituximab", "tocilizumab"}
    assert got["tofacitinib"]["codes"] == "RxNorm 1357536; WHO ATC L04AA29; WHO ATC L04AF01"
    assert got["tofacitinib"]["classes"] == "JAK inhibitor; drug"
    assert got["infliximab"]["classes"] == "TNF inhibitor; biologic DMARD (bDMARD); drug"
    assert got["combination: high-dose MTX + ciclosporin + IVIG"]["codes"] == ""


def test_manifestation_guidance(g):
    got = rows("manifestation-guidance", g)
    says = {}
    for r in got:
        says.setdefault(r["manifestationLabel"], set()).add((r["says"], r["optionLabel"]))
    assert len(says) == 6
    assert says["calcinosis"] == {("guideline gap: No next-line biologic named for calcinosis", ""),
                                  ("to consider for", "intravenous immunoglobulin (IVIG)")}
    assert says["major organ involvement"] == {("guideline gap: No option named for major organ involvement", "")}
    assert says["muscle weakness"] == {("particularly effective or useful for", "rituximab"),
                                       ("works less well for it (a comparison)", "adalimumab"),
                                       ("works less well for it (a comparison)", "infliximab")}
    muscle = next(r for r in got if r["manifestationLabel"] == "muscle weakness")
    assert muscle["codes"] == "http://purl.obolibrary.org/obo/HP_0001324"


def test_gaps_by_subject(g):
    got = rows("gaps-by-subject", g)
    assert {r["gap"] for r in got} == {str(s) for s in g.subjects(RDF.type, JDM.GuidelineGap)} and len({r["gap"] for r in got}) == 17
    about = {(r["gapLabel"], r["about"], r["subjectLabel"]) for r in got}
    assert {("No route for rituximab", "option", "rituximab"),
            ("No route for rituximab", "dose regimen", "rituximab 375 mg/m² weekly x4"),
            ("No next-line biologic named for calcinosis", "manifestation", "calcinosis"),
            ("Nothing on switching within a drug class", "", "")} <= about


def by_label_of(rows_: list[dict]) -> set[str]:
    return {r["label"] for r in rows_}


def test_policies(g):
    got = rows("policies", g)
    assert len({r["policy"] for r in got}) == 22  # issue 20 added six (cannot tell, contradictions, hepatitis B, ...), issue 21 five
    assert "hepatitis B screening is HBsAg and anti-HBc" in by_label_of(got)
    by_label = {r["label"]: r for r in got}
    young = {(r["setting"].rsplit("#", 1)[-1], r["value"]) for r in got if r["label"] == "caution under 2 years or 10 kg"}
    assert young == {("cautionAgeYears", "2"), ("cautionWeightKg", "10")}
    gate = by_label["screening history gates biologics"]
    assert (gate["setting"].rsplit("#", 1)[-1], gate["value"]) == ("screeningMaxAgeDays", "365")
    assert by_label["ranking words"]["bands"] == ("preferred for the predominant feature; suitable; "
                                                  "no feature-specific guidance; less suitable for the predominant feature")


def test_ranking_band_rules(g):
    got = rows("ranking-band-rules", g)
    assert [(r["order"], r["label"], r["side"], r["needsPredominant"], r["isDefault"]) for r in got] == [
        ("1", "preferred for the predominant feature", "for", "true", "false"),
        ("2", "suitable", "for", "false", "false"),
        ("3", "no feature-specific guidance", "", "false", "true"),
        ("4", "less suitable for the predominant feature", "against", "true", "false")]
    assert got[0]["levelLabel"] == "particularly effective or useful for"
    assert {r["policyLabel"] for r in got} == {"ranking words"}


def test_sources_and_claims(g):
    got = rows("sources-and-claims", g)
    assert {r["source"] for r in got} == {str(s) for s in g.subjects(RDF.type, JDM.BibliographicSource)}
    proderm = [r for r in got if r["sourceLabel"] == "ProDERM trial 2022 (IVIG in dermatomyositis)"]
    assert {r["populationLabel"] for r in proderm} == {"adults only"} and proderm[0]["doi"] == "10.1056/NEJMoa2117912"
    assert ("related, not cited by the guideline", str(JDMG["pref-ivig-skin-adjunct"])) in {(r["how"], r["user"]) for r in proderm}
    share = {(r["how"], r["user"]) for r in got if r["sourceLabel"] == "SHARE JDM recommendations 2017"}
    assert ("cites it", str(JDMG["pref-share-refractory"])) in share


def test_screening_tests(g):
    got = {(r["conditionLabel"], r["testLabel"], r["loinc"]) for r in rows("screening-tests", g)}
    assert {("hepatitis B", "hepatitis B surface antigen (HBsAg)", "5196-1"),
            ("hepatitis B", "hepatitis B surface antigen (HBsAg)", "5195-3"),
            ("tuberculosis", "tuberculosis interferon-gamma release assay (IGRA)", "71773-6"),
            ("tuberculosis", "tuberculin skin test", "")} <= got
    assert len({t for _, t, _ in got}) == 5


def test_patients_jak_failure_matches_recommend(guideline, patients):
    data = with_guideline(guideline, *(graph for _, graph, _ in patients))
    got = {r["patientId"]: r for r in rows("patients-jak-failure", data)}
    results = [r for _, _, found in patients for r in found]
    assert set(got) == {r.record.patient_id for r in results}
    for result in results:
        row = got[result.record.patient_id]
        assert bool(row["jakFailures"]) == bool(result.jak_failures), result.record.patient_id
        if not result.blocked_by_validation:
            assert bool(row["jakFailures"]) == result.applicable
            assert row["predominant"] == "; ".join(sorted(f.label for f in result.features if f.predominant))
    assert got["P-ILD"]["jakFailures"] == "upadacitinib (intolerance or adverse event, stopped 2026-06-02)"
    assert got["P-NOJAK"]["jakFailures"] == ""


def test_screening_latest_matches_recommends_history(guideline, patients):
    checked = 0
    for path, graph, results in patients:
        got = {(r["patientId"], r["conditionLabel"]): r for r in rows("screening-latest", with_guideline(guideline, graph))}
        for result in results:
            for gate in result.screening:
                dated = [e for e in gate.history if e.kind == "result" and e.date]
                if not dated:
                    assert (result.record.patient_id, gate.condition_label) not in got
                    continue
                latest = max(e.date for e in dated)
                row = got[(result.record.patient_id, gate.condition_label)]
                assert row["latest"] == latest.isoformat(), path.name
                assert row["resultLabel"] in {e.result for e in dated if e.date == latest}, path.name
                assert row["results"] == str(len(dated)), path.name
                checked += 1
    assert checked >= 20
    ild = rows("screening-latest", with_guideline(guideline, load_patient_file(ROOT / "examples" / "ild-predominant.ttl")))
    assert ("hepatitis B", "2026-10-01", "positive") in {(r["conditionLabel"], r["latest"], r["resultLabel"]) for r in ild}


def test_option_assessment_reasons_are_recommends(guideline, patients):
    for path, _, results in patients:
        got = rows("option-assessment-reasons", with_guideline(guideline, results_graph(results, guideline)))
        want = {(r.record.patient_id, o.label, o.status, reason.direction, reason.text)
                for r in results for o in r.options for reason in o.reasons}
        assert {(r["patientId"], r["optionLabel"], r["status"], r["direction"], r["text"]) for r in got} == want, path.name
        for r in results:
            for o in r.options:
                for reason in o.reasons:
                    behind = {x["restsOn"] for x in got if x["text"] == reason.text and x["optionLabel"] == o.label}
                    if reason.statement:
                        assert reason.statement.statement in behind
                    if reason.policy:
                        assert reason.policy.iri in behind
    ild = [r for _, _, found in patients for r in found if r.record.patient_id == "P-ILD"]
    assert ild and any(o.status == "blocked" for o in ild[0].options)


# ---------------------------------------------------------------- as an analyst runs them


def test_every_example_runs_as_its_header_says(tmp_path):
    """Each example's ``# run:`` command line, as an analyst types it (``> out.ttl`` written by the
    test): exit 0, rows, and the NOT A RECOMMENDATION line exactly where the header has one."""
    answers = {}
    for q in [q for q in query_catalogue() if q.name.startswith("examples/")]:
        for command in q.headers["run"].split("; "):
            words = command.split()
            assert words[0] == "jdm-kg", q.name
            target = None
            if ">" in words:
                target = tmp_path / words[words.index(">") + 1]
                words = words[:words.index(">")]
            proc = cli(*[str(tmp_path / w) if w == "out.ttl" else w for w in words[1:]])  # (as run() would)
            assert proc.returncode == 0, (q.name, proc.stderr)
            if target is not None:
                target.write_text(proc.stdout, encoding="utf-8")
                continue
            count = re.search(r"^\((\d+) rows?\)$", proc.stdout, re.MULTILINE)
            assert count and int(count.group(1)) > 0, q.name
            assert ("NOT A RECOMMENDATION" in proc.stdout) == (q.not_a_recommendation is not None), q.name
            answers[q.name] = proc.stdout
    assert len(answers) == len(example_queries())
    assert "(2 rows)" in answers["examples/comparative-statements"]
    assert "upadacitinib (intolerance or adverse event" in answers["examples/patients-jak-failure"]
    assert "screening history gates biologics" in answers["examples/option-assessment-reasons"]


def test_examples_by_file_and_in_the_list():
    by_file = run("query", "queries/examples/screening-tests.rq", "--format", "json")
    assert by_file.returncode == 0 and "RECOMMENDATION" not in by_file.stderr, by_file.stderr
    assert {"5196-1", "71773-6"} <= {r["loinc"] for r in json.loads(by_file.stdout)}
    listed = run("query", "--list").stdout
    assert "examples/preference-statements (jdm:PreferenceStatement)" in listed
    assert "run: jdm-kg query examples/patients-jak-failure --data examples/fhir" in listed


@pytest.mark.slow  # (by default: tests/test_query_determinism.py runs every example under two hash seeds, JSON)
@pytest.mark.parametrize("name, data", [("treatment-options", []), ("patients-jak-failure", ["--data", "examples/fhir"]),
                                        ("policies", [])])
def test_example_output_is_the_same_bytes_on_every_run(name, data):
    """Lists are built from ordered subqueries: Python's hash seed does not change them."""
    outputs = set()
    for seed in ("1", "2", "3"):
        proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "query", f"examples/{name}", *data, "--format", "csv"],
                              check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1


def test_example_query_names_are_distinct_from_bundled_ones():
    catalogue = [q.name for q in query_catalogue()]
    assert len(catalogue) == len(set(catalogue))
