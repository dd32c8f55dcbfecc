"""jdm-kg's results as FHIR R4 resources (built and checked with ``fhir.resources``, R4B models
as :mod:`jdm_kg.inputs.fhir` uses for input).

One patient's result becomes, in a ``collection`` Bundle:

- a ``Patient`` (its identifier), which every ``subject`` of the Bundle references: every
  reference in the Bundle resolves inside it;
- a ``GuidanceResponse`` (status ``success``; ``data-required`` when validation blocked the
  record, when the result is hypothetical (``--assume``), or when jdm-kg cannot tell whether the
  guideline applies or which option ranks first: then one ``dataRequirement`` per datum needed,
  its question in ``note`` and in the OperationOutcome, and the options only as they would be,
  with no proposal) whose ``moduleCanonical`` is the guideline's PlanDefinition at the version
  used (the FHIR package of ``jdm-kg release``, :mod:`jdm_kg.outputs.fhir_cpg`) and whose ``result`` is
- a ``RequestGroup`` (intent ``proposal``, ``instantiatesCanonical`` that PlanDefinition) with,
  as the PlanDefinition has, one ``action`` per report section (``selectionBehavior``: at most one
  next-line bDMARD, any adjunct, at most one escalation) holding one ``action`` per next-line
  option, adjunct and escalation, in the report's order: ``prefix`` the rank (``#1``), ``title`` the option, the
  ``description`` its status, standing and one-line reason, ``documentation`` the guideline
  statements quoted (``RelatedArtifact`` of type ``citation`` with the quote as ``display``),
  and the guideline itself as ``relatedArtifact``;
- one ``MedicationRequest`` (status ``draft``, intent ``proposal``) per dose the guideline gives
  and jdm-kg computed for this child, for the next-line options offered (an adjunct or the
  escalation is "to consider": it gets an action, not an order), with ``dosageInstruction`` in UCUM quantities and timing,
  ``instantiatesCanonical`` its regimen's ActivityDefinition, and the option's action pointing at it (``resource``).
  No dose is ever proposed where the guideline gives none or the measures were missing;
- never an unconditional proposal while screening is pending: each screening still to do or to
  repeat (or a positive a clinician must assess) is an action of its own (``id`` ``screen-...``,
  ``requiredBehavior`` ``must``), and every option action and proposed-dose action it holds back
  carries ``relatedAction`` ``{actionId, relationship: after-end}`` to it; the MedicationRequest
  says what must happen first (``statusReason`` and the first ``note``). A blocked option gets
  no MedicationRequest at all;
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
from jdm_kg.outputs.fhir_canonical import activity_definition_canonical, plan_definition_canonical, section_selection
from jdm_kg.reasoning.dosing import ComputedDose, Regimen
from jdm_kg.reasoning.recommend import DataNeeded, OptionAssessment, PatientResult
from jdm_kg.reasoning.validation import Issue

__all__ = [
    "GUIDELINE_URI",
    "UCUM",
    "checked",
    "dosage_instruction",
    "drug_codings",
    "drug_for_coding",
    "medication_request",
    "operation_outcome",
    "pending_first",
    "regimen_schedule",
    "results_bundle",
]

#: The guideline's code system (RequestGroup action codes) and the guideline in documentation.
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


def dosage_instruction(dose: ComputedDose) -> dict[str, Any]:
    """A FHIR ``Dosage`` for a computed dose: the dose in words (``text``), UCUM quantities
    (``doseAndRate``), timing and route; never ``patientInstruction``."""
    r = dose.regimen
    dosage: dict[str, Any] = {"sequence": 1, "text": dose.summary()}
    split = dose.per_day_low is not None
    low, high = (dose.per_day_low, dose.per_day_high) if split else (dose.low, dose.high)
    if low is not None and high is not None and low == high:
        dose_and_rate: dict[str, Any] = {"doseQuantity": _quantity(low, dose.unit)}
    else:
        dose_and_rate = {"doseRange": {"low": _quantity(low, dose.unit), "high": _quantity(high, dose.unit)}}
    dosage["doseAndRate"] = [dose_and_rate]
    dosage.update(regimen_schedule(r, split))
    return dosage


def regimen_schedule(r: Regimen, split: bool = False) -> dict[str, Any]:
    """A ``Dosage``'s timing, route and maximum from a regimen (``split``: the
    course is given over ``administration_days`` days, one part a day)."""
    out: dict[str, Any] = {}
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
        out["timing"] = {"repeat": repeat}
    # (the schedule in words is in ``text``; patientInstruction is for the patient, not for a dose)
    if r.route and "not stated" not in r.route:
        out["route"] = {"text": r.route}
    if r.max_dose is not None and r.max_dose_unit:
        out["maxDosePerAdministration"] = _quantity(r.max_dose, r.max_dose_unit)
    return out


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
        "instantiatesCanonical": [activity_definition_canonical(r.iri, result.guideline_version)],
        # why it is proposed: its standing and the guideline's reasons for it (never one against it)
        "reasonCode": [{"text": "; ".join([option.standing, *(r.text for r in option.reasons_for)][:3]).strip("; ")}]
        if (option.standing or option.reasons_for) else None,
        "note": [{"text": f"Proposed by jdm-kg from guideline {result.guideline_version} ({r.label}); "
                          f"{'; '.join(dose.notes) if dose.notes else 'the prescriber decides'}."}],
        "dosageInstruction": [dosage_instruction(dose)],
    }
    for caution in result.cautions:  # (a child under 2 years or 10 kg: said before the proposal's own note)
        request["note"].insert(0, {"text": caution.text})
    first = pending_first(option)
    if first:  # never an unconditional proposal while screening is pending: say what must happen first
        policy = next((g.policy.tag for g in option.gates if g.need in ("retest", "blocked")), "")
        request["statusReason"] = {"text": f"waiting for screening: {first}"}
        request["note"].insert(0, {"text": f"Not to be started before screening: {first}"
                                           + (f" ({policy})" if policy else "") + ". Decision support, not a prescription."})
    return checked({k: v for k, v in request.items() if v is not None})


def pending_first(option: OptionAssessment) -> str:
    """What must happen before the option can start, from its screening gates ('' when nothing):
    'screen first: tuberculosis (no result on record)'."""
    return option.screening_state if any(g.state in ("required", "blocking") for g in option.gates) else ""


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
    return {"type": needed.fhir_type, "mustSupport": _MUST_SUPPORT.get(needed.datum, [])}


def data_needed_issues(results: list[PatientResult]) -> list[dict[str, Any]]:
    """One OperationOutcome issue (warning, ``incomplete``) per datum needed by any result."""
    return [{"severity": "warning", "code": "incomplete",
             "diagnostics": f"record {r.record.patient_id}: cannot tell: {d.text()}",
             "expression": [d.fhir_type]} for r in results for d in r.data_needed]


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


def _screening_id(condition: str) -> str:
    return "screen-" + condition.rsplit("/", 1)[-1]


def _screening_actions(result: PatientResult) -> list[dict[str, Any]]:
    """One action per screening still pending before a biologic (a test to do or repeat, a positive
    a clinician must assess), with the id the options' actions depend on (relatedAction)."""
    out = []
    for gate in result.screening:
        if gate.state not in ("required", "blocking"):
            continue
        title = (f"{gate.condition_label}: positive: a clinician assesses it and records a clearance"
                 if gate.state == "blocking" else f"{gate.need[0].upper()}{gate.need[1:]}: {gate.condition_label}")
        doc: dict[str, Any] = {"type": "citation", "label": gate.statement.label, "url": gate.statement.statement}
        if gate.statement.quote:
            doc["display"] = f"\u201c{gate.statement.quote}\u201d"
        out.append({
            "id": _screening_id(gate.condition),
            "title": title,
            "description": f"{gate.text}. Before any next-line biologic.",
            "code": [{"coding": [{"system": GUIDELINE_URI, "code": gate.condition.rsplit("/", 1)[-1],
                                  "display": gate.condition_label}], "text": gate.condition_label}],
            "priority": "routine",
            "requiredBehavior": "must",
            "documentation": [doc, {"type": "justification", "label": gate.policy.tag, "url": gate.policy.iri}],
        })
    return out


def _after_screening(option: OptionAssessment) -> list[dict[str, str]]:
    """relatedAction: the option (and its proposed doses) start only after the end of each pending
    screening action."""
    return [{"actionId": _screening_id(g.condition), "relationship": "after-end"}
            for g in option.gates if g.state in ("required", "blocking")]


def _action(option: OptionAssessment, requests: list[str]) -> dict[str, Any]:
    description = f"{option.role}: {option.status}"
    if option.if_applies:
        description = f"{option.role}: cannot tell; if the data needed settle it: {option.if_applies}"
    if option.standing:
        description += f"; {option.standing}"
    if option.summary:
        description += f". {option.summary}"
    first = pending_first(option)
    if first:
        description += f". First: {first}"
    gates = [f"{g.condition_label}: {g.state}" for g in option.gates]
    after = _after_screening(option)
    action: dict[str, Any] = {
        "id": "option-" + option.option.rsplit("/", 1)[-1],
        "title": option.label,
        "description": description,
        "code": [{"coding": [{"system": GUIDELINE_URI, "code": option.option.rsplit("/", 1)[-1],
                              "display": option.label}], "text": option.label}],
        "priority": "routine",
        "documentation": _documentation(option) or None,
        "textEquivalent": "; ".join([d.summary().rstrip(".") for d in option.doses]
                                    + ([f"screening: {', '.join(gates)}"] if gates else [])) or None,
    }
    if option.rank is not None:
        action["prefix"] = f"#{option.rank}"
    if after:
        action["relatedAction"] = after
    if len(requests) == 1:
        action["resource"] = {"reference": requests[0]}  # (held back by ``relatedAction`` above, if screening is pending)
    elif requests:
        action["selectionBehavior"] = "all"
        action["action"] = [dict({"title": f"Proposed dose ({i + 1})" + (f", after: {first}" if first else ""),
                                  "resource": {"reference": ref}}, **({"relatedAction": after} if after else {}))
                            for i, ref in enumerate(requests)]
    return {k: v for k, v in action.items() if v is not None}


def _sections(options: list[OptionAssessment], actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The options' actions under one action per report section, as in the guideline's
    PlanDefinition, each with its ``selectionBehavior``."""
    sections: list[dict[str, Any]] = []
    for option, action in zip(options, actions, strict=True):
        if not sections or sections[-1]["_role"] != option.role_iri:
            sections.append({"_role": option.role_iri, "title": option.section_heading or option.role,
                             "groupingBehavior": "logical-group",
                             "selectionBehavior": section_selection(option.role_iri), "action": []})
        sections[-1]["action"].append(action)
    return [{k: v for k, v in s.items() if k != "_role"} for s in sections]


def _patient_entry(result: PatientResult) -> dict[str, Any]:
    """The patient as a Bundle entry (its identifiers only), so that every subject resolves inside the Bundle."""
    patient_id = _id("patient", str(result.record.node))
    identifiers = [{"value": result.record.patient_id}]
    if str(result.record.node).startswith(("http://", "https://", "urn:")):
        identifiers.append({"system": "urn:ietf:rfc:3986", "value": str(result.record.node)})
    patient = checked({"resourceType": "Patient", "id": patient_id, "identifier": identifiers})
    return {"fullUrl": f"urn:uuid:{patient_id}", "resource": patient}


def _hypothetical(result: PatientResult) -> list[str]:
    """The note a hypothetical result (``--assume``) carries first."""
    if not result.assumptions:
        return []
    return ["HYPOTHETICAL: not the record as written, but what jdm-kg would say " + " and ".join(
        f"if {a['text']} (--assume {a['assume']})" for a in result.assumptions) + ". No medication is proposed from it."]


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
        patient = _patient_entry(result)
        subject = {"reference": patient["fullUrl"], "display": result.record.patient_id}
        proposals: list[dict[str, Any]] = []
        screening = _screening_actions(result) if result.applicable else []
        actions = []
        for option in result.options:
            refs = []
            # the next line only (adjuncts and the escalation are to consider, not to order from here); a
            # hypothetical result (--assume) proposes nothing
            if option.status == "offered" and option.ranked and not result.assumptions:
                for dose in option.doses:
                    if dose.status == "computed":
                        request = medication_request(option, dose, result, guideline)
                        request["subject"] = subject  # the Bundle's Patient entry
                        proposals.append(request)
                        refs.append(f"urn:uuid:{request['id']}")
            actions.append(_action(option, refs))
        assumed = [a["assume"] for a in result.assumptions]  # (a hypothetical result never takes the real one's id)
        group_id = _id("requestgroup", str(result.record.node), result.guideline_version, result.source, *assumed)
        group: dict[str, Any] = {
            "resourceType": "RequestGroup",
            "id": group_id,
            "instantiatesCanonical": [plan_definition_canonical(result.guideline_version)],
            "status": "draft" if result.applicable and not result.blocked_by_validation else "unknown",
            "intent": "proposal",
            "subject": subject,
            "authoredOn": result.as_of.isoformat(),
            "note": [{"text": t} for t in [*_hypothetical(result), result.applicability]],
        }
        related = {"type": "derived-from", "label": f"guideline {result.guideline_version}",
                   "display": "Next line of treatment after JAK inhibitor failure in juvenile dermatomyositis",
                   "url": GUIDELINE_URI}
        for action in screening + actions:
            action.setdefault("documentation", []).append(related)
        if actions:  # the pending screening first, then the options under their report sections
            group["action"] = screening + _sections(result.options, actions)
        group = checked(group)
        response: dict[str, Any] = {
            "resourceType": "GuidanceResponse",
            "id": _id("guidance", str(result.record.node), result.guideline_version, result.source, *assumed),
            "moduleCanonical": plan_definition_canonical(result.guideline_version),
            # a hypothetical result (--assume) holds only once the assumed facts are recorded: data-required
            "status": ("data-required" if result.blocked_by_validation or result.assumptions or result.cannot_tell
                       else "success"),
            "subject": subject,
            "occurrenceDateTime": result.as_of.isoformat(),
            "reasonCode": [{"text": result.applicability}],
            "note": [{"text": t} for t in [*_hypothetical(result), *(c.text for c in result.cautions),
                                           f"jdm-kg, guideline {result.guideline_version}; as of {result.as_of.isoformat()}"]]
            + [{"text": f"Data needed: {d.text()}"} for d in result.data_needed],
            **({"dataRequirement": [data_requirement(d) for d in result.data_needed]} if result.data_needed else {}),
            "result": {"reference": f"urn:uuid:{group_id}"},
            "evaluationMessage": [{"reference": f"urn:uuid:{outcome['id']}"}],
        }
        response = checked(response)
        entries.append(patient)
        entries.append({"fullUrl": f"urn:uuid:{response['id']}", "resource": response})
        entries.append({"fullUrl": f"urn:uuid:{group_id}", "resource": group})
        entries.extend({"fullUrl": f"urn:uuid:{p['id']}", "resource": p} for p in proposals)
    bundle = {
        "resourceType": "Bundle",
        "id": _id("bundle", source, *(str(r.record.node) for r in results),
                  *(a["assume"] for r in results for a in r.assumptions)),
        "type": "collection",
        "entry": entries,
    }
    return checked(bundle)
