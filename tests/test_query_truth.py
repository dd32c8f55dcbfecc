"""Bundled queries that tell the truth (issue 14, item 7): every bundled query whose rows name
treatment options either agrees with ``recommend`` (the same options offered, statuses, ranks,
bands and order) or says what it is instead (``# not a recommendation: ...``, shown with its
output, by ``jdm-kg query --list`` and in the HTML docs), and then gives the same answer as
``recommend`` on what it does list, for every example patient (Turtle, JSON-LD, FHIR) and every
vignette."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import cli, run
from rdflib import Literal, URIRef
from rdflib.term import Node

from jdm_kg import load_patient_file, recommend_graph
from jdm_kg.knowledge.guideline import with_guideline
from jdm_kg.knowledge.queries import bundled_queries, prepared, query_catalogue, select
from jdm_kg.outputs.report import results_graph
from jdm_kg.reasoning.recommend import OFFERED_STATUSES, PatientResult

ROOT = Path(__file__).resolve().parent.parent
PATIENT_FILES = sorted(
    [p for p in (ROOT / "examples").glob("*.*")] + list((ROOT / "examples" / "fhir").glob("*.json"))
    + list((ROOT / "tests" / "vignettes").glob("*.*")))


def _s(row: dict[str, Node], key: str) -> str | None:
    return str(row[key]) if key in row else None


def _bool(value: Node | None) -> bool:
    return bool(value.toPython()) if isinstance(value, Literal) else False


class Case:
    """One patient file: its graph, recommend's results, and the data queries run on."""

    def __init__(self, path: Path, guideline) -> None:
        self.path = path
        self.graph = load_patient_file(path)
        _, self.results = recommend_graph(self.graph, str(path), guideline)
        self.data = with_guideline(guideline, self.graph)
        self.output = with_guideline(guideline, results_graph(self.results, guideline))


@pytest.fixture(scope="module")
def cases(guideline) -> list[Case]:
    return [Case(path, guideline) for path in PATIENT_FILES]


# ---------------------------------------------------------------- one comparison a query


def agrees_recommended_options(case: Case, result: PatientResult) -> None:
    """The rows over recommend's PROV-O output are recommend's options: same order, status,
    offered or not, rank and band; a record with violations has none."""
    rows = [r for r in select(case.output, "recommended-options") if _s(r, "patientId") == result.record.patient_id]
    got = [(_s(r, "option"), _s(r, "status"), _bool(r.get("offered")), r["rank"].toPython() if "rank" in r else None,
            _s(r, "band"), _bool(r.get("applicable"))) for r in rows]
    want = [(o.option, o.status, o.is_offered, o.rank, o.standing_iri, result.applicable) for o in result.options]
    assert got == want
    assert {o for o, _, offered, *_ in got if offered} == {o.option for o in result.options if o.status in OFFERED_STATUSES}


def agrees_candidate_options(case: Case, result: PatientResult) -> None:
    """Every option recommend assesses, with its role, section and whether it is ranked; and
    nothing about whether it is offered (so it must say it is not a recommendation)."""
    got = {(_s(r, "option"), _s(r, "role"), r["sectionOrder"].toPython(), _bool(r["ranked"]))
           for r in select(case.data, "candidate-options")}
    if result.blocked_by_validation:
        assert result.options == []  # recommend gives nothing; the query lists every option regardless
        return
    assert got == {(o.option, o.role_iri, o.section, o.ranked) for o in result.options}


def _matching_reasons(result: PatientResult) -> set[tuple[str, str, str, frozenset[str], bool]]:
    """(option, statement, side, features, any predominant) of each reason recommend drew from a
    guideline sentence about the patient's features (not a policy, a gate or the history)."""
    return {(o.option, r.statement.statement, r.direction, frozenset(r.patient_fact["manifestation"].split("; ")),
             r.patient_fact["predominant"] == "yes")
            for o in result.options for r in o.reasons
            if r.statement is not None and r.policy is None and r.patient_fact and "manifestation" in r.patient_fact}


def agrees_option_matches(case: Case, result: PatientResult) -> None:
    """The matches are recommend's reasons from the guideline's sentences, one per (option,
    statement, side), with the same features and predominance."""
    rows = select(case.data, "option-matches", patient=result.record.node)
    grouped: dict[tuple[str, str, str], list[dict[str, Node]]] = {}
    for r in rows:
        grouped.setdefault((str(r["option"]), str(r["statement"]), str(r["side"])), []).append(r)
    got = {(o, s, side, frozenset(str(r["manifestationLabel"]) for r in group), any(_bool(r["predominant"]) for r in group))
           for (o, s, side), group in grouped.items()}
    if result.blocked_by_validation:
        assert result.options == []
        return
    assert got == _matching_reasons(result)


def agrees_option_statements(case: Case, result: PatientResult) -> None:
    """Restricted to the patient's features, what the sentences name each option for is what
    option-matches finds for the patient (which is recommend's reasons, above)."""
    features = {str(r["manifestation"]) for r in select(case.data, "manifestations", patient=result.record.node)}
    named = {(str(r["option"]), str(r["statement"]), str(r["side"]), str(r["manifestation"]))
             for r in select(case.data, "option-statements") if str(r["manifestation"]) in features}
    matched = {(str(r["option"]), str(r["statement"]), str(r["side"]), str(r["manifestation"]))
               for r in select(case.data, "option-matches", patient=result.record.node)}
    assert named == matched


def agrees_regimen(case: Case, result: PatientResult) -> None:
    """The regimens behind recommend's doses, for every option it works doses out for."""
    for option in result.options:
        if option.doses:
            rows = select(case.data, "regimen", option=URIRef(option.option))
            assert {str(r["regimen"]) for r in rows} == {d.regimen.iri for d in option.doses}, option.label


def agrees_safety_actions(case: Case, result: PatientResult) -> None:
    """recommend's actions for each option: the query's, less advice for a drug the patient is not on."""
    current = {e.drug for e in result.history if e.current and e.drug}
    for option in result.options:
        rows = select(case.data, "safety-actions", option=URIRef(option.option))
        want = {str(r["statement"]) for r in rows if "onlyIfOn" not in r or str(r["onlyIfOn"]) in current}
        assert want == {a.statement.statement for a in option.actions}, option.label


def agrees_caveats(case: Case, result: PatientResult) -> None:
    for option in result.options:
        rows = select(case.data, "caveats", option=URIRef(option.option))
        assert {str(r["caveat"]) for r in rows} == {c.statement for c in option.caveats}, option.label


def agrees_gaps(case: Case, result: PatientResult) -> None:
    for option in result.options:
        rows = select(case.data, "gaps", option=URIRef(option.option))
        assert {str(r["gap"]) for r in rows} == {g["gap"] for g in option.gaps}, option.label


#: Every bundled query whose rows name options, with the comparison it must pass on every patient.
COMPARISONS: dict[str, Callable[[Case, PatientResult], None]] = {
    "recommended-options": agrees_recommended_options,
    "candidate-options": agrees_candidate_options,
    "option-matches": agrees_option_matches,
    "option-statements": agrees_option_statements,
    "regimen": agrees_regimen,
    "safety-actions": agrees_safety_actions,
    "caveats": agrees_caveats,
    "gaps": agrees_gaps,
}


# ---------------------------------------------------------------- the tests


def _lists_options(name: str) -> bool:
    return "option" in {str(v) for v in prepared(name).algebra.get("PV", [])}


def test_every_query_that_names_options_says_what_it_is_and_is_compared():
    catalogue = {q.name: q for q in query_catalogue() if q.name in bundled_queries()}
    listing = {name for name in catalogue if _lists_options(name)}
    assert listing == set(COMPARISONS), "a bundled query with ?option needs a comparison with recommend here"
    for name in listing:
        q = catalogue[name]
        # exactly one: it agrees with recommend, or it says it is not a recommendation
        assert (q.agrees_with is None) != (q.not_a_recommendation is None), name
    assert [n for n in listing if catalogue[n].agrees_with] == ["recommended-options"]
    assert "jdm-kg recommend" in catalogue["option-matches"].not_a_recommendation
    assert "does not rank" in catalogue["option-matches"].not_a_recommendation
    assert "already failed" in catalogue["candidate-options"].not_a_recommendation


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_query_gives_recommends_answer_for_every_example_and_vignette(cases, name):
    assert len(cases) >= 35
    compared = 0
    for case in cases:
        assert case.results, case.path
        for result in case.results:
            try:
                COMPARISONS[name](case, result)
            except AssertionError as err:
                raise AssertionError(f"{name} disagrees with recommend on {case.path.name} "
                                     f"({result.record.patient_id}): {err}") from None
            compared += 1
    assert compared >= len(cases)


def test_the_patients_cover_what_a_list_of_options_gets_wrong(cases):
    """The comparisons are not vacuous: across the patients, recommend excludes, blocks, keeps
    current, does not apply and refuses records, while candidate-options lists every option."""
    statuses = {o.status for c in cases for r in c.results for o in r.options}
    assert {"offered", "conditional", "blocked", "excluded", "current", "not-indicated", "not-applicable"} <= statuses
    assert any(r.blocked_by_validation for c in cases for r in c.results)
    assert any(len({o.rank for o in r.options if o.rank}) > 1 for c in cases for r in c.results)  # real orders
    assert sum(len(_matching_reasons(r)) for c in cases for r in c.results) > 50


# ---------------------------------------------------------------- as an analyst runs them


def test_query_prints_not_a_recommendation_with_the_rows(tmp_path):
    patient = "patient=<https://w3id.org/jdm-kg/example/patient/P-ILD>"
    table = cli("query", "option-matches", "--data", "examples/ild-predominant.ttl", "--param", patient)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("Guideline v")  # which guideline, then the notice
    assert lines[1].startswith("NOT A RECOMMENDATION: the guideline's sentences that match the patient's features")
    assert lines[-1].startswith("NOT A RECOMMENDATION (see the first line): `jdm-kg recommend` says which options")
    as_csv = cli("query", "option-matches", "--data", "examples/ild-predominant.ttl", "--param", patient,
                 "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))  # stdout stays CSV
    assert {r["option"].rsplit("/", 1)[-1] for r in rows} >= {"rituximab", "infliximab", "adalimumab", "ivig"}
    assert "note: NOT A RECOMMENDATION: the guideline's sentences" in as_csv.stderr
    plain = cli("query", "patients", "--data", "examples/ild-predominant.ttl")
    assert "RECOMMENDATION" not in plain.stdout + plain.stderr


def test_query_list_says_what_each_query_is():
    proc = run("query", "--list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in bundled_queries():
        assert f"\n{name}\n" in out, name
    entry = out.split("\ncandidate-options\n", 1)[1].split("\n\n", 1)[0]
    assert "NOT A RECOMMENDATION: every option the guideline names" in " ".join(entry.split())
    entry = out.split("\nrecommended-options\n", 1)[1].split("\n\n", 1)[0]
    assert "agrees with: `jdm-kg recommend`" in " ".join(entry.split())
    assert "NOT A RECOMMENDATION" not in entry
    assert run("query").returncode == 2


def test_recommended_options_from_recommends_turtle_output_through_the_cli(tmp_path):
    out = tmp_path / "out.ttl"
    proc = cli("recommend", "examples/ild-predominant.ttl", "examples/no-jak-failure.ttl", "--format", "turtle")
    assert proc.returncode == 0, proc.stderr
    out.write_text(proc.stdout, encoding="utf-8")
    answer = cli("query", "recommended-options", "--data", str(out), "--format", "json")
    assert answer.returncode == 0 and "RECOMMENDATION" not in answer.stderr, answer.stderr
    rows = json.loads(answer.stdout)
    report = json.loads(cli("recommend", "examples/ild-predominant.ttl", "examples/no-jak-failure.ttl",
                            "--format", "json").stdout)
    want = [(p["patientId"], o["option"], o["status"], str(o["rank"] or ""), o["standingBand"] or "")
            for p in sorted(report, key=lambda p: p["patientId"]) for o in p["options"]]
    assert [(r["patientId"], r["option"], r["status"], r["rank"], r["band"]) for r in rows] == want
    ild = [r for r in rows if r["patientId"] == "P-ILD"]
    assert ild[0]["optionLabel"] == "rituximab" and ild[0]["status"] == "blocked" and ild[0]["offered"] == "false"
    assert {r["optionLabel"] for r in ild if r["offered"] == "true"} == {
        "intravenous immunoglobulin (IVIG)", "combination: high-dose MTX + ciclosporin + IVIG"}
    assert {r["applicable"] for r in rows if r["patientId"] != "P-ILD"} == {"false"}


def test_recommended_options_keeps_two_runs_for_one_patient_apart(tmp_path):
    """A Turtle record and its FHIR export name the same patient: recommend's output holds two
    runs for it, and each option row belongs to one run (it joined on the patient before)."""
    out = tmp_path / "two-runs.ttl"
    proc = cli("recommend", "examples/skin-predominant.ttl", "examples/fhir/skin-predominant.json", "--format", "turtle")
    assert proc.returncode == 0, proc.stderr
    out.write_text(proc.stdout)
    rows = json.loads(cli("query", "recommended-options", "--data", str(out), "--format", "json").stdout)
    by_run: dict[str, list[str]] = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row["option"])
    assert len(by_run) == 2
    for options in by_run.values():
        assert len(options) == len(set(options)) == 7  # each option once per run, not once per run and patient
