"""Run the bundled queries on a SPARQL 1.1 server (``--endpoint URL``; ``--update URL`` to load).

Standard protocol only, so it works with Oxigraph server, Apache Jena Fuseki, GraphDB or
Virtuoso: queries are POSTed as ``application/x-www-form-urlencoded`` with
``default-graph-uri`` naming the graphs to read (the compiled guideline, and the patient
data of this run), answers are SPARQL JSON results (parsed by rdflib); loading is SPARQL Update
``INSERT DATA`` into named graphs. The network is used only because the user named the
server, and only that server is contacted.

Parameters are bound with a trailing ``VALUES`` block built from RDF terms (serialised by
rdflib, IRIs checked), never by pasting text into a query. Blank nodes cannot be named across
requests, so patient data is loaded with blank nodes replaced by fresh ``urn:jdm-kg:bnode:``
IRIs, and results map them back: the output is the same as embedded.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rdflib import BNode, Graph, Literal, URIRef, Variable
from rdflib.query import Result
from rdflib.term import Node

from jdm_kg.engines import GUIDELINE_GRAPH, QueryEngine

from jdm_kg.errors import InputError
from jdm_kg.guideline import GUIDELINE_IRI, Guideline
from jdm_kg.netguard import allow_hosts
from jdm_kg.queries import Row, query_text

__all__ = [
    "Endpoint",
    "EndpointEngine",
    "endpoint_engines",
    "file_graph_name",
    "load_guideline_graph",
    "load_patient_graph",
    "values_block",
]

_BAD_IRI = re.compile(r'[\s<>"{}|^`\\]')
_BATCH_TRIPLES = 2000


def _iri(term: URIRef) -> str:
    if _BAD_IRI.search(str(term)):
        raise InputError(str(term), "cannot be sent to a SPARQL server: not a valid IRI")
    return f"<{term}>"


def term_text(term: Node) -> str:
    """A term in SPARQL syntax (IRIs checked, literals escaped by rdflib)."""
    if isinstance(term, URIRef):
        return _iri(term)
    if isinstance(term, Literal):
        return term.n3()
    raise InputError(str(term), "a blank node cannot be sent to a SPARQL server; give it an IRI")


def values_block(bindings: dict[str, Node]) -> str:
    """A trailing ``VALUES`` clause binding each variable to its term.

    >>> values_block({"patient": URIRef("urn:p:1")})
    'VALUES (?patient) { (<urn:p:1>) }'
    """
    if not bindings:
        return ""
    names = " ".join(Variable(k).n3() for k in bindings)
    return f"VALUES ({names}) {{ ({' '.join(term_text(v) for v in bindings.values())}) }}"


class Endpoint:
    """A SPARQL 1.1 server: a query URL and, for loading, an update URL."""

    def __init__(self, query_url: str, update_url: str | None = None, timeout: float = 120) -> None:
        for url in filter(None, (query_url, update_url)):
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise InputError(url, "not an http(s) URL of a SPARQL endpoint")
        self.query_url = query_url
        self.update_url = update_url
        self.timeout = timeout
        allow_hosts({urllib.parse.urlparse(u).hostname for u in (query_url, update_url) if u})  # type: ignore[misc]

    def _post(self, url: str, fields: list[tuple[str, str]], accept: str) -> bytes:
        data = urllib.parse.urlencode(fields).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (user-given URL)
                return response.read()  # type: ignore[no-any-return]
        except urllib.error.HTTPError as err:
            detail = " ".join(err.read().decode("utf-8", "replace").split())[:300]
            raise InputError(url, f"the SPARQL server answered {err.code} {err.reason}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise InputError(url, f"cannot reach the SPARQL server: {reason}") from None

    def select(self, text: str, default_graphs: list[str] | None = None) -> Result:
        fields = [("query", text)] + [("default-graph-uri", g) for g in default_graphs or []]
        body = self._post(self.query_url, fields, "application/sparql-results+json")
        try:
            return Result.parse(io.BytesIO(body), format="json")
        except Exception as err:  # a server that answers something else
            raise InputError(self.query_url, f"the answer is not SPARQL JSON results: {err}") from None

    def update(self, text: str) -> None:
        if not self.update_url:
            raise InputError("--update", "loading data needs the server's SPARQL Update URL (--update URL)")
        self._post(self.update_url, [("update", text)], "*/*")

    def insert(self, graph: Graph, name: str) -> None:
        """INSERT DATA ``graph`` (no blank nodes) into the named graph ``name``, in batches."""
        triples = list(graph)
        for start in range(0, len(triples), _BATCH_TRIPLES):
            body = "\n".join(" ".join(term_text(x) for x in t) + " ." for t in triples[start:start + _BATCH_TRIPLES])
            self.update(f"INSERT DATA {{ GRAPH {_iri(URIRef(name))} {{\n{body}\n}} }}")

    def drop(self, name: str) -> None:
        self.update(f"DROP SILENT GRAPH {_iri(URIRef(name))}")


def skolemize(graph: Graph, prefix: str) -> tuple[Graph, dict[URIRef, BNode]]:
    """``graph`` with each blank node replaced by ``prefix`` + a fresh id; and the way back."""
    back: dict[URIRef, BNode] = {}
    names: dict[BNode, URIRef] = {}

    def name(term: Node) -> Node:
        if isinstance(term, BNode):
            if term not in names:
                names[term] = URIRef(f"{prefix}{uuid.uuid4().hex}")
                back[names[term]] = term
            return names[term]
        return term

    out = Graph()
    for s, p, o in graph:
        out.add((name(s), p, name(o)))  # type: ignore[arg-type]
    return out, back


class EndpointEngine:
    """The bundled queries on a SPARQL server, over some of its graphs as the default graph."""

    def __init__(self, endpoint: Endpoint, graphs: list[str], back: dict[URIRef, BNode] | None = None,
                 guideline_view: EndpointEngine | None = None) -> None:
        self.endpoint = endpoint
        self.graphs = graphs
        self.back = back or {}
        self._forward = {bnode: iri for iri, bnode in self.back.items()}
        self.guideline_view = guideline_view

    def select(self, name: str, **bindings: Node) -> list[Row]:
        bound = {k: self._forward.get(v, v) if isinstance(v, BNode) else v for k, v in bindings.items()}
        text = query_text(name).rstrip() + "\n" + values_block(bound)
        result = self.endpoint.select(text, self.graphs)
        names = [str(v) for v in result.vars or []]
        rows = []
        for solution in result:
            row: Row = {}
            for i, key in enumerate(names):
                value = solution[i]  # type: ignore[index]
                if value is not None:
                    row[key] = self.back.get(value, value) if isinstance(value, URIRef) else value
            rows.append(row)
        return rows


def load_guideline_graph(endpoint: Endpoint, guideline: Guideline) -> int:
    """Replace the guideline graph on the server by this compiled guideline; return triples sent."""
    name = GUIDELINE_GRAPH
    endpoint.drop(name)
    endpoint.insert(guideline.graph, name)
    return len(guideline.graph)


def file_graph_name(path: Path) -> str:
    """The named graph ``jdm-kg load`` puts a file in: by its content, so loading again replaces it."""
    return f"urn:jdm-kg:file:{hashlib.sha256(path.read_bytes()).hexdigest()}"


def load_patient_graph(endpoint: Endpoint, graph: Graph, name: str) -> dict[URIRef, BNode]:
    """Load a patient graph into graph ``name``; return the skolem IRIs -> blank nodes map."""
    skolem, back = skolemize(graph, f"urn:jdm-kg:bnode:{uuid.uuid4().hex}:")
    endpoint.insert(skolem, name)
    return back


def check_guideline_loaded(endpoint: Endpoint, guideline: Guideline) -> None:
    """Refuse to run on a server whose guideline graph is missing or another version."""
    name = GUIDELINE_GRAPH
    result = endpoint.select(
        "PREFIX owl: <http://www.w3.org/2002/07/owl#>\nSELECT ?version WHERE { ?g owl:versionInfo ?version }\n"
        + values_block({"g": GUIDELINE_IRI}), [name])
    versions = [str(row[0]) for row in result]  # type: ignore[index]
    if not versions:
        raise InputError(endpoint.query_url, f"no guideline in graph <{name}> on the server: load it first with "
                         f"jdm-kg load --endpoint {endpoint.query_url} --update UPDATE_URL")
    if guideline.version not in versions:
        raise InputError(endpoint.query_url, f"the server holds guideline {', '.join(versions)}, this jdm-kg has "
                         f"{guideline.version}: reload it with jdm-kg load")


@contextmanager
def endpoint_engines(endpoint: Endpoint, guideline: Guideline, graphs: list[Graph]) -> Iterator[list[QueryEngine]]:
    """One engine per graph of ``graphs``, over the server's guideline graph plus that graph,
    loaded into a temporary named graph; the temporary graphs are dropped on exit."""
    view = _views(endpoint, guideline)
    run = uuid.uuid4().hex
    names: list[str] = []
    try:
        engines: list[QueryEngine] = []
        for graph in graphs:
            names.append(f"urn:jdm-kg:run:{run}:{len(names)}")
            back = load_patient_graph(endpoint, graph, names[-1])
            engines.append(EndpointEngine(endpoint, [GUIDELINE_GRAPH, names[-1]], back, view))
        yield engines
    finally:
        for name in names:
            endpoint.drop(name)


_VIEWS: dict[tuple[str, int], EndpointEngine] = {}


def _views(endpoint: Endpoint, guideline: Guideline) -> EndpointEngine:
    """One guideline-only engine per (server, guideline), checked once, so its cached
    patient-independent answers are reused."""
    key = (endpoint.query_url, id(guideline))
    if key not in _VIEWS:
        check_guideline_loaded(endpoint, guideline)
        _VIEWS[key] = EndpointEngine(endpoint, [GUIDELINE_GRAPH])
    return _VIEWS[key]

