"""Terms a query of the user's own names that the vocabulary does not have.

A misspelt term (``jdm:Drgu``, ``jdm:regimen`` for ``jdm:hasRegimen``) matches nothing, and the
query answers with no rows, or with rows that look complete but are not. ``jdm-kg query`` says so
in a note, with the nearest terms, whatever the number of rows.

Which namespaces are the vocabulary's is data: the IRI prefix of every ``jdm:CodeSystem`` in the
guideline graph (jdm-kg's own model and guideline terms, and the code systems it maps to). A term
in one of them is known if the guideline graph or the data queried has it. The nearest terms are
those of the same namespace and, where the query says what the term must be, of the same kind: a
property where it is used as a predicate, a class after ``a`` (``rdf:type``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from rdflib import OWL, RDF, RDFS, Graph, URIRef
from rdflib.namespace import NamespaceManager
from rdflib.paths import Path as PropertyPath
from rdflib.plugins.sparql.parserutils import CompValue
from rdflib.plugins.sparql.sparql import Query
from rdflib.term import Node

from jdm_kg.knowledge.prefixes import shortened
from jdm_kg.namespaces import JDM

__all__ = ["UnknownTerm", "unknown_terms"]

_PROPERTY_TYPES = (OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, RDF.Property)
_CLASS_TYPES = (OWL.Class, RDFS.Class)


@dataclass(frozen=True)
class UnknownTerm:
    """A term of a vocabulary namespace that the query names and neither the guideline nor the
    data has; ``role``: "property", "class" or "term"; ``nearest``: the closest known terms."""

    iri: URIRef
    role: str
    nearest: tuple[URIRef, ...]

    def note(self, manager: NamespaceManager) -> str:
        """``jdm:regimen is not a property in the vocabulary or the data, ...; nearest: jdm:regimenOf, jdm:hasRegimen, ...``"""
        kind = {"property": "a property", "class": "a class"}.get(self.role, "a term")
        near = ", ".join(shortened(t, manager) for t in self.nearest)
        return (f"{shortened(self.iri, manager)} is not {kind} in the vocabulary or the data, so nothing matches it"
                + (f"; nearest: {near}" if near else "") + " (every term: vocabulary.html of jdm-kg docs)")


def _paths(path: Any) -> Iterator[URIRef]:
    """The IRIs in a property path (``jdm:bodyWeight/jdm:value``, ``^jdm:drug``, ``jdm:a|jdm:b``)."""
    if isinstance(path, URIRef):
        yield path
    elif isinstance(path, PropertyPath):
        for name in ("args", "path", "arg"):
            part = getattr(path, name, None)
            for item in part if isinstance(part, (list, tuple)) else [part]:
                if item is not None:
                    yield from _paths(item)


def _named(node: Any, role: str = "term") -> Iterator[tuple[URIRef, str]]:
    """(IRI, role) for every IRI in a query's algebra: predicates are properties, the object of
    ``a`` a class, any other IRI a term."""
    if isinstance(node, CompValue):
        triples = node.get("triples") if node.name == "BGP" else None
        for s, p, o in triples or []:
            yield from _named(s)
            if isinstance(p, (PropertyPath, URIRef)):
                yield from ((iri, "property") for iri in _paths(p) if iri != RDF.type)
            yield from _named(o, "class" if p == RDF.type else "term")
        for key, value in node.items():
            if key != "triples" or node.name != "BGP":
                yield from _named(value)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _named(value)
    elif isinstance(node, (list, tuple, set)):
        for item in node:
            yield from _named(item)
    elif isinstance(node, URIRef):
        yield node, role


@cache
def _vocabulary(graph: Graph) -> tuple[tuple[str, ...], frozenset[Node], dict[str, frozenset[URIRef]]]:
    """The vocabulary namespaces (the code systems' IRI prefixes, longest first), every term of
    ``graph``, and its properties and classes."""
    namespaces = sorted({str(p) for p in graph.objects(None, JDM.iriPrefix)}, key=len, reverse=True)
    terms = frozenset(t for triple in graph for t in triple if isinstance(t, URIRef))
    kinds = {
        "property": frozenset(s for k in _PROPERTY_TYPES for s in graph.subjects(RDF.type, k) if isinstance(s, URIRef)),
        "class": frozenset(s for k in _CLASS_TYPES for s in graph.subjects(RDF.type, k) if isinstance(s, URIRef)),
    }
    return tuple(namespaces), terms, kinds


def _nearest(iri: URIRef, namespace: str, role: str, candidates: Iterable[URIRef]) -> tuple[URIRef, ...]:
    """Up to three known terms of ``namespace`` closest to ``iri`` by name (a name that holds the
    other first: ``regimen`` -> ``hasRegimen``), of the same kind where ``role`` says one."""
    local = str(iri)[len(namespace):].lower()
    names: dict[str, list[URIRef]] = {}
    for term in sorted(candidates):
        if str(term).startswith(namespace) and str(term) != str(iri):
            names.setdefault(str(term)[len(namespace):].lower(), []).append(term)
    holding = sorted((n for n in names if len(local) >= 3 and (local in n or n in local) and len(n) >= 3),
                     key=lambda n: (abs(len(n) - len(local)), n))
    close = difflib.get_close_matches(local, list(names), n=3, cutoff=0.6)
    chosen = list(dict.fromkeys(holding + close))[:3]
    return tuple(term for name in chosen for term in names[name])[:3]


def unknown_terms(query: Query, guideline: Graph, data: Iterable[tuple[Node, Node, Node]] = ()) -> list[UnknownTerm]:
    """The terms of the vocabulary's namespaces that ``query`` names and neither ``guideline``
    nor ``data`` holds, each once, sorted."""
    namespaces, known, kinds = _vocabulary(guideline)
    in_data = {t for triple in data for t in triple if isinstance(t, URIRef)}
    found: dict[URIRef, str] = {}
    for iri, role in _named(query.algebra):
        if iri in known or iri in in_data:
            continue
        namespace = next((ns for ns in namespaces if str(iri).startswith(ns)), None)
        if namespace is None or str(iri) == namespace:
            continue
        if found.get(iri, "term") == "term":
            found[iri] = role
    out = []
    every = {t for t in known | in_data if isinstance(t, URIRef)}
    for iri, role in sorted(found.items()):
        namespace = next(ns for ns in namespaces if str(iri).startswith(ns))
        nearest = _nearest(iri, namespace, role, kinds.get(role) or every) or _nearest(iri, namespace, "term", every)
        out.append(UnknownTerm(iri, role, nearest))
    return out
