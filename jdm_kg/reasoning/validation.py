"""Validate patient records against the SHACL shapes in ``shapes/``.

Each result names the record (its ``patientId``), the field, the value and what to do.
Violations block a recommendation for that record; warnings do not.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from pyshacl import validate as shacl_validate
from rdflib import RDF, SH, XSD, BNode, Graph, Literal, Node, URIRef

from jdm_kg.inputs.loading import load_patient_file, load_rdf_file
from jdm_kg.inputs.source_map import SourceMap, source_map_of_file
from jdm_kg.knowledge.guideline import JDM, Guideline, load_guideline
from jdm_kg.knowledge.queries import use_query_cache
from jdm_kg.reasoning._pyshacl_speedups import faster_pyshacl
from jdm_kg.reasoning.engines import oxigraph_answered
from jdm_kg.reasoning.messages import Found, finish_issues
from jdm_kg.resources import resource_dir

use_query_cache()  # pySHACL sends the same SPARQL text per focus node: parse it once

__all__ = [
    "Issue", "summary_key", "RecordRef", "ValidationReport", "validate_graph", "validate_graphs", "load_shapes",
    "patients_in", "validate_file", "set_aside_ill_typed",
]


@dataclass(frozen=True)
class RecordRef:
    """A patient record in a file: its node and its human-readable id."""

    node: Node
    patient_id: str


@dataclass(frozen=True)
class Issue:
    """One SHACL result, in words for the person who must fix the record."""

    severity: str  # "violation" or "warning"
    record: str
    field: str
    value: str | None
    message: str
    entry: str | None = None  # the treatment or screening result it is in: "treatment 2 (prednisolone, from 2025-09-01)"
    source_line: int | None = None  # the line of the file it is on, where the file has lines and only one fits

    def line(self, source: str) -> str:
        value = f" (value: {self.value})" if self.value is not None else ""
        entry = f"{self.entry}: " if self.entry else ""
        at = f"line {self.source_line}: " if self.source_line else ""
        return f"{source}: {self.severity}: record {self.record}: {at}{entry}{self.field}: {self.message}{value}"


_RESOURCE_REF = re.compile(r"^([A-Z][A-Za-z]+)(?:/[^\s:]+|<[^>]*>|#entry\d+)")


def summary_key(issue: Issue) -> str:
    """What an issue counts as in a run's summary: its field and message, an import note
    without the resource it names (``Condition/c7 onsetDateTime: not read`` counts as
    ``Condition onsetDateTime: not read``), so that a registry's notes add up by kind.

    >>> summary_key(Issue("warning", "P1", "importNote", None, "Condition/c7 onsetDateTime: not read by jdm-kg"))
    'importNote: Condition onsetDateTime: not read by jdm-kg'
    """
    message = _RESOURCE_REF.sub(r"\1", issue.message) if issue.field == "importNote" else issue.message
    return f"{issue.field}: {message}"


@dataclass
class ValidationReport:
    """What validating one file found."""

    source: str
    records: list[RecordRef]
    issues: list[Issue] = field(default_factory=list)
    shacl_report: Graph | None = None

    @property
    def conforms(self) -> bool:
        return not any(i.severity == "violation" for i in self.issues)

    def issues_for(self, record: RecordRef) -> list[Issue]:
        return [i for i in self.issues if i.record == record.patient_id]

    def blocked(self, record: RecordRef) -> bool:
        return any(i.severity == "violation" for i in self.issues_for(record))


def load_shapes(directory: Path | None = None) -> Graph:
    """The SHACL shapes graph (all ``*.ttl`` files of ``shapes/``; by default this run's, see
    :func:`jdm_kg.resources.guideline_home`)."""
    return _load_shapes(directory or resource_dir("shapes"))


@cache
def _load_shapes(directory: Path) -> Graph:
    graph = Graph()
    for path in sorted(directory.glob("*.ttl")):
        graph += load_rdf_file(path)
    return graph


def patients_in(graph: Graph) -> list[RecordRef]:
    """The patient records in ``graph``, in a stable order."""
    refs = []
    for node in set(graph.subjects(RDF.type, JDM.Patient)):
        pid = graph.value(node, JDM.patientId)
        refs.append(RecordRef(node, str(pid) if pid is not None else _short(node)))
    return sorted(refs, key=lambda r: r.patient_id)


def _short(node: Node) -> str:
    if isinstance(node, BNode):
        return "(record without patientId)"
    return str(node)


def _owner(
    data: Graph, guideline: Graph, node: Node, patients: dict[Node, Any]
) -> tuple[Node | None, list[str], Node | None]:
    """Walk up from ``node`` to the patient record it belongs to, through the patient triples of
    ``data`` (those not in ``guideline``); return that node, the path names and the entry of the
    record the walk came through (a treatment, a screening result), if any."""
    trail: list[str] = []
    seen: set[Node] = set()
    current, entry = node, None
    while current not in patients and current not in seen:
        seen.add(current)
        parents = [(s, p) for s, p in data.subject_predicates(current) if (s, p, current) not in guideline]
        if not parents:
            return None, trail, None
        subject, predicate = parents[0]
        trail.insert(0, _local(predicate))
        current, entry = subject, current
    return (current if current in patients else None), trail, entry


def _entry_name(data: Graph, patient: Node, entry: Node | None, line_of: Any = None) -> str | None:
    """``"treatment 2 (prednisolone, from 2025-09-01)"`` or ``"screening 1 (hepatitis B, 2026-10-01)"``
    for an entry of the record: numbered in the order the file lists them (``line_of``: an
    entry's line, where the file's map places it); else by date (undated last), then by name."""
    if entry is None:
        return None
    from jdm_kg.inputs.intake import describe_episode, describe_screening

    for prop, describe in ((JDM.treatmentEpisode, describe_episode), (JDM.screening, describe_screening)):
        if (patient, prop, entry) in data:
            entries = [e for e in data.objects(patient, prop) if not isinstance(e, Literal)]
            date_of = JDM.startDate if prop == JDM.treatmentEpisode else JDM.date
            lines = {e: line_of(e) for e in entries} if line_of is not None else {}
            entries.sort(key=lambda e: (lines.get(e) is None, lines.get(e) or 0, data.value(e, date_of) is None,
                                        str(data.value(e, date_of) or ""), describe(data, e)))
            return describe(data, entry, entries.index(entry) + 1) if entry in entries else None
    return None


def _local(term: Node) -> str:
    text = str(term)
    for sep in ("#", "/"):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    return text


def _value_text(value: Node | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, Literal):
        return _readable(value)
    if isinstance(value, BNode):
        return None
    return _local(value)


def _readable(value: Literal) -> str:
    """A literal as text; a decimal with more than 3 places (a converted weight, 31.978262085)
    rounded to 2 for reading, marked with ~ (the exact value stays in the graph)."""
    text = str(value)
    if value.datatype in (XSD.decimal, XSD.double) and "." in text and len(text.split(".")[1]) > 3:
        try:
            return f"~{Decimal(text).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"
        except InvalidOperation:
            return text
    return text


#: The patient graphs :func:`set_aside_ill_typed` has looked at (it runs once per graph).
_CHECKED: weakref.WeakSet[Graph] = weakref.WeakSet()
#: Per patient graph, the triples :func:`set_aside_ill_typed` took out of it.
_SET_ASIDE: weakref.WeakKeyDictionary[Graph, list[tuple[Node, Node, Literal]]] = weakref.WeakKeyDictionary()

def _ill_typed(term: Node) -> bool:
    """A literal whose text is not a value of its datatype (``"2020-02-30"^^xsd:date``, ``""^^xsd:date``,
    ``"NaN"^^xsd:decimal``: NaN and INF are doubles, not decimals)."""
    if not isinstance(term, Literal) or term.datatype is None:
        return False
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", str(term.datatype)):
        return True  # a datatype that is no absolute IRI (JSON-LD's reading of a bare true where a name belongs)
    if term.ill_typed:
        return True
    return isinstance(term.value, Decimal) and not term.value.is_finite()


_SHOULD_BE = {
    "date": "write a date that exists, as YYYY-MM-DD (e.g. 2024-02-29)",
    "dateTime": "write a date and time that exist, as YYYY-MM-DDThh:mm:ss",
    "decimal": "write a finite number such as 35.5 (NaN and INF are not numbers)",
    "integer": "write a whole number such as 12",
}


def set_aside_ill_typed(graph: Graph) -> Graph:
    """Take the triples whose object is an ill-typed literal out of ``graph`` (pySHACL and the
    queries would compare them and fail) and keep them, so that :func:`validate_graphs` reports
    each as a violation naming the record, the field and the value. Call it before the graph
    is merged with anything; calling it again finds nothing new. Returns ``graph``.

    >>> g = Graph()
    >>> _ = g.add((URIRef("urn:p"), URIRef("urn:d"), Literal("2020-02-30", datatype=XSD.date)))
    >>> len(set_aside_ill_typed(g)), len(_SET_ASIDE[g])
    (0, 1)
    """
    if graph in _CHECKED:
        return graph
    _CHECKED.add(graph)
    bad = [t for t in graph.triples((None, None, None)) if _ill_typed(t[2])]
    if bad:
        for triple in bad:
            graph.remove(triple)
        _SET_ASIDE.setdefault(graph, []).extend(bad)  # type: ignore[arg-type]
    return graph


def _ill_typed_issues(
    graph: Graph, guideline: Graph, records: dict[Node, Any]
) -> list[tuple[Node | None, Issue, tuple[Node, Node, Literal]]]:
    """The violations for the triples :func:`set_aside_ill_typed` took out of ``graph``: (owner
    node, issue, the triple)."""
    found = []
    for subject, predicate, literal in _SET_ASIDE.get(graph, []):
        owner_node, trail, entry = _owner(graph, guideline, subject, records)
        record = records[owner_node][0].patient_id if owner_node is not None else _short(subject)
        entry_name = _entry_name(graph, owner_node, entry) if owner_node is not None else None
        datatype = _local(literal.datatype)
        message = (f"not a valid {datatype}: {_SHOULD_BE.get(datatype, 'correct the value or its datatype')}" if datatype
                   else "not a value this field takes (a bare true, false or number where a name belongs): write "
                        "the name, e.g. \"Negative\"")
        issue = Issue("violation", record, ".".join(trail + [_local(predicate)]), str(literal), message, entry_name)
        found.append((owner_node, issue, (subject, predicate, literal)))
    return found


def _add_result(results: Graph, triple: tuple[Node, Node, Literal], issue: Issue) -> None:
    """Put the violation of an ill-typed literal in pySHACL's report graph too (as ``sh:datatype``
    would report it), so that the Turtle report says what the text report says."""
    report = next(results.subjects(RDF.type, SH.ValidationReport))
    subject, predicate, literal = triple
    result = BNode()
    for p, o in ((RDF.type, SH.ValidationResult), (SH.focusNode, subject), (SH.resultPath, predicate),
                 (SH.value, literal), (SH.resultSeverity, SH.Violation), (SH.resultMessage, Literal(issue.message)),
                 (SH.sourceConstraintComponent, SH.DatatypeConstraintComponent)):
        results.add((result, p, o))
    results.add((report, SH.result, result))
    results.set((report, SH.conforms, Literal(False)))


def validate_graph(
    patient_graph: Graph, source: str, guideline: Guideline | None = None, data: Graph | None = None,
    text: str | None = None,
) -> ValidationReport:
    """Validate every patient record in ``patient_graph`` (read from ``source``).

    ``data`` is ``patient_graph`` already merged with the guideline (:func:`~jdm_kg.knowledge.guideline.with_guideline`),
    for callers that need that graph anyway; it is built here otherwise. ``text``: what the
    graph was read from, when ``source`` is not a file (a request body), for the lines.
    """
    return validate_graphs([(source, patient_graph)], guideline, data, keep_shacl=True,
                           texts={source: text} if text is not None else None)[0]


def validate_graphs(
    sources: list[tuple[str, Graph]],
    guideline: Guideline | None = None,
    data: Graph | None = None,
    keep_shacl: bool = False,
    texts: dict[str, str] | None = None,
) -> list[ValidationReport]:
    """Validate several patient graphs in one SHACL run: one report per (source, graph).

    The graphs must not share nodes (see :func:`jdm_kg.batch.disjoint_groups`). One run over
    their union costs far less than a run each: the guideline is merged in once. Each result
    goes to the record (and so the file) its focus node belongs to. ``data`` is the union
    already merged with the guideline, if the caller has it. The messages are finished by
    :func:`jdm_kg.reasoning.messages.finish_issues` (lines, codes, the file's format), with
    each source file read again for its lines (``texts``: the text of a source that is no file).
    """
    guideline = guideline or load_guideline()
    if data is None:  # pySHACL's SPARQL targets and constraints answered by Oxigraph (same results)
        for _, graph in sources:  # (a caller that passes ``data`` set them aside before merging)
            set_aside_ill_typed(graph)
        data = oxigraph_answered(guideline, [g for _, g in sources])
    reports = [ValidationReport(source=source, records=patients_in(graph)) for source, graph in sources]
    record_report = {r.node: (r, report) for report in reports for r in report.records}
    with faster_pyshacl():
        _, results, _ = shacl_validate(
            data, shacl_graph=load_shapes(), inference="none", advanced=True, allow_warnings=True, inplace=True
        )  # in place: no inference, so nothing is added to ``data``; pySHACL would otherwise copy it
    if keep_shacl:
        for report in reports:
            report.shacl_report = results
    seen: set[tuple[int, str, str, str, str | None, str, str | None]] = set()
    maps: dict[str, SourceMap | None] = {}  # each source's lines, read when a message needs them

    def map_of(source: str) -> SourceMap | None:
        if source not in maps:
            maps[source] = _source_map(source, texts)
        return maps[source]

    graph_of = {id(report): graph for (_, graph), report in zip(sources, reports)}
    about: list[Found] = []  # what each issue is about, for finish_issues
    ill_typed = [(report, found) for (_, graph), report in zip(sources, reports)
                 for found in _ill_typed_issues(graph, guideline.graph, record_report)]
    for result in list(results.subjects(RDF.type, SH.ValidationResult)):
        focus = results.value(result, SH.focusNode)
        path = results.value(result, SH.resultPath)
        severity = "warning" if results.value(result, SH.resultSeverity) == SH.Warning else "violation"
        owner_node, trail, entry = _owner(data, guideline.graph, focus, record_report) if focus is not None else (None, [], None)
        entry_name = None
        if owner_node is not None:
            owner, report = record_report[owner_node]
            record = owner.patient_id
            entry_name = _entry_name(data, owner_node, entry, _line_finder(map_of, report.source, graph_of[id(report)]))
        else:
            report = _report_holding(focus, sources, reports)
            record = _short(focus) if focus is not None else "?"
        field_name = ".".join(trail + ([_local(path)] if isinstance(path, URIRef) else [])) or "record"
        messages = [str(m) for m in results.objects(result, SH.resultMessage)]
        message = messages[0] if messages else "does not conform"
        raw_value = results.value(result, SH.value)
        value = None if raw_value == focus else _value_text(raw_value)
        key = (id(report), severity, record, field_name, value, message, entry_name)
        if key in seen:
            continue
        seen.add(key)
        report.issues.append(Issue(severity, record, field_name, value, message, entry_name))
        about.append(Found(report.issues[-1], result, focus, path, raw_value, owner_node, entry))
    for report, (owner_node, issue, triple) in ill_typed:
        holder = record_report[owner_node][1] if owner_node is not None else report
        # the value was given, only not valid: a record-level "neither X nor Y is given" would mislead
        given = issue.field.rsplit(".", 1)[-1]
        holder.issues = [i for i in holder.issues
                         if not (i.record == issue.record and i.field == "record" and given in i.message)]
        holder.issues.append(issue)
        about.append(Found(issue, None, triple[0], triple[1], triple[2], owner_node, None))
        if keep_shacl:
            _add_result(results, triple, issue)
    for (_, graph), report in zip(sources, reports):
        report.issues.sort(key=lambda i: (i.record, i.severity != "violation", i.field, i.entry or "", i.message,
                                          i.value or ""))
        report.issues = finish_issues(report.issues, graph, about, guideline,
                                      map_of(report.source) if report.issues else None, results if keep_shacl else None)
    return reports


def _source_map(source: str, texts: dict[str, str] | None) -> SourceMap | None:
    """The map of the lines of ``source``: its text if given, else the file (Turtle, N-Triples,
    JSON-LD, FHIR JSON); None if it has none."""
    if texts and source in texts:
        try:
            return SourceMap.from_text(texts[source])
        except (ValueError, RecursionError):
            return None
    if Path(source).suffix.lower() not in (".ttl", ".nt", ".jsonld", ".json"):
        return None
    return source_map_of_file(source)


def _line_finder(map_of: Any, source: str, graph: Graph) -> Any:
    """Where an entry of ``graph`` starts in its file ``source`` (to number entries in file
    order; ``map_of``: the file's map), or None where the file has no lines."""
    def line_of(node: Node) -> int | None:
        source_map = map_of(source)
        return None if source_map is None else source_map.position(graph, node)

    return line_of


def _report_holding(
    focus: Node | None, sources: list[tuple[str, Graph]], reports: list[ValidationReport]
) -> ValidationReport:
    """The report of the file that mentions ``focus`` (a result outside any patient record)."""
    for (_, graph), report in zip(sources, reports):
        if focus is not None and (focus, None, None) in graph:
            return report
    return reports[0]


def validate_file(path: str | Path, guideline: Guideline | None = None,
                  predominant: tuple[str, ...] | list[str] = ()) -> ValidationReport:
    """Load and validate one file; raises :class:`~jdm_kg.errors.InputError` if it cannot be read.
    ``predominant``: manifestations to mark predominant in every record (as ``--predominant``)."""
    return validate_graph(load_patient_file(path, predominant), str(path), guideline)
