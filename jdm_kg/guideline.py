"""Load and compile the guideline graph once: OWL RL closure plus the rules in ``queries/rules``.

Nothing here depends on a patient, so the result is computed once per process and shared by
every validation and recommendation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import owlrl
from owlrl.Namespaces import ERRNS
from rdflib import OWL, RDF, Graph, URIRef

from jdm_kg.errors import InputError
from jdm_kg.loading import load_rdf_file
from jdm_kg.resources import resource_dir

__all__ = ["Guideline", "load_guideline", "with_guideline", "guideline_plus", "GUIDELINE_IRI", "JDM", "JDMG"]

from rdflib import Namespace

JDM = Namespace("https://w3id.org/jdm-kg/vocab#")
JDMG = Namespace("https://w3id.org/jdm-kg/guideline/")
GUIDELINE_IRI = URIRef("https://w3id.org/jdm-kg/guideline")


@dataclass(frozen=True)
class Guideline:
    """The compiled guideline: the asserted triples, and the closure used for queries."""

    asserted: Graph
    graph: Graph
    files: tuple[Path, ...]
    inconsistencies: tuple[str, ...]

    @property
    def version(self) -> str:
        """The guideline's ``owl:versionInfo`` (e.g. 'v2026-11-24')."""
        return str(self.asserted.value(GUIDELINE_IRI, OWL.versionInfo) or "unversioned")

    @property
    def version_iri(self) -> URIRef:
        value = self.asserted.value(GUIDELINE_IRI, OWL.versionIRI)
        return value if isinstance(value, URIRef) else GUIDELINE_IRI


def _read_rule(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def compile_guideline(files: list[Path], asserted: Graph | None = None) -> Guideline:
    """Parse ``files`` (unless ``asserted`` already holds them), compute the OWL RL closure and
    apply the rules; report inconsistencies."""
    if asserted is None:
        asserted = Graph()
        for path in files:
            asserted += load_rdf_file(path)
    closure = Graph()
    closure += asserted
    owlrl.DeductiveClosure(owlrl.OWLRL_Semantics, axiomatic_triples=False, datatype_axioms=False).expand(closure)
    errors = tuple(sorted(str(m) for m in closure.objects(None, ERRNS.error)))
    for node in list(closure.subjects(RDF.type, ERRNS.ErrorMessage)):
        closure.remove((node, None, None))
    for rule in sorted(resource_dir("queries").joinpath("rules").glob("*.rq")):
        for triple in closure.query(_read_rule(rule)):
            closure.add(triple)  # type: ignore[arg-type]
    return Guideline(asserted=asserted, graph=closure, files=tuple(files), inconsistencies=errors)


def guideline_files(directory: Path | None = None) -> list[Path]:
    folder = directory or resource_dir("ontology")
    files = sorted(folder.glob("*.ttl"))
    if not files:
        raise InputError(str(folder), "no .ttl guideline files found")
    return files


@cache
def load_guideline(directory: Path | None = None) -> Guideline:
    """Return the compiled guideline from ``directory`` (default: the bundled ``ontology/``)."""
    return compile_guideline(guideline_files(directory))


def with_guideline(guideline: Guideline, *graphs: Graph) -> Graph:
    """A new graph holding the compiled guideline and ``graphs`` (the data queries and shapes run on).

    A copy, not an aggregate: rdflib's ReadOnlyGraphAggregate repeats rows under subqueries.
    """
    data = Graph()
    data += guideline.graph
    for graph in graphs:
        data += graph
    return data


@cache
def _scratch(guideline: Guideline) -> Graph:
    graph = Graph()
    graph += guideline.graph
    return graph


@contextmanager
def guideline_plus(guideline: Guideline, *graphs: Graph) -> Iterator[Graph]:
    """The compiled guideline with ``graphs`` added, in one graph kept per process: the added
    triples are taken out again on exit, so the guideline is copied once, not once per batch.
    Not for use by two callers at once (one batch at a time per process)."""
    data = _scratch(guideline)
    added = {t for graph in graphs for t in graph if t not in guideline.graph}
    data.addN((s, p, o, data) for s, p, o in added)
    try:
        yield data
    finally:
        for triple in added:
            data.remove(triple)
