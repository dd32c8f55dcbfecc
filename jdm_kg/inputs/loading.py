"""Read patient files (Turtle, N-Triples, JSON-LD) safely, without touching the network.

JSON-LD contexts are resolved before rdflib sees the document (:mod:`jdm_kg.inputs.jsonld_context`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.jsonld_context import bundled_context, resolve_contexts
from jdm_kg.resources import CONTEXT_IRI

if TYPE_CHECKING:
    from jdm_kg.knowledge.guideline import Guideline

__all__ = ["load_json", "check_terms", "scan_turtle", "check_values", "MAX_NESTING", "MAX_LIST_ITEMS", "MAX_VALUES",
           "MAX_LITERAL_CHARS", "MAX_JSON_DEPTH", "rdf_files", "load_rdf_file", "load_patient_file", "is_fhir",
           "from_oxigraph", "document_blank_nodes", "parse_rdf_text", "MAX_FILE_BYTES", "RDF_SUFFIXES",
           "review_jsonld_text", "review_patient"]

#: Files larger than this are refused: a patient record is kilobytes, a registry megabytes.
#: Memory grows with the size of one file, about 50 times (benchmarks/bench_large.py: 20 MiB of
#: Turtle, 1 GiB), so 64 MiB is about 3 GiB; ``JDM_KG_MAX_FILE_MB`` sets another limit (in MiB).
MAX_FILE_BYTES = 64 * 1024 * 1024


def max_file_bytes() -> int:
    """The size limit for one file: ``$JDM_KG_MAX_FILE_MB`` MiB if set, else :data:`MAX_FILE_BYTES`."""
    given = os.environ.get("JDM_KG_MAX_FILE_MB", "").strip()
    try:
        return int(float(given) * 1024 * 1024) if given else MAX_FILE_BYTES
    except ValueError:
        raise InputError("JDM_KG_MAX_FILE_MB", f"{given!r} is not a number of MiB") from None

#: Limits on the shape of what is read, so that a small hostile file cannot cost minutes and
#: gigabytes (a 1 MB file of blank nodes nested 100,000 deep; a 200,000-item RDF list; 100,000
#: treatments in one record; a 10 MB literal): each is refused in well under a second, with a
#: message naming the limit. A patient record is a few levels deep, with tens of values.
MAX_NESTING = 32  #: blank nodes inside blank nodes (``[ ... [ ... ] ]``), JSON-LD objects inside objects
MAX_LIST_ITEMS = 1_000  #: items of one RDF list (``( ... )``)
MAX_VALUES = 1_000  #: values of one property of one node (treatments of one record, ...); items of one JSON array
MAX_LITERAL_CHARS = 100_000  #: characters of one literal or JSON string

RDF_SUFFIXES = {".ttl": "turtle", ".nt": "nt", ".jsonld": "json-ld", ".json": "json-ld"}

_LINE_PATTERNS = (re.compile(r"\bat line (\d+)"), re.compile(r"\bline (\d+)"), re.compile(r"\blineno=(\d+)"))


def _line_of(message: str) -> int | None:
    for pattern in _LINE_PATTERNS:
        match = pattern.search(message)
        if match:
            return int(match.group(1))
    return None


def _first_line(message: str) -> str:
    text = " ".join(message.split()).split(" at ^ in:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


_FAST_FORMATS = {"turtle": "TURTLE", "nt": "N_TRIPLES"}


class _IllTypedLiteral(logging.Filter):
    """rdflib logs a traceback for a literal whose text is not of its datatype (a birth date
    2012-13-40); the shapes report that value as one clean violation, so the log is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to convert Literal lexical form")


logging.getLogger("rdflib.term").addFilter(_IllTypedLiteral())
# the same for a boolean such as "yes": rdflib warns, the shapes say "must be true or false"
warnings.filterwarnings("ignore", message="Parsing weird boolean", category=UserWarning)


#: pyoxigraph IRI or literal -> its rdflib term, for every file a process parses.
_KNOWN_TERMS: dict[Any, Node] = {}


def _parse_with_oxigraph(text: str, fmt: str, source: str = "input") -> Graph | None:
    """Turtle / N-Triples parsed by Oxigraph's parser (several times faster than rdflib's) into
    an rdflib graph; None if Oxigraph refuses the text, so that rdflib parses it and gives the
    message (and accepts what it is lenient about), exactly as without this fast path."""
    try:
        import pyoxigraph as ox
    except ImportError:  # pragma: no cover (a dependency; rdflib parses alone)
        return None
    try:
        parser = ox.parse(text, getattr(ox.RdfFormat, _FAST_FORMATS[fmt]), without_named_graphs=True)
        triples = list(parser)
    except (SyntaxError, ValueError, OSError, MemoryError):  # MemoryError: a token over its 16 MiB buffer
        return None
    # rdflib's core prefixes only (binding its ~30 default ones costs more than the parse)
    graph = Graph(bind_namespaces="core")
    for prefix, namespace in parser.prefixes.items():  # as rdflib's parser does: output keeps the file's prefixes
        graph.bind(prefix, namespace, override=True, replace=True)
    blank = document_blank_nodes()

    def term(node: Any) -> Any:
        known = _KNOWN_TERMS.get(node)
        if known is None:
            known = from_oxigraph(node, blank)
            if not isinstance(known, BNode):  # IRIs and literals recur from file to file
                if len(_KNOWN_TERMS) > 100_000:
                    _KNOWN_TERMS.clear()
                _KNOWN_TERMS[node] = known
        return known

    try:
        graph.addN((term(t.subject), term(t.predicate), term(t.object), graph) for t in triples)
    except TypeError:  # RDF-star triple terms: let rdflib decide
        return None
    return graph


_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def document_blank_nodes() -> Callable[[str], BNode]:
    """Blank node label -> rdflib node, for one parsed document: a new node per label, the same
    node each time the label recurs."""
    nodes: dict[str, BNode] = {}

    def blank(label: str) -> BNode:
        node = nodes.get(label)
        if node is None:
            node = nodes[label] = BNode()
        return node

    return blank


def from_oxigraph(node: Any, blank: Callable[[str], BNode]) -> Node:
    """The rdflib term for a pyoxigraph term; ``blank`` gives the BNode for a blank node label.
    A plain string literal is rdflib's plain literal (no datatype), as rdflib's parsers give."""
    import pyoxigraph as ox

    if isinstance(node, ox.NamedNode):
        return URIRef(node.value)
    if isinstance(node, ox.BlankNode):
        return blank(node.value)
    if isinstance(node, ox.Literal):
        if node.language:
            return Literal(node.value, lang=node.language)
        datatype = node.datatype.value
        return Literal(node.value) if datatype == _XSD_STRING else Literal(node.value, datatype=URIRef(datatype))
    raise TypeError(f"not an RDF term rdflib can hold: {node!r}")


def parse_rdf_text(text: str, fmt: str, source: str) -> Graph:
    """Parse ``text`` of format ``fmt`` ('turtle', 'nt', 'json-ld') into a new graph.

    >>> len(parse_rdf_text('<urn:a> <urn:b> "c" .', "nt", "inline"))
    1
    """
    if fmt in _FAST_FORMATS:
        scan_turtle(text, source)
        fast = _parse_with_oxigraph(text, fmt, source)
        if fast is not None:
            return fast
    graph = Graph()
    if fmt == "json-ld":
        document = load_json(text, source)
        _check_jsonld(document, source)
        text = json.dumps(resolve_contexts(document, source))
    try:
        graph.parse(data=text, format=fmt)
    except InputError:
        raise
    except (IndexError, KeyError, AttributeError, TypeError) as err:  # rdflib's own code failing on broken text
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise InputError(source, f"not valid {fmt}: the text cannot be read; is the file cut short (it ends at line "
                                 f"{lines}) or broken near its end? ({type(err).__name__} in rdflib's parser)",
                         line=lines) from None
    except Exception as err:  # rdflib raises many types; each becomes one clear line
        message = str(err) or type(err).__name__
        raise InputError(source, f"not valid {fmt}: {_first_line(message)}", line=_line_of(message)) from None
    check_terms(graph, source)  # (what Oxigraph's parser read above is valid already)
    return graph


#: Turtle's tokens that can hold a bracket or a quote without meaning one (strings, IRIs,
#: comments), and the brackets themselves.
_SKELETON = re.compile(
    r'"""[^"\\]*+(?:(?:\\.|"(?!""))[^"\\]*+)*+"""'  # (unrolled loops, possessive: no backtracking state per
    r"|'''[^'\\]*+(?:(?:\\.|'(?!''))[^'\\]*+)*+'''"  # character, so a 10 MB string costs no more than its bytes)
    r'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
    r"|'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'"
    r'|<[^<>"{}|^`\\\s]*+>|#[^\n]*+|[\[\]()]'
)
def scan_turtle(text: str, source: str) -> None:
    """An :class:`InputError` if Turtle ``text`` passes a limit: a string over
    :data:`MAX_LITERAL_CHARS`, blank nodes or lists nested deeper than :data:`MAX_NESTING`, a
    list of more than :data:`MAX_LIST_ITEMS` items. Read from the text before it is parsed, in one
    pass (a regular expression over strings, IRIs, comments and brackets; the words between them
    are counted only inside a list), so a hostile file costs milliseconds, not the minutes and
    gigabytes of the graph it would make.

    >>> scan_turtle("<urn:a> <urn:b> (" + " 1" * 1001 + " ) .", "f.ttl")
    Traceback (most recent call last):
    ...
    jdm_kg.errors.InputError: f.ttl:1: an RDF list ( ... ) of more than 1000 items; jdm-kg reads lists of at most 1000 (a patient record needs a few)
    >>> scan_turtle('<urn:a> <urn:b> [ <urn:c> "a ] ( [" ] ; <urn:d> ( "1"^^<urn:t> 2 [ <urn:e> 3 ] ) .', "f.ttl")
    """
    stack: list[list[Any]] = []  # open brackets: [bracket, items so far]
    last = 0
    typed = False  # the previous word was "^^": the IRI that follows is a datatype, not an item

    def counted(n: int, at: int) -> None:
        stack[-1][1] += n
        if stack[-1][1] > MAX_LIST_ITEMS:
            raise InputError(source, f"an RDF list ( ... ) of more than {MAX_LIST_ITEMS} items; jdm-kg reads lists "
                                     f"of at most {MAX_LIST_ITEMS} (a patient record needs a few)",
                             line=text.count("\n", 0, at) + 1)

    for match in _SKELETON.finditer(text):
        in_list = bool(stack) and stack[-1][0] == "("
        if in_list and match.start() > last:
            words = text[last:match.start()].split()
            counted(sum(1 for w in words if w[0] not in "^@"), match.start())
            typed = bool(words) and words[-1].endswith("^^")
        token = match.group()
        first = token[0]
        if first in "([":
            if in_list:
                counted(1, match.start())
            stack.append([first, 0])
            if len(stack) > MAX_NESTING:
                raise InputError(source, f"blank nodes or lists nested more than {MAX_NESTING} deep ([ ... [ ... ] ]); "
                                         f"jdm-kg reads at most {MAX_NESTING} levels (a patient record needs a few)",
                                 line=text.count("\n", 0, match.start()) + 1)
        elif first in ")]":
            if stack:
                stack.pop()
        elif first != "#":
            if first in "\"'" and len(token) > MAX_LITERAL_CHARS:
                raise InputError(source, f"a string of {len(token) - 2} characters; jdm-kg reads values of at most "
                                         f"{MAX_LITERAL_CHARS} characters", line=text.count("\n", 0, match.start()) + 1)
            if in_list and not (first == "<" and typed):
                counted(1, match.start())
        typed = False
        last = match.end()


def check_values(graph: Graph, source: str) -> None:
    """An :class:`InputError` if a node of ``graph`` has more than :data:`MAX_VALUES` values of
    one property (100,000 treatments in one record)."""
    counts: dict[tuple[Node, Node], int] = {}
    for subject, predicate, _ in graph:
        key = (subject, predicate)
        count = counts[key] = counts.get(key, 0) + 1
        if count > MAX_VALUES:
            shown = str(predicate).rsplit("#", 1)[-1].rsplit("/", 1)[-1]
            raise InputError(source, f"a node has more than {MAX_VALUES} values of {shown}; jdm-kg reads at most "
                                     f"{MAX_VALUES} (a patient record has tens)")


def _check_jsonld(document: Any, source: str) -> None:
    """An :class:`InputError` for JSON that is not JSON-LD rdflib can read: a document that is not
    an object or a list of objects (``null``, ``1``, ``"text"``), an ``@context`` that is not an
    IRI, an object, a list of those or null (``"@context": 5``).

    >>> _check_jsonld({"@context": 5}, "p.jsonld")
    Traceback (most recent call last):
    ...
    jdm_kg.errors.InputError: p.jsonld: "@context" is 5: a context is an IRI (such as "https://w3id.org/jdm-kg/context.jsonld"), an object or a list of those
    """
    items = document if isinstance(document, list) else [document]
    if not all(isinstance(item, dict) for item in items):
        shown = json.dumps(document)[:40] if not isinstance(document, list) else "a list holding " + next(
            json.dumps(i)[:40] for i in items if not isinstance(i, dict))
        raise InputError(source, f"the document is {shown}: a JSON-LD patient record is a JSON object (or a list of "
                                 "objects) with an \"@context\"")
    stack: list[Any] = list(items)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            context = node.get("@context", None)
            contexts = context if isinstance(context, list) else [context]
            for value in contexts:
                if value is not None and not isinstance(value, (str, dict)):
                    raise InputError(source, f"\"@context\" is {json.dumps(value)[:40]}: a context is an IRI (such as "
                                             f"\"{CONTEXT_IRI}\"), an object or a list of those")
            stack += [v for k, v in node.items() if k != "@context"]
        elif isinstance(node, list):
            stack += node


#: JSON deeper than this is refused: a patient record is a few levels deep, and rdflib's JSON-LD
#: reader and the FHIR models recurse once or more per level.
MAX_JSON_DEPTH = 64


def load_json(text: str, source: str) -> Any:
    """The JSON document in ``text``, or an :class:`InputError` for what jdm-kg cannot use: not
    JSON (``NaN`` and ``Infinity`` are not), nested deeper than :data:`MAX_JSON_DEPTH`, or a
    number too large for a double (or of more than 4,300 digits).

    >>> load_json('{"a": [1, 2.5]}', "inline")
    {'a': [1, 2.5]}
    """
    def constant(name: str) -> Any:
        raise InputError(source, f"{name} is not a JSON number: write a number, or leave the field out")

    try:
        document = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as err:
        raise InputError(source, f"not valid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
    except RecursionError:
        raise InputError(source, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels); a patient record needs a few") from None
    except ValueError as err:  # Python's limit on the digits of an integer
        raise InputError(source, f"a number in the JSON is too long ({_first_line(str(err)).split(';')[0]})") from None
    stack: list[tuple[Any, int, str | None]] = [(document, 1, None)]
    while stack:
        node, depth, key = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InputError(source, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels); a patient record needs a few")
        if isinstance(node, dict):
            stack += [(value, depth + 1, name) for name, value in node.items()]
        elif isinstance(node, list):
            if len(node) > MAX_VALUES and key not in _MANY_ALLOWED and depth > 1:
                raise InputError(source, f"the JSON list {key!r} has {len(node)} items; jdm-kg reads at most "
                                         f"{MAX_VALUES} (a patient record has tens; many records go in @graph or "
                                         "Bundle.entry, or in files of their own)")
            stack += [(value, depth + 1, key) for value in node]
        elif isinstance(node, str) and len(node) > MAX_LITERAL_CHARS:
            raise InputError(source, f"a JSON string{f' in {key!r}' if key else ''} is {len(node)} characters long; "
                                     f"jdm-kg reads values of at most {MAX_LITERAL_CHARS} characters")
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and not abs(node) <= _LARGEST:
            raise InputError(source, "a number in the JSON is too large (over 1e308); correct it")
    return document


#: JSON lists that may hold any number of items: records (JSON-LD ``@graph``, a FHIR Bundle's ``entry``).
_MANY_ALLOWED = {"@graph", "entry"}


_LARGEST = 1.7976931348623157e308


def check_terms(graph: Graph, source: str) -> Graph:
    """``graph`` if every IRI and literal in it is valid RDF (an IRI without spaces, quotes or
    angle brackets; text without lone surrogates; a well-formed language tag), as Oxigraph and
    SPARQL servers require; rdflib's readers let some through. Otherwise an :class:`InputError`
    naming the first bad term."""
    import pyoxigraph as ox

    seen: set[Node] = set()
    for triple in graph:
        for term in triple:
            if term in seen or isinstance(term, BNode):
                continue
            seen.add(term)
            try:
                if isinstance(term, URIRef):
                    ox.NamedNode(term)
                elif isinstance(term, Literal) and term.language:
                    ox.Literal(str(term), language=term.language)
                elif isinstance(term, Literal):
                    ox.Literal(str(term), datatype=ox.NamedNode(term.datatype or _XSD_STRING))
            except (ValueError, TypeError, UnicodeError) as err:
                shown = repr(str(term)) if isinstance(term, URIRef) else term.n3()
                what = "IRI" if isinstance(term, URIRef) else "literal"
                raise InputError(source, f"{what} {_first_line(shown)[:160]} is not valid RDF ({_first_line(str(err))}); "
                                         "correct or remove it") from None
    return graph


def rdf_files(paths: list[str] | list[Path] | tuple[str, ...], problems: list[InputError] | None = None) -> list[Path]:
    """Files as given; a folder expands to the RDF files inside it (sorted, recursive, through
    symbolic links to folders too, each folder once). A folder holding none, or one that cannot
    be read, is an :class:`InputError`: raised, or with ``problems`` given, added to it while the
    other paths are still expanded."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            out.append(path)
            continue
        found: list[Path] = []
        unreadable: list[InputError] = []
        seen: set[str] = set()

        def refused(err: OSError) -> None:
            folder = err.filename or str(path)
            unreadable.append(InputError(str(folder), f"cannot read this folder ({err.strerror}); its files were skipped"))

        for folder, subfolders, names in os.walk(path, followlinks=True, onerror=refused):
            real = os.path.realpath(folder)
            if real in seen:  # a link back to a folder already walked
                subfolders.clear()
                continue
            seen.add(real)
            found += [Path(folder, n) for n in names if Path(n).suffix.lower() in RDF_SUFFIXES]
        if not found and not unreadable:
            kinds = ", ".join(sorted(RDF_SUFFIXES))
            unreadable.append(InputError(str(path), f"no patient files in this folder (looked for {kinds}, in subfolders too)"))
        if unreadable:
            if problems is None:
                raise unreadable[0]
            problems += unreadable
        out += sorted(found)
    return out


_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _read_text(path: Path) -> str:
    """The text of ``path``, or a clear :class:`InputError` (missing, not a regular file, too big,
    binary, not UTF-8). Only regular files are opened (a FIFO would block, a device never end),
    and at most :data:`MAX_FILE_BYTES` + 1 bytes are read, whatever the file claims its size is."""
    source = str(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        for test, kind in _NOT_REGULAR:
            if test(mode):
                raise InputError(source, f"is {kind}, not a regular file; skipped (give the file itself)")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # never waits, even if it changed since
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InputError(source, "is not a regular file; skipped (give the file itself)")
            limit = max_file_bytes()
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a file") from None
    except OSError as err:
        raise InputError(source, f"cannot read: {err.strerror}") from None
    if len(raw) > limit:
        raise InputError(source, f"file is over the {limit / 2**20:g} MiB limit for one file (memory grows with it): "
                                 "split it into smaller files, or raise the limit with JDM_KG_MAX_FILE_MB=<MiB>")
    if not raw.strip():
        raise InputError(source, "file is empty; expected a patient record")
    if b"\x00" in raw[:8192]:
        raise InputError(source, "looks like a binary file, not text; expected Turtle, JSON-LD or FHIR JSON")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(source, f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8", line=line) from None


def _format_of(path: Path) -> str:
    fmt = RDF_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(str(path), f"unknown file type {path.suffix!r}; use .ttl, .nt, .jsonld or .json")
    return fmt


def load_rdf_file(path: str | Path) -> Graph:
    """Read one RDF file into a graph, with a clear :class:`InputError` for any problem."""
    path = Path(path)
    fmt = _format_of(path)
    return parse_rdf_text(_read_text(path), fmt, str(path))


def is_fhir(text: str) -> bool:
    """Whether JSON ``text`` is FHIR (a resource: an object with ``resourceType``) rather than JSON-LD.

    >>> is_fhir('{"resourceType": "Bundle", "type": "collection"}'), is_fhir('{"@context": {}}')
    (True, False)
    """
    head = text.lstrip()[:4096]
    return head.startswith("{") and '"resourceType"' in head and '"@context"' not in head


def load_patient_file(path: str | Path, predominant: tuple[Any, ...] | list[Any] = (),
                      guideline: Guideline | None = None) -> Graph:
    """Read a patient file: Turtle, N-Triples, JSON-LD, or FHIR R4 JSON (a Bundle or a resource),
    which is mapped to the patient vocabulary by :mod:`jdm_kg.inputs.fhir`; then reviewed the same way
    whatever the format (:func:`review_patient`). ``predominant``: manifestations (IRIs or
    names) to mark predominant in every record of the file. ``guideline``: the guideline whose
    codes and names the file is read by (default: this run's; ``jdm-kg diff`` reads a file under
    each of its two versions)."""
    path = Path(path)
    fmt = _format_of(path)
    text = _read_text(path)
    if fmt == "json-ld" and is_fhir(text):
        from jdm_kg.inputs.fhir import fhir_to_graph  # only FHIR input needs fhir.resources

        _check_fhir_structure(load_json(text, str(path)), str(path))
        graph = check_terms(fhir_to_graph(text, str(path), guideline), str(path))
    else:
        if fmt == "json-ld":
            text = review_jsonld_text(text, str(path))
        graph = parse_rdf_text(text, fmt, str(path))
    check_values(graph, str(path))
    return review_patient(graph, predominant, guideline)


def _check_fhir_structure(document: Any, source: str) -> None:
    """An :class:`InputError` if ``document`` is not a FHIR resource, or a Bundle whose entries
    are not each an object holding a resource of a FHIR R4 type (what the importer then reads)."""
    from fhir.resources.R4B import get_fhir_model_class

    def resource(node: Any, where: str) -> None:
        kind = node.get("resourceType") if isinstance(node, dict) else None
        if not isinstance(kind, str):
            raise InputError(source, f"{where} is not a FHIR resource (a JSON object with a resourceType)")
        try:
            get_fhir_model_class(kind)
        except (KeyError, ValueError):
            raise InputError(source, f"{where}: resourceType {kind!r} is not a FHIR R4 resource") from None

    resource(document, "the document")
    entries = document.get("entry")
    if document["resourceType"] != "Bundle" or entries is None:
        return
    if not isinstance(entries, list):
        raise InputError(source, "Bundle.entry must be a list of entries")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("resource") is None:
            raise InputError(source, f"Bundle.entry[{index}] holds no resource; jdm-kg reads entries that hold one")
        resource(entry["resource"], f"Bundle.entry[{index}].resource")


def review_jsonld_text(text: str, source: str) -> str:
    """A JSON-LD patient record that uses the bundled context, with every key and term value
    checked against the vocabulary (:func:`jdm_kg.inputs.intake.review_jsonld_document`); other text
    as given (the parser then reports it)."""
    try:
        document = load_json(text, source)
    except InputError:
        return text  # the parser reports it, with its line
    contexts = [d.get("@context") for d in (document if isinstance(document, list) else [document]) if isinstance(d, dict)]
    if not contexts or any(not isinstance(c, str) or c.rstrip("#/") != CONTEXT_IRI for c in contexts):
        return text  # an inline or other context: the shapes check the terms it gives
    from jdm_kg.inputs.intake import review_jsonld_document

    return json.dumps(review_jsonld_document(document, bundled_context()))


def review_patient(
    graph: Graph, predominant: tuple[Any, ...] | list[Any] = (), guideline: Guideline | None = None
) -> Graph:
    """What every patient graph goes through after parsing (:func:`jdm_kg.inputs.intake.review_patient_graph`),
    by the terms of ``guideline`` (default: this run's)."""
    from jdm_kg.inputs.intake import resolve_features, review_patient_graph

    features = resolve_features([str(p).rsplit("/", 1)[-1] for p in predominant], guideline)
    return review_patient_graph(graph, guideline, predominant=features)
