"""The same recommendations whichever engine runs the queries, and whether files are processed
one by one or validated and queried together in a batch group."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from rdflib import Graph

from jdm_kg import load_guideline, load_patient_file
from jdm_kg.batch import disjoint_groups, process_files
from jdm_kg.loading import rdf_files
from jdm_kg.recommend import recommend_graph

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 24)

PATIENT_FILES = [
    p for p in rdf_files([ROOT / "examples", ROOT / "tests" / "vignettes"]) if "malformed" not in p.name
    and "remote-context" not in p.name
]


def _json(results) -> str:
    return json.dumps([r.as_dict() for r in results], sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("path", PATIENT_FILES, ids=lambda p: p.name)
def test_oxigraph_and_rdflib_give_identical_output(path):
    graph = load_patient_file(path)
    report_r, rdflib_results = recommend_graph(graph, str(path), today=TODAY, engine="rdflib")
    report_o, oxigraph_results = recommend_graph(graph, str(path), today=TODAY, engine="oxigraph")
    assert report_r.issues == report_o.issues
    assert _json(rdflib_results) == _json(oxigraph_results)
    assert rdflib_results, "every test file holds a patient record"


def test_a_batch_group_gives_what_each_file_gives_alone():
    files = [str(p) for p in PATIENT_FILES]
    together = process_files(files, "recommend", engine="oxigraph")
    alone = [process_files([f], "recommend", engine="rdflib")[0] for f in files]
    assert len(disjoint_groups([(f, load_patient_file(f)) for f in files], load_guideline())) < len(files)
    for group_outcome, own in zip(together, alone):
        assert group_outcome.path == own.path and group_outcome.error == own.error
        assert group_outcome.report.issues == own.report.issues, own.path
        assert _json(group_outcome.results) == _json(own.results), own.path


def _graph(turtle: str) -> Graph:
    return Graph().parse(data="@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .\n" + turtle, format="turtle")


def test_files_sharing_a_node_or_touching_the_guideline_are_not_grouped():
    guideline = load_guideline()
    a = _graph('<urn:p:1> a jdm:Patient ; jdm:patientId "1" .')
    b = _graph('<urn:p:2> a jdm:Patient ; jdm:patientId "2" .')
    same_patient = _graph('<urn:p:1> jdm:sex "female" .')
    mentions_a = _graph('<urn:p:3> a jdm:Patient ; jdm:patientId "3" ; jdm:relatedTo <urn:p:1> .')
    touches_guideline = _graph('<https://w3id.org/jdm-kg/guideline/rituximab> a jdm:JAKInhibitor .')
    loaded = [("a", a), ("b", b), ("same", same_patient), ("mentions", mentions_a), ("g", touches_guideline), ("b2", b)]
    groups = disjoint_groups(loaded, guideline)
    assert groups == [[0, 1], [2], [3], [4], [5]]
    assert disjoint_groups([("a", a), ("b", b)], guideline, size=1) == [[0], [1]]
