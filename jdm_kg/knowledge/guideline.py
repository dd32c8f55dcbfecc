"""Load and compile the guideline graph once: OWL RL closure plus the rules in ``queries/rules``.

Nothing here depends on a patient, so the result is computed once per process and shared by
every validation and recommendation.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import owlrl
from owlrl.Namespaces import ERRNS
from rdflib import OWL, RDF, Dataset, Graph, Literal, URIRef
from rdflib.plugins.stores.memory import Memory
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.guideline_source import provide
from jdm_kg.inputs.loading import document_blank_nodes, from_oxigraph, load_rdf_file
from jdm_kg.resources import cache_dir, resource_dir

__all__ = ["Guideline", "GuidelineUnion", "load_guideline", "with_guideline", "GUIDELINE_IRI", "JDM", "JDMG"]

from jdm_kg.namespaces import GUIDELINE_IRI, JDM, JDMG


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
    for rule in _rule_files():
        for triple in closure.query(_read_rule(rule)):
            closure.add(triple)  # type: ignore[arg-type]
    for triple in [t for t in closure if isinstance(t[0], Literal)]:
        closure.remove(triple)  # OWL RL's generalised triples (a literal as subject): not RDF; no query uses them
    return Guideline(asserted=asserted, graph=closure, files=tuple(files), inconsistencies=errors)


def _rule_files() -> list[Path]:
    return sorted(resource_dir("queries").joinpath("rules").glob("*.rq"))


# --------------------------------------------------------------------------------------
# A cache of the compiled guideline on disk: the OWL RL closure takes seconds, reading it back
# a tenth of that. Keyed by everything the result depends on; JDM_KG_CACHE=0 turns it off.


def _cache_key(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for part in (__file__, *map(str, _rule_files())):
        digest.update(Path(part).read_bytes())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in ("rdflib", "owlrl"):
        digest.update(importlib.metadata.version(package).encode())
    return digest.hexdigest()


def _libraries() -> dict[str, str]:
    """The versions of the libraries that wrote (rdflib, owlrl) and read (pyoxigraph) a cache file."""
    return {package: importlib.metadata.version(package) for package in ("rdflib", "owlrl", "pyoxigraph")}


def _read_cached(path: Path, files: list[Path]) -> Guideline | None:
    """The guideline in the cache file ``path``, if there is one and it is whole: its header
    holds the SHA-256 of the rest and the library versions that wrote it. A file that does not
    match (cut short, edited, emptied) is not used: one line on stderr says so, and the caller
    compiles the guideline again and rewrites the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        return _damaged(path, f"cannot be read ({err})")
    header, _, body = text.partition("\n")
    try:
        meta = json.loads(header.removeprefix("# "))
        digest, libraries, errors = meta["sha256"], meta["libraries"], tuple(meta["inconsistencies"])
    except (ValueError, KeyError, TypeError):
        return _damaged(path, "has no valid header")
    if libraries != _libraries():
        return _damaged(path, "was written by other library versions")
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != digest:
        return _damaged(path, "does not match its digest (cut short or edited)")
    try:
        asserted, closure = _parse_cached(body)
    except Exception as err:  # a digest that matches a body Oxigraph cannot read: written by a bug; compile instead
        return _damaged(path, f"cannot be parsed ({type(err).__name__})")
    if not len(asserted) or not len(closure):
        return _damaged(path, "is empty")
    return Guideline(asserted=asserted, graph=closure, files=tuple(files), inconsistencies=errors)


def _damaged(path: Path, why: str) -> None:
    print(f"jdm-kg: the compiled-guideline cache {path} {why}; compiling the guideline again and rewriting it",
          file=sys.stderr)
    return None


def _parse_cached(body: str) -> tuple[Graph, Graph]:
    """The asserted and compiled graphs of a cache file's N-Quads, read by Oxigraph's parser
    (several times faster than rdflib's); a blank node is the same node in both graphs."""
    import pyoxigraph as ox

    graphs: dict[URIRef, tuple[list[tuple[Node, Node, Node]], Graph]] = {_ASSERTED: ([], Graph()), _CLOSURE: ([], Graph())}
    blank = document_blank_nodes()
    for quad in ox.parse(body, ox.RdfFormat.N_QUADS):
        triples, _ = graphs[URIRef(quad.graph_name.value)]
        triples.append(tuple(from_oxigraph(term, blank) for term in (quad.subject, quad.predicate, quad.object)))
    for triples, graph in graphs.values():
        graph.addN((s, p, o, graph) for s, p, o in triples)
    return graphs[_ASSERTED][1], graphs[_CLOSURE][1]


def _write_cached(path: Path, guideline: Guideline) -> None:
    """Write the cache file atomically (a temporary file, then a rename): a reader sees the old
    file or the new one, never half of one; its header holds the digest :func:`_read_cached` checks."""
    dataset = Dataset()
    for name, graph in ((_ASSERTED, guideline.asserted), (_CLOSURE, guideline.graph)):
        named = dataset.graph(name)
        named += graph
    body = dataset.serialize(format="nquads")
    meta = {"sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(), "libraries": _libraries(),
            "inconsistencies": list(guideline.inconsistencies)}
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", encoding="utf-8") as fh:
            fh.write("# " + json.dumps(meta, sort_keys=True) + "\n" + body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only home: compile each time


_ASSERTED = URIRef("urn:jdm-kg:cache:asserted")
_CLOSURE = URIRef("urn:jdm-kg:cache:closure")


def guideline_files(directory: Path | None = None) -> list[Path]:
    folder = directory or resource_dir("ontology")
    files = sorted(folder.glob("*.ttl"))
    if not files:
        raise InputError(str(folder), "no .ttl guideline files found")
    return files


def load_guideline(directory: Path | None = None) -> Guideline:
    """Return the compiled guideline from ``directory`` (default: this run's guideline, see
    :func:`jdm_kg.resources.guideline_home`), from the on-disk cache when its inputs have not
    changed."""
    return _load_guideline((directory or resource_dir("ontology")).resolve())


@cache
def _load_guideline(directory: Path) -> Guideline:
    return cached_compile(guideline_files(directory))


def cached_compile(files: list[Path], asserted: Graph | None = None) -> Guideline:
    """:func:`compile_guideline`, through the on-disk cache (keyed by the files' content, so an
    edited file is compiled again); ``asserted``: the files already parsed, if they are."""
    folder = cache_dir()
    if folder is None:
        return compile_guideline(files, asserted)
    path = folder / f"guideline-{_cache_key(files)}.nq"
    cached = _read_cached(path, files)
    if cached is not None:
        return cached
    compiled = compile_guideline(files, asserted)
    _write_cached(path, compiled)
    return compiled


load_guideline.cache_clear = _load_guideline.cache_clear  # type: ignore[attr-defined]  # as if it were cached itself


class GuidelineUnion(Memory):
    """An rdflib store that reads as the compiled guideline plus the triples added to it, without
    copying the guideline: the guideline's own store is read through (shared, never written), and
    only what is added (a patient's triples) is held here. A triple the guideline already has is
    not added again, so no triple is listed twice and SPARQL over the union counts each once.

    The guideline graph must not change while a union over it is in use (it never does: the
    compiled guideline is built once and shared read-only). The guideline's triples are read
    from its store's indexes directly: rdflib's ``Memory`` works out every triple's contexts as
    it lists it, which the guideline (one graph) does not need.

    >>> from rdflib import Graph, URIRef
    >>> base = Graph(); _ = base.add((URIRef("urn:a"), URIRef("urn:p"), URIRef("urn:b")))
    >>> data = Graph(store=GuidelineUnion(base)); _ = data.add((URIRef("urn:a"), URIRef("urn:p"), URIRef("urn:b")))
    >>> _ = data.add((URIRef("urn:c"), URIRef("urn:p"), URIRef("urn:a")))
    >>> len(data), data.store.own(), sorted(str(o) for o in data.objects(None, URIRef("urn:p")))
    (2, 1, ['urn:a', 'urn:b'])
    """

    def __init__(self, base: Graph) -> None:
        super().__init__()
        self._base = base
        store = base.store
        indexes = [getattr(store, f"_Memory__{name}", None) for name in ("spo", "pos", "osp")]
        # rdflib's Memory keeps [s][p][o], [p][o][s] and [o][s][p] indexes; another store is read through its API
        self._indexes = indexes if isinstance(store, Memory) and all(isinstance(i, dict) for i in indexes) else None

    def add(self, triple: Any, context: Any, quoted: bool = False) -> None:
        if not self._in_base(triple):  # not the guideline's already
            super().add(triple, context, quoted)

    def _in_base(self, triple: Any) -> bool:
        return next(self._base_triples(triple), None) is not None

    def _base_triples(self, pattern: Any) -> Any:
        """The guideline's triples matching ``pattern``."""
        if self._indexes is None:
            for triple, _ in self._base.store.triples(pattern, self._base):
                yield triple
            return
        spo, pos, osp = self._indexes
        s, p, o = pattern
        if s is not None:
            by_p = spo.get(s)
            if by_p is None:
                return
            for p2, objects in ([(p, by_p.get(p))] if p is not None else list(by_p.items())):
                if objects:
                    if o is not None:
                        if o in objects:
                            yield s, p2, o
                    else:
                        for o2 in list(objects):
                            yield s, p2, o2
        elif p is not None:
            by_o = pos.get(p)
            if by_o is None:
                return
            for o2, subjects in ([(o, by_o.get(o))] if o is not None else list(by_o.items())):
                for s2 in list(subjects or ()):
                    yield s2, p, o2
        elif o is not None:
            for s2, predicates in list((osp.get(o) or {}).items()):
                for p2 in list(predicates):
                    yield s2, p2, o
        else:
            for s2, by_p in list(spo.items()):
                for p2, objects in list(by_p.items()):
                    for o2 in list(objects):
                        yield s2, p2, o2

    def triples(self, triple_pattern: Any, context: Any = None) -> Any:
        for triple in self._base_triples(triple_pattern):
            yield triple, iter(_NO_CONTEXTS)
        yield from super().triples(triple_pattern, context)

    def own(self) -> int:
        """How many triples are held here (not the guideline's)."""
        return super().__len__(None)

    def __len__(self, context: Any = None) -> int:
        return len(self._base) + super().__len__(context)

    def remove(self, triple: Any, context: Any = None) -> None:
        """Remove added triples; the guideline's stay (it is shared and read-only)."""
        super().remove(triple, context)


_NO_CONTEXTS: tuple[Any, ...] = ()


def with_guideline(
    guideline: Guideline, *graphs: Iterable[tuple[Node, Node, Node]], store: GuidelineUnion | None = None
) -> Graph:
    """The compiled guideline and ``graphs`` (graphs, or lists of triples) as one rdflib graph:
    the data queries and shapes run on. The guideline is not copied: the graph's store
    (:class:`GuidelineUnion`, or ``store``, a subclass of it over ``guideline.graph``) reads it
    through and holds only the triples of ``graphs``.
    """
    data = Graph(store=store if store is not None else GuidelineUnion(guideline.graph))
    for graph in graphs:
        data += graph
    return data


provide(default_guideline=load_guideline)  # the guideline the input readers use when given none
