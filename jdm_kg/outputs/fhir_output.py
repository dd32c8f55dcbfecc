"""jdm-kg's results as FHIR R4 resources (built and checked with ``fhir.resources``, R4B models
as :mod:`jdm_kg.inputs.fhir` uses for input).

One patient's result becomes, in a ``collection`` Bundle:

- a ``GuidanceResponse`` (status ``success``; ``data-required`` when validation blocked the
  record, or when jdm-kg cannot tell whether the guideline applies or which option ranks first:
  then one ``dataRequirement`` per datum needed, its question in ``note`` and in the
  OperationOutcome, and the options only as they would be, with no proposal) whose ``result`` is
- a ``RequestGroup`` (intent ``proposal``) with one ``action`` per next-line option, adjunct and
  escalation, in the report's order: ``prefix`` the rank (``#1``), ``title`` the option, the
  ``description`` its status, standing and one-line reason, ``documentation`` the guideline
  statements quoted (``RelatedArtifact`` of type ``citation`` with the quote as ``display``),
  and the guideline itself as ``relatedArtifact``;
- one ``MedicationRequest`` (status ``draft``, intent ``proposal``) per dose the guideline gives
  and jdm-kg computed for this child, for the next-line options offered (an adjunct or the
  escalation is "to consider": it gets an action, not an order), with ``dosageInstruction`` in UCUM quantities and timing.
  No dose is ever proposed where the guideline gives none or the measures were missing;
- an ``OperationOutcome`` with one issue per validation problem (``expression`` a FHIRPath
  into the input), referenced from ``GuidanceResponse.evaluationMessage``.

Nothing is added that ``recommend`` did not compute. Identifiers are UUIDs derived from the
patient, the guideline version and the option, so the same input gives the same Bundle.

>>> operation_outcome([])["issue"][0]["severity"]
'information'
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from functools import cache
from typing import Any

from jdm_kg.knowledge.guideline import Guideline, load_guideline
from jdm_kg.reasoning.dosing import ComputedDose
from jdm_kg.reasoning.recommend import DataNeeded, OptionAssessment, PatientResult
from jdm_kg.reasoning.validation import Issue

__all__ = [
    "GUIDELINE_URI",
    "UCUM",
    "checked",
    "drug_codings",
    "drug_for_coding",
    "medication_request",
    "operation_outcome",
    "results_bundle",
]

#: The guideline as a FHIR canonical (GuidanceResponse.moduleUri, RequestGroup.instantiatesUri).
GUIDELINE_URI = "https://w3id.org/jdm-kg/guideline"
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.UUID("5b0c2a9e-8d0f-4f7c-9e59-7a1c3f7f2b15")  # jdm-kg FHIR output identifiers
_PERIOD_UNITS = {"d": "d", "wk": "wk", "mo": "mo", "h": "h", "a": "a"}  # UCUM -> FHIR UnitsOfTime

#: Where a patient-record field lives in FHIR input (FHIRPath), for OperationOutcome.issue.expression.
_FHIRPATH = {
    "birthDate": "Patient.birthDate",
    "ageYears": "Patient.birthDate",
    "sex": "Patient.gender",
    "patientId": "Patient.identifier",
    "recordDate": "Bundle.timestamp",
    "diagnosis": "Condition.code",
    "hasManifestation": "Condition.code",
    "manifestation": "Condition.code",
    "predominant": "Condition.extension",
    "bodyWeight": "Observation.where(code.coding.code = '29463-7').value",
    "bodyHeight": "Observation.where(code.coding.code = '8302-2').value",
    "value": "Observation.value",
    "unit": "Observation.value.code",
    "screening": "Observation",
    "screenedFor": "Observation.code",
    "result": "Observation.interpretation",
    "treatmentEpisode": "MedicationStatement",
    "drug": "MedicationStatement.medication",
    "outcome": "MedicationStatement.statusReason",
    "startDate": "MedicationStatement.effective.start",
    "endDate": "MedicationStatement.effective.end",
    "date": "Observation.effective",
    "importNote": "Bundle.entry",
}


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


@cache
def _codes(guideline: Guideline) -> tuple[dict[str, list[dict[str, str]]], dict[tuple[str, str], str]]:
    """Drug IRI -> its exact FHIR codings, and (system, code) -> drug IRI, from the graph's
    SKOS mappings (the bundled ``fhir-codes`` query, as the FHIR importer reads them)."""
    from jdm_kg.reasoning.engines import oxigraph_store

    by_drug: dict[str, list[dict[str, str]]] = {}
    by_code: dict[tuple[str, str], str] = {}
    for row in oxigraph_store(guideline).guideline_view.select("fhir-codes"):
        if not str(row["kind"]).endswith("#Drug") or not bool(row["usable"].toPython()):  # type: ignore[attr-defined]
            continue
        drug, system, code = str(row["concept"]), str(row["system"]), str(row["code"])
        by_code.setdefault((system, code), drug)
        if str(row["match"]).endswith("#exactMatch"):
            by_drug.setdefault(drug, []).append({"system": system, "code": code, "display": str(row["conceptLabel"])})
    return by_drug, by_code


def drug_codings(drug: str, guideline: Guideline | None = None) -> list[dict[str, str]]:
    """The FHIR codings (RxNorm, ATC, jdm-kg's own) the graph maps a guideline drug to exactly."""
    return list(_codes(guideline or load_guideline())[0].get(drug, []))


def drug_for_coding(codings: Iterable[dict[str, Any]], guideline: Guideline | None = None) -> str | None:
    """The guideline drug IRI the first mapped coding names, or None."""
    table = _codes(guideline or load_guideline())[1]
    for coding in codings:
        drug = table.get((str(coding.get("system") or ""), str(coding.get("code") or "")))
        if drug:
            return drug
    return None


def checked(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` parsed by its ``fhir.resources`` R4B model (raises if it is not valid FHIR)
    and written back as JSON."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return model.model_dump(mode="json", exclude_none=True)


def _quantity(value: Decimal | None, unit: str | None) -> dict[str, Any] | None:
    if value is None or not unit:
        return None
    return {"value": float(value), "unit": unit, "system": UCUM, "code": unit}


def _dosage(dose: ComputedDose) -> dict[str, Any]:
    r = dose.regimen
    dosage: dict[str, Any] = {"sequence": 1, "text": dose.summary()}
    split = dose.per_day_low is not None
    low, high = (dose.per_day_low, dose.per_day_high) if split else (dose.low, dose.high)
    if low is not None and high is not None and low == high:
        dose_and_rate: dict[str, Any] = {"doseQuantity": _quantity(low, dose.unit)}
    else:
        dose_and_rate = {"doseRange": {"low": _quantity(low, dose.unit), "high": _quantity(high, dose.unit)}}
    dosage["doseAndRate"] = [dose_and_rate]
    repeat: dict[str, Any] = {}
    if split and r.administration_days:
        repeat.update(count=r.administration_days, frequency=1, period=1, periodUnit="d")
    else:
        if r.number_of_doses:
            repeat["count"] = r.number_of_doses
        unit = _PERIOD_UNITS.get(r.interval_unit or "")
        if r.interval_min is not None and unit:
            repeat.update(frequency=1, period=float(r.interval_min), periodUnit=unit)
            if r.interval_max is not None and r.interval_max != r.interval_min:
                repeat["periodMax"] = float(r.interval_max)
    if repeat:
        dosage["timing"] = {"repeat": repeat}
    if r.schedule():
        dosage["patientInstruction"] = r.schedule()
    if r.route and "not stated" not in r.route:
        dosage["route"] = {"text": r.route}
    if r.max_dose is not None and r.max_dose_unit:
        dosage["maxDosePerAdministration"] = _quantity(r.max_dose, r.max_dose_unit)
    return dosage


def medication_request(option: OptionAssessment, dose: ComputedDose, result: PatientResult,
                       guideline: Guideline | None = None) -> dict[str, Any]:
    """A ``MedicationRequest`` proposal (status draft, intent proposal) for a computed dose.

    Raises ``ValueError`` when the dose was not computed: jdm-kg never proposes a dose the
    guideline does not give."""
    if dose.status != "computed":
        raise ValueError(f"{dose.regimen.drug_label}: no computed dose ({dose.status}); nothing to propose")
    r = dose.regimen
    codings = drug_codings(r.drug, guideline)
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": _id(str(result.record.node), result.guideline_version, option.option, r.iri),
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {"coding": codings, "text": r.drug_label} if codings else {"text": r.drug_label},
        "subject": {"reference": _patient_reference(result), "display": result.record.patient_id},
        "authoredOn": result.as_of.isoformat(),
        "instantiatesUri": [GUIDELINE_URI],
        "reasonCode": [{"text": option.summary or option.standing or option.label}] if (option.summary or option.standing) else None,
        "note": [{"text": f"Proposed by jdm-kg from guideline {result.guideline_version} ({r.label}); "
                          f"{'; '.join(dose.notes) if dose.notes else 'the prescriber decides'}."}],
        "dosageInstruction": [_dosage(dose)],
    }
    return checked({k: v for k, v in request.items() if v is not None})


def _patient_reference(result: PatientResult) -> str:
    node = str(result.record.node)
    if "/patient/" in node:
        return "Patient/" + node.rsplit("/", 1)[1]
    return f"Patient/{result.record.patient_id}"


def _fhirpath(field: str) -> str:
    """Where a validation problem's field (``bodyHeight.value``, ``treatmentEpisode.outcome``)
    lives in FHIR input, as FHIRPath; ``Patient`` when jdm-kg cannot say more precisely.

    >>> _fhirpath("bodyHeight.value")
    "Observation.where(code.coding.code = '8302-2').value"
    """
    parts = [p.rsplit("#", 1)[-1].rsplit(":", 1)[-1] for p in field.split(".") if p]
    if not parts:
        return "Patient"
    if parts[0] in ("bodyWeight", "bodyHeight"):
        return _FHIRPATH[parts[0]]
    for part in reversed(parts):
        if part in _FHIRPATH:
            return _FHIRPATH[part]
    return "Patient"


def operation_outcome(issues: list[Issue], source: str = "") -> dict[str, Any]:
    """Validation problems as an ``OperationOutcome``: one issue per problem, severity ``error``
    for a violation and ``warning`` for a warning, ``expression`` the FHIRPath of the field;
    a single ``information`` issue when there is none."""
    out: list[dict[str, Any]] = []
    for issue in issues:
        diagnostics = f"record {issue.record}: {issue.field}: {issue.message}"
        if issue.value is not None:
            diagnostics += f" (value: {issue.value})"
        out.append({
            "severity": "error" if issue.severity == "violation" else "warning",
            "code": "invalid" if issue.severity == "violation" else "informational",
            "diagnostics": diagnostics,
            "expression": [_fhirpath(issue.field)],
        })
    if not out:
        out.append({"severity": "information", "code": "informational",
                    "diagnostics": f"{source or 'the record'}: no validation problems"})
    return checked({"resourceType": "OperationOutcome", "id": _id("outcome", source, str(len(issues))), "issue": out})


#: The elements of a FHIR resource that settle each kind of datum jdm-kg may need.
_MUST_SUPPORT = {
    "medication": ["medication", "status", "statusReason"],
    "stop-reason": ["status", "statusReason", "effective"],
    "contradiction": ["status", "statusReason", "effective"],
    "manifestations": ["code", "clinicalStatus", "severity"],
}


def data_requirement(needed: DataNeeded) -> dict[str, Any]:
    """A FHIR ``DataRequirement`` for one datum jdm-kg could not read: the resource type that
    would carry it and the elements that settle it (the question itself is in the
    GuidanceResponse's ``note`` and the OperationOutcome)."""
    return {"type": needed.resource_type, "mustSupport": _MUST_SUPPORT.get(needed.datum, [])}


def data_needed_issues(results: list[PatientResult]) -> list[dict[str, Any]]:
    """One OperationOutcome issue (warning, ``incomplete``) per datum needed by any result."""
    return [{"severity": "warning", "code": "incomplete",
             "diagnostics": f"record {r.record.patient_id}: cannot tell: {d.text()}",
             "expression": [d.resource_type]} for r in results for d in r.data_needed]


def _documentation(option: OptionAssessment) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for reason in option.reasons:
        statement = reason.statement
        if statement is None or statement.statement in seen:
            continue
        seen.add(statement.statement)
        doc: dict[str, Any] = {"type": "citation", "label": statement.label, "url": statement.statement}
        if statement.quote:
            doc["display"] = f"\u201c{statement.quote}\u201d" + (f" ({statement.section})" if statement.section else "")
        citations = [s.get("citation") for s in statement.sources if s.get("citation")]
        if citations:
            doc["citation"] = "; ".join(c for c in citations if c)
        docs.append(doc)
    return docs


def _action(option: OptionAssessment, requests: list[str]) -> dict[str, Any]:
    description = f"{option.role}: {option.status}"
    if option.if_applies:
        description = f"{option.role}: cannot tell; if the data needed settle it: {option.if_applies}"
    if option.standing:
        description += f"; {option.standing}"
    if option.summary:
        description += f". {option.summary}"
    gates = [f"{g.condition_label}: {g.state}" for g in option.gates]
    action: dict[str, Any] = {
        "title": option.label,
        "description": description,
        "code": [{"coding": [{"system": GUIDELINE_URI, "code": option.option.rsplit("/", 1)[-1],
                              "display": option.label}], "text": option.label}],
        "priority": "routine",
        "documentation": _documentation(option) or None,
        "textEquivalent": "; ".join([d.summary() for d in option.doses] + ([f"screening: {', '.join(gates)}"] if gates else [])) or None,
    }
    if option.rank is not None:
        action["prefix"] = f"#{option.rank}"
    if requests:
        action["action"] = [{"title": f"Proposed dose ({i + 1})", "resource": {"reference": ref}}
                            for i, ref in enumerate(requests)]
    return {k: v for k, v in action.items() if v is not None}


def results_bundle(results: list[PatientResult], issues: list[Issue] | None = None, source: str = "",
                   guideline: Guideline | None = None) -> dict[str, Any]:
    """A ``collection`` Bundle with, per patient, a GuidanceResponse, its RequestGroup and the
    MedicationRequest proposals, and one OperationOutcome for the validation problems (``issues``;
    by default those of the results). Each resource is checked by ``fhir.resources``."""
    guideline = guideline or load_guideline()
    all_issues = issues if issues is not None else [i for r in results for i in r.issues]
    outcome = operation_outcome(all_issues, source)
    extra = data_needed_issues(results)
    if extra:
        kept = [i for i in outcome["issue"] if i["severity"] != "information"]
        outcome = checked({**outcome, "issue": kept + extra})
    entries: list[dict[str, Any]] = [{"fullUrl": f"urn:uuid:{outcome['id']}", "resource": outcome}]
    for result in results:
        subject = {"reference": _patient_reference(result), "display": result.record.patient_id}
        proposals: list[dict[str, Any]] = []
        actions = []
        for option in result.options:
            refs = []
            if option.status == "offered" and option.ranked:  # the next line only: adjuncts and the escalation
                for dose in option.doses:                          # are to consider, not to order from here
                    if dose.status == "computed":
                        request = medication_request(option, dose, result, guideline)
                        proposals.append(request)
                        refs.append(f"urn:uuid:{request['id']}")
            actions.append(_action(option, refs))
        group_id = _id("requestgroup", str(result.record.node), result.guideline_version, result.source)
        group: dict[str, Any] = {
            "resourceType": "RequestGroup",
            "id": group_id,
            "instantiatesUri": [GUIDELINE_URI],
            "status": "draft" if result.applicable and not result.blocked_by_validation else "unknown",
            "intent": "proposal",
            "subject": subject,
            "authoredOn": result.as_of.isoformat(),
            "note": [{"text": result.applicability}],
        }
        if actions:
            group["action"] = actions
        related = {"type": "derived-from", "label": f"guideline {result.guideline_version}",
                   "display": "Next line of treatment after JAK inhibitor failure in juvenile dermatomyositis",
                   "url": GUIDELINE_URI}
        group.setdefault("action", [])
        for action in group["action"]:
            action.setdefault("documentation", []).append(related)
        if not group["action"]:
            del group["action"]
        group = checked(group)
        response: dict[str, Any] = {
            "resourceType": "GuidanceResponse",
            "id": _id("guidance", str(result.record.node), result.guideline_version, result.source),
            "moduleUri": GUIDELINE_URI,
            "status": "data-required" if result.blocked_by_validation or result.cannot_tell else "success",
            "subject": subject,
            "occurrenceDateTime": result.as_of.isoformat(),
            "reasonCode": [{"text": result.applicability}],
            "note": [{"text": f"jdm-kg, guideline {result.guideline_version}; as of {result.as_of.isoformat()}"}]
            + [{"text": f"Data needed: {d.text()}"} for d in result.data_needed],
            **({"dataRequirement": [data_requirement(d) for d in result.data_needed]} if result.data_needed else {}),
            "result": {"reference": f"urn:uuid:{group_id}"},
            "evaluationMessage": [{"reference": f"urn:uuid:{outcome['id']}"}],
        }
        response = checked(response)
        entries.append({"fullUrl": f"urn:uuid:{response['id']}", "resource": response})
        entries.append({"fullUrl": f"urn:uuid:{group_id}", "resource": group})
        entries.extend({"fullUrl": f"urn:uuid:{p['id']}", "resource": p} for p in proposals)
    bundle = {
        "resourceType": "Bundle",
        "id": _id("bundle", source, *(str(r.record.node) for r in results)),
        "type": "collection",
        "entry": entries,
    }
    return checked(bundle)
