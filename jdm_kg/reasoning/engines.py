"""Where the bundled SPARQL queries run.

Three engines answer the same queries with the same rows:

- :class:`RdflibEngine`: rdflib's evaluator over an in-memory graph (guideline closure plus
  patient triples). The Python API's default (``engine="rdflib"``).
- :class:`OxigraphStore`: `pyoxigraph <https://pyoxigraph.readthedocs.io>`_, an embedded
  store written in Rust. The compiled guideline is loaded once into its own named graph;
  each batch of patient files goes into another named graph of a fresh store. Queries see the
  two as one default graph. The command line's default (``--engine oxigraph``).
- :class:`jdm_kg.reasoning.endpoint.EndpointEngine`: a SPARQL 1.1 server (``--endpoint URL``).

All three implement :class:`QueryEngine`; :func:`jdm_kg.reasoning.choose.query_engines` is the one
place that chooses among them.

Parameters are always bound as RDF terms (rdflib ``initBindings``, Oxigraph
``substitutions``, a serialised ``VALUES`` block for a server), never pasted into the query
text. :class:`GroupQueries` answers a batch's per-patient queries with one query each.

Validation (pySHACL) runs on an rdflib graph; with any engine but rdflib's, that graph's own
SPARQL queries (the shapes' SPARQL targets and constraints) are answered by the batch's
Oxigraph store too (:class:`OxigraphAnswered`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Protocol

from rdflib import BNode, Graph, Literal, URIRef, Variable
from rdflib.query import Result
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.guideline_source import provide
from jdm_kg.inputs.loading import from_oxigraph
from jdm_kg.knowledge.guideline import GUIDELINE_IRI, Guideline, GuidelineUnion, with_guideline
from jdm_kg.knowledge.queries import Row, query_text, select, stays_local

__all__ = [
    "QueryEngine",
    "RdflibEngine",
    "GroupQueries",
    "OxigraphStore",
    "OxigraphEngine",
    "ENGINES",
    "oxigraph_store",
    "group_store",
    "OxigraphAnswered",
    "oxigraph_answered",
]

ENGINES = ("rdflib", "oxigraph")

#: What runs the queries: "rdflib", "oxigraph", or a :class:`jdm_kg.reasoning.endpoint.Endpoint`.
EngineChoice = Any

#: The named graph the compiled guideline is kept in (embedded store and SPARQL servers).
GUIDELINE_GRAPH = str(GUIDELINE_IRI)


class QueryEngine(Protocol):
    """Runs a bundled SELECT query with bound parameters and returns rdflib terms."""

    #: An engine over the guideline alone, for the patient-independent queries (None: use
    #: the local compiled guideline with rdflib, cached per process).
    guideline_view: QueryEngine | None

    def select(self, name: str, **bindings: Node) -> list[Row]: ...


class RdflibEngine:
    """rdflib's SPARQL evaluator over one graph."""

    guideline_view = None

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def select(self, name: str, **bindings: Node) -> list[Row]:
        return select(self.graph, name, **bindings)


class GroupQueries:
    """Answers the per-patient queries (bound to ``?patient`` alone) for a whole batch at once.

    The first time a query is asked for one patient, it runs once with ``?patient`` unbound
    over every patient of the batch, and the rows are kept by patient; each query projects
    ``?patient`` and orders its rows completely, so a patient's rows are the ones (in the order)
    the bound query gives. One query per batch instead of one per patient: the per-query cost
    of an engine is paid once. Other queries go to the engine as they are.
    """

    def __init__(self, engine: QueryEngine) -> None:
        self.engine = engine
        self.guideline_view = engine.guideline_view
        self._rows: dict[str, dict[Node, list[Row]]] = {}

    def select(self, name: str, **bindings: Node) -> list[Row]:
        if set(bindings) != {"patient"}:
            return self.engine.select(name, **bindings)
        if name not in self._rows:
            grouped: dict[Node, list[Row]] = {}
            for row in self.engine.select(name):
                if "patient" in row:  # (rdflib gives an empty row for an aggregate over nothing)
                    grouped.setdefault(row["patient"], []).append(row)
            self._rows[name] = grouped
        return self._rows[name].get(bindings["patient"], [])


def as_engine(data: Graph | QueryEngine) -> QueryEngine:
    """``data`` itself if it is an engine; an :class:`RdflibEngine` over it if it is a graph."""
    return RdflibEngine(data) if isinstance(data, Graph) else data


# --------------------------------------------------------------------------------------
# Oxigraph


def _ox() -> Any:
    try:
        import pyoxigraph
    except ImportError:
        raise InputError(
            "--engine oxigraph", "pyoxigraph (a jdm-kg dependency) is not installed: reinstall jdm-kg, or use --engine rdflib"
        ) from None
    return pyoxigraph


class _Terms:
    """rdflib <-> pyoxigraph terms. Blank nodes keep their identity both ways within one store;
    ``base`` (the guideline's terms) maps the blank nodes of the guideline graph."""

    def __init__(self, ox: Any, prefix: str = "b", base: _Terms | None = None) -> None:
        self.ox = ox
        self.prefix = prefix
        self._base = base  # read through, never copied (the guideline's terms: thousands)
        self._to_ox: dict[Node, Any] = {}
        self._from_ox: dict[str, BNode] = {}
        self._seen: dict[Any, Node] = {}  # Oxigraph term -> rdflib term (labels, IRIs repeat a lot)

    def to_ox(self, term: Node) -> Any:
        node = self._to_ox.get(term)
        if node is None and self._base is not None:
            node = self._base._to_ox.get(term)
        if node is None:
            node = self._to_ox[term] = self._convert_to_ox(term)
        return node

    def _convert_to_ox(self, term: Node) -> Any:
        ox = self.ox
        if isinstance(term, URIRef):
            return ox.NamedNode(str(term))
        if isinstance(term, BNode):  # a label no other batch of this process takes (stores are shared)
            node = ox.BlankNode(f"{self.prefix}{next(_BLANK_LABELS)}")
            self._from_ox[node.value] = term
            return node
        if isinstance(term, Literal):
            if term.language:
                return ox.Literal(str(term), language=term.language)
            if term.datatype is not None:
                return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)))
            return ox.Literal(str(term))
        raise TypeError(f"cannot store {term!r} in Oxigraph")

    def blank(self, label: str) -> BNode:
        node = self._from_ox.get(label)
        if node is None and self._base is not None:
            node = self._base._from_ox.get(label)
        return node if node is not None else BNode(label)

    def quads(self, graph: Iterable[tuple[Node, Node, Node]], name: Any) -> list[Any]:
        """``graph``'s triples as Oxigraph quads in the named graph ``name``."""
        to_ox, quad = self.to_ox, self.ox.Quad
        return [quad(to_ox(s), to_ox(p), to_ox(o), name) for s, p, o in graph]

    def from_ox(self, term: Any) -> Node:
        node = self._seen.get(term)
        if node is None:
            if len(self._seen) > 200_000:
                self._seen.clear()
            node = self._seen[term] = self._convert(term)
        return node

    def _convert(self, term: Any) -> Node:
        return from_oxigraph(term, self.blank)


class OxigraphEngine:
    """The bundled queries over some graphs of an :class:`OxigraphStore`, as one default graph."""

    def __init__(self, store: OxigraphStore, graphs: list[Any], guideline_view: OxigraphEngine | None) -> None:
        self._store = store
        self._graphs = graphs
        self.guideline_view = guideline_view

    def select(self, name: str, **bindings: Node) -> list[Row]:
        solutions = self.run(query_text(name), bindings)
        names = [v.value for v in solutions.variables]
        from_ox = self._store.terms.from_ox
        return [
            {n: from_ox(value) for n, value in zip(names, solution) if value is not None} for solution in solutions
        ]

    def run(self, text: str, bindings: Mapping[str, Node], prefixes: dict[str, str] | None = None) -> Any:
        """Oxigraph's answer to query ``text`` (already checked: see :func:`query_text` and
        :func:`~jdm_kg.knowledge.queries.stays_local`) with ``bindings`` substituted."""
        terms = self._store.terms
        ox = terms.ox
        return self._store.store.query(
            text,
            default_graph=self._graphs,
            prefixes=prefixes,
            substitutions={ox.Variable(str(k)): terms.to_ox(v) for k, v in bindings.items()},
        )

    def result(self, text: str, bindings: Mapping[str, Node], prefixes: dict[str, str]) -> Result:
        """:meth:`run` as an rdflib :class:`~rdflib.query.Result` (SELECT or ASK)."""
        answer = self.run(text, bindings, prefixes)
        if isinstance(answer, bool):
            result = Result("ASK")
            result.askAnswer = answer
            return result
        if not hasattr(answer, "variables"):
            raise TypeError("not a SELECT or ASK query")
        from_ox = self._store.terms.from_ox
        variables = [Variable(v.value) for v in answer.variables]
        result = Result("SELECT")
        result.vars = variables
        result.bindings = [
            {var: from_ox(value) for var, value in zip(variables, solution) if value is not None} for solution in answer
        ]
        return result


class OxigraphAnswered(GuidelineUnion):
    """The guideline plus a batch's patient triples as one rdflib store (:class:`GuidelineUnion`:
    the guideline read through, not copied), whose SPARQL queries an :class:`OxigraphEngine`
    holding the same triples answers (rdflib's ``Graph.query`` asks the store first: ``Store.query``).

    For pySHACL's SPARQL targets and constraints over a batch: rdflib's evaluator spends about
    a millisecond a record on their filters, Oxigraph microseconds. A query that is not plain
    text, that Oxigraph cannot parse, or that would reach the network (SERVICE, FROM) goes to
    rdflib as before. The graph must not change after it is built: Oxigraph would not see it.
    ``tests/test_shapes.py`` checks that the SHACL results are rdflib's own.
    """

    def __init__(self, engine: OxigraphEngine, guideline: Graph) -> None:
        super().__init__(guideline)
        self.engine = engine

    def query(  # type: ignore[override]
        self, query: Any, initNs: Mapping[str, Any], initBindings: Mapping[str, Node], queryGraph: Any, **kwargs: Any
    ) -> Result:
        namespaces = tuple(sorted(initNs.items()))  # as rdflib's caching processor keys its parses
        if not isinstance(query, str) or kwargs or not stays_local(query, namespaces):
            raise NotImplementedError  # rdflib's evaluator runs it
        try:
            return self.engine.result(query, initBindings, {k: str(v) for k, v in namespaces})
        except (SyntaxError, TypeError):
            raise NotImplementedError from None  # a query rdflib reads and Oxigraph does not


class OxigraphStore:
    """An in-memory Oxigraph store: the compiled guideline in its own named graph, and patient
    graphs added beside it, each in a named graph of its own.

    The guideline is loaded once per store; each batch of patients is a named graph of its own
    beside it (:func:`group_store`), queried with the guideline as one default graph. Oxigraph's
    in-memory store keeps what is removed from it (it grows, and queries slow down, as graphs
    come and go), so graphs are never removed: once a store holds :data:`RECYCLE_AFTER` patient
    quads, the next batch gets a fresh one (the guideline loaded again, about 10 ms; its quads
    are converted once per process) and the old one is dropped whole when its last batch is done.
    """

    def __init__(self, guideline: Guideline, guideline_view: OxigraphEngine | None = None) -> None:
        ox = _ox()
        self.store = ox.Store()
        quads, guideline_terms = _guideline_quads(guideline)
        self.terms = _Terms(ox, base=guideline_terms)
        self._guideline_graph = ox.NamedNode(GUIDELINE_GRAPH)
        self.store.extend(quads)  # (not bulk_extend: no loader threads, so a process holding it can fork)
        self.patient_quads = 0
        self._lock = threading.Lock()
        self.guideline_view: OxigraphEngine = guideline_view or OxigraphEngine(self, [self._guideline_graph], None)

    def add(self, *graphs: Iterable[tuple[Node, Node, Node]]) -> Any:
        """Load ``graphs`` (or lists of triples) into a new named graph; return its name (for :meth:`engine`)."""
        name = self.terms.ox.NamedNode(f"urn:jdm-kg:data:{next(_GRAPH_NAMES)}")
        with self._lock:  # (the terms' maps are shared by the batches of this store)
            quads = [quad for graph in graphs for quad in self.terms.quads(graph, name)]
            # extend, not bulk_extend: for a batch's few thousand quads the bulk loader's set-up costs more
            self.store.extend(quads)
            self.patient_quads += len(quads)
        return name

    def engine(self, name: Any) -> OxigraphEngine:
        """Queries over the guideline plus the graph ``name``."""
        return OxigraphEngine(self, [self._guideline_graph, name], self.guideline_view)


@cache
def _guideline_quads(guideline: Guideline) -> tuple[list[Any], _Terms]:
    """The compiled guideline as Oxigraph quads in the guideline graph (its blank nodes get ids
    of their own, "g...", that no patient blank node ("b...") can take), and the terms that map
    them."""
    terms = _Terms(_ox(), prefix="g")
    return terms.quads(guideline.graph, terms.ox.NamedNode(GUIDELINE_GRAPH)), terms


@cache
def oxigraph_store(guideline: Guideline) -> OxigraphStore:
    """The process's Oxigraph store for ``guideline`` alone (never modified): its guideline view
    answers the patient-independent queries for every batch."""
    return OxigraphStore(guideline)


#: Patient quads a shared store takes before the next batch gets a fresh one.
RECYCLE_AFTER = 50_000
_GRAPH_NAMES = itertools.count()  # batch graph names and blank node labels: unique in the process
_BLANK_LABELS = itertools.count()
_batch_stores: dict[Guideline, OxigraphStore] = {}
_batch_stores_lock = threading.Lock()


def group_store(guideline: Guideline) -> OxigraphStore:
    """The store for a batch of patient files: the process's store for ``guideline``, where the
    guideline is loaded once and each batch adds a named graph (never a copy of the guideline per
    batch or request); a fresh one once it holds :data:`RECYCLE_AFTER` patient quads. Shares the
    process's guideline view."""
    with _batch_stores_lock:
        store = _batch_stores.get(guideline)
        if store is None or store.patient_quads >= RECYCLE_AFTER:
            store = _batch_stores[guideline] = OxigraphStore(guideline, oxigraph_store(guideline).guideline_view)
    return store


def oxigraph_answered(guideline: Guideline, graphs: list[Graph]) -> Graph:
    """The guideline and ``graphs`` as one rdflib graph (:func:`~jdm_kg.knowledge.guideline.with_guideline`)
    whose SPARQL queries Oxigraph answers (:class:`OxigraphAnswered`); :func:`query_engines`
    reuses its Oxigraph store for the bundled queries."""
    triples = [triple for graph in graphs for triple in graph]  # rdflib lists a graph slowly: once, for both copies
    store = group_store(guideline)
    union = OxigraphAnswered(store.engine(store.add(triples)), guideline.graph)
    return with_guideline(guideline, triples, store=union)


def _guideline_rows(guideline: Guideline, query: str) -> list[Row]:
    return oxigraph_store(guideline).guideline_view.select(query)


provide(guideline_rows=_guideline_rows)  # the input readers' term and code tables: Oxigraph, ms (rdflib: seconds)
