"""``jdm-kg fmt``: one canonical, stable layout for the guideline's Turtle files.

The layout is rdflib's ``longturtle`` serializer with canonical blank-node labels (RDF
canonicalisation, :func:`rdflib.compare.to_canonical_graph`): subjects sorted, one block per
subject, one predicate per line, objects sorted, prefixes declared at the top. The same graph
always gives the same bytes, so version-control diffs show only real edits.

Formatting never changes the graph: :func:`format_turtle` parses its own output and refuses
to write unless the result is isomorphic to the input. The comment block at the top of a file
(its description) is kept; other ``#`` comments are not, so notes that readers should see
belong in ``skos:editorialNote``, where the reports and the HTML docs show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rdflib import Graph
from rdflib.compare import isomorphic

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import load_rdf_file

__all__ = ["format_turtle", "FormatResult", "format_files"]


def _header(text: str) -> str:
    """The leading ``#`` comment lines of a file, ending with one blank line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n\n" if lines else ""


def format_turtle(text: str, graph: Graph, source: str) -> str:
    """The canonical Turtle for ``graph`` (parsed from ``text``), keeping the header comment."""
    body = graph.serialize(format="longturtle", canon=True)
    again = Graph()
    again.parse(data=body, format="turtle")
    if not isomorphic(graph, again):  # pragma: no cover - a serializer bug would land here
        raise InputError(source, "formatting would change the graph; file left as it is")
    return _header(text) + body.strip() + "\n"


@dataclass(frozen=True)
class FormatResult:
    path: Path
    changed: bool


def format_files(paths: list[Path], check: bool = False) -> list[FormatResult]:
    """Format each Turtle file in place (or, with ``check``, only report which would change)."""
    results = []
    for path in paths:
        graph = load_rdf_file(path)
        text = path.read_text(encoding="utf-8")
        formatted = format_turtle(text, graph, str(path))
        changed = formatted != text
        if changed and not check:
            path.write_text(formatted, encoding="utf-8")
        results.append(FormatResult(path, changed))
    return results
