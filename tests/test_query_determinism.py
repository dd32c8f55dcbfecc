"""`jdm-kg query` prints the same bytes on every run: every bundled and example query, run through
the CLI in two processes with different hash seeds (rdflib's evaluation order follows Python's
hash-randomised sets) on a Turtle record with blank nodes (each parse gives them random labels)
and a FHIR one, gives the same stdout; so do a query of the user's own with no ORDER BY and a
CONSTRUCT. A failing query file of the user's own is an error naming it (exit 2), not a bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import RDFS, BNode, Literal, URIRef

from jdm_kg.cli import main
from jdm_kg.errors import EXIT_ERROR, EXIT_INTERNAL
from jdm_kg.knowledge.queries import deterministic_rows, prepareQuery, query_catalogue, stable_blank_nodes

ROOT = Path(__file__).resolve().parent.parent
DATA = ["examples/skin-predominant.ttl", "examples/fhir/refractory-multisystem.json"]  # blank nodes; FHIR

# One process runs every query (a subprocess per query would take minutes): each run's stdout
# after a line naming it.
RUNNER = """
import json, sys
from jdm_kg.cli import main
for argv in json.loads(sys.argv[1]):
    print("=== jdm-kg " + " ".join(argv), flush=True)
    code = main(argv)
    print(f"=== exit {code}", flush=True)
"""

# A query of the user's own: no ORDER BY, SELECT * (rdflib lists its variables in a set's order),
# blank nodes in the answer.
OWN_QUERY = """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
SELECT * WHERE { ?patient jdm:hasManifestation ?finding . ?finding ?property ?value }
"""
# A CONSTRUCT: Turtle, with a new blank node for each row (the template's []) and made-up prefixes.
OWN_CONSTRUCT = """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
CONSTRUCT { ?patient <urn:x:has> [ <urn:y:feature> ?feature ; <urn:z:finding> ?finding ] }
WHERE { ?patient jdm:hasManifestation ?finding . ?finding jdm:manifestation ?feature }
"""


#: Left out: rdflib takes about 25 s over it (a join with VALUES it evaluates last; the FHIR
#: importer runs it on Oxigraph, in milliseconds). The CLI orders its rows as any query's.
SLOW = {"fhir-codes"}


def _runs(tmp_path: Path) -> list[list[str]]:
    own, construct = tmp_path / "own.rq", tmp_path / "construct.rq"
    own.write_text(OWN_QUERY, encoding="utf-8")
    construct.write_text(OWN_CONSTRUCT, encoding="utf-8")
    runs = [["query", q.name, "--format", "json", "--data", *DATA] for q in query_catalogue() if q.name not in SLOW]
    runs += [["query", str(own), "--format", fmt, "--data", *DATA] for fmt in ("json", "table")]
    runs += [["query", str(construct), "--data", *DATA]]
    runs += [["query", "statement-provenance", "--format", "table", "--data", *DATA],
             ["query", "safety-actions", "--format", "csv"],
             ["query", "treatment-history", "--format", "csv", "--no-guideline", "--data", DATA[0]]]
    return runs


def _stdouts(seeds: list[str], runs: list[list[str]]) -> list[str]:
    """The stdout of the runs, in one process per hash seed (at the same time)."""
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(runs)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED=seed))
             for seed in seeds]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr
        out.append(stdout)
    return out


#: The default run's sample of the sweep: the user's own queries (no ORDER BY, SELECT *, a table, a
#: CONSTRUCT), a bundled query of options, one of safety actions, one without the guideline, and
#: the example queries that build lists (GROUP_CONCAT over ordered subqueries).
SAMPLE = {"candidate-options", "safety-actions", "treatment-history", "patients", "examples/treatment-options",
          "examples/patients-jak-failure", "examples/policies"}


def test_a_sample_of_queries_print_the_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """The sample; every query: test_every_query_prints_the_same_bytes_whatever_the_hash_seed (slow)."""
    runs = [argv for argv in _runs(tmp_path) if argv[1] in SAMPLE or not argv[1] in {q.name for q in query_catalogue()}]
    assert {argv[1] for argv in runs} >= SAMPLE and len(runs) >= len(SAMPLE) + 3  # + own (2 formats), CONSTRUCT
    _same_bytes(runs)


@pytest.mark.slow
def test_every_query_prints_the_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    assert len(runs) > len(query_catalogue())
    _same_bytes(runs)


def _same_bytes(runs: list[list[str]]) -> None:
    first, second = _stdouts(["1", "2"], runs)
    assert first.count("=== exit 0") == len(runs), first[-2000:]
    for one, two in zip(first.split("=== jdm-kg ")[1:], second.split("=== jdm-kg ")[1:]):
        assert one == two, f"jdm-kg {one.splitlines()[0]}: the output differs between two runs"
    assert first == second
    assert '"finding": "b' in first  # blank nodes are in the answers, labelled from the data


def test_blank_node_labels_come_from_the_data() -> None:
    def record() -> list[tuple[BNode | URIRef, URIRef, BNode | Literal]]:  # a fresh parse: new random labels
        patient, finding, twin = URIRef("urn:p"), BNode(), BNode()
        return [(patient, URIRef("urn:has"), finding), (finding, RDFS.label, Literal("skin")),
                (patient, URIRef("urn:has"), twin), (twin, RDFS.label, Literal("skin")),  # alike: two labels
                (BNode(), RDFS.label, Literal("alone"))]

    labels = {str(t) for s, _, o in stable_blank_nodes(record()) for t in (s, o) if isinstance(t, BNode)}
    assert len(labels) == 3
    assert stable_blank_nodes(record()) == stable_blank_nodes(record())
    assert set(stable_blank_nodes(reversed(record()))) == set(stable_blank_nodes(record()))


@pytest.mark.parametrize("text, order", [
    ("SELECT ?s ?o WHERE { VALUES (?s ?o) { (2 'b') (1 'b') (2 'a') } }", ["1 b", "2 a", "2 b"]),
    ("SELECT ?s ?o WHERE { VALUES (?s ?o) { (2 'b') (1 'b') (2 'a') } } ORDER BY ?o", ["2 a", "1 b", "2 b"]),
    ("SELECT ?s ?o WHERE { VALUES (?s ?o) { (2 'b') (1 'b') (2 'a') } } ORDER BY DESC(?o) LIMIT 2", ["1 b", "2 b"]),
    ("SELECT DISTINCT * WHERE { VALUES (?z ?a) { (2 'b') (1 UNDEF) (2 'b') } }", ["1 None", "2 b"]),
])
def test_ties_and_unordered_rows_are_ordered_by_their_columns(text: str, order: list[str]) -> None:
    from rdflib import Graph

    result = Graph().query(deterministic_rows(prepareQuery(text), text))
    assert [" ".join(str(v) for v in row) for row in result] == order
    if "*" in text:
        assert [str(v) for v in result.vars] == ["z", "a"]  # SELECT *: in the order of the query


def test_a_failing_query_file_is_the_users_error_a_failing_bundled_query_a_bug(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "sum-of-iris.rq"
    own.write_text("SELECT (SUM(?o) AS ?total) WHERE { ?s ?p ?o }\n", encoding="utf-8")  # rdflib raises inside
    assert main(["query", str(own), "--format", "csv"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: {own}: rdflib could not evaluate the query" in err and "please report" not in err

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("evaluator broke")

    monkeypatch.setattr("rdflib.Graph.query", broken)
    assert main(["query", "patients", "--format", "csv"]) == EXIT_INTERNAL
    assert "please report" in capsys.readouterr().err
