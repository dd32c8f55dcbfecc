"""Read FHIR R4 JSON (a Bundle, or a single resource) into the jdm-kg patient vocabulary.

Parsing and structural checks are `fhir.resources <https://pypi.org/project/fhir.resources/>`_
(its R4B models, which read R4 JSON for these resources). Which code means which concept is
not in this module: it comes from the guideline graph (``queries/fhir-codes.rq``: the SKOS
mappings of guideline concepts and the code systems' FHIR URIs), so an author who adds a
mapping in Turtle extends the importer.

What it reads:

- Patient: ``birthDate``, ``gender``, the first ``identifier`` (else the id) as patientId;
  the Bundle's ``timestamp`` is the record date.
- Condition: the disease (-> diagnosis) or a manifestation (-> hasManifestation); the
  extension :data:`PREDOMINANT_EXTENSION` (valueBoolean) marks a predominant one.
- Observation: body weight (LOINC 29463-7) and height (8302-2), converted to kg and cm from
  UCUM units; screening tests (``jdm:ScreeningTest``: IGRA, tuberculin, HBsAg, anti-HBc,
  anti-HCV) with their result from ``interpretation`` and/or ``valueCodeableConcept`` (both
  must agree); the result keeps its test (``jdm:screeningTest``) and condition.
- MedicationStatement / MedicationRequest: the drug (a code, a contained or bundled
  Medication, else its name), the period, and the outcome: the ``statusReason`` code or text,
  or Ongoing for an active one. A drug the graph does not know is kept (``jdm:drugText``,
  ``jdm:drugCode``); a stop reason that names no outcome is a ``jdm:inputIssue`` (a violation).

Codes first (CURIEs such as ``HP:0001324`` too), names as a fallback (:meth:`CodeMap.by_name`,
with a note). Anything it cannot place (an unknown code, an unconvertible unit, a reference to
nothing, a resource type it does not read, an element it does not read) becomes a
``jdm:importNote`` on the patient, naming the resource (id, else fullUrl, else its place) and
the element; validation reports each one as a warning. Nothing is dropped silently:
:func:`fhir_import` returns the account of every element (:class:`ImportAccount`), record-keeping
elements (:data:`ADMINISTRATIVE`) aside.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.guideline_source import default_guideline, guideline_rows
from jdm_kg.inputs.intake import normalise
from jdm_kg.namespaces import JDM, JDMG

if TYPE_CHECKING:
    from jdm_kg.knowledge.guideline import Guideline

__all__ = ["fhir_to_graph", "fhir_import", "ImportAccount", "PREDOMINANT_EXTENSION", "CodeMap", "ADMINISTRATIVE"]

#: Extension (valueBoolean) on a Condition: this manifestation is predominant (guideline step 1).
PREDOMINANT_EXTENSION = "https://w3id.org/jdm-kg/fhir/StructureDefinition/predominant"

UCUM = "http://unitsofmeasure.org"

#: Body measures: the guideline concept, the patient property and unit, and the UCUM units
#: converted from (exact by the UCUM definitions of the units).
_MEASURES = {
    str(JDMG.BodyWeight): (JDM.bodyWeight, "kg", {"kg": Decimal(1), "g": Decimal("0.001"),
                                                  "[lb_av]": Decimal("0.45359237")}),
    str(JDMG.BodyHeight): (JDM.bodyHeight, "cm", {"cm": Decimal(1), "m": Decimal(100), "mm": Decimal("0.1"),
                                                  "[in_i]": Decimal("2.54")}),
}

_READ = ("Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Medication",
         "OperationOutcome")

#: Medication statuses whose entry is set aside (MedicationStatement and MedicationRequest
#: status codes of FHIR R4), with what each says.
_SET_ASIDE = {
    "entered-in-error": "recorded in error",
    "cancelled": "cancelled before it was taken",
    "not-taken": "not taken",
    "draft": "a draft order, not given",
    "intended": "intended, not yet taken",
}


#: Record-keeping elements: who recorded what, when, in which encounter, and the resource's own
#: metadata and narrative. They carry no fact the guideline uses, so they are neither read nor
#: reported (every other element is either read or named in an import note).
ADMINISTRATIVE = frozenset({
    "resourceType", "id", "meta", "text", "implicitRules", "language", "identifier", "active", "subject", "patient",
    "encounter", "context", "category", "recorder", "asserter", "recordedDate", "issued", "performer",
    "informationSource", "requester", "dateAsserted", "intent", "reportedBoolean", "reportedReference",
})


@dataclass(frozen=True)
class _Concept:
    iri: str
    label: str
    kind: str
    usable: bool
    test_for: str | None = None


class CodeMap:
    """(FHIR system, code) -> guideline concepts, from the SKOS mappings in the graph; names
    (labels and alternative labels, :class:`~jdm_kg.inputs.intake.TermIndex`) as a fallback."""

    def __init__(self, guideline: Guideline) -> None:
        from jdm_kg.inputs.intake import term_index

        self._codes: dict[tuple[str, str], list[_Concept]] = defaultdict(list)
        self.systems: dict[str, str] = {}  # FHIR system URI -> the code system's label
        self.curies: dict[str, str] = {}  # CURIE prefix (HP, MONDO) -> FHIR system URI
        self.concepts: dict[str, _Concept] = {}
        for row in guideline_rows(guideline, "fhir-codes"):
            key = (str(row["system"]), str(row["code"]))
            self.systems[key[0]] = str(row.get("systemLabel", key[0]))
            test_for = row.get("testFor")
            concept = _Concept(str(row["concept"]), str(row["conceptLabel"]), str(row["kind"]),
                               bool(row["usable"].toPython()), str(test_for) if test_for else None)  # type: ignore[union-attr]
            self._codes[key].append(concept)
            self.concepts.setdefault(f"{concept.iri} {concept.kind}", replace(concept, usable=True))
        self.names = term_index(guideline)
        self._curie_prefixes(guideline)
        graph = guideline.graph
        #: severity grade IRI -> rank (higher is more severe), for the severity policy
        self.severity_rank = {str(s): int(r) for s, r in graph.subject_objects(JDM.severityRank)}
        self.policy_labels = {str(p): str(graph.value(p, RDFS.label)) for p in graph.subjects(RDF.type, JDM.Policy)}
        self.phrases: dict[str, dict[str, list[str]]] = {}  # policy -> kind ("cue", "negation") -> phrases
        for row in guideline_rows(guideline, "policy-phrases"):
            self.phrases.setdefault(str(row["policy"]), {}).setdefault(str(row["kind"]), []).append(str(row["phrase"]))

    def policy_tag(self, iri: str) -> str:
        """``jdm-kg policy: <label>`` for a policy of the graph."""
        return f"jdm-kg policy: {self.policy_labels.get(iri, iri.rsplit('/', 1)[-1])}"

    def _curie_prefixes(self, guideline: Guideline) -> None:
        """A CURIE prefix is the IRI prefix's last segment: .../obo/HP_ -> HP, .../obo/MONDO_ -> MONDO."""
        graph = guideline.graph
        for system_node in graph.subjects(RDF.type, JDM.CodeSystem):
            fhir_system, prefix = graph.value(system_node, JDM.fhirSystem), graph.value(system_node, JDM.iriPrefix)
            if fhir_system is None or prefix is None or not str(prefix).endswith("_"):
                continue
            self.curies[str(prefix).rstrip("_").rsplit("/", 1)[-1].upper()] = str(fhir_system)

    def _candidates(self, system: str, code: str) -> list[_Concept]:
        found = self._codes.get((system, code), [])
        if not found and ":" in code:  # a CURIE: HP:0001324, MONDO:0008054
            prefix, rest = code.split(":", 1)
            curie_system = self.curies.get(prefix.upper())
            if curie_system and (not system or system == curie_system):
                found = self._codes.get((curie_system, rest), [])
        return found

    def lookup(self, codeable: Any, kinds: tuple[str, ...]) -> tuple[_Concept | None, str]:
        """The concept of one of ``kinds`` a CodeableConcept maps to by code, or None and why not."""
        codings = list(getattr(codeable, "coding", None) or [])
        if not codings:
            text = getattr(codeable, "text", None)
            return None, f"no coding (text {text!r} only)" if text else "no coding"
        seen = []
        for coding in codings:
            system, code = str(coding.system or ""), str(coding.code or "")
            seen.append(f"{self.systems.get(system, system or '(no system)')} {code}")
            for concept in self._candidates(system, code):
                if concept.kind in kinds and concept.usable:
                    return concept, ""
        broader = [
            c for coding in codings for c in self._candidates(str(coding.system or ""), str(coding.code or ""))
            if c.kind in kinds
        ]
        if broader:
            return None, f"{', '.join(seen)} is broader than (or only related to) {broader[0].label}; not used"
        known = any(str(coding.system or "") in self.systems for coding in codings)
        why = "is not mapped to a guideline concept" if known else "is from a code system the guideline graph does not list"
        return None, f"{', '.join(seen)} {why}"

    def by_name(self, codeable: Any, kinds: tuple[str, ...]) -> tuple[_Concept | None, str]:
        """The one concept of ``kinds`` that the CodeableConcept's text or a coding's display
        names (labels and alternative labels; case, spacing and punctuation insensitive), and
        the name it was matched on. A drug or a stop reason may be named among other words
        ("Xeljanz 5 mg tablet", "stopped for side effects"); a condition or a test only by its
        whole name: "no calcinosis" or "hepatitis B surface antibody" must not be read as one."""
        names = [getattr(codeable, "text", None)] + [c.display for c in getattr(codeable, "coding", None) or []]
        for name in [str(n) for n in names if n]:
            exact = self.names.named(name, kinds)
            if exact is not None:  # one of the graph's names ("Inadequate response"): nothing to say,
                kind = next(k for k in kinds if self.names.is_a(exact.iri, k))  # but for a hidden label
                concept = self.concepts.get(f"{exact.iri} {kind}") or _Concept(exact.iri, exact.label, kind, True)
                return concept, name if self.names.is_hidden(name, kinds) else ""
            if not set(kinds) & _IN_WORDS:
                continue
            found = self.names.mentioned(name, kinds)
            if len(found) == 1:
                term = found[0]
                kind = next(k for k in kinds if self.names.is_a(term.iri, k))
                concept = self.concepts.get(f"{term.iri} {kind}") or _Concept(term.iri, term.label, kind, True)
                return concept, name
        return None, ""

    def find(self, codeable: Any, kinds: tuple[str, ...]) -> tuple[_Concept | None, str, str]:
        """By code, else by name: (concept, why not by code, the name matched when it is not
        exactly one of the concept's labels, else "")."""
        concept, why = self.lookup(codeable, kinds)
        if concept is not None or "broader than" in why:
            return concept, why, ""
        named, name = self.by_name(codeable, kinds)
        return named, why, name


#: Kinds of concept that may be named among other words (see :meth:`CodeMap.by_name`).
_IN_WORDS = frozenset(str(JDM[k]) for k in ("Drug", "TreatmentOutcome"))


@cache
def _code_map(guideline: Guideline) -> CodeMap:
    return CodeMap(guideline)


def _kind(*names: str) -> tuple[str, ...]:
    return tuple(str(JDM[n]) for n in names)


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def _text_of(codeable: Any) -> str | None:
    text = getattr(codeable, "text", None)
    if text:
        return str(text)
    for coding in getattr(codeable, "coding", None) or []:
        if coding.display:
            return str(coding.display)
    return None


@dataclass
class _Record:
    node: Node
    notes: list[str] = field(default_factory=list)
    weights: list[tuple[date | None, Node, str]] = field(default_factory=list)
    heights: list[tuple[date | None, Node, str]] = field(default_factory=list)
    findings: list[tuple[Node, Any, str]] = field(default_factory=list)  # (finding, Condition, where)


@dataclass
class ImportAccount:
    """What became of each element of each resource (administrative ones aside): read into
    the record (``used``) or named in an import note (``noted``). ``present`` is every element
    the file has; nothing in ``present`` is in neither set."""

    present: dict[str, set[str]] = field(default_factory=dict)
    used: dict[str, set[str]] = field(default_factory=dict)
    noted: dict[str, set[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """facts in (elements present), facts used, facts reported."""
        return {"in": sum(len(v) for v in self.present.values()), "used": sum(len(v) for v in self.used.values()),
                "reported": sum(len(v) for v in self.noted.values())}


class _Importer:
    def __init__(self, codes: CodeMap) -> None:
        self.codes = codes
        self.graph = Graph()
        self.records: list[_Record] = []  # one per Patient resource
        self.patients: dict[str, _Record] = {}  # reference ("Patient/1", fullUrl) -> record
        self.account = ImportAccount()
        self.record_date: date | None = None

    # ---------------------------------------------------------------- helpers
    def node_for(self, entry: dict[str, Any]) -> Node:
        url = str(entry.get("fullUrl") or "")
        return URIRef(url) if url.startswith(("http://", "https://", "urn:")) else BNode()

    def add(self, s: Node, p: URIRef, o: Node) -> None:
        self.graph.add((s, p, o))

    def use(self, where: str, *elements: str) -> None:
        present = self.account.present.get(where, set())
        self.account.used.setdefault(where, set()).update(e for e in elements if e in present)

    def note(self, record: _Record | None, where: str, text: str, elements: tuple[str, ...] | None = None) -> None:
        """An import note on ``record`` (all records if None) about ``elements`` of resource
        ``where`` (all its elements if None): ``where element: text``."""
        resource = where.split(" ", 1)[0] if where.split(" ", 1)[0] in self.account.present else where
        present = self.account.present.get(resource, set())
        named = present - self.account.used.get(resource, set()) if elements is None else {e for e in elements if e in present}
        self.account.noted.setdefault(resource, set()).update(named)
        if elements is None and not text.endswith("not used"):
            text += "; not used"  # the whole resource: every element it has is in this note
        for target in [record] if record else self.records:
            target.notes.append(f"{where}: {text}")

    def day(self, record: _Record, where: str, element: str, value: Any, end: bool = False) -> date | None:
        """The date of a FHIR date or dateTime; a partial one (``2025-04``, ``2025``: FHIR allows
        them) is read as the first day it can mean, or for an end the last, with a note."""
        found = _day(value)
        if found is not None or not isinstance(value, str):
            return found
        match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", value)
        if match is None:
            return None
        year, month = int(match[1]), int(match[2] or (12 if end else 1))
        if not 1 <= month <= 12:
            return None
        found = date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        record.notes.append(f"{where} {element}: {value!r} has no day: read as {found} (the {'last' if end else 'first'} "
                            "day it can mean)")
        return found

    def subject(self, resource: Any, where: str) -> _Record | None:
        ref = getattr(getattr(resource, "subject", None) or getattr(resource, "patient", None), "reference", None)
        if ref is None:
            if len(self.records) == 1:
                return self.records[0]
            self.note(None, where, "no subject reference and the file has several patients; not used")
            return None
        record = self.patients.get(str(ref))
        tail = re.search(r"(?:^|/)(Patient/[^/]+)(?:/_history/[^/]+)?$", str(ref))
        if record is None and tail is not None and "://" in str(ref) and tail[1] in self.patients:
            # an absolute reference ([base]/Patient/id, as a server search returns it) to the
            # Patient this file holds by its id: the same patient (one Patient of that id here)
            record = self.patients[tail[1]]
            self.note(record, where, f"subject {ref!r} read as {tail[1]}, the Patient of this file with that id",
                      elements=())
        if record is None:
            self.note(None, where, f"subject {ref!r} is not a Patient in this file; not used")
        return record

    # ---------------------------------------------------------------- resources
    def patient(self, resource: Any, entry: dict[str, Any], record_date: date | None, where: str) -> None:
        node = self.node_for(entry)
        record = _Record(node)
        self.records.append(record)
        for key in {f"Patient/{resource.id}", str(entry.get("fullUrl") or "")} - {"", "Patient/None"}:
            self.patients[key] = record
        identifiers = [i.value for i in (resource.identifier or []) if i.value]
        self.add(node, RDF.type, JDM.Patient)
        pid = identifiers[0] if identifiers else resource.id or entry.get("fullUrl")
        if pid:
            self.add(node, JDM.patientId, Literal(str(pid)))
        if resource.birthDate:
            self.add(node, JDM.birthDate, Literal(resource.birthDate, datatype=XSD.date))
            self.use(where, "birthDate")
        if resource.gender:
            self.add(node, JDM.sex, Literal(str(resource.gender)))
            self.use(where, "gender")
        if record_date:
            self.add(node, JDM.recordDate, Literal(record_date, datatype=XSD.date))
            self.record_date = record_date

    def condition(self, resource: Any, entry: dict[str, Any], where: str) -> None:
        record = self.subject(resource, where)
        if record is None:
            return
        if _status(resource.verificationStatus) in ("refuted", "entered-in-error"):
            self.note(record, f"{where} verificationStatus", f"{_status(resource.verificationStatus)}; not used")
            return
        if _status(resource.clinicalStatus) in ("inactive", "remission", "resolved"):
            self.note(record, f"{where} clinicalStatus", f"{_status(resource.clinicalStatus)}: only current conditions count; not used")
            return
        self.use(where, "verificationStatus", "clinicalStatus")
        concept, why, name = self.codes.find(resource.code, _kind("Disease", "Manifestation"))
        if concept is None:
            self.note(record, f"{where} code", why)
            return
        self.use(where, "code")
        if name:
            record.notes.append(f"{where} code: matched {name!r} to {concept.label} by name")
        if concept.kind == str(JDM.Disease):
            self.add(record.node, JDM.diagnosis, URIRef(concept.iri))
            return
        finding = self.node_for(entry)
        self.add(record.node, JDM.hasManifestation, finding)
        self.add(finding, JDM.manifestation, URIRef(concept.iri))
        others = []
        for ext in resource.extension or []:
            if ext.url == PREDOMINANT_EXTENSION:
                if isinstance(ext.valueBoolean, bool):
                    self.add(finding, JDM.predominant, Literal(ext.valueBoolean))
                    continue
                self.note(record, f"{where} extension(predominant)", "needs valueBoolean true or false; not used", ())
            else:
                others.append(str(ext.url))
        if others:
            self.note(record, f"{where} extension", f"{', '.join(others)} not read by jdm-kg", ("extension",))
        else:
            self.use(where, "extension")
        record.findings.append((finding, resource, where))

    # ---------------------------------------------------------------- predominance
    def predominance(self, record: _Record) -> None:
        """When the record marks no manifestation predominant: a Condition's note that calls it
        predominant, else the one most severe Condition.severity (each a jdm-kg policy, said in
        a note); otherwise the notes and severities are named as not used."""
        found = record.findings
        if any(self.graph.value(f, JDM.predominant) is not None for f, _, _ in found):
            for _, resource, where in found:
                for element in ("note", "severity"):
                    if getattr(resource, element, None):
                        self.note(record, f"{where} {element}", "not read: the record marks the predominant "
                                  "manifestation itself; not used", (element,))
            return
        note_policy = str(JDMG["policy-predominance-from-note"])
        by_note = [(f, r, w, text) for f, r, w in found for text in [self._predominance_note(r, note_policy)] if text]
        for finding, resource, where, text in by_note:
            self._mark(finding, note_policy)
            self.use(where, "note")
            label = self._label(finding)
            record.notes.append(f"{where} note: {_quote(text)} calls {label} predominant: taken as predominant "
                                f"({self.codes.policy_tag(note_policy)})")
        marked = {f for f, _, _, _ in by_note}
        for finding, resource, where in found:
            if resource.note and finding not in marked:
                self.note(record, f"{where} note", f"{_quote(resource.note[0].text or '')} calls no manifestation "
                          "predominant; not used", ("note",))
        if by_note:
            for _, resource, where in found:
                if resource.severity:
                    self.note(record, f"{where} severity", "not read: a note marks the predominant manifestation; "
                              "not used", ("severity",))
            return
        graded = []
        for finding, resource, where in found:
            if not resource.severity:
                continue
            grade, why, _ = self.codes.find(resource.severity, _kind("SeverityGrade"))
            if grade is None:
                self.note(record, f"{where} severity", f"{why}; not used", ("severity",))
                continue
            self.use(where, "severity")
            graded.append((self.codes.severity_rank.get(grade.iri, 0), finding, where, grade.label))
        if not graded:
            return
        policy = str(JDMG["policy-predominance-from-severity"])
        top = max(rank for rank, _, _, _ in graded)
        at_top = [g for g in graded if g[0] == top]
        if len(at_top) == 1:
            _, finding, where, grade = at_top[0]
            self._mark(finding, policy)
            record.notes.append(f"{where} severity: {grade}, the most severe manifestation recorded "
                                f"({self._label(finding)}): taken as predominant ({self.codes.policy_tag(policy)})")
        else:
            names = ", ".join(sorted(self._label(f) for _, f, _, _ in at_top))
            record.notes.append(f"Condition severity: {names} are all {at_top[0][3]}: severity does not single out "
                                f"one manifestation, none is taken as predominant ({self.codes.policy_tag(policy)})")

    def _predominance_note(self, resource: Any, policy: str) -> str | None:
        """The text of a note on ``resource`` that calls it predominant (a cue phrase of the
        policy, not just after a negation phrase), or None."""
        phrases = self.codes.phrases.get(policy, {})
        cues = [normalise(p).split() for p in phrases.get("cue", [])]
        negations = [normalise(p).split() for p in phrases.get("negation", [])]
        for annotation in resource.note or []:
            words = normalise(str(annotation.text or "")).split()
            for cue in cues:
                for i in range(len(words) - len(cue) + 1):
                    if words[i:i + len(cue)] != cue:
                        continue
                    if not any(n and words[max(0, i - len(n)):i] == n for n in negations):
                        return str(annotation.text)
        return None

    def _mark(self, finding: Node, policy: str) -> None:
        self.add(finding, JDM.predominant, Literal(True))
        self.add(finding, JDM.predominanceBasis, URIRef(policy))

    def _label(self, finding: Node) -> str:
        concept = self.graph.value(finding, JDM.manifestation)
        term = self.codes.names.terms.get(str(concept))
        return term.label if term else str(concept)

    def operation_outcome(self, resource: Any, where: str) -> None:
        """An OperationOutcome the sending system put in the export (a search's warnings): each
        issue is said in a note, for it may mean data was left out."""
        record = self.records[0] if len(self.records) == 1 else None
        for issue in resource.issue or []:
            text = issue.diagnostics or _text_of(issue.details) or issue.code
            self.note(record, f"{where} issue", f"the sending system reported ({issue.severity}, {issue.code}): "
                      f"{_quote(str(text))}; jdm-kg cannot tell what, if anything, was left out", ("issue",))

    def observation(self, resource: Any, entry: dict[str, Any], where: str) -> None:
        record = self.subject(resource, where)
        if record is None:
            return
        if resource.status in ("entered-in-error", "cancelled"):
            self.note(record, f"{where} status", f"{resource.status}; not used")
            return
        when = (self.day(record, where, "effectiveDateTime", resource.effectiveDateTime)
                or self.day(record, where, "effectivePeriod.start", getattr(resource.effectivePeriod, "start", None)))
        concept, why, name = self.codes.find(resource.code, _kind("BodyMeasure", "ScreeningTest"))
        if concept is None:  # a code (a related match) for the condition a test is for; never by name
            concept, _ = self.codes.lookup(resource.code, _kind("ScreenedCondition"))
        if concept is None:
            self.note(record, f"{where} code", why)
            return
        if name:
            record.notes.append(f"{where} code: matched {name!r} to {concept.label} by name")
        if concept.iri in _MEASURES:
            self.use(where, "code", "status", "effectiveDateTime", "effectivePeriod")
            self.measure(record, resource, entry, where, concept, when)
        elif concept.kind in _kind("ScreeningTest", "ScreenedCondition"):
            self.use(where, "code", "status", "effectiveDateTime", "effectivePeriod")
            self.screening(record, resource, entry, where, concept, when)
        else:
            self.note(record, f"{where} code", f"{concept.label} is not read from FHIR; not used")

    def measure(self, record: _Record, resource: Any, entry: dict[str, Any], where: str, concept: _Concept,
                when: date | None) -> None:
        _, unit, factors = _MEASURES[concept.iri]
        quantity = resource.valueQuantity
        if quantity is None or quantity.value is None:
            self.note(record, f"{where} valueQuantity", f"{concept.label} has no numeric value; not used", None)
            return
        code = quantity.code if quantity.system in (UCUM, None) and quantity.code else quantity.unit
        factor = factors.get(str(code)) if code else None
        if factor is None:
            self.note(record, f"{where} valueQuantity.code",
                      f"unit {code!r} cannot be converted to {unit} (UCUM {', '.join(factors)}); not used", None)
            return
        self.use(where, "valueQuantity")
        value = Decimal(str(quantity.value)) * factor
        node = self.node_for(entry)
        self.add(node, JDM.value, Literal(value, datatype=XSD.decimal))
        self.add(node, JDM.unit, Literal(unit))
        if when:
            self.add(node, JDM.date, Literal(when, datatype=XSD.date))
        (record.weights if unit == "kg" else record.heights).append((when, node, where))

    def screening(self, record: _Record, resource: Any, entry: dict[str, Any], where: str, concept: _Concept,
                  when: date | None) -> None:
        outcomes: list[tuple[_Concept, str]] = []
        why = []
        sources = [(c, "interpretation") for c in resource.interpretation or []]
        if resource.valueCodeableConcept:
            sources.append((resource.valueCodeableConcept, "valueCodeableConcept"))
        for codeable, path in sources:
            outcome, not_by_code, name = self.codes.find(codeable, _kind("ScreeningOutcome"))
            if outcome is None:
                why.append(f"{path}: {not_by_code}")
            else:
                outcomes.append((outcome, path))
                if name:
                    record.notes.append(f"{where} {path}: matched {name!r} to {outcome.label} by name")
        if resource.valueString:
            outcome = self.codes.names.named(str(resource.valueString), _kind("ScreeningOutcome"))
            if outcome is None:
                why.append(f"valueString {resource.valueString!r} is not positive, negative or indeterminate")
            else:
                outcomes.append((_Concept(outcome.iri, outcome.label, str(JDM.ScreeningOutcome), True), "valueString"))
        condition = concept.test_for or concept.iri
        label = concept.label
        if not outcomes:
            self.note(record, where, f"{label} result not readable ({'; '.join(why) or 'no interpretation or coded value'}); not used")
            return
        if len({o.iri for o, _ in outcomes}) > 1:
            said = ", ".join(f"{path} {o.label}" for o, path in outcomes)
            self.note(record, where, f"{label} result is contradictory ({said}): correct the source; not used")
            return
        self.use(where, *(path for _, path in outcomes))
        if why:
            self.note(record, where, f"{label}: {'; '.join(why)}", ("interpretation", "valueCodeableConcept", "valueString"))
        node = self.node_for(entry)
        self.add(record.node, JDM.screening, node)
        self.add(node, JDM.screenedFor, URIRef(condition))
        if concept.kind == str(JDM.ScreeningTest):
            self.add(node, JDM.screeningTest, URIRef(concept.iri))
        self.add(node, JDM.result, URIRef(outcomes[0][0].iri))
        if when:
            self.add(node, JDM.date, Literal(when, datatype=XSD.date))

    def medication(self, resource: Any, entry: dict[str, Any], where: str, medications: dict[str, Any]) -> None:
        record = self.subject(resource, where)
        if record is None:
            return
        if resource.status in _SET_ASIDE:
            self.note(record, f"{where} status", f"{resource.status} ({_SET_ASIDE[resource.status]}); not used")
            return
        codeable, path = resource.medicationCodeableConcept, "medicationCodeableConcept"
        if codeable is None and resource.medicationReference is not None:
            path = "medicationReference"
            reference = str(resource.medicationReference.reference)
            med = medications.get(reference) or next(
                (c for c in resource.contained or [] if reference == f"#{c.id}" and c.get_resource_type() == "Medication"), None)
            codeable = getattr(med, "code", None)
            if codeable is None:
                display = resource.medicationReference.display
                if not display:
                    self.note(record, f"{where} {path}",
                              f"{reference!r} is not a Medication with a code in this file; not used")
                    return
                codeable = _Text(str(display))
                record.notes.append(f"{where} {path}: {reference!r} is not a Medication with a code in this file: "
                                    f"read from the reference's display {str(display)!r} (send the Medication, "
                                    "e.g. _include=MedicationRequest:medication)")
            else:
                medications.setdefault("(used)", set()).add(id(med))  # type: ignore[attr-defined]
                if any(c is med for c in resource.contained or []):
                    self.use(where, "contained")
        concept, _, name = self.codes.find(codeable, _kind("Drug"))
        self.use(where, path, "status")
        episode = self.node_for(entry)
        self.add(record.node, JDM.treatmentEpisode, episode)
        if concept is not None:
            self.add(episode, JDM.drug, URIRef(concept.iri))
            if name:
                record.notes.append(f"{where} {path}: matched {name!r} to {concept.label} by name")
        else:
            text = _text_of(codeable)
            codes = [f"{c.system or ''}|{c.code}" for c in getattr(codeable, "coding", None) or [] if c.code]
            self.add(episode, JDM.drugText, Literal(text or (codes[0] if codes else "medication without name")))
            for code in codes:
                self.add(episode, JDM.drugCode, Literal(code))
        if resource.get_resource_type() == "MedicationStatement":
            period = resource.effectivePeriod
            start = (self.day(record, where, "effectivePeriod.start", getattr(period, "start", None))
                     or self.day(record, where, "effectiveDateTime", resource.effectiveDateTime))
            end = self.day(record, where, "effectivePeriod.end", getattr(period, "end", None), end=True)
            self.use(where, "effectivePeriod", "effectiveDateTime")
        else:
            start = self.day(record, where, "authoredOn", resource.authoredOn)
            end = self.day(record, where, "dispenseRequest.validityPeriod.end",
                           getattr(getattr(resource.dispenseRequest, "validityPeriod", None), "end", None), end=True)
            self.use(where, "authoredOn")
            if end:
                self.use(where, "dispenseRequest")
        if start:
            self.add(episode, JDM.startDate, Literal(start, datatype=XSD.date))
        if end:
            self.add(episode, JDM.endDate, Literal(end, datatype=XSD.date))
        reasons = list(resource.statusReason or []) if isinstance(resource.statusReason, list) else (
            [resource.statusReason] if resource.statusReason else [])
        for reason in reasons:
            outcome, not_by_code, name = self.codes.find(reason, _kind("TreatmentOutcome"))
            if outcome:
                self.use(where, "statusReason")
                self.add(episode, JDM.outcome, URIRef(outcome.iri))
                if name:  # read from words: the words stay beside the outcome, for every answer resting on it
                    record.notes.append(f"{where} statusReason: matched {name!r} to {outcome.label} by name")
                    self.add(episode, JDM.outcomeText, Literal(_text_of(reason) or name))
                return
        if reasons:  # a reason it cannot read: kept in words; the shapes warn, and for a JAK
            said = _text_of(reasons[0]) or not_by_code  # inhibitor the answer is "cannot tell"
            self.use(where, "statusReason")
            self.add(episode, JDM.outcomeText, Literal(said))
            return
        if resource.status == "active":
            self.add(episode, JDM.outcome, JDM.Ongoing)
        elif resource.status in ("on-hold", "unknown"):
            record.notes.append(f"{where} status: {resource.status}: neither ongoing nor stopped; read with no outcome")

    def unread(self, where: str, record: _Record | None) -> None:
        """One note naming the elements of ``where`` neither read nor noted yet."""
        left = self.account.present.get(where, set()) - self.account.used.get(where, set()) - self.account.noted.get(where, set())
        if left:
            self.note(record, f"{where} {', '.join(sorted(left))}", "not read by jdm-kg", tuple(left))

    # ---------------------------------------------------------------- finish
    def finish(self) -> Graph:
        policy = self.codes.policy_tag(str(JDMG["policy-latest-valid-measure"]))
        today = self.record_date or date.today()
        for record in self.records:
            for values, prop, label, unit in ((record.weights, JDM.bodyWeight, "body weight", "kg"),
                                              (record.heights, JDM.bodyHeight, "body height", "cm")):
                if not values:
                    continue
                if len(values) == 1:  # nothing to choose from: validation judges the one there is
                    self.add(record.node, prop, values[0][1])
                    continue
                values.sort(key=lambda v: (v[0] is not None, v[0] or date.min))
                low, high = _bounds()[str(prop)]

                def valid(item: tuple[date | None, Node, str]) -> bool:
                    value = self.graph.value(item[1], JDM.value)
                    return (item[0] is None or item[0] <= today) and low <= Decimal(str(value)) <= high

                usable = [v for v in values if valid(v)]
                ok = {v[1] for v in usable}
                latest = usable[-1] if usable else values[-1]  # none valid: the latest, for validation to report
                self.add(record.node, prop, latest[1])
                for when, node, where in values:
                    if node == latest[1]:
                        continue
                    value = self.graph.value(node, JDM.value)
                    self.graph.remove((node, None, None))
                    self.account.used.get(where, set()).discard("valueQuantity")
                    self.account.noted.setdefault(where, set()).add("valueQuantity")
                    shown = _rounded(value)
                    if usable and node not in ok:
                        why = (f"dated after the record ({today})" if when and when > today
                               else f"outside {_rounded(low)}-{_rounded(high)} {unit}, a unit slip?")
                        record.notes.append(f"{where} valueQuantity: {label} {shown} {unit} ({when or 'undated'}) is "
                                            f"{why}: not used; the latest valid one ({latest[0]}) is used ({policy})")
                    else:
                        record.notes.append(f"{where} valueQuantity: an older {label} ({shown} {unit}, {when or 'undated'}); "
                                            f"the latest ({latest[0]}) is used ({policy})")
            for text in record.notes:
                self.add(record.node, JDM.importNote, Literal(text))
        return self.graph


@dataclass
class _Text:
    """A medication known only by a reference's display text."""

    text: str
    coding: tuple[()] = ()


def _quote(text: str, limit: int = 80) -> str:
    """``text`` quoted for a note, cut at ``limit`` characters."""
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@cache
def _bounds() -> dict[str, tuple[Decimal, Decimal]]:
    """The plausible range of a body weight (kg) and height (cm): the sh:minInclusive and
    sh:maxInclusive the patient shapes give their jdm:value (one source for both)."""
    from rdflib.namespace import SH

    from jdm_kg.resources import resource_dir

    shapes = Graph().parse(resource_dir("shapes") / "patient-shapes.ttl", format="turtle")
    out = {}
    for prop in (JDM.bodyWeight, JDM.bodyHeight):
        shape = next(shapes.subjects(SH.targetObjectsOf, prop))
        low = high = None
        for property_shape in shapes.objects(shape, SH.property):
            if shapes.value(property_shape, SH.path) == JDM.value:
                low = shapes.value(property_shape, SH.minInclusive) or low
                high = shapes.value(property_shape, SH.maxInclusive) or high
        out[str(prop)] = (Decimal(str(low)), Decimal(str(high)))
    return out


def _rounded(value: Any) -> str:
    try:
        return f"{Decimal(str(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP).normalize():f}"
    except Exception:  # noqa: BLE001 (a note never fails the import)
        return str(value)


def _status(codeable: Any) -> str | None:
    for coding in getattr(codeable, "coding", None) or []:
        if coding.code:
            return str(coding.code)
    return None


def _resources(document: dict[str, Any], source: str) -> tuple[list[dict[str, Any]], date | None]:
    """The entries (dicts with 'resource' and maybe 'fullUrl') and the record date."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    kind = document.get("resourceType")
    if kind == "Bundle":
        try:
            bundle = get_fhir_model_class("Bundle").model_validate(document)
        except ValidationError as err:
            raise InputError(source, _pydantic_message(err, document)) from None
        entries = []
        for raw, entry in zip(document.get("entry") or [], bundle.entry or []):
            entries.append({"fullUrl": raw.get("fullUrl"), "raw": raw.get("resource") or {}, "resource": entry.resource})
        return entries, _day(bundle.timestamp)
    try:
        model = get_fhir_model_class(str(kind))
    except (KeyError, ValueError):
        raise InputError(source, f"resourceType {kind!r} is not a FHIR R4 resource") from None
    try:
        resource = model.model_validate(document)
    except ValidationError as err:
        raise InputError(source, _pydantic_message(err, document)) from None
    return [{"fullUrl": None, "raw": document, "resource": resource}], None


def _pydantic_message(err: Any, document: dict[str, Any]) -> str:
    first = err.errors()[0]
    loc = list(first.get("loc", ()))
    where = ""
    if len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int):
        raw = (document.get("entry") or [{}])[loc[1]].get("resource") or {}
        where = f"{raw.get('resourceType', 'entry')}/{raw.get('id', loc[1])} "
        loc = loc[3:] if len(loc) > 2 and loc[2] == "resource" else loc[2:]
    path = ".".join(str(p) for p in loc)
    return f"not valid FHIR R4: {where}{path}: {first.get('msg', 'invalid')}"


def fhir_to_graph(text: str, source: str, guideline: Guideline | None = None) -> Graph:
    """The patient graph for FHIR R4 JSON ``text`` (read from ``source``)."""
    return fhir_import(text, source, guideline)[0]


def _where(kind: str, resource: Any, entry: dict[str, Any], index: int) -> str:
    """How notes name a resource: ``Condition/c1``, else its fullUrl, else its place in the file."""
    if resource.id:
        return f"{kind}/{resource.id}"
    if entry.get("fullUrl"):
        return f"{kind}<{entry['fullUrl']}>"
    return f"{kind}#entry{index + 1}"


def fhir_import(text: str, source: str, guideline: Guideline | None = None) -> tuple[Graph, ImportAccount]:
    """:func:`fhir_to_graph`, with the account of what became of every element of every resource."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(source, f"not valid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
    if not isinstance(document, dict):
        raise InputError(source, "FHIR JSON must be one resource (an object with resourceType)")
    entries, record_date = _resources(document, source)
    importer = _Importer(_code_map(guideline or default_guideline()))
    named = []
    for index, entry in enumerate(entries):
        resource = entry["resource"]
        kind = resource.get_resource_type()
        where = _where(kind, resource, entry, index)
        named.append((entry, resource, kind, where))
        raw = entry.get("raw") or {}
        importer.account.present[where] = {k for k in raw if k not in ADMINISTRATIVE}
    patients = [n for n in named if n[2] == "Patient"]
    if not patients:
        raise InputError(source, "no FHIR Patient resource: jdm-kg needs the Patient the record is about")
    for entry, resource, _, where in patients:
        importer.patient(resource, entry, record_date, where)
    medications: dict[str, Any] = {}
    for entry, resource, kind, _ in named:
        if kind == "Medication":
            for key in (f"Medication/{resource.id}" if resource.id else None, entry.get("fullUrl"),
                        f"#{resource.id}" if resource.id else None):
                if key:
                    medications[str(key)] = resource
    for entry, resource, kind, where in named:
        if kind == "Condition":
            importer.condition(resource, entry, where)
        elif kind == "Observation":
            importer.observation(resource, entry, where)
        elif kind in ("MedicationStatement", "MedicationRequest"):
            importer.medication(resource, entry, where, medications)
        elif kind == "OperationOutcome":
            importer.operation_outcome(resource, where)
        elif kind not in _READ:
            importer.note(None, where, f"{kind} resources are not read by jdm-kg; not used")
    for record in importer.records:  # before the account of unread elements: it reads notes and severities
        importer.predominance(record)
    used_meds = medications.get("(used)", set())
    for entry, resource, kind, where in named:
        record = importer.records[0] if len(importer.records) == 1 else None
        if kind == "Medication":
            if id(resource) in used_meds:
                importer.use(where, "code")
            else:
                importer.note(record, where, "no MedicationStatement or MedicationRequest of this file refers to it; not used")
        if kind in _READ:
            importer.unread(where, record)
    return importer.finish(), importer.account
