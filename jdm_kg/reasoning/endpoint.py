"""Run the bundled queries on a SPARQL 1.1 server (``--endpoint URL``; ``--update URL`` to load).

Standard protocol only, so it works with Oxigraph server, Apache Jena Fuseki, GraphDB or
Virtuoso: queries are POSTed as ``application/x-www-form-urlencoded`` with
``default-graph-uri`` naming the graphs to read (the compiled guideline, and the patient
data of this run), answers are SPARQL JSON results (parsed by rdflib); loading is SPARQL Update
``INSERT DATA`` into staging graphs, then ``MOVE`` over the named graphs they replace. The
network is used only because the user named the server, and only that server is contacted.

``jdm-kg load`` puts each patient record in a graph of its own, named from the patient's IRI
(:func:`patient_graph_name`), so loading an edited file again replaces that graph.

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
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rdflib import XSD, BNode, Graph, Literal, URIRef, Variable  # noqa: F401 (XSD: the doctests)
from rdflib.query import Result
from rdflib.term import Node

from jdm_kg.errors import InputError, ServerError
from jdm_kg.inputs.netguard import allow_hosts
from jdm_kg.knowledge.guideline import GUIDELINE_IRI, Guideline
from jdm_kg.knowledge.queries import Row, query_text
from jdm_kg.namespaces import JDM
from jdm_kg.reasoning.engines import GUIDELINE_GRAPH, GroupQueries, QueryEngine

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Endpoint",
    "EndpointEngine",
    "endpoint_engines",
    "load_guideline_graph",
    "load_patient_graph",
    "patient_graph_name",
    "patient_of_graph",
    "replace_graphs",
    "loaded_graphs",
    "LoadedGraph",
    "existing_graphs",
    "values_block",
    "cleanup",
    "guideline_digest",
    "RUN_GRAPH_PREFIX",
    "PATIENT_GRAPH_PREFIX",
]

#: Temporary graphs of a ``recommend`` run are named ``urn:jdm-kg:run:<start time>-<id>:<n>``; a
#: ``load`` puts each graph it replaces in ``urn:jdm-kg:staging:<start time>-<id>:<n>`` first, then
#: moves it (:func:`replace_graphs`).
RUN_GRAPH_PREFIX = "urn:jdm-kg:run:"
STAGING_GRAPH_PREFIX = "urn:jdm-kg:staging:"
#: ``jdm-kg load`` puts each patient record in ``urn:jdm-kg:patient:<the patient's IRI>``
#: (:func:`patient_graph_name`); jdm-kg before issue 14 put each file in ``urn:jdm-kg:file:<SHA-256
#: of its content>``, so a file edited and loaded again gave its patients a second copy.
PATIENT_GRAPH_PREFIX = "urn:jdm-kg:patient:"
LEGACY_FILE_GRAPH_PREFIX = "urn:jdm-kg:file:"
#: In each patient graph, ``<graph> prov:wasDerivedFrom <file:///the/file/it/came/from>``.
WAS_DERIVED_FROM = URIRef("http://www.w3.org/ns/prov#wasDerivedFrom")
#: A temporary graph older than this (seconds) is left over from a run that could not drop it.
STALE_AFTER = 3600
#: How many times a connection to the server that cannot be made is tried again (httpx's transport).
CONNECT_RETRIES = 2

#: Attempts at dropping a temporary graph, and the pause before each retry (seconds).
DROP_RETRIES = (0.2, 1.0)

_BAD_IRI = re.compile(r'[\s<>"{}|^`\\]')
_BATCH_TRIPLES = 2000
#: ``MOVE`` operations sent in one update request (a file's patients are replaced together).
_MOVES_PER_REQUEST = 500


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

    def close(self) -> None:
        """Close the connections this process opened (the endpoint can still be used: it opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

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
        self.insert_all([(name, graph)])

    def insert_all(self, named: list[tuple[str, Graph]]) -> None:
        """INSERT DATA each graph (no blank nodes) into its named graph, in requests of at most
        :data:`_BATCH_TRIPLES` triples (small graphs share a request)."""
        blocks: list[str] = []
        lines: list[str] = []
        count = 0  # triples in blocks and lines
        for name, graph in named:
            target = _iri(URIRef(name))
            for triple in graph:
                lines.append(" ".join(term_text(x) for x in triple) + " .")
                count += 1
                if count == _BATCH_TRIPLES:
                    blocks.append(f"GRAPH {target} {{\n" + "\n".join(lines) + "\n}")
                    self.update("INSERT DATA {\n" + "\n".join(blocks) + "\n}")
                    blocks, lines, count = [], [], 0
            if lines:
                blocks.append(f"GRAPH {target} {{\n" + "\n".join(lines) + "\n}")
                lines = []
        if blocks:
            self.update("INSERT DATA {\n" + "\n".join(blocks) + "\n}")

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


def replace_graphs(endpoint: Endpoint, named: list[tuple[str, Graph]]) -> None:
    """Put each graph (no blank nodes, not empty) in its named graph on the server, replacing
    what that graph held, as near atomically as SPARQL 1.1 allows: every graph is first loaded
    into a staging graph of its own (``urn:jdm-kg:staging:<start time>-<id>:<n>``), then all are
    moved over their targets by ``MOVE`` operations (which empty the target first), up to
    :data:`_MOVES_PER_REQUEST` in one update request. A failure while loading changes no target;
    the staging graphs are dropped whatever happened (``jdm-kg load --cleanup`` finds any left)."""
    stamp = _stamp()
    staged = [(f"{STAGING_GRAPH_PREFIX}{stamp}:{n}", name, graph) for n, (name, graph) in enumerate(named)]
    for _, name, graph in staged:
        if not len(graph):
            raise ValueError(f"replace_graphs: nothing to put in <{name}>")  # MOVE of a graph that is not there fails
    try:
        endpoint.insert_all([(staging, graph) for staging, _, graph in staged])
        for start in range(0, len(staged), _MOVES_PER_REQUEST):
            endpoint.update(" ;\n".join(f"MOVE {_iri(URIRef(staging))} TO {_iri(URIRef(name))}"
                                         for staging, name, _ in staged[start:start + _MOVES_PER_REQUEST]))
    except BaseException:
        endpoint.drop_all([staging for staging, _, _ in staged])
        raise


def load_guideline_graph(endpoint: Endpoint, guideline: Guideline) -> int:
    """Replace the guideline graph on the server by this compiled guideline, all or nothing: it
    is loaded into a staging graph, then moved over the old one in one update (a failed load
    leaves the old guideline as it was; :func:`replace_graphs`). Returns the triples sent."""
    replace_graphs(endpoint, [(GUIDELINE_GRAPH, guideline.graph)])
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


def patient_graph_name(patient: URIRef) -> str:
    """The named graph ``jdm-kg load`` puts a patient record in: :data:`PATIENT_GRAPH_PREFIX`
    followed by the patient's IRI, percent-encoded except for letters, digits, ``-._~:/`` (so
    ``#``, ``?`` and ``%`` are encoded; :func:`patient_of_graph` gives the IRI back). The name
    depends on the IRI alone: loading the record again, from any file, replaces that graph.

    >>> patient_graph_name(URIRef("https://w3id.org/jdm-kg/example/patient/P-SKIN"))
    'urn:jdm-kg:patient:https://w3id.org/jdm-kg/example/patient/P-SKIN'
    >>> patient_graph_name(URIRef("http://example.org/registry#p%201"))
    'urn:jdm-kg:patient:http://example.org/registry%23p%25201'
    """
    return PATIENT_GRAPH_PREFIX + urllib.parse.quote(str(patient), safe=":/")


def patient_of_graph(name: str) -> URIRef | None:
    """The patient IRI a patient graph is named from (:func:`patient_graph_name`), or None.

    >>> patient_of_graph("urn:jdm-kg:patient:http://example.org/registry%23p%25201")
    rdflib.term.URIRef('http://example.org/registry#p%201')
    """
    if not name.startswith(PATIENT_GRAPH_PREFIX):
        return None
    return URIRef(urllib.parse.unquote(name[len(PATIENT_GRAPH_PREFIX):]))


@dataclass(frozen=True)
class LoadedGraph:
    """A graph ``jdm-kg load`` made on a server: its name, the patients in it (IRIs, sorted)
    and, for a patient graph, the file it was loaded from (a ``file:`` IRI)."""

    name: str
    patients: tuple[str, ...]
    source: str | None = None

    @property
    def legacy(self) -> bool:
        """Made by jdm-kg before issue 14: a whole file's graph, named by its content."""
        return self.name.startswith(LEGACY_FILE_GRAPH_PREFIX)


def loaded_graphs(endpoint: Endpoint) -> dict[str, LoadedGraph]:
    """The patient graphs ``jdm-kg load`` made on the server (and the per-file graphs of jdm-kg
    before issue 14), by name, sorted: one query."""
    text = (f"SELECT ?g ?p ?source WHERE {{ GRAPH ?g {{ ?p a {_iri(URIRef(JDM.Patient))} "
            f"OPTIONAL {{ ?g {_iri(WAS_DERIVED_FROM)} ?source }} }} "
            f"FILTER(STRSTARTS(STR(?g), {Literal(PATIENT_GRAPH_PREFIX).n3()}) || "
            f"STRSTARTS(STR(?g), {Literal(LEGACY_FILE_GRAPH_PREFIX).n3()})) }}")
    patients: dict[str, set[str]] = {}
    sources: dict[str, str] = {}
    for graph, patient, source in endpoint.select(text):  # type: ignore[misc]
        patients.setdefault(str(graph), set()).add(str(patient))
        if source is not None:  # (one a graph; the first in order if a graph was given several)
            sources[str(graph)] = min(str(source), sources.get(str(graph), str(source)))
    return {name: LoadedGraph(name, tuple(sorted(patients[name])), sources.get(name)) for name in sorted(patients)}


def existing_graphs(endpoint: Endpoint, names: list[str]) -> set[str]:
    """Which of ``names`` are graphs on the server that hold at least one triple (IRIs checked)."""
    if not names:
        return set()
    listed = " ".join(_iri(URIRef(name)) for name in names)
    result = endpoint.select(f"SELECT ?g WHERE {{ VALUES ?g {{ {listed} }} "
                             "FILTER EXISTS { GRAPH ?g { ?s ?p ?o } } }")
    return {str(row[0]) for row in result}  # type: ignore[index]


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

