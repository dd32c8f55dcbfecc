"""Where each part of a patient record is in its file: the lines validation messages name, and
the order of a record's treatments and screening results as the file lists them.

A file is read as a tree of *blocks* with their lines: in Turtle, each subject's statement and
each ``[ ... ]``; in JSON (JSON-LD or FHIR), each object. A block holds its pairs (the key or
predicate, the value as written, the line) in file order. The record's graph is then matched to
the blocks (:meth:`SourceMap.placed`): a patient by its IRI or its ``patientId``; a node under it
(a treatment, a screening result, a measurement) among the blocks under its parent's block by the
same key, or in FHIR among the resources, by what it says (dates, codes, names, values), each
block given to one node. Nothing here changes what a record means: a file whose parts cannot be
placed gives messages without lines, as before.

>>> smap = SourceMap.from_text('@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .\\n'
...                            '<urn:p> jdm:patientId "P1" ;\\n'
...                            '  jdm:screening [ jdm:date "2026-01-02" ] .\\n')
>>> [(b.start, b.end, b.via) for b in smap.blocks]
[(2, 3, None), (3, 3, 'screening')]
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from rdflib import RDF, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.inputs.intake import normalise
from jdm_kg.namespaces import JDM

__all__ = ["Block", "SourceMap", "source_map_of_file", "token"]

_RDF_TYPE = str(RDF.type)


@dataclass(eq=False)
class Block:
    """A part of the file: a Turtle subject's statement or ``[ ... ]``, or a JSON object."""

    start: int
    end: int
    key: str | None = None  # the subject IRI (Turtle), "@id" (JSON-LD), the entry's fullUrl (FHIR)
    via: str | None = None  # the predicate or key it is the value of (its local name)
    parent: Block | None = None
    kind: str | None = None  # FHIR: the resourceType
    pairs: list[tuple[str, str | None, int, Block | None]] = field(default_factory=list)

    def values(self) -> Iterator[tuple[str, str, int]]:
        """(key, value, line) of this block and the blocks inside it."""
        for key, value, line, child in self.pairs:
            if value is not None:
                yield key, value, line
            if child is not None:
                yield from child.values()


@lru_cache(maxsize=4096)
def _local(text: str) -> str:
    text = text.rstrip("/#")
    return text[max(text.rfind("#"), text.rfind("/"), text.rfind(":")) + 1:]


@lru_cache(maxsize=65536)
def token(text: str) -> str:
    """A value as compared between a file and its graph: a date or date-time as its date, a
    number in one form, an IRI or prefixed name as its local name, text folded (case, spacing,
    punctuation, camel case).

    >>> token("2026-01-02T10:00:00Z"), token("35.0"), token("jdmg:SkinDisease"), token("skin  disease")
    ('2026-01-02', '35', 'skin disease', 'skin disease')
    """
    text = text.strip()
    if re.match(r"\d{4}-\d{2}-\d{2}", text):
        return text[:10]
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        try:
            return format(Decimal(text).normalize(), "f")
        except InvalidOperation:
            return text
    if re.fullmatch(r"[A-Za-z][\w.+-]*:[^\s\"]*|<[^>\s]*>", text):
        text = _local(text.strip("<>")) or text
    return normalise(text) or text


# ------------------------------------------------------------------ Turtle

_TURTLE_TOKEN = re.compile(r'''
    (?P<comment>\#[^\n]*)
  | (?P<long>"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\')
  | (?P<str>"[^"\\\n]*(?:\\.[^"\\\n]*)*"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')
  | (?P<iri><[^<>"{}|^`\\\s]*>)
  | (?P<punct>[\[\](),;])
  | (?P<word>[^\s\[\](),;"'<\#]+)
''', re.VERBOSE | re.DOTALL)


def _turtle_tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, line) for each token that is not space or a comment; a final ``.`` is its own."""
    out: list[tuple[str, str, int]] = []
    line, last = 1, 0
    count = text.count
    for match in _TURTLE_TOKEN.finditer(text):  # (space matches nothing: skipped)
        kind, value = match.lastgroup, match.group()
        start = match.start()
        line += count("\n", last, start)
        last = start
        if kind == "comment":
            continue
        if kind == "long":
            out.append(("str", value, line))
        elif kind == "word" and value[-1] == ".":  # "jdmg:SkinDisease." and "35." end a statement
            stripped = value.rstrip(".")
            if stripped:
                out.append(("word", stripped, line))
            out.extend(("punct", ".", line) for _ in range(len(value) - len(stripped)))
        else:
            out.append((kind, value, line))  # type: ignore[arg-type]
    return out


def _parse_turtle(text: str) -> list[Block]:
    """The blocks of a Turtle file, in file order (best effort: a file rdflib read is well formed)."""
    prefixes: dict[str, str] = {}
    blocks: list[Block] = []
    tokens = _turtle_tokens(text)
    i = 0

    known: dict[str, str] = {}

    def term(value: str, kind: str) -> str:
        if kind == "word":
            found = known.get(value)
            if found is None:
                found = known[value] = _word(value)
            return found
        if kind == "iri":
            return value[1:-1]
        if kind == "str":
            quote = 3 if value[:3] in ('"""', "'''") else 1
            return value[quote:-quote]
        return value

    def _word(value: str) -> str:
        if value == "a":
            return _RDF_TYPE
        prefix, colon, rest = value.partition(":")
        if colon and prefix in prefixes:
            return prefixes[prefix] + rest
        return value

    stack: list[tuple[Block, str | None]] = []  # open blocks, with the predicate being read
    subjects: dict[str, Block] = {}
    expect = "subject"
    while i < len(tokens):
        kind, value, line = tokens[i]
        i += 1
        if expect == "subject" and not stack:
            lowered = value.lower()
            if lowered in ("@prefix", "prefix"):
                if i + 1 < len(tokens):
                    prefixes[tokens[i][1].rstrip(":")] = term(tokens[i + 1][1], tokens[i + 1][0])
                    known.clear()
                i += 2 + (lowered == "@prefix")
                continue
            if lowered in ("@base", "base"):
                i += 1 + (lowered == "@base")
                continue
            if value == ".":
                continue
            key = None if value == "[" else term(value, kind)
            block = subjects.get(key) if key else None  # a subject's later statements add to its block
            if block is None:
                block = Block(line, line, key=key)
                blocks.append(block)
                if key:
                    subjects[key] = block
            stack.append((block, None))
            expect = "predicate"
            continue
        if not stack:
            continue
        block, predicate = stack[-1]
        if value == "]":
            block.end = line
            if block.parent is None:  # the subject's own "[ ... ]": its statement may go on
                expect = "predicate"
                continue
            stack.pop()
            expect = "after-object"
            continue
        if value == "." and len(stack) == 1:
            block.end = max(block.end, line)
            stack.pop()
            expect = "subject"
            continue
        if value == ";":
            expect = "predicate"
            continue
        if value == ",":
            expect = "object"
            continue
        if expect == "predicate":
            stack[-1] = (block, term(value, kind))
            expect = "object"
            continue
        if expect in ("object", "after-object") and predicate is not None:
            if value == "[":
                child = Block(line, line, via=_local(predicate), parent=block)
                blocks.append(child)
                block.pairs.append((predicate, None, line, child))
                stack.append((child, None))
                expect = "predicate"
                continue
            if value in ("(", ")"):
                continue
            if kind == "word" and value.startswith(("^^", "@")) and block.pairs:
                continue  # a literal's datatype or language
            block.pairs.append((predicate, term(value, kind), line, None))
            expect = "after-object"
    for block in blocks:
        block.pairs = [(_local(p), v, line, c) for p, v, line, c in block.pairs]
    return blocks


# ------------------------------------------------------------------ JSON (JSON-LD and FHIR)

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')


def _parse_json(text: str, keys: dict[str, str]) -> list[Block]:
    """The blocks of a JSON file (one per object), in file order; ``keys``: a JSON-LD key's
    property name (``treatments`` -> ``treatmentEpisode``). The document is parsed by :mod:`json`;
    the lines come from its strings, met in the same order as a walk of the document meets its
    keys and string values (a key is a string followed by ``:``). An object starts on the line
    of its first key. A document whose strings do not line up (a key given twice) has no blocks."""
    document = json.loads(text)
    strings: list[tuple[bool, int]] = []  # (a key, its line), in file order
    line, last = 1, 0
    count = text.count
    for match in _JSON_STRING.finditer(text):
        start = match.start()
        line += count("\n", last, start)
        last = start
        strings.append((match.group(1) is not None, line))
    blocks: list[Block] = []
    cursor = 0

    def take(key: bool) -> int:
        nonlocal cursor
        if cursor >= len(strings) or strings[cursor][0] != key:
            raise ValueError("the strings do not line up")
        cursor += 1
        return strings[cursor - 1][1]

    def value_of(value: object, name: str, key_line: int, block: Block) -> None:
        if isinstance(value, dict):
            child = obj(value, name, block, key_line)
            block.pairs.append((name, None, key_line, child))
        elif isinstance(value, list):
            block.pairs.append((name, None, key_line, None))  # the key's own line
            for item in value:
                value_of(item, name, key_line, block)
        elif isinstance(value, str):
            block.pairs.append((name, value, take(False), None))
        else:
            block.pairs.append((name, json.dumps(value), key_line, None))

    def obj(node: dict[str, object], via: str | None, parent: Block | None, at: int) -> Block:
        block = Block(at, at, via=via, parent=parent)
        blocks.append(block)
        for n, (key, value) in enumerate(node.items()):
            key_line = take(True)
            if n == 0:
                block.start = key_line
            value_of(value, keys.get(key, key), key_line, block)
        block.end = strings[cursor - 1][1] if cursor else at
        return block

    try:
        for item in document if isinstance(document, list) else [document]:
            if isinstance(item, dict):
                obj(item, None, None, 1)
    except ValueError:
        return []
    return blocks if cursor == len(strings) else []


def _fhir_resources(blocks: list[Block]) -> None:
    """A FHIR resource block gets its resourceType and, in a Bundle, its entry's fullUrl."""
    for block in blocks:
        own = {k: v for k, v, _, c in block.pairs if c is None}
        block.kind = own.get("resourceType")
        if block.kind and block.parent is not None and block.via == "resource":
            block.key = next((v for k, v, _, c in block.parent.pairs if k == "fullUrl" and c is None), None)


# ------------------------------------------------------------------ the map


class SourceMap:
    """The blocks of one file and, per graph read from it, which node is where."""

    def __init__(self, fmt: str, blocks: list[Block]) -> None:
        self.format = fmt  # "turtle", "jsonld" or "fhir"
        self.blocks = blocks
        self._placed: weakref.WeakKeyDictionary[Graph, dict[Node, Block]] = weakref.WeakKeyDictionary()
        self._indexes: tuple[dict[str, Block], dict[str, list[Block]]] | None = None

    @classmethod
    def from_text(cls, text: str) -> SourceMap:
        """The map of a Turtle (or N-Triples), JSON-LD or FHIR JSON text."""
        stripped = text.lstrip("\ufeff \t\r\n")
        if not stripped.startswith(("{", "[")):
            return cls("turtle", _parse_turtle(text))
        from jdm_kg.inputs.jsonld_context import bundled_context
        from jdm_kg.inputs.loading import is_fhir

        if is_fhir(stripped):
            blocks = _parse_json(text, {})
            _fhir_resources(blocks)
            return cls("fhir", blocks)
        keys = {k: _local(str(v["@id"] if isinstance(v, dict) else v)) for k, v in bundled_context().items()
                if not k.startswith("@") and isinstance(v, (str, dict)) and (not isinstance(v, dict) or "@id" in v)}
        blocks = _parse_json(text, keys)
        for block in blocks:
            block.key = next((v for k, v, _, c in block.pairs if k in ("@id", "id") and c is None), None)
        return cls("jsonld", blocks)

    # ---------------------------------------------------------------- placing the graph's nodes

    def placed(self, graph: Graph) -> dict[Node, Block]:
        """Node -> block, for the patients of ``graph`` and the nodes under them (remembered)."""
        if graph not in self._placed:
            self._placed[graph] = self._place(graph)
        return self._placed[graph]

    def _index(self) -> tuple[dict[str, Block], dict[str, list[Block]]]:
        """The blocks by key (IRI, fullUrl) and the record blocks by patientId (made once)."""
        if self._indexes is None:
            by_key: dict[str, Block] = {}
            by_pid: dict[str, list[Block]] = {}
            for block in self.blocks:
                if block.key and block.key not in by_key:
                    by_key[block.key] = block
                if self.format == "fhir":
                    ids = {v for _, v, _ in block.values()} if block.kind == "Patient" else set()
                else:
                    ids = {v for k, v, _, c in block.pairs if k == "patientId" and v is not None}
                for pid in ids:
                    by_pid.setdefault(pid, []).append(block)
            self._indexes = (by_key, by_pid)
        return self._indexes

    def _place(self, graph: Graph) -> dict[Node, Block]:
        out: dict[Node, Block] = {}
        taken: set[int] = set()
        by_key, by_pid = self._index()
        for patient in sorted(set(graph.subjects(RDF.type, JDM.Patient)), key=str):
            block = by_key.get(str(patient)) if isinstance(patient, URIRef) else None
            if block is None or id(block) in taken:
                pid = graph.value(patient, JDM.patientId)
                block = next((b for b in by_pid.get(str(pid), []) if id(b) not in taken), None) if pid else None
            if block is not None:
                out[patient] = block
                taken.add(id(block))
                self._place_under(graph, patient, block, out, taken, by_key)
        return out

    def _place_under(self, graph: Graph, node: Node, block: Block, out: dict[Node, Block], taken: set[int],
                     by_key: dict[str, Block]) -> None:
        """Place the nodes ``node`` points to (treatments, screenings, measurements, ...)."""
        children: dict[str, list[Node]] = {}
        for p, o in graph.predicate_objects(node):
            if isinstance(o, Literal) or o in out or p == RDF.type or (o, None, None) not in graph:
                continue
            children.setdefault(_local(str(p)), []).append(o)
        for via, nodes in sorted(children.items()):
            for child in [n for n in nodes if isinstance(n, URIRef) and str(n) in by_key]:
                if id(by_key[str(child)]) not in taken:
                    out[child] = by_key[str(child)]
                    taken.add(id(out[child]))
            left = [n for n in nodes if n not in out]
            if self.format == "fhir":
                candidates = [b for b in self.blocks if b.kind and b.kind not in ("Patient", "Bundle")
                              and id(b) not in taken]
            else:  # its [ ... ] under the same key, or the statement of the _:label the key names
                candidates = [c for k, _, _, c in block.pairs if c is not None and k == via and id(c) not in taken]
                candidates += [by_key[v] for k, v, _, c in block.pairs if k == via and v and v.startswith("_:")
                               and v in by_key and id(by_key[v]) not in taken]
            self._match(graph, left, candidates, out, taken)
            for node_under in nodes:
                if node_under in out:
                    self._place_under(graph, node_under, out[node_under], out, taken, by_key)

    def _match(self, graph: Graph, nodes: list[Node], blocks: list[Block], out: dict[Node, Block],
               taken: set[int]) -> None:
        """Give each of ``nodes`` the block among ``blocks`` that holds most of what it says
        (the smaller block first when two hold as much), each block to one node."""
        if not nodes or not blocks:
            return
        deep = self.format == "fhir"
        block_tokens = [{token(v) for _, v, _ in b.values()} if deep else
                        {token(v) for _, v, _, c in b.pairs if v is not None} for b in blocks]
        scored = []
        for n, node in enumerate(nodes):
            said = {token(str(o)) for p, o in graph.predicate_objects(node)
                    if not isinstance(o, BNode) and p not in _NOT_IN_FILE}
            for b, tokens in enumerate(block_tokens):
                score = len(said & tokens)
                if score or (len(nodes) == 1 and len(blocks) == 1):
                    scored.append((-score, blocks[b].end - blocks[b].start, blocks[b].start, n, b))
        for _, _, _, n, b in sorted(scored):
            if nodes[n] in out or id(blocks[b]) in taken:
                continue
            out[nodes[n]] = blocks[b]
            taken.add(id(blocks[b]))
        left = [node for node in nodes if node not in out]
        free = [block for block in blocks if id(block) not in taken]
        if len(left) == 1 and len(free) == 1 and not deep:  # the last one, written in words of its own
            out[left[0]] = free[0]
            taken.add(id(free[0]))

    # ---------------------------------------------------------------- lines

    def line_of(self, graph: Graph, nodes: list[Node | None], path: Node | None = None,
                value: Node | None = None, field: str | None = None) -> int | None:
        """The line of a problem about ``path`` (and ``value``) of the first of ``nodes`` this map
        places (the node the problem is about, then its entry, then its record): the line of
        that value, else of that field (``field``, else ``path``'s name), else where the block
        starts; None if none of ``nodes`` is placed."""
        placed = self.placed(graph)
        block = next((placed[n] for n in nodes if n is not None and n in placed), None)
        if block is None:
            return None
        pairs = list(block.values()) if self.format == "fhir" else [(k, v, line) for k, v, line, _ in block.pairs]
        name = field or (_local(str(path)) if isinstance(path, URIRef) else None)
        if value is not None and not isinstance(value, BNode):
            wanted = token(str(value))
            found = [(k, line) for k, v, line in pairs if v is not None and token(v) == wanted]
            named = [line for k, line in found if name is not None and k == name]
            if len(named) == 1 or (named and len(set(named)) == 1):
                return named[0]
            if len({line for _, line in found}) == 1:
                return found[0][1]
        if name is not None:
            keyed = sorted({line for k, _, line, _ in block.pairs if k == name})
            if keyed:
                return keyed[0]
        return block.start

    def position(self, graph: Graph, node: Node) -> int | None:
        """The line where ``node`` starts in the file, if it is placed."""
        block = self.placed(graph).get(node)
        return block.start if block is not None else None

    def resource_line(self, reference: str, element: str | None = None) -> int | None:
        """FHIR: the line of ``element`` in the resource ``reference`` names (``Condition/c1``,
        ``Condition<urn:uuid:...>``, ``Condition#entry3``), else where the resource starts."""
        match = re.fullmatch(r"([A-Z][A-Za-z]+)(?:/(\S+)|<([^>]*)>|#entry(\d+))?", reference)
        if match is None or self.format != "fhir":
            return None
        kind, rid, url, index = match.groups()
        resources = [b for b in self.blocks if b.kind and b.via == "resource"] or [b for b in self.blocks if b.kind]
        found = None
        if rid is not None:
            found = next((b for b in resources if b.kind == kind and
                          any(k == "id" and v == rid for k, v, _, c in b.pairs if c is None)), None)
        elif url is not None:
            found = next((b for b in resources if b.kind == kind and b.key == url), None)
        elif index is not None and int(index) < len(resources):
            found = resources[int(index)]
        if found is None:
            return None
        if element:
            first = element.split(".", 1)[0].split(",", 1)[0].strip()
            keyed = [line for k, _, line, _ in found.pairs if k == first]
            if keyed:
                return keyed[0]
        return found.start


#: What jdm-kg writes on a record itself (not in the file): left out when matching.
_NOT_IN_FILE = frozenset({JDM.inputIssue, JDM.importNote, JDM.predominant})


_MAPS: dict[tuple[str, int, int], SourceMap | None] = {}


def source_map_of_file(path: str | Path) -> SourceMap | None:
    """The map of the file at ``path`` (remembered while the file is unchanged: the records of a
    large file, validated in groups, share it), or None if it cannot be read."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _MAPS:
        if len(_MAPS) >= 8:
            _MAPS.pop(next(iter(_MAPS)))
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
            _MAPS[key] = SourceMap.from_text(text)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            _MAPS[key] = None
    return _MAPS[key]
