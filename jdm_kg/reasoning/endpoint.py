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
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdflib import XSD, BNode, Graph, Literal, URIRef, Variable  # noqa: F401 (XSD: the doctests)
from rdflib.query import Result
from rdflib.term import Node

from jdm_kg.errors import InputError, ServerError
from jdm_kg.inputs.netguard import allow_hosts
from jdm_kg.knowledge.guideline import GUIDELINE_IRI, Guideline
from jdm_kg.knowledge.queries import Row, query_text
from jdm_kg.reasoning.engines import GUIDELINE_GRAPH, GroupQueries, QueryEngine

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Endpoint",
    "EndpointEngine",
    "endpoint_engines",
    "file_graph_name",
    "load_guideline_graph",
    "load_patient_graph",
    "values_block",
    "cleanup",
    "guideline_digest",
    "RUN_GRAPH_PREFIX",
]

#: Temporary graphs of a ``recommend`` run are named ``urn:jdm-kg:run:<start time>-<id>:<n>``; a
#: ``load`` puts the guideline in ``urn:jdm-kg:staging:<start time>-<id>`` first, then moves it.
RUN_GRAPH_PREFIX = "urn:jdm-kg:run:"
STAGING_GRAPH_PREFIX = "urn:jdm-kg:staging:"
#: A temporary graph older than this (seconds) is left over from a run that could not drop it.
STALE_AFTER = 3600
#: How many times a connection to the server that cannot be made is tried again (httpx's transport).
CONNECT_RETRIES = 2

#: Attempts at dropping a temporary graph, and the pause before each retry (seconds).
DROP_RETRIES = (0.2, 1.0)

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
        self._client: httpx.Client | None = None
        allow_hosts({urllib.parse.urlparse(u).hostname for u in (query_url, update_url) if u})  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:  # an Endpoint goes to --jobs workers; each opens its own connections
        return {**self.__dict__, "_client": None}

    def _http(self) -> httpx.Client:
        """One HTTP client per endpoint and process: connections are reused from request to
        request; a connection that cannot be made is tried again (:data:`CONNECT_RETRIES`)."""
        if self._client is None:
            import httpx  # only runs that talk to a server pay for importing it (~0.1 s)

            self._client = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                        transport=httpx.HTTPTransport(retries=CONNECT_RETRIES))
        return self._client

    def _post(self, url: str, fields: list[tuple[str, str]], accept: str) -> bytes:
        import httpx

        data = urllib.parse.urlencode(fields).encode("utf-8")
        try:
            response = self._http().post(url, content=data, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Accept": accept})
        except httpx.HTTPError as err:  # refused, timed out, cut
            reason = str(err) or type(err).__name__
            raise ServerError(url, f"cannot reach the SPARQL server: {reason}") from None
        if not response.is_success:
            detail = " ".join(response.text.split())[:300]
            raise ServerError(url, f"the SPARQL server answered {response.status_code} {response.reason_phrase}: {detail}")
        return response.content

    def select(self, text: str, default_graphs: list[str] | None = None) -> Result:
        fields = [("query", text)] + [("default-graph-uri", g) for g in default_graphs or []]
        body = self._post(self.query_url, fields, "application/sparql-results+json")
        try:
            return Result.parse(io.BytesIO(body), format="json")
        except Exception as err:  # a server that answers something else
            raise ServerError(self.query_url, f"the answer is not SPARQL JSON results: {err}") from None

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

    def drop_all(self, names: list[str]) -> list[str]:
        """Drop each graph of ``names``; retry those that failed after a pause (:data:`DROP_RETRIES`);
        return those still there. Never raises: it runs while another error may be on its way."""
        left = list(names)
        for pause in (*DROP_RETRIES, None):
            failed = []
            for name in left:
                try:
                    self.drop(name)
                except ServerError:
                    failed.append(name)
            left = failed
            if not left or pause is None:
                break
            time.sleep(pause)
        return left

    def graph_names(self, prefix: str) -> list[str]:
        """The named graphs on the server whose IRI starts with ``prefix`` (sorted)."""
        result = self.select("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } FILTER(STRSTARTS(STR(?g), ?prefix)) }"
                             .replace("?prefix", Literal(prefix).n3()))
        return sorted(str(row[0]) for row in result)  # type: ignore[index]


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


def _stamp() -> str:
    return f"{int(time.time())}-{uuid.uuid4().hex}"


def load_guideline_graph(endpoint: Endpoint, guideline: Guideline) -> int:
    """Replace the guideline graph on the server by this compiled guideline, all or nothing: it
    is loaded into a staging graph, then moved over the old one in one update (a failed load
    leaves the old guideline as it was). Returns the triples sent."""
    staging = f"{STAGING_GRAPH_PREFIX}{_stamp()}"
    try:
        endpoint.insert(guideline.graph, staging)
        endpoint.update(f"MOVE SILENT {_iri(URIRef(staging))} TO {_iri(URIRef(GUIDELINE_GRAPH))}")
    except BaseException:
        endpoint.drop_all([staging])
        raise
    return len(guideline.graph)


def _canonical(term: Node) -> str:
    """``term`` in N-Triples, a number or boolean in one canonical form (servers rewrite ``5.0`` as ``5``)."""
    if isinstance(term, Literal) and term.datatype is not None and not term.ill_typed:
        value = term.value
        if isinstance(value, bool):
            return f'"{str(value).lower()}"^^<{term.datatype}>'
        if isinstance(value, Decimal) and value.is_finite():
            return f'"{format(value.normalize(), "f")}"^^<{term.datatype}>'
        if isinstance(value, (int, float)):
            return f'"{value!r}"^^<{term.datatype}>'
    return term.n3()


def guideline_digest(triples: Iterable[tuple[Node, Node, Node]]) -> tuple[int, str]:
    """The number of distinct triples and the SHA-256 of their sorted N-Triples lines (numbers in
    canonical form): what a guideline graph holds, wherever it is stored.

    >>> guideline_digest([(URIRef("urn:a"), URIRef("urn:b"), Literal("5.0", datatype=XSD.decimal))]) == \\
    ...     guideline_digest([(URIRef("urn:a"), URIRef("urn:b"), Literal("5", datatype=XSD.decimal))])
    True
    """
    lines = sorted({" ".join(_canonical(term) for term in triple) for triple in triples})
    return len(lines), hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def cleanup(endpoint: Endpoint, older_than: float = STALE_AFTER) -> list[str]:
    """Drop the temporary graphs (runs' and loads' staging graphs) that runs started more than
    ``older_than`` seconds ago left on the server; return their names."""
    now = time.time()
    stale = []
    for name in endpoint.graph_names(RUN_GRAPH_PREFIX) + endpoint.graph_names(STAGING_GRAPH_PREFIX):
        started = name.split(":")[3].split("-")[0] if name.count(":") >= 3 else ""
        if not started.isdigit() or now - int(started) >= older_than:
            stale.append(name)
    left = endpoint.drop_all(stale)
    if left:
        raise ServerError(endpoint.update_url or endpoint.query_url, f"could not drop {len(left)} graph(s), e.g. <{left[0]}>")
    return stale


def file_graph_name(path: Path) -> str:
    """The named graph ``jdm-kg load`` puts a file in: by its content, so loading again replaces it."""
    return f"urn:jdm-kg:file:{hashlib.sha256(path.read_bytes()).hexdigest()}"


def load_patient_graph(endpoint: Endpoint, graph: Graph, name: str) -> dict[URIRef, BNode]:
    """Load a patient graph into graph ``name``; return the skolem IRIs -> blank nodes map."""
    skolem, back = skolemize(graph, f"urn:jdm-kg:bnode:{uuid.uuid4().hex}:")
    endpoint.insert(skolem, name)
    return back


def check_guideline_loaded(endpoint: Endpoint, guideline: Guideline) -> None:
    """Refuse to run on a server whose guideline graph is missing, another version, or not
    exactly this compiled guideline (triples missing, added or changed: compared by digest)."""
    name = GUIDELINE_GRAPH
    result = endpoint.select(
        "PREFIX owl: <http://www.w3.org/2002/07/owl#>\nSELECT ?version WHERE { ?g owl:versionInfo ?version }\n"
        + values_block({"g": GUIDELINE_IRI}), [name])
    versions = [str(row[0]) for row in result]  # type: ignore[index]
    if not versions:
        raise ServerError(endpoint.query_url, f"no guideline in graph <{name}> on the server: load it first with "
                         f"jdm-kg load --endpoint {endpoint.query_url} --update UPDATE_URL")
    if guideline.version not in versions:
        raise ServerError(endpoint.query_url, f"the server holds guideline {', '.join(versions)}, this jdm-kg has "
                         f"{guideline.version}: reload it with jdm-kg load")
    there = guideline_digest(tuple(row) for row in endpoint.select("SELECT ?s ?p ?o WHERE { ?s ?p ?o }", [name]))  # type: ignore[misc]
    here = guideline_digest(guideline.graph)
    if there != here:
        raise ServerError(endpoint.query_url, f"the guideline graph <{name}> on the server is not this jdm-kg's compiled "
                         f"guideline {guideline.version} ({there[0]} triples there, {here[0]} here, or changed ones): "
                         f"reload it with jdm-kg load")


@contextmanager
def endpoint_engines(endpoint: Endpoint, guideline: Guideline, graphs: list[Graph]) -> Iterator[list[QueryEngine]]:
    """Engines over the server's guideline graph plus ``graphs`` (which share no nodes: a batch
    group), loaded into one temporary named graph; each per-patient query runs once for the
    whole group (:class:`~jdm_kg.reasoning.engines.GroupQueries`), so a group costs about a dozen requests,
    not a dozen a file. The temporary graph is dropped on exit, whatever happened (with retries);
    if it cannot be, that is an error naming the way to remove it (``jdm-kg load --cleanup``);
    after another error, that error is the one raised."""
    view = _views(endpoint, guideline)
    name = f"{RUN_GRAPH_PREFIX}{_stamp()}:0"
    names: list[str] = []
    try:
        back: dict[URIRef, BNode] = {}
        if graphs:
            names.append(name)
            for graph in graphs:
                back.update(load_patient_graph(endpoint, graph, name))
        shared: QueryEngine = GroupQueries(EndpointEngine(endpoint, [GUIDELINE_GRAPH, name], back, view))
        yield [shared] * len(graphs)
    except BaseException:
        endpoint.drop_all(names)
        raise
    left = endpoint.drop_all(names)
    if left:
        raise ServerError(endpoint.update_url or endpoint.query_url, f"could not drop {len(left)} temporary graph(s) "
                         f"holding patient data, e.g. <{left[0]}>: remove them with jdm-kg load --cleanup "
                         f"--endpoint {endpoint.query_url} --update {endpoint.update_url}")


_VIEWS: dict[tuple[str, int], EndpointEngine] = {}


def _views(endpoint: Endpoint, guideline: Guideline) -> EndpointEngine:
    """One guideline-only engine per (server, guideline), checked once, so its cached
    patient-independent answers are reused. The first time, temporary graphs that runs started
    over :data:`STALE_AFTER` seconds ago left behind are dropped too (a run's graph lives for one
    group, seconds to minutes), with a line on stderr saying how many."""
    key = (endpoint.query_url, id(guideline))
    if key not in _VIEWS:
        check_guideline_loaded(endpoint, guideline)
        try:
            stale = cleanup(endpoint, older_than=STALE_AFTER)
        except ServerError:  # best effort: the run itself says what is wrong with the server
            stale = []
        if stale:
            print(f"jdm-kg: dropped {len(stale)} temporary graph(s) that earlier runs left on {endpoint.update_url}",
                  file=sys.stderr)
        _VIEWS[key] = EndpointEngine(endpoint, [GUIDELINE_GRAPH])
    return _VIEWS[key]

