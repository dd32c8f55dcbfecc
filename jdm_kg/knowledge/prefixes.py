"""The guideline's prefixes (``jdm:``, ``jdmg:``, ``sct:``, ``rxnorm:``, ...): those its Turtle
files declare, so that what jdm-kg shows an analyst or a validator (query tables, Turtle
validation reports, the docs' vocabulary page) names terms as the guideline's authors write them:
``jdmg:rituximab``, not ``https://w3id.org/jdm-kg/guideline/rituximab``.

The prefixes are data: add a ``PREFIX`` line to a guideline file and it is used. IRIs are
shortened by rdflib's :class:`~rdflib.namespace.NamespaceManager` (a local part Turtle could not
write after a prefix keeps the whole IRI).

>>> manager = namespace_manager({"jdmg": "https://w3id.org/jdm-kg/guideline/"})
>>> shortened(URIRef("https://w3id.org/jdm-kg/guideline/rituximab"), manager)
'jdmg:rituximab'
>>> shortened(URIRef("https://example.org/patient/P1"), manager)
'https://example.org/patient/P1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from rdflib import Graph, URIRef
from rdflib.namespace import NamespaceManager
from rdflib.term import Node

if TYPE_CHECKING:
    from jdm_kg.knowledge.guideline import Guideline

__all__ = ["declared_in", "declared_prefixes", "expanded", "guideline_prefixes", "namespace_manager", "shortened"]

_PREFIX_LINE = re.compile(r"^\s*(?:@prefix|PREFIX)\s+([A-Za-z][\w.-]*)?:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)


def declared_prefixes(files: Iterable[Path]) -> dict[str, str]:
    """prefix -> namespace IRI, as the Turtle and SPARQL ``files`` declare them (the first
    declaration of a prefix wins)."""
    out: dict[str, str] = {}
    for path in files:
        for prefix, namespace in declared_in(path.read_text(encoding="utf-8")).items():
            out.setdefault(prefix, namespace)
    return out


def declared_in(text: str) -> dict[str, str]:
    """The prefixes a Turtle or SPARQL text declares (the first declaration of a prefix wins).

    >>> declared_in("PREFIX ex: <https://example.org/>\\nSELECT * WHERE { ?s ?p ?o }")
    {'ex': 'https://example.org/'}
    """
    out: dict[str, str] = {}
    for prefix, namespace in _PREFIX_LINE.findall(text):
        out.setdefault(prefix, namespace)
    return out


def guideline_prefixes(guideline: Guideline | Path | None = None) -> dict[str, str]:
    """The prefixes the guideline's files declare (``ontology/*.ttl``): of ``guideline``, of
    the guideline folder given, or of this run's guideline."""
    from jdm_kg.knowledge.guideline import guideline_files

    if guideline is None or isinstance(guideline, Path):
        files = tuple(guideline_files(guideline.resolve() if guideline else None))
    else:
        files = tuple(guideline.files)
    return dict(_prefixes_of(files))


@cache
def _prefixes_of(files: tuple[Path, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(declared_prefixes(files).items())


def namespace_manager(prefixes: Mapping[str, str], *more: Mapping[str, str]) -> NamespaceManager:
    """An rdflib namespace manager with ``prefixes`` bound (then those of ``more`` whose prefix
    and namespace are both still free), and no other."""
    manager = NamespaceManager(Graph(bind_namespaces="none"), bind_namespaces="none")
    bound_namespaces: set[str] = set()
    for mapping in (prefixes, *more):
        for prefix, namespace in mapping.items():
            if namespace in bound_namespaces or manager.store.namespace(prefix) is not None:
                continue
            manager.bind(prefix, namespace, override=False)
            bound_namespaces.add(namespace)
    return manager


def shortened(term: Node, manager: NamespaceManager) -> str:
    """An IRI as a prefixed name where a prefix of ``manager`` fits it, else the IRI; any other
    term as its text."""
    if not isinstance(term, URIRef):
        return str(term)
    try:
        return manager.curie(str(term), generate=False)
    except (KeyError, ValueError):
        return str(term)


def expanded(text: str, prefixes: Mapping[str, str]) -> URIRef | None:
    """The IRI a prefixed name such as ``jdmg:rituximab`` stands for, if its prefix is one of
    ``prefixes``; else None.

    >>> expanded("jdmg:rituximab", {"jdmg": "https://w3id.org/jdm-kg/guideline/"})
    rdflib.term.URIRef('https://w3id.org/jdm-kg/guideline/rituximab')
    """
    prefix, colon, local = text.partition(":")
    if not colon or prefix not in prefixes or not re.fullmatch(r"[\w.-]*", local) or local.endswith("."):
        return None
    return URIRef(prefixes[prefix] + local)
