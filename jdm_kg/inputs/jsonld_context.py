"""JSON-LD contexts, resolved before rdflib sees a document: the project's own context IRI maps to
the bundled file, an inline context is kept, and any other remote context or ``@import`` is
refused with an :class:`~jdm_kg.errors.InputError` (jdm-kg never fetches a context).

>>> resolve_contexts({"@context": "https://w3id.org/jdm-kg/context.jsonld"}, "p.jsonld")["@context"]["jdm"]
'https://w3id.org/jdm-kg/vocab#'
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jdm_kg.errors import InputError
from jdm_kg.resources import CONTEXT_IRI, resource_path

__all__ = ["bundled_context", "resolve_contexts"]


def bundled_context() -> dict[str, Any]:
    """The bundled JSON-LD context (the value of its ``@context``)."""
    return _context(resource_path("context", "jdm-kg.context.jsonld"))


@cache
def _context(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return dict(json.load(fh)["@context"])


def resolve_contexts(node: Any, source: str) -> Any:
    """Return ``node`` with every ``@context`` made local; refuse remote ones."""
    if isinstance(node, list):
        return [resolve_contexts(item, source) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "@context":
            out[key] = _local_context(value, source)
        else:
            out[key] = resolve_contexts(value, source)
    return out


def _local_context(value: Any, source: str) -> Any:
    if isinstance(value, list):
        return [_local_context(item, source) for item in value]
    if isinstance(value, str):
        if value.rstrip("#/") == CONTEXT_IRI:
            return bundled_context()
        raise InputError(
            source,
            f"JSON-LD @context {value!r} is remote; jdm-kg never fetches contexts. "
            f'Use "{CONTEXT_IRI}" (bundled) or put the context inline.',
        )
    if isinstance(value, dict):
        if "@import" in value:
            raise InputError(source, "JSON-LD @import in a context would fetch a remote document; inline it instead.")
        return {k: resolve_contexts(v, source) if k != "@context" else _local_context(v, source) for k, v in value.items()}
    return value
