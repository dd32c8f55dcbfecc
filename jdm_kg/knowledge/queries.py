"""Run the bundled SPARQL queries (or a user's) with bound parameters, never pasted text.

Queries are checked before they run: a ``SERVICE`` clause (which would make rdflib open a
network connection) is refused unless explicitly allowed, and so is ``FROM``/``FROM NAMED``
(which would make rdflib fetch the named graph).

Each bundled query starts with ``# key: value`` header comments (continued on lines indented
``#   ...``): ``description``, ``parameters``, and for a query whose rows name treatment options
either ``not a recommendation`` (what it lists instead: shown by ``jdm-kg query --list``, the HTML
docs and with its output) or ``agrees with`` (what it gives the same answer as, tested). The
example queries of the vocabulary (``queries/examples/``, run as ``examples/NAME``) also name the
``class`` they are about and the ``data`` they are meant for.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import rdflib
from pyparsing import ParseException
from rdflib import BNode, Graph, Literal, URIRef, Variable, plugin
from rdflib.plugins.sparql import prepareQuery
from rdflib.plugins.sparql.parserutils import CompValue, Expr
from rdflib.plugins.sparql.processor import SPARQLProcessor
from rdflib.plugins.sparql.sparql import Query
from rdflib.query import Processor
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.knowledge.prefixes import expanded
from jdm_kg.resources import cache_dir, resource_dir

__all__ = [
    "Row",
    "QueryInfo",
    "bundled_queries",
    "example_queries",
    "query_catalogue",
    "query_headers",
    "query_source",
    "check_query",
    "names_its_graphs",
    "prepared",
    "query_text",
    "select",
    "parse_param",
    "use_query_cache",
    "stays_local",
    "stable_blank_nodes",
    "deterministic_rows",
]

Row = dict[str, Node]


#: The folder (under ``queries/``) and name prefix of the vocabulary's example queries.
EXAMPLES = "examples"


def bundled_queries() -> dict[str, Path]:
    """Name (file stem) -> path of every bundled query in ``queries/`` (rules excluded)."""
    return {p.stem: p for p in sorted(resource_dir("queries").glob("*.rq"))}


def example_queries() -> dict[str, Path]:
    """Name (``examples/`` + file stem) -> path of the vocabulary's example queries
    (``queries/examples/*.rq``): one or more a main class, shown on the HTML docs' vocabulary page."""
    return {f"{EXAMPLES}/{p.stem}": p for p in sorted(resource_dir("queries").joinpath(EXAMPLES).glob("*.rq"))}


_HEADER_KEY = re.compile(r"^# ([a-z][a-z -]*[a-z]):(?:\s+(.*))?$")


def query_headers(text: str) -> dict[str, str]:
    """The ``# key: value`` comments at the top of a query, each with its continuation lines
    (``#   ...``, indented) joined by spaces.

    >>> query_headers("# description: one\\n#   two\\n# not a recommendation: three\\nSELECT")
    {'description': 'one two', 'not a recommendation': 'three'}
    """
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        match = _HEADER_KEY.match(line)
        if match:
            key = match.group(1)
            out[key] = (match.group(2) or "").strip()
        elif key is not None and line[1:].strip():
            out[key] = f"{out[key]} {line[1:].strip()}".strip()
    return out


@dataclass(frozen=True)
class QueryInfo:
    """A bundled or example query as ``jdm-kg query --list`` and the HTML docs show it."""

    name: str
    path: Path
    headers: dict[str, str]

    @property
    def description(self) -> str:
        return self.headers.get("description", "")

    @property
    def parameters(self) -> str:
        return self.headers.get("parameters", "")

    @property
    def not_a_recommendation(self) -> str | None:
        """What the query lists instead of a recommendation, when its rows name options."""
        return self.headers.get("not a recommendation")

    @property
    def agrees_with(self) -> str | None:
        """What the query gives the same answer as (tested), when its rows name options."""
        return self.headers.get("agrees with")

    @property
    def notice(self) -> str | None:
        """The line to print with the query's output: ``not a recommendation: ...``."""
        return f"not a recommendation: {self.not_a_recommendation}" if self.not_a_recommendation else None


def query_catalogue() -> list[QueryInfo]:
    """Every bundled query, then every example query, in name order, with its headers."""
    out = []
    for name, path in [*bundled_queries().items(), *example_queries().items()]:
        out.append(QueryInfo(name, path, query_headers(path.read_text(encoding="utf-8"))))
    return out


def query_source(name_or_path: str) -> tuple[str, str]:
    """Return (text, label) of a bundled query name, an example query name (``examples/NAME``)
    or a query file path."""
    bundled = bundled_queries() | example_queries()
    if name_or_path in bundled:
        path = bundled[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            names = ", ".join(bundled_queries())
            raise InputError(name_or_path, f"no such query file or bundled query; bundled queries: {names} "
                             f"(and the examples: jdm-kg query --list)")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(path), f"cannot read query: {err}") from None


def _walk(node: Any) -> Any:
    if isinstance(node, CompValue):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)


def check_query(text: str, label: str, allow_service: bool = False, allow_dataset: bool = False) -> Query:
    """Parse ``text``; refuse queries that would touch the network. Returns the prepared query.

    ``allow_dataset`` lets FROM / FROM NAMED through: on a SPARQL server they name its graphs."""
    try:
        query = prepareQuery(text)
    except ParseException as err:
        raise InputError(label, f"not a valid SPARQL query: {err.msg}", line=err.lineno) from None
    except Exception as err:  # rdflib raises several types for bad queries
        raise InputError(label, f"not a valid SPARQL query: {' '.join(str(err).split())[:300]}") from None
    refusal = _network_refusal(query, allow_service, allow_dataset)
    if refusal:
        raise InputError(label, refusal)
    return query


def names_its_graphs(query: Query) -> bool:
    """Whether ``query`` says which graphs it reads: ``FROM``, ``FROM NAMED`` or ``GRAPH``.

    >>> names_its_graphs(prepareQuery("SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }"))
    True
    >>> names_its_graphs(prepareQuery("SELECT * WHERE { ?s ?p ?o }"))
    False
    """
    return any(part.name in ("DatasetClause", "Graph") for part in _walk(query.algebra))


def _network_refusal(query: Query, allow_service: bool = False, allow_dataset: bool = False) -> str | None:
    """Why ``query`` must not run (it would contact or fetch from the network), or None."""
    for comp in _walk(query.algebra):
        if comp.name == "ServiceGraphPattern" and not allow_service:
            return ("query contains a SERVICE clause, which would contact a remote endpoint; "
                    "pass --allow-service if you mean it")
        if comp.name == "DatasetClause" and not allow_dataset:
            return "FROM / FROM NAMED would fetch remote graphs; give the data with --data instead"
    return None


@lru_cache(maxsize=1024)
def stays_local(text: str, namespaces: tuple[tuple[str, Any], ...] = ()) -> bool:
    """Whether query ``text`` parses (with the prefixes ``namespaces``) and touches no network
    (no SERVICE, no FROM): the check an engine that would follow them (Oxigraph) needs before
    it runs a text that is not a bundled query. A text that passed is remembered
    (:func:`_checked_marker`)."""
    marker = _checked_marker(text, namespaces)
    if marker is not None and marker.is_file():
        return True
    try:
        query = _prepare_text(text, None, namespaces)
    except Exception:  # rdflib raises several types for bad queries
        return False
    if _network_refusal(query) is not None:
        return False
    _remember(marker)
    return True


def _checked_marker(text: str, namespaces: tuple[tuple[str, Any], ...] = ()) -> Path | None:
    """Where the cache folder (:func:`~jdm_kg.resources.cache_dir`) marks ``text`` (parsed with
    ``namespaces``) as checked: rdflib's parser takes about 50 ms a query, so a text that passed
    is not parsed again. Keyed by the text and by this checker (this file, rdflib's version): an
    edited query, or a new checker, is checked afresh. None when there is no cache folder."""
    folder = cache_dir()
    if folder is None:
        return None
    key = _checker_key() + _prefixes_in_order(text).encode() + repr(namespaces).encode()
    return folder / "checked-queries" / hashlib.sha256(key).hexdigest()


_PREFIX_LINE = re.compile(r"[ \t]*PREFIX[ \t]+([A-Za-z][\w.-]*)?:[ \t]*<[^<>\s]*>[ \t]*\n", re.IGNORECASE)


def _prefixes_in_order(text: str) -> str:
    """``text`` with its leading ``PREFIX`` lines sorted, for :func:`_checked_marker`: pySHACL
    writes a SPARQL constraint's prefixes in the order a set gives them, which changes with
    Python's hash seed, so the same query came in several spellings and the marker missed (a
    second of parsing in one run in three). A text whose leading prefix names repeat is kept as
    it is (its meaning could depend on their order).

    >>> _prefixes_in_order("PREFIX b: <urn:b>\\nPREFIX a: <urn:a>\\nSELECT * {}")
    'PREFIX a: <urn:a>\\nPREFIX b: <urn:b>\\nSELECT * {}'
    """
    lines: list[tuple[str, str]] = []
    at = 0
    while (match := _PREFIX_LINE.match(text, at)) is not None:
        lines.append((match.group(1) or "", match.group(0)))
        at = match.end()
    if len(lines) < 2 or len({name for name, _ in lines}) < len(lines):
        return text
    return "".join(line for _, line in sorted(lines)) + text[at:]


@cache
def _checker_key() -> bytes:
    """This checker, for :func:`_checked_marker`: this file and rdflib's version (read once)."""
    return Path(__file__).read_bytes() + rdflib.__version__.encode()


def _remember(marker: Path | None) -> None:
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:
            pass  # a read-only home: check each time


@cache
def prepared(name: str) -> Query:
    """The prepared (parsed and translated once) form of a bundled query."""
    text, label = query_source(name)
    return check_query(text, label)


@cache
def query_text(name: str) -> str:
    """The text of bundled query ``name``, for engines that parse SPARQL themselves (Oxigraph, a
    server), after the checks every engine applies (:func:`check_query`).

    A text that passed is remembered (:func:`_checked_marker`)."""
    text, label = query_source(name)
    marker = _checked_marker(text)
    if marker is None or not marker.is_file():
        check_query(text, label)
        _remember(marker)
    return text


def select(graph: Graph, name: str, **bindings: Node) -> list[Row]:
    """Run bundled SELECT query ``name`` on ``graph`` with ``bindings``; rows as dicts."""
    result = graph.query(prepared(name), initBindings={Variable(k): v for k, v in bindings.items()})
    names = [str(v) for v in result.vars or []]
    return [{n: row[i] for i, n in enumerate(names) if row[i] is not None} for row in result]


def parse_param(text: str, prefixes: Mapping[str, str] | None = None) -> tuple[str, Node]:
    """Parse ``name=value`` from the command line: ``<iri>`` or http(s)/urn IRIs become IRIs, and
    so does a prefixed name with one of ``prefixes`` (``jdmg:rituximab``, as query tables print
    it); numbers become numbers, anything else a plain string literal.

    >>> parse_param("patient=<https://w3id.org/jdm-kg/example/patient/P-SKIN>")[1]
    rdflib.term.URIRef('https://w3id.org/jdm-kg/example/patient/P-SKIN')
    >>> parse_param("option=jdmg:rituximab", {"jdmg": "https://w3id.org/jdm-kg/guideline/"})[1]
    rdflib.term.URIRef('https://w3id.org/jdm-kg/guideline/rituximab')
    """
    if "=" not in text:
        raise InputError("--param", f"{text!r} is not name=value")
    name, value = text.split("=", 1)
    name = name.strip().lstrip("?$")
    if not name.isidentifier():
        raise InputError("--param", f"{name!r} is not a valid variable name")
    if value.startswith("<") and value.endswith(">"):
        return name, URIRef(value[1:-1])
    if value.startswith(("http://", "https://", "urn:")):
        return name, URIRef(value)
    iri = expanded(value, prefixes or {})
    if iri is not None:
        return name, iri
    for cast in (int, float):
        try:
            return name, Literal(cast(value))
        except ValueError:
            continue
    return name, Literal(value)


# --------------------------------------------------------------------------------------
# The same answer, byte for byte, on every run


def stable_blank_nodes(triples: Iterable[tuple[Node, Node, Node]]) -> list[tuple[Node, Node, Node]]:
    """``triples`` with their blank nodes relabelled from what the triples say about them, not
    with the random labels a parser gives: the same data gives the same labels on every run,
    whatever the order of the files and triples.

    Each blank node is coloured by its triples (their predicates, the IRIs and literals, and the
    colours of the blank nodes next to it), refined until no colour splits (colour refinement,
    as Weisfeiler-Lehman); its label is ``b`` and the start of its colour. Blank nodes left with
    one colour are alike (for a record's ``[ ... ]`` trees: the same properties under the same
    node), so which of them takes which label changes no answer. About linear in the triples
    (a second for a thousand records): rdflib's canonical labels
    (:func:`rdflib.compare.to_canonical_graph`) take minutes for as many.

    >>> from rdflib import RDFS
    >>> def record():  # a fresh parse: new blank nodes, new random labels
    ...     return [(BNode(), RDFS.label, Literal("a")), (BNode(), RDFS.label, Literal("b"))]
    >>> [str(s) for s, _, _ in stable_blank_nodes(record())]
    ['b5546f6fb43d8', 'b0eaf7d636b53']
    >>> stable_blank_nodes(record()) == stable_blank_nodes(reversed(record()))[::-1]
    True
    """
    triples = list(triples)
    # blank node -> the constant part of each of its triples, and the blank node next to it there
    around: dict[BNode, list[tuple[str, BNode | None]]] = defaultdict(list)
    for s, p, o in triples:
        if isinstance(s, BNode):
            around[s].append((f"> {p.n3()} {_constant(o)}", o if isinstance(o, BNode) else None))
        if isinstance(o, BNode):
            around[o].append((f"< {p.n3()} {_constant(s)}", s if isinstance(s, BNode) else None))
        if isinstance(p, BNode):  # (generalised RDF only)
            around[p].append((f"^ {_constant(s)} {_constant(o)}", None))
    if not around:
        return triples
    colour: dict[BNode, str] = dict.fromkeys(around, "")
    classes = 1
    while True:
        refined = {}
        for node, edges in around.items():
            lines = sorted(f"{text} {colour[other]}" if other is not None else text for text, other in edges)
            refined[node] = hashlib.sha256("\n".join([colour[node], *lines]).encode()).hexdigest()
        colour = refined
        count = len(set(colour.values()))
        if count == classes:  # no colour split: none will
            break
        classes = count
    width = 12 if len({c[:12] for c in colour.values()}) == classes else 64
    seen: dict[str, int] = {}
    label: dict[Node, Node] = {}
    for node, c in colour.items():
        n = seen[c] = seen.get(c, 0) + 1
        label[node] = BNode(f"b{c[:width]}" + (f"-{n}" if n > 1 else ""))
    return [(label.get(s, s), label.get(p, p), label.get(o, o)) for s, p, o in triples]


def _constant(term: Node) -> str:
    """``term`` in N-Triples, or nothing for a blank node (its colour stands in for it)."""
    return "" if isinstance(term, BNode) else term.n3()


def _printed(var: Variable) -> Expr:
    """An expression giving column ``var`` as printed (``str``; unbound: empty), for
    :func:`deterministic_rows`: plain strings, which ORDER BY orders totally."""

    def column(expr: Expr, ctx: Any) -> Literal:
        term = ctx.get(var)
        return Literal("" if term is None or isinstance(term, Exception) else str(term))

    return Expr("Printed", column)


def deterministic_rows(query: Query, text: str) -> Query:
    """Make ``query`` (prepared for rdflib from ``text``; changed in place and returned) give its
    rows in the same order on every run, if it is a SELECT: rows its ORDER BY leaves tied, and all
    rows of a query without ORDER BY, are ordered by their columns as printed, left to right
    (rows equal in every column print the same); the columns of ``SELECT *`` come in the order
    their variables first appear in the query. rdflib otherwise gives both in an order that
    changes with Python's hash seed. The order is applied where ORDER BY is: before DISTINCT,
    LIMIT and OFFSET.

    >>> text = "SELECT * { ?b ?a ?c } LIMIT 1"
    >>> q = deterministic_rows(prepareQuery(text), text)
    >>> [str(v) for v in q.algebra.PV], q.algebra.p.p.p.name
    (['b', 'a', 'c'], 'OrderBy')
    """
    algebra = query.algebra
    if algebra.name != "SelectQuery":
        return query
    project = algebra.p
    while project.name in ("Slice", "Distinct", "Reduced"):
        project = project.p
    if project.name != "Project" or not project.PV:
        return query
    code = _NOT_CODE.sub(" ", text)
    select = re.search(r"\bSELECT\s+(?:(?:DISTINCT|REDUCED)\s+)?(\*)?", code, re.IGNORECASE)
    if select and select.group(1):  # SELECT *: rdflib lists the variables in a set's order
        first = {name: i for i, name in enumerate(dict.fromkeys(_VARIABLE.findall(code, select.end())))}
        project.PV.sort(key=lambda v: (first.get(str(v), len(first)), str(v)))
        algebra.PV = list(project.PV)
    ties = [CompValue("OrderCondition", expr=_printed(v), order=None) for v in project.PV]
    if project.p.name == "OrderBy":
        project.p.expr = [*project.p.expr, *ties]
    else:
        project.p = CompValue("OrderBy", p=project.p, expr=ties)
    return query


_VARIABLE = re.compile(r"[?$]([A-Za-z0-9_\u00B7\u00C0-\uFFFF]+)")
#: What is neither a keyword nor a variable in a query: IRIs, strings and comments.
_NOT_CODE = re.compile(
    r"<[^<>\"{}|^`\\\s]*>"
    r"|'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\""
    r"|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
    r"|#[^\n]*",
    re.DOTALL,
)


# --------------------------------------------------------------------------------------
# Parse each query text once per process


@lru_cache(maxsize=1024)
def _prepare_text(text: str, base: str | None, namespaces: tuple[tuple[str, Any], ...]) -> Query:
    return prepareQuery(text, dict(namespaces), base)


class CachingSPARQLProcessor(SPARQLProcessor):
    """rdflib's own SPARQL processor, except that a query given as text is parsed once and reused.

    pySHACL sends the same SPARQL text for every focus node of a SPARQL-based constraint;
    rdflib would parse it again each time (about 40 ms of pyparsing per node). Reusing the
    prepared query is what :func:`rdflib.plugins.sparql.prepareQuery` is for: the results
    are the same, only the parsing is skipped.
    """

    def query(  # type: ignore[override]
        self,
        strOrQuery: str | Query,  # noqa: N803 (rdflib's signature)
        initBindings: Mapping[str, Any] | None = None,  # noqa: N803
        initNs: Mapping[str, Any] | None = None,  # noqa: N803
        base: str | None = None,
        DEBUG: bool = False,  # noqa: N803
    ) -> Any:
        if isinstance(strOrQuery, str):
            strOrQuery = _prepare_text(strOrQuery, base, tuple(sorted((initNs or {}).items())))
        return super().query(strOrQuery, initBindings or {}, initNs or {}, base, DEBUG)


def use_query_cache() -> None:
    """Make rdflib's ``"sparql"`` query processor the caching one (idempotent, process-wide)."""
    plugin.register("sparql", Processor, "jdm_kg.knowledge.queries", "CachingSPARQLProcessor")
