"""Validation messages as the person who fixes the record reads them (issue 23, part 4).

:func:`finish_issues` takes the issues :func:`~jdm_kg.reasoning.validation.validate_graphs`
found in one file, with the nodes each is about (:class:`Found`), and:

- gives each the **line** of the file it is on (:mod:`jdm_kg.inputs.source_map`): the line of
  the value, else of the field, else where the entry or the record starts; in Turtle, JSON-LD
  and FHIR JSON alike (an import note names its FHIR resource and element: their line);
- shows a **code with its system**: a value ``sct:999999999`` is ``SNOMED CT 999999999``, as
  the ``jdm:CodeSystem`` nodes of the graph name it, not ``999999999``;
- gives **advice in the record's own format**: a message naming a guideline term as Turtle
  writes it (``jdmg:tofacitinib``) names it as JSON-LD does (``"tofacitinib"``) in a JSON-LD
  record, and by its label and code (``tofacitinib (RxNorm 1357536)``) in a FHIR record;
- says **one thing once**: the messages of one field of one entry (same severity) become one
  message, with the value once.

With the SHACL report graph kept (``--format turtle``), each result is linked to the patient
record it is about (``dcterms:subject``, with the record's ``jdm:patientId`` and the triples
that lead from the record to the entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache

from rdflib import DCTERMS, RDF, RDFS, SH, SKOS, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.inputs.intake import TermIndex, term_index
from jdm_kg.inputs.source_map import SourceMap
from jdm_kg.knowledge.guideline import Guideline
from jdm_kg.namespaces import JDM, JDMG

__all__ = ["Found", "finish_issues", "in_format"]


@dataclass(frozen=True)
class Found:
    """An issue with what it is about: the SHACL result (if any), its focus node, path and
    value, and the record and entry (treatment, screening result) it is in."""

    issue: object  # an Issue (typed loosely: validation imports this module)
    result: Node | None
    focus: Node | None
    path: Node | None
    value: Node | None
    owner: Node | None
    entry: Node | None


@dataclass(frozen=True)
class _Terms:
    """What messages need of the guideline: code systems (IRI prefix -> label, FHIR system)
    and, per term, its label and codes."""

    systems: tuple[tuple[str, str, str], ...]  # (IRI prefix, label, FHIR system), longest prefix first
    own: frozenset[str]  # IRI prefixes of jdm-kg's own terms (their names need no system)
    graph: Graph
    index: TermIndex

    def code(self, iri: str) -> str | None:
        """``SNOMED CT 999999999`` for an IRI under a code system's prefix (not jdm-kg's own)."""
        return self.index.code_name(iri)

    def fhir(self, iri: URIRef) -> str:
        """A term as a FHIR record gives it: its label and standard code (``tofacitinib (RxNorm
        1357536)``), else jdm-kg's own code and system."""
        label = str(self.graph.value(iri, RDFS.label) or str(iri).rsplit("/", 1)[-1].rsplit("#", 1)[-1])
        codes = sorted(c for c in (self.code(str(m)) for m in self.graph.objects(iri, SKOS.exactMatch)) if c)
        if codes:
            return f"{label} ({codes[0]})"
        for prefix, _, system in self.systems:
            if str(iri).startswith(prefix) and prefix in self.own and system:
                return f"{label} (code {str(iri)[len(prefix):]}, system {system})"
        return label


@cache
def _terms(guideline: Guideline) -> _Terms:
    graph = guideline.graph
    systems = []
    for node in graph.subjects(RDF.type, JDM.CodeSystem):
        prefix = graph.value(node, JDM.iriPrefix)
        if prefix is not None:
            systems.append((str(prefix), str(graph.value(node, RDFS.label) or prefix),
                            str(graph.value(node, JDM.fhirSystem) or "")))
    systems.sort(key=lambda s: (-len(s[0]), s[0]))
    return _Terms(tuple(systems), frozenset({str(JDM), str(JDMG)}), graph, term_index(guideline))


_CURIE = re.compile(r"\b(jdmg?):([A-Za-z][\w-]*[A-Za-z0-9])")


def in_format(message: str, fmt: str, guideline: Guideline) -> str:
    """``message`` with each guideline term written as Turtle writes it (``jdmg:tofacitinib``)
    written as a record of format ``fmt`` gives it (``turtle``: unchanged).

    >>> from jdm_kg import load_guideline
    >>> in_format("name it (e.g. jdmg:tofacitinib).", "jsonld", load_guideline())
    'name it (e.g. "tofacitinib").'
    >>> in_format("name it (e.g. jdmg:tofacitinib).", "fhir", load_guideline())
    'name it (e.g. tofacitinib (RxNorm 1357536)).'
    """
    if fmt not in ("jsonld", "fhir"):
        return message
    terms = _terms(guideline)

    def written(match: re.Match[str]) -> str:
        iri = URIRef((str(JDMG) if match.group(1) == "jdmg" else str(JDM)) + match.group(2))
        if (iri, None, None) not in terms.graph:
            return match.group()
        return f'"{match.group(2)}"' if fmt == "jsonld" else terms.fhir(iri)

    return _CURIE.sub(written, message)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


#: Not fields of their own: each import note is about a resource of its own, each record-level
#: message about its own fields.
_NOT_ONE_FIELD = frozenset({"importNote", "record"})


def _field_key(issue: object) -> tuple[object, ...]:
    key = (getattr(issue, "record", None), getattr(issue, "entry", None), getattr(issue, "field", None),
           getattr(issue, "severity", None))
    return key + ((getattr(issue, "message", None),) if key[2] in _NOT_ONE_FIELD else ())


def _one_per_field(issues: list) -> list:  # type: ignore[type-arg]
    """The messages of one field of one entry, of one severity, as one issue (in the place of
    the first), its value given once."""
    groups: dict[tuple[object, ...], list] = {}  # type: ignore[type-arg]
    for issue in issues:
        groups.setdefault(_field_key(issue), []).append(issue)
    out = []
    for issue in issues:
        group = groups[_field_key(issue)]
        if issue is not group[0]:
            continue
        if len(group) == 1:
            out.append(issue)
            continue
        messages = list(dict.fromkeys(i.message for i in sorted(group, key=lambda i: i.value is None)))  # the specific first
        values = list(dict.fromkeys(i.value for i in group if i.value is not None))
        line = next((i.source_line for i in group if i.source_line is not None and i.value is not None),
                    next((i.source_line for i in group if i.source_line is not None), None))
        message = " ".join(_sentence(m) for m in messages) if len(messages) > 1 else messages[0]
        out.append(replace(issue, message=message, value=", ".join(values) if values else None, source_line=line))
    return out


_RESOURCE_NOTE = re.compile(r"^([A-Z][A-Za-z]+(?:/[^\s:]+|<[^>]*>|#entry\d+))(?: ([\w.]+(?:, [\w.]+)*))?:")
_FIELD_NOTE = re.compile(r"^(?:--predominant )?([a-z][A-Za-z]*):")


def finish_issues(issues: list, graph: Graph, found: list[Found], guideline: Guideline,  # type: ignore[type-arg]
                  source_map: SourceMap | None, results: Graph | None = None) -> list:  # type: ignore[type-arg]
    """``issues`` (one file's, sorted) with lines, codes with their systems, advice in the
    file's format, and one message per field (module text). ``found``: what each issue is
    about; ``graph``: the file's patient graph; ``results``: the SHACL report graph to link to
    the patients, if it is kept."""
    terms = _terms(guideline)
    about = {id(f.issue): f for f in found}
    fmt = source_map.format if source_map is not None else None
    out = []
    for issue in issues:
        seen = about.get(id(issue))
        changes: dict[str, object] = {}
        if seen is not None and isinstance(seen.value, URIRef) and seen.value != seen.focus:
            code = terms.code(str(seen.value))
            if code is not None:
                changes["value"] = code
        if fmt is not None:
            message = in_format(issue.message, fmt, guideline)
            if message != issue.message:
                changes["message"] = message
                if results is not None and seen is not None and seen.result is not None:  # the Turtle report too
                    results.set((seen.result, SH.resultMessage, Literal(message)))
        if source_map is not None and seen is not None and issue.source_line is None:
            changes["source_line"] = _line(issue, seen, graph, source_map)
        out.append(replace(issue, **changes) if changes else issue)  # type: ignore[arg-type]
        if results is not None and seen is not None and seen.result is not None and seen.owner is not None:
            _link(results, seen, graph)
    return _one_per_field(out)


def _line(issue: object, seen: Found, graph: Graph, source_map: SourceMap) -> int | None:
    field_name = str(getattr(issue, "field", ""))
    if field_name == "importNote":
        message = str(getattr(issue, "message", ""))
        named = _RESOURCE_NOTE.match(message)
        if named is not None:
            line = source_map.resource_line(named.group(1), named.group(2))
            if line is not None:
                return line
        field_note = _FIELD_NOTE.match(message)
        return source_map.line_of(graph, [seen.owner], field=field_note.group(1) if field_note else None)
    last = field_name.rsplit(".", 1)[-1]
    nodes = [seen.focus, seen.entry, seen.owner]
    return source_map.line_of(graph, nodes, seen.path, seen.value if seen.value != seen.focus else None,
                              field=None if last == "record" else last)


def _link(results: Graph, seen: Found, graph: Graph) -> None:
    """The SHACL result names the patient record it is about, and the report holds the triples
    from the record to the entry the result's focus node is (or is in)."""
    assert seen.result is not None and seen.owner is not None
    results.add((seen.result, DCTERMS.subject, seen.owner))
    results.add((seen.owner, RDF.type, JDM.Patient))
    pid = graph.value(seen.owner, JDM.patientId)
    if pid is not None:
        results.add((seen.owner, JDM.patientId, Literal(str(pid))))
    for node in (seen.entry, seen.focus):
        if node is None or node == seen.owner:
            continue
        for parent, predicate in graph.subject_predicates(node):
            if (parent, RDF.type, JDM.Patient) in graph or parent == seen.entry:
                results.add((parent, predicate, node))
