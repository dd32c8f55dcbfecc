"""The same recommendations whichever engine runs the queries, and whether files are processed
one by one or validated and queried together in a batch group."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from rdflib import Graph, URIRef

from jdm_kg import load_guideline, load_patient_file
from jdm_kg.batch import disjoint_groups, process_files
from jdm_kg.inputs.loading import rdf_files
from jdm_kg.reasoning.recommend import recommend_graph

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


TURTLE_FILES = sorted(
    p for p in [*ROOT.glob("examples/**/*.ttl"), *ROOT.glob("tests/**/*.ttl"), *ROOT.glob("ontology/*.ttl"),
                *ROOT.glob("shapes/**/*.ttl")]
)


@pytest.mark.parametrize("path", TURTLE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_fast_turtle_parser_gives_the_graph_rdflib_gives(path):
    from rdflib.compare import isomorphic

    from jdm_kg.inputs.loading import _parse_with_oxigraph

    text = path.read_text(encoding="utf-8")
    try:
        expected = Graph().parse(data=text, format="turtle")
    except Exception:
        expected = None
    fast = _parse_with_oxigraph(text, "turtle")
    if fast is None:  # Oxigraph refused it: rdflib parses it (or reports it) as before
        return
    assert expected is not None and isomorphic(fast, expected)


def test_the_fast_parser_shares_iris_and_literals_between_files_never_blank_nodes():
    """Terms are remembered from file to file (a speed-up); a blank node label is local to
    its file, so the same label in two files gives two nodes, and one node within a file."""
    from rdflib import BNode, Literal, URIRef

    from jdm_kg.inputs.loading import _parse_with_oxigraph

    text = (
        "@prefix ex: <https://example.org/> .\n"
        "ex:p ex:episode _:e . _:e ex:start \"2025-01-01\" ; ex:drug ex:d .\n"
        "ex:p ex:other [ ex:start \"2025-01-01\" ] .\n"
    )
    first, second = _parse_with_oxigraph(text, "turtle"), _parse_with_oxigraph(text, "turtle")
    assert first is not None and second is not None and len(first) == len(second) == 5
    ex = "https://example.org/"
    for graph in (first, second):
        (episode,) = graph.objects(URIRef(ex + "p"), URIRef(ex + "episode"))
        assert isinstance(episode, BNode) and (episode, URIRef(ex + "drug"), URIRef(ex + "d")) in graph
        assert set(graph.objects(None, URIRef(ex + "start"))) == {Literal("2025-01-01")}
        assert len({s for s in graph.subjects() if isinstance(s, BNode)}) == 2
    blank = {s for g in (first, second) for s in g.subjects() if isinstance(s, BNode)}
    assert len(blank) == 4  # no blank node shared between the two files


def test_the_cached_guideline_is_the_compiled_one(tmp_path, monkeypatch):
    from rdflib.compare import isomorphic

    from jdm_kg.knowledge.guideline import compile_guideline, guideline_files

    monkeypatch.setenv("JDM_KG_CACHE", str(tmp_path))
    load_guideline.cache_clear()
    try:
        first = load_guideline()  # compiles and writes the cache
        assert list(tmp_path.glob("guideline-*.nq"))
        load_guideline.cache_clear()
        cached = load_guideline()  # reads it back
        fresh = compile_guideline(guideline_files())
        assert cached is not first
        assert isomorphic(cached.graph, fresh.graph) and isomorphic(cached.asserted, fresh.asserted)
        assert cached.inconsistencies == fresh.inconsistencies and cached.version == fresh.version
        (next(tmp_path.glob("guideline-*.nq"))).write_text("# not json\ngarbage", encoding="utf-8")
        load_guideline.cache_clear()
        assert isomorphic(load_guideline().graph, fresh.graph)  # a damaged cache is compiled again
    finally:
        load_guideline.cache_clear()


def test_a_query_text_is_checked_once_then_remembered_by_its_text(tmp_path, monkeypatch):
    """Oxigraph and servers get the bundled query text only after rdflib's parse has checked it
    (no SERVICE, no FROM); a text that passed is not parsed again, an edited one is."""
    from jdm_kg.errors import InputError
    from jdm_kg.knowledge import queries

    monkeypatch.setenv("JDM_KG_CACHE", str(tmp_path))
    checked: list[str] = []
    real_check = queries.check_query
    monkeypatch.setattr(queries, "check_query", lambda text, label: checked.append(label) or real_check(text, label))
    texts = {"q": "SELECT ?s WHERE { ?s ?p ?o }"}
    monkeypatch.setattr(queries, "query_source", lambda name: (texts[name], f"{name}.rq"))
    try:
        for _ in range(2):
            queries.query_text.cache_clear()
            assert queries.query_text("q") == texts["q"]
        assert checked == ["q.rq"] and len(list((tmp_path / "checked-queries").iterdir())) == 1
        texts["q"] = "SELECT ?s WHERE { SERVICE <https://query.example.org/sparql> { ?s ?p ?o } }"
        queries.query_text.cache_clear()
        with pytest.raises(InputError, match="SERVICE"):
            queries.query_text("q")
        assert checked == ["q.rq", "q.rq"] and len(list((tmp_path / "checked-queries").iterdir())) == 1
    finally:
        queries.query_text.cache_clear()


def test_a_shape_query_oxigraph_may_run_is_checked_once_then_remembered(tmp_path, monkeypatch):
    """pySHACL's SPARQL goes to Oxigraph only after rdflib's parse found no SERVICE or FROM; a
    text (with its prefixes) that passed is not parsed again, one that failed never passes."""
    from jdm_kg.knowledge import queries

    monkeypatch.setenv("JDM_KG_CACHE", str(tmp_path))
    parsed: list[str] = []
    real_prepare = queries._prepare_text.__wrapped__
    monkeypatch.setattr(queries, "_prepare_text", lambda text, base, ns: parsed.append(text) or real_prepare(text, base, ns))
    local = "SELECT ?this WHERE { ?this a rdfs:Class }"
    remote = "SELECT ?this WHERE { SERVICE <https://query.example.org/sparql> { ?this ?p ?o } }"
    namespaces = (("rdfs", URIRef("http://www.w3.org/2000/01/rdf-schema#")),)
    try:
        for _ in range(2):
            queries.stays_local.cache_clear()
            assert queries.stays_local(local, namespaces) is True
            assert queries.stays_local(remote, namespaces) is False
        assert parsed == [local, remote, remote]  # the local text parsed once, across processes
        assert len(list((tmp_path / "checked-queries").iterdir())) == 1
        assert queries.stays_local("SELECT ?this WHERE { ?this a nope:Thing }", namespaces) is False  # does not parse
    finally:
        queries.stays_local.cache_clear()


def test_checked_query_marker_ignores_the_order_of_prefix_lines(tmp_path, monkeypatch):
    """Regression: pySHACL writes a SPARQL constraint's PREFIX lines in a set's order, which
    changes with the hash seed, so the marker of a checked text missed in some runs and the
    query was parsed again (about a second of a one-file run)."""
    from jdm_kg.knowledge import queries

    monkeypatch.setenv("JDM_KG_CACHE", str(tmp_path))
    body = "SELECT ?this WHERE { ?this a jdm:Patient ; xsd:x ?y }"
    one = "PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>\nPREFIX xsd: <http://www.w3.org/2001/XMLSchema#>\n" + body
    other = "PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>\nPREFIX jdm: <https://w3id.org/jdm-kg/vocab#>\n" + body
    assert queries._checked_marker(one) == queries._checked_marker(other)
    twice = "PREFIX a: <urn:1>\nPREFIX a: <urn:2>\n" + body  # a name declared twice: the order means something
    swapped = "PREFIX a: <urn:2>\nPREFIX a: <urn:1>\n" + body
    assert queries._checked_marker(twice) != queries._checked_marker(swapped)
    assert queries._checked_marker(one) != queries._checked_marker(one.replace("Patient", "Drug"))


@pytest.mark.parametrize("path", PATIENT_FILES[::3], ids=lambda p: p.name)
def test_queries_for_a_whole_batch_give_each_patient_what_bound_queries_give(path):
    from jdm_kg.knowledge.guideline import with_guideline
    from jdm_kg.reasoning.recommend import assess_patient

    guideline = load_guideline()
    graph = load_patient_file(path)
    report, batched = recommend_graph(graph, str(path), today=TODAY, engine="oxigraph")
    data = with_guideline(guideline, graph)  # a plain graph: each query bound to one patient
    bound = [assess_patient(data, r, str(path), report.issues_for(r), guideline, TODAY) for r in report.records]
    assert _json(batched) == _json(bound)
