"""Read patient files (Turtle, N-Triples, JSON-LD) safely, without touching the network.

JSON-LD contexts are resolved here, before rdflib sees the document: the project's own
context IRI maps to the bundled file, an inline context is kept, and any other remote context
or ``@import`` is refused with an :class:`~jdm_kg.errors.InputError`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from rdflib import Graph

from jdm_kg.errors import InputError
from jdm_kg.resources import CONTEXT_IRI, resource_path

__all__ = ["rdf_files", "load_rdf_file", "parse_rdf_text", "bundled_context", "MAX_FILE_BYTES", "RDF_SUFFIXES"]

#: Files larger than this are refused: a patient record is kilobytes, a registry megabytes.
MAX_FILE_BYTES = 200 * 1024 * 1024

RDF_SUFFIXES = {".ttl": "turtle", ".nt": "nt", ".jsonld": "json-ld", ".json": "json-ld"}

_LINE_PATTERNS = (re.compile(r"\bat line (\d+)"), re.compile(r"\bline (\d+)"), re.compile(r"\blineno=(\d+)"))


@cache
def bundled_context() -> dict[str, Any]:
    """The bundled JSON-LD context (the value of its ``@context``)."""
    with resource_path("context", "jdm-kg.context.jsonld").open(encoding="utf-8") as fh:
        return dict(json.load(fh)["@context"])


def _resolve_contexts(node: Any, source: str) -> Any:
    """Return ``node`` with every ``@context`` made local; refuse remote ones."""
    if isinstance(node, list):
        return [_resolve_contexts(item, source) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "@context":
            out[key] = _local_context(value, source)
        else:
            out[key] = _resolve_contexts(value, source)
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
        return {k: _resolve_contexts(v, source) if k != "@context" else _local_context(v, source) for k, v in value.items()}
    return value


def _line_of(message: str) -> int | None:
    for pattern in _LINE_PATTERNS:
        match = pattern.search(message)
        if match:
            return int(match.group(1))
    return None


def _first_line(message: str) -> str:
    text = " ".join(message.split()).split(" at ^ in:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


def parse_rdf_text(text: str, fmt: str, source: str) -> Graph:
    """Parse ``text`` of format ``fmt`` ('turtle', 'nt', 'json-ld') into a new graph.

    >>> len(parse_rdf_text('<urn:a> <urn:b> "c" .', "nt", "inline"))
    1
    """
    graph = Graph()
    if fmt == "json-ld":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(source, f"not valid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
        text = json.dumps(_resolve_contexts(document, source))
    try:
        graph.parse(data=text, format=fmt)
    except InputError:
        raise
    except Exception as err:  # rdflib raises many types; each becomes one clear line
        message = str(err) or type(err).__name__
        raise InputError(source, f"not valid {fmt}: {_first_line(message)}", line=_line_of(message)) from None
    return graph


def rdf_files(paths: list[str] | list[Path] | tuple[str, ...]) -> list[Path]:
    """Files as given; a folder expands to the RDF files inside it (sorted, recursive)."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            out += sorted(f for f in path.rglob("*") if f.suffix.lower() in RDF_SUFFIXES)
        else:
            out.append(path)
    return out


def load_rdf_file(path: str | Path) -> Graph:
    """Read one RDF file into a graph, with a clear :class:`InputError` for any problem."""
    path = Path(path)
    source = str(path)
    fmt = RDF_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(source, f"unknown file type {path.suffix!r}; use .ttl, .nt, .jsonld or .json")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(source, f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit; split it")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a file") from None
    except OSError as err:
        raise InputError(source, f"cannot read: {err.strerror}") from None
    if not raw.strip():
        raise InputError(source, "file is empty; expected a patient record")
    if b"\x00" in raw[:8192]:
        raise InputError(source, "looks like a binary file, not text; expected Turtle or JSON-LD")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(source, f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8", line=line) from None
    return parse_rdf_text(text, fmt, source)
