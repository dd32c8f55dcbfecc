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
  UCUM units; screening tests (TB IGRA, hepatitis markers) with their result from
  ``interpretation`` or a coded value.
- MedicationStatement / MedicationRequest: the drug, the period, and the outcome: the
  ``statusReason`` code, or Ongoing for an active one.

Anything it cannot place (an unknown code, an unconvertible unit, a reference to nothing, a
resource type it does not read) becomes a ``jdm:importNote`` on the patient, naming the
resource and the field; validation reports each one as a warning. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from rdflib import RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.guideline import JDM, JDMG, Guideline, load_guideline

__all__ = ["fhir_to_graph", "PREDOMINANT_EXTENSION", "CodeMap"]

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

_READ = ("Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Medication")


@dataclass(frozen=True)
class _Concept:
    iri: str
    label: str
    kind: str
    usable: bool


class CodeMap:
    """(FHIR system, code) -> guideline concepts, from the SKOS mappings in the graph."""

    def __init__(self, guideline: Guideline) -> None:
        from jdm_kg.engines import oxigraph_store  # rdflib takes seconds on this query; Oxigraph, ms

        self._codes: dict[tuple[str, str], list[_Concept]] = defaultdict(list)
        self.systems: dict[str, str] = {}  # FHIR system URI -> the code system's label
        for row in oxigraph_store(guideline).guideline_view.select("fhir-codes"):
            key = (str(row["system"]), str(row["code"]))
            self.systems[key[0]] = str(row.get("systemLabel", key[0]))
            self._codes[key].append(_Concept(str(row["concept"]), str(row["conceptLabel"]), str(row["kind"]),
                                             bool(row["usable"].toPython())))  # type: ignore[union-attr]

    def lookup(self, codeable: Any, kinds: tuple[str, ...]) -> tuple[_Concept | None, str]:
        """The concept of one of ``kinds`` a CodeableConcept maps to, or None and why not."""
        codings = list(getattr(codeable, "coding", None) or [])
        if not codings:
            text = getattr(codeable, "text", None)
            return None, f"no coding (text {text!r} only)" if text else "no coding"
        seen = []
        for coding in codings:
            system, code = str(coding.system or ""), str(coding.code or "")
            seen.append(f"{self.systems.get(system, system or '(no system)')} {code}")
            for concept in self._codes.get((system, code), []):
                if concept.kind in kinds and concept.usable:
                    return concept, ""
        broader = [
            c for coding in codings for c in self._codes.get((str(coding.system or ""), str(coding.code or "")), [])
            if c.kind in kinds
        ]
        if broader:
            return None, f"{', '.join(seen)} is broader than (or only related to) {broader[0].label}; not used"
        known = any(str(coding.system or "") in self.systems for coding in codings)
        why = "is not mapped to a guideline concept" if known else "is from a code system the guideline graph does not list"
        return None, f"{', '.join(seen)} {why}"


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


@dataclass
class _Record:
    node: Node
    notes: list[str] = field(default_factory=list)
    weights: list[tuple[date | None, Node, str]] = field(default_factory=list)
    heights: list[tuple[date | None, Node, str]] = field(default_factory=list)


class _Importer:
    def __init__(self, codes: CodeMap) -> None:
        self.codes = codes
        self.graph = Graph()
        self.records: list[_Record] = []  # one per Patient resource
        self.patients: dict[str, _Record] = {}  # reference ("Patient/1", fullUrl) -> record

    # ---------------------------------------------------------------- helpers
    def node_for(self, entry: dict[str, Any]) -> Node:
        url = str(entry.get("fullUrl") or "")
        return URIRef(url) if url.startswith(("http://", "https://", "urn:")) else BNode()

    def add(self, s: Node, p: URIRef, o: Node) -> None:
        self.graph.add((s, p, o))

    def note(self, record: _Record | None, where: str, text: str) -> None:
        for target in [record] if record else self.records:
            target.notes.append(f"{where}: {text}")

    def subject(self, resource: Any, where: str) -> _Record | None:
        ref = getattr(getattr(resource, "subject", None) or getattr(resource, "patient", None), "reference", None)
        if ref is None:
            if len(self.records) == 1:
                return self.records[0]
            self.note(None, where, "no subject reference and the file has several patients; not used")
            return None
        record = self.patients.get(str(ref))
        if record is None:
            self.note(None, where, f"subject {ref!r} is not a Patient in this file; not used")
        return record

    # ---------------------------------------------------------------- resources
    def patient(self, resource: Any, entry: dict[str, Any], record_date: date | None) -> None:
        node = self.node_for(entry)
        record = _Record(node)
        self.records.append(record)
        for key in {f"Patient/{resource.id}", str(entry.get("fullUrl") or "")} - {"", "Patient/None"}:
            self.patients[key] = record
        identifiers = [i.value for i in (resource.identifier or []) if i.value]
        self.add(node, RDF.type, JDM.Patient)
        pid = identifiers[0] if identifiers else resource.id
        if pid:
            self.add(node, JDM.patientId, Literal(str(pid)))
        if resource.birthDate:
            self.add(node, JDM.birthDate, Literal(resource.birthDate, datatype=XSD.date))
        if resource.gender:
            self.add(node, JDM.sex, Literal(str(resource.gender)))
        if record_date:
            self.add(node, JDM.recordDate, Literal(record_date, datatype=XSD.date))

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
        concept, why = self.codes.lookup(resource.code, _kind("Disease", "Manifestation"))
        if concept is None:
            self.note(record, f"{where} code", why)
            return
        if concept.kind == str(JDM.Disease):
            self.add(record.node, JDM.diagnosis, URIRef(concept.iri))
            return
        finding = self.node_for(entry)
        self.add(record.node, JDM.hasManifestation, finding)
        self.add(finding, JDM.manifestation, URIRef(concept.iri))
        for ext in resource.extension or []:
            if ext.url == PREDOMINANT_EXTENSION:
                if isinstance(ext.valueBoolean, bool):
                    self.add(finding, JDM.predominant, Literal(ext.valueBoolean))
                else:
                    self.note(record, f"{where} extension(predominant)", "needs valueBoolean true or false; not used")

    def observation(self, resource: Any, entry: dict[str, Any], where: str) -> None:
        record = self.subject(resource, where)
        if record is None:
            return
        if resource.status in ("entered-in-error", "cancelled"):
            self.note(record, f"{where} status", f"{resource.status}; not used")
            return
        when = _day(resource.effectiveDateTime) or _day(getattr(resource.effectivePeriod, "start", None))
        concept, why = self.codes.lookup(resource.code, _kind("BodyMeasure", "ScreenedCondition"))
        if concept is None:
            self.note(record, f"{where} code", why)
        elif concept.iri in _MEASURES:
            self.measure(record, resource, entry, where, concept, when)
        elif concept.kind == str(JDM.ScreenedCondition):
            self.screening(record, resource, entry, where, concept, when)
        else:
            self.note(record, f"{where} code", f"{concept.label} is not read from FHIR; not used")

    def measure(self, record: _Record, resource: Any, entry: dict[str, Any], where: str, concept: _Concept,
                when: date | None) -> None:
        _, unit, factors = _MEASURES[concept.iri]
        quantity = resource.valueQuantity
        if quantity is None or quantity.value is None:
            self.note(record, f"{where} valueQuantity", f"{concept.label} has no numeric value; not used")
            return
        code = quantity.code if quantity.system in (UCUM, None) and quantity.code else quantity.unit
        factor = factors.get(str(code)) if code else None
        if factor is None:
            self.note(record, f"{where} valueQuantity.code",
                      f"unit {code!r} cannot be converted to {unit} (UCUM {', '.join(factors)}); not used")
            return
        value = Decimal(str(quantity.value)) * factor
        node = self.node_for(entry)
        self.add(node, JDM.value, Literal(value, datatype=XSD.decimal))
        self.add(node, JDM.unit, Literal(unit))
        if when:
            self.add(node, JDM.date, Literal(when, datatype=XSD.date))
        (record.weights if unit == "kg" else record.heights).append((when, node, where))

    def screening(self, record: _Record, resource: Any, entry: dict[str, Any], where: str, concept: _Concept,
                  when: date | None) -> None:
        outcome, why = None, "no interpretation or coded value"
        for codeable, path in [(c, "interpretation") for c in resource.interpretation or []] + (
            [(resource.valueCodeableConcept, "valueCodeableConcept")] if resource.valueCodeableConcept else []
        ):
            outcome, why = self.codes.lookup(codeable, _kind("ScreeningOutcome"))
            if outcome:
                break
            why = f"{path}: {why}"
        if outcome is None:
            self.note(record, f"{where}", f"{concept.label} screening result not readable ({why}); not used")
            return
        node = self.node_for(entry)
        self.add(record.node, JDM.screening, node)
        self.add(node, JDM.screenedFor, URIRef(concept.iri))
        self.add(node, JDM.result, URIRef(outcome.iri))
        if when:
            self.add(node, JDM.date, Literal(when, datatype=XSD.date))

    def medication(self, resource: Any, entry: dict[str, Any], where: str, medications: dict[str, Any]) -> None:
        record = self.subject(resource, where)
        if record is None:
            return
        if resource.status in ("entered-in-error", "cancelled", "not-taken", "draft"):
            self.note(record, f"{where} status", f"{resource.status}; not used")
            return
        codeable, path = resource.medicationCodeableConcept, "medicationCodeableConcept"
        if codeable is None and resource.medicationReference is not None:
            path = "medicationReference"
            med = medications.get(str(resource.medicationReference.reference))
            codeable = getattr(med, "code", None)
            if codeable is None:
                self.note(record, f"{where} {path}",
                          f"{resource.medicationReference.reference!r} is not a Medication with a code in this file; not used")
                return
        concept, why = self.codes.lookup(codeable, _kind("Drug"))
        if concept is None:
            self.note(record, f"{where} {path}", why)
            return
        episode = self.node_for(entry)
        self.add(record.node, JDM.treatmentEpisode, episode)
        self.add(episode, JDM.drug, URIRef(concept.iri))
        if resource.get_resource_type() == "MedicationStatement":
            period = resource.effectivePeriod
            start = _day(getattr(period, "start", None)) or _day(resource.effectiveDateTime)
            end = _day(getattr(period, "end", None))
        else:
            start = _day(resource.authoredOn)
            end = _day(getattr(getattr(resource.dispenseRequest, "validityPeriod", None), "end", None))
        if start:
            self.add(episode, JDM.startDate, Literal(start, datatype=XSD.date))
        if end:
            self.add(episode, JDM.endDate, Literal(end, datatype=XSD.date))
        reasons = list(resource.statusReason or []) if isinstance(resource.statusReason, list) else (
            [resource.statusReason] if resource.statusReason else [])
        for reason in reasons:
            outcome, why = self.codes.lookup(reason, _kind("TreatmentOutcome"))
            if outcome:
                self.add(episode, JDM.outcome, URIRef(outcome.iri))
                return
            self.note(record, f"{where} statusReason", why)
        if resource.status == "active":
            self.add(episode, JDM.outcome, JDM.Ongoing)

    # ---------------------------------------------------------------- finish
    def finish(self) -> Graph:
        for record in self.records:
            for values, prop, label in ((record.weights, JDM.bodyWeight, "body weight"),
                                        (record.heights, JDM.bodyHeight, "body height")):
                if not values:
                    continue
                values.sort(key=lambda v: (v[0] is not None, v[0] or date.min))
                latest = values[-1]
                self.add(record.node, prop, latest[1])
                for when, node, where in values[:-1]:
                    self.graph.remove((node, None, None))
                    record.notes.append(f"{where}: an older {label} ({when or 'undated'}); the latest ({latest[0]}) is used")
            for text in record.notes:
                self.add(record.node, JDM.importNote, Literal(text))
        return self.graph


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
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(source, f"not valid JSON: {err.msg} (column {err.colno})", line=err.lineno) from None
    if not isinstance(document, dict):
        raise InputError(source, "FHIR JSON must be one resource (an object with resourceType)")
    entries, record_date = _resources(document, source)
    importer = _Importer(_code_map(guideline or load_guideline()))
    patients = [e for e in entries if e["resource"].get_resource_type() == "Patient"]
    if not patients:
        raise InputError(source, "no FHIR Patient resource: jdm-kg needs the Patient the record is about")
    for entry in patients:
        importer.patient(entry["resource"], entry, record_date)
    medications = {}
    for entry in entries:
        resource = entry["resource"]
        if resource.get_resource_type() == "Medication":
            for key in (f"Medication/{resource.id}", entry.get("fullUrl"), f"#{resource.id}"):
                if key:
                    medications[str(key)] = resource
    for entry in entries:
        resource = entry["resource"]
        kind = resource.get_resource_type()
        where = f"{kind}/{resource.id or '(no id)'}"
        if kind == "Condition":
            importer.condition(resource, entry, where)
        elif kind == "Observation":
            importer.observation(resource, entry, where)
        elif kind in ("MedicationStatement", "MedicationRequest"):
            importer.medication(resource, entry, where, medications)
        elif kind not in _READ:
            importer.note(None, where, f"{kind} resources are not read by jdm-kg; not used")
    return importer.finish()
