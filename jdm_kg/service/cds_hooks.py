"""CDS Hooks 2.0 services: discovery, ``patient-view``, ``order-select`` and feedback.

Spec sections followed (https://cds-hooks.hl7.org/2.0/):

- *Discovery*: ``GET {base}/cds-services`` -> ``{"services": [{hook, id, title, description,
  prefetch, usageRequirements}]}``.
- *Calling a CDS Service*: ``POST {base}/cds-services/{id}`` with ``hook``, ``hookInstance``,
  ``context``, ``prefetch`` (and optionally ``fhirServer``, ``fhirAuthorization``).
- *Prefetch*: jdm-kg never queries the ``fhirServer``: the data it needs must come as prefetch.
  A required key that is absent (or ``null``: the client could not fetch it) is answered with
  412 and a message naming the keys, as the spec allows a service that cannot fetch.
- *CDS Service Response*: ``{"cards": [...], "systemActions": []}``; a card has ``uuid``,
  ``summary`` (< 140 characters), ``detail`` (GitHub Markdown), ``indicator``
  (info | warning | critical), ``source`` {label, url}, ``suggestions`` [{label, uuid,
  isRecommended, actions: [{type, description, resource}]}], ``selectionBehavior``, ``links``
  [{label, url, type}].
- *Feedback*: ``POST {base}/cds-services/{id}/feedback`` with ``{"feedback": [{card, outcome,
  acceptedSuggestions, overrideReason, outcomeTimestamp}]}``; logged as counts, no patient data.

The prefetch resources become one FHIR ``collection`` Bundle that goes through the same FHIR
importer (:func:`jdm_kg.inputs.fhir.fhir_to_graph`) as a file: the same validation, the same result.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

from jdm_kg.knowledge.guideline import Guideline
from jdm_kg.outputs.fhir_output import checked, dosage_instruction, drug_for_coding, pending_first
from jdm_kg.outputs.report import result_blocks
from jdm_kg.reasoning.recommend import OptionAssessment, PatientResult
from jdm_kg.service.problems import Problem

__all__ = [
    "ORDER_SELECT",
    "PATIENT_VIEW",
    "SERVICES",
    "SUMMARY_LIMIT",
    "check_feedback",
    "check_request",
    "discovery",
    "order_select_cards",
    "patient_view_cards",
    "prefetch_bundle",
]

PATIENT_VIEW = "jdm-kg-patient-view"
ORDER_SELECT = "jdm-kg-order-select"
SUMMARY_LIMIT = 140
#: The most lines a card's detail has: what a clinician reads in 20 seconds (the link has the rest).
DETAIL_LINES = 15

#: Prefetch templates (CDS Hooks "Prefetch Template"): key -> FHIR query; all but
#: ``medicationRequests`` are required. The medication searches ``_include`` the Medication a
#: statement or order points to (``medicationReference``), so that the service reads the same
#: drug as ``jdm-kg recommend`` reads from the same chart exported as a file (``_include`` is
#: outside the spec's RECOMMENDED subset, which the spec's own PractitionerRole example also
#: leaves; a client that cannot honour it sends the statement alone, and the report then says the
#: drug was read from the reference's display).
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
}
REQUIRED_PREFETCH = ("patient", "conditions", "observations", "medicationStatements")

SERVICES: dict[str, dict[str, Any]] = {
    PATIENT_VIEW: {
        "hook": "patient-view",
        "id": PATIENT_VIEW,
        "title": "JDM: next line of treatment after JAK-inhibitor failure",
        "description": "When a juvenile dermatomyositis patient's chart opens and a JAK-inhibitor failure is "
                       "recorded: the guideline's first next-line option for this child (or the options that tie), "
                       "what screening is pending, and a short detail with a link to the full report.",
        "prefetch": PREFETCH,
        "usageRequirements": "Prefetch is required: jdm-kg never queries the FHIR server. Body weight and height "
                             "(LOINC 29463-7, 8302-2) and TB / hepatitis screening observations are read.",
    },
    ORDER_SELECT: {
        "hook": "order-select",
        "id": ORDER_SELECT,
        "title": "JDM: where the selected drug stands after JAK-inhibitor failure",
        "description": "When a MedicationRequest for one of the guideline's drugs is selected: its rank and reason "
                       "for this patient, its screening state, any earlier failure, and the guideline's dose for "
                       "this child as an update of the selected draft order (never a second order).",
        "prefetch": PREFETCH,
        "usageRequirements": "Prefetch is required: jdm-kg never queries the FHIR server.",
    },
}

_HOOK_CONTEXT = {"patient-view": ("userId", "patientId"), "order-select": ("userId", "patientId", "selections",
                                                                          "draftOrders")}


def observation_codes(guideline: Guideline) -> list[str]:
    """``system|code`` of every Observation the importer reads (body measures, screening tests),
    from the graph's SKOS mappings (the bundled ``fhir-codes`` query): the prefetch asks for
    these Observations only, not the whole chart."""
    from jdm_kg.reasoning.engines import oxigraph_store

    codes = set()
    for row in oxigraph_store(guideline).guideline_view.select("fhir-codes"):
        kind = str(row["kind"]).rsplit("#", 1)[-1]
        if kind in ("BodyMeasure", "ScreenedCondition", "ScreeningTest") and bool(row["usable"].toPython()):  # type: ignore[attr-defined]
            system = str(row["system"])
            if not system.startswith("https://w3id.org/jdm-kg/"):
                codes.add(f"{system}|{row['code']}")
    return sorted(codes)


def discovery(guideline: Guideline | None = None) -> dict[str, Any]:
    """The discovery document (CDS Hooks 2.0 "Discovery"); with ``guideline``, the Observation
    prefetch names the codes the importer reads (:func:`observation_codes`)."""
    services = [dict(s) for s in SERVICES.values()]
    if guideline is not None:
        codes = ",".join(observation_codes(guideline))
        for service in services:
            service["prefetch"] = dict(service["prefetch"], observations=f"{PREFETCH['observations']}&code={codes}")
    return {"services": services}


def check_request(service_id: str, body: Any) -> dict[str, Any]:
    """The request's ``context`` after checking the shape the spec gives (400 / 412 problems)."""
    if not isinstance(body, dict):
        raise Problem("bad-request", "a CDS Hooks request is a JSON object")
    service = SERVICES[service_id]
    for key, kind in (("hook", str), ("hookInstance", str), ("context", dict)):
        if not isinstance(body.get(key), kind):
            raise Problem("bad-request", f"the request lacks {key!r} ({kind.__name__}), which CDS Hooks requires")
    if body["hook"] != service["hook"]:
        raise Problem("bad-request", f"service {service_id} answers the {service['hook']!r} hook, not {body['hook']!r}")
    context = body["context"]
    missing = [k for k in _HOOK_CONTEXT[service["hook"]] if k not in context]
    if missing:
        raise Problem("bad-request", f"the {service['hook']} context lacks {', '.join(missing)}")
    if not isinstance(context.get("patientId"), str) or not context["patientId"]:
        raise Problem("bad-request", "context.patientId must be a non-empty string")
    prefetch = body.get("prefetch")
    absent = [k for k in REQUIRED_PREFETCH if not isinstance(prefetch, dict) or prefetch.get(k) is None]
    if absent:
        raise Problem("precondition-failed",
                      "prefetch missing or null for: " + ", ".join(absent)
                      + ". jdm-kg never queries the FHIR server; send the prefetch its discovery document lists.",
                      missingPrefetch=absent)
    return context  # type: ignore[no-any-return]


def _resources(value: Any, key: str) -> list[tuple[str | None, dict[str, Any]]]:
    """The resources in one prefetch value: a resource, or a (searchset) Bundle of them (matches,
    ``_include``d Medications, and any OperationOutcome the client sent: the spec asks services
    to check for them, and the importer names each issue in a note)."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise Problem("bad-request", f"prefetch {key!r} is not a FHIR resource (an object with resourceType)")
    if value["resourceType"] != "Bundle":
        return [(None, value)]
    out = []
    for i, entry in enumerate(value.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise Problem("bad-request", f"prefetch {key!r} entry {i} has no resource")
        out.append((entry.get("fullUrl"), resource))  # an OperationOutcome too: the importer says what it reports
    return out


def prefetch_bundle(prefetch: dict[str, Any], patient_id: str, today: date | None = None) -> str:
    """The prefetch resources as one FHIR ``collection`` Bundle (JSON text) for the importer.

    The Bundle's ``timestamp`` (the record date the guideline's recency rules count from) is
    ``today``; resources keep their ``fullUrl`` or get ``{resourceType}/{id}``."""
    patient = prefetch["patient"]
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise Problem("bad-request", "prefetch 'patient' is not a Patient resource")
    if patient.get("id") not in (None, patient_id):
        raise Problem("bad-request", "prefetch 'patient' is not the context's patientId")
    entries = []
    seen: set[str] = set()
    for key, value in prefetch.items():
        if value is None or key not in PREFETCH:
            continue
        for full_url, resource in _resources(value, key):
            url = full_url or (f"{resource['resourceType']}/{resource['id']}" if resource.get("id") else None)
            if url in seen:
                continue
            if url:
                seen.add(url)
            entries.append({"fullUrl": url, "resource": resource} if url else {"resource": resource})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if today:
        bundle["timestamp"] = f"{today.isoformat()}T00:00:00Z"
    return json.dumps(bundle)


# ---------------------------------------------------------------------------- cards


def _source(result: PatientResult, base_url: str) -> dict[str, Any]:
    return {"label": f"jdm-kg: JDM after JAK-inhibitor failure, guideline {result.guideline_version}",
            "url": f"{base_url}/guideline"}


def _fit(text: str, limit: int = SUMMARY_LIMIT - 1) -> str:
    """``text`` within ``limit`` characters, cut at a word (never mid-word) with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip(" ,;:(") + "\u2026"


def _screening(option: OptionAssessment) -> tuple[str, str]:
    """(indicator, words) for an option's screening gates."""
    blocking = [g.condition_label for g in option.gates if g.state == "blocking"]
    required = [g.condition_label for g in option.gates if g.state == "required"]
    if blocking:
        return "critical", "blocked: " + ", ".join(f"{c} positive" for c in blocking)
    if required:
        return "warning", "; ".join(f"{g.need}: {g.condition_label}" for g in option.gates if g.state == "required")
    return "info", "screening passed" if option.gates else "no screening named"


def first_next_line(result: PatientResult) -> OptionAssessment | None:
    """The first-ranked next-line option that is not already ruled out by history (offered,
    conditional, or blocked by a positive screening), or None."""
    ranked = [o for o in result.options if o.ranked and o.rank is not None
              and o.status in ("offered", "conditional", "blocked")]
    return min(ranked, key=lambda o: (o.rank, 0 if o.is_offered else 1)) if ranked else None


def first_group(result: PatientResult) -> list[OptionAssessment]:
    """Every next-line option at the first rank still in play: one, or several that tie."""
    first = first_next_line(result)
    if first is None:
        return []
    return [o for o in result.options if o.ranked and o.rank == first.rank and o.status in ("offered", "conditional", "blocked")]


def _names(options: list[OptionAssessment]) -> str:
    labels = [o.label for o in options]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def _gap_features(result: PatientResult) -> list[str]:
    """Predominant features the guideline names no next-line option for (the notices say so)."""
    return [f.label for f in result.features if f.predominant
            and any(n.patient_fact and n.patient_fact.get("manifestation") == f.label and n.patient_fact.get("predominant") == "yes"
                    for n in result.notices)]


def card_summary(result: PatientResult) -> tuple[str, str]:
    """(indicator, summary of fewer than 140 characters): the first option, or the options that tie
    at the first rank (never one of them alone), a gap the guideline leaves for a predominant
    feature, and what screening is pending."""
    group = first_group(result)
    if not group:
        return "warning", _fit("JDM after JAK-inhibitor failure: no next-line option can be offered now")
    indicator, words = _screening(group[0])
    gaps = _gap_features(result)
    lead = "JDM after JAK-inhibitor failure: "
    if gaps:
        who = f"no biologic named for {' and '.join(gaps)}: expert centre; {len(group)} bDMARDs tie"
    elif len(group) == 1:
        who = f"{group[0].label} first (#{group[0].rank})"
    else:
        who = f"{_names(group)} (tie, #{group[0].rank})"
        if len(lead + who + "; " + words) >= SUMMARY_LIMIT:
            who = f"{len(group)} bDMARDs tie at #{group[0].rank}"
    caution = "".join(c.text.split(":", 1)[0] + "; " for c in result.cautions[:1])  # a young child: said first
    if caution and indicator == "info":
        indicator = "warning"
    text = f"{lead}{caution}{who}; {words}"
    if len(text) >= SUMMARY_LIMIT:
        text = f"JDM after JAKi failure: {caution}{who}; {words}"
    return indicator, _fit(text)


def card_detail(result: PatientResult, link: str, option: OptionAssessment | None = None) -> str:
    """A card's detail: at most :data:`DETAIL_LINES` lines of Markdown a clinician reads in 20
    seconds (what is pending first, the options with dose and state, ties, gaps), the last a link
    to the full report. With ``option`` (order-select): that option's line first."""
    blocks = result_blocks(result)
    wanted: list[str] = []
    for kind, text in blocks:
        text = text.replace(": --details", ": in the full report")  # (a card's reader has the link, not the CLI)
        if kind == "notice":
            wanted.append(f"- **{text}**")
        elif kind == "line" and text.startswith(("The guideline applies", "Pending before", "Screening before", "Tie: ")):
            wanted.append(f"- {text}")
        elif kind == "item" and not text.startswith("["):
            wanted.append(f"- {text}")
    if option is not None:
        mine = [w for w in wanted if f" {option.label}" in w.split(":", 1)[0] or w.startswith(f"- {option.label}")]
        wanted = mine + [w for w in wanted if w not in mine]
    room = DETAIL_LINES - 1
    if len(wanted) > room:
        cut = len(wanted) - (room - 1)
        wanted = wanted[: room - 1] + [f"- ... {cut} more line(s): the full report"]
    return "\n".join(wanted + [f"[Full report for this patient: every reason with its quote, the screening history, "
                                f"caveats and policies]({link})"])


def _blocked_card(result: PatientResult, base_url: str, link: str) -> dict[str, Any]:
    problems = [i for i in result.issues if i.severity == "violation"]
    lines = [f"- {i.field}: {i.message}" for i in problems]
    room = DETAIL_LINES - 1
    if len(lines) > room:
        lines = lines[: room - 1] + [f"- ... {len(lines) - (room - 1)} more problem(s): the report"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _fit(f"JDM guideline: record incomplete, no recommendation ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''} to fix)"),
        "indicator": "warning",
        "detail": "\n".join(lines + [f"[Report for this patient: every problem and what to do]({link})"]),
        "source": _source(result, base_url),
        "links": [{"label": "Report for this patient (jdm-kg)", "url": link, "type": "absolute"}],
    }


def _concerns(result: PatientResult) -> bool:
    """Whether a record that failed validation still concerns this guideline: a JAK-inhibitor
    failure is recorded and nothing is wrong with the JDM diagnosis (a chart without JDM gets
    no card, not a warning)."""
    return bool(result.jak_failures) and not any(
        i.severity == "violation" and i.field.split(".", 1)[0] == "diagnosis" for i in result.issues)


def _cannot_tell_card(result: PatientResult, base_url: str, link: str) -> dict[str, Any]:
    """A warning card for 'cannot tell': what to record, never an empty answer."""
    first = result.data_needed[0].question if result.data_needed else "see the report"
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _fit(f"JDM guideline: cannot tell yet. {first}"),
        "indicator": "warning",
        "detail": card_detail(result, link),  # what is needed first, then the options as they would be
        "source": _source(result, base_url),
        "links": [{"label": "Report for this patient (jdm-kg)", "url": link, "type": "absolute"}],
    }


def _unlinked_card(result: PatientResult, base_url: str, link: str) -> list[dict[str, Any]]:
    """'Does not apply' with prefetch resources set aside because their subject is not the
    patient (a reference jdm-kg could not match to the prefetch Patient): a warning card saying
    so, never a silent empty answer; none when every resource was linked."""
    unlinked = [i for i in result.issues if i.field == "importNote" and "is not a Patient in this file" in i.message]
    if not unlinked:
        return []
    lines = [f"- {i.message}" for i in unlinked[: DETAIL_LINES - 3]]
    if len(unlinked) > len(lines):
        lines.append(f"- ... {len(unlinked) - len(lines)} more: the report")
    return [{
        "uuid": str(uuid.uuid4()),
        "summary": _fit(f"JDM guideline: {len(unlinked)} prefetch resource(s) not linked to this patient; "
                        "cannot tell if it applies"),
        "indicator": "warning",
        "detail": "\n".join([f"- {result.applicability}", *lines,
                              f"[Report for this patient: what was read and what was set aside]({link})"]),
        "source": _source(result, base_url),
        "links": [{"label": "Report for this patient (jdm-kg)", "url": link, "type": "absolute"}],
    }]


def patient_view_cards(result: PatientResult, base_url: str, link: str) -> list[dict[str, Any]]:
    """One card when the guideline applies; a warning card saying what to record when jdm-kg
    cannot tell; none when it does not apply. A record that failed validation gets a warning
    card with its problems when it concerns the guideline."""
    if result.blocked_by_validation:
        return [_blocked_card(result, base_url, link)] if _concerns(result) else _unlinked_card(result, base_url, link)
    if result.cannot_tell:
        return [_cannot_tell_card(result, base_url, link)]
    if not result.applicable:
        return _unlinked_card(result, base_url, link)
    indicator, summary = card_summary(result)
    return [{
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": indicator,
        "detail": card_detail(result, link),
        "source": _source(result, base_url),
        "links": [{"label": "Full report for this patient (jdm-kg)", "url": link, "type": "absolute"}],
    }]


def selected_orders(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The draft MedicationRequests the clinician selected (``context.selections`` in ``draftOrders``)."""
    selections = context.get("selections")
    drafts = context.get("draftOrders")
    if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
        raise Problem("bad-request", "context.selections must be a list of references such as MedicationRequest/1")
    if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle":
        raise Problem("bad-request", "context.draftOrders must be a FHIR Bundle")
    out = []
    for entry in drafts.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        ref = f"{resource.get('resourceType')}/{resource.get('id')}"
        if resource.get("resourceType") == "MedicationRequest" and ref in selections:
            out.append(resource)
    return out


def _ordered_drug(order: dict[str, Any], guideline: Guideline) -> str | None:
    concept = order.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return drug_for_coding([c for c in codings or [] if isinstance(c, dict)], guideline)


def order_select_cards(result: PatientResult, orders: list[dict[str, Any]], guideline: Guideline, base_url: str,
                       link: str) -> list[dict[str, Any]]:
    """A card per selected order of a guideline drug: where it stands for this patient, with a
    suggestion that creates the guideline's dose as a proposal where one was computed."""
    drugs = [d for d in (_ordered_drug(order, guideline) for order in orders) if d]
    if not drugs:
        return []  # no selected order is one of the guideline's drugs
    if result.blocked_by_validation:
        return [_blocked_card(result, base_url, link)] if _concerns(result) else _unlinked_card(result, base_url, link)
    if result.cannot_tell:
        return [_cannot_tell_card(result, base_url, link)]
    if not result.applicable:
        return _unlinked_card(result, base_url, link)
    cards = []
    for order in orders:
        drug = _ordered_drug(order, guideline)
        option = next((o for o in result.options if o.option == drug), None) if drug else None
        if option is None:
            continue  # not a drug this guideline ranks or proposes: no card
        cards.append(_order_card(option, result, order, base_url, link))
    return cards


_STATUS_WORDS = {
    "offered": "an option",
    "conditional": "an option with conditions",
    "blocked": "blocked",
    "excluded": "not offered (already failed)",
    "current": "already being given",
    "not-indicated": "not indicated",
    "not-applicable": "not applicable",
    "cannot-tell": "cannot tell (the record contradicts itself)",
}


def _order_card(option: OptionAssessment, result: PatientResult, order: dict[str, Any], base_url: str,
                link: str) -> dict[str, Any]:
    indicator, words = _screening(option)
    if option.status in ("excluded", "current", "not-indicated", "not-applicable", "cannot-tell") and indicator == "info":
        indicator = "warning"
    if option.status == "blocked":
        indicator = "critical"
    if option.rank is not None:
        tied = [o.label for o in result.options if o.ranked and o.rank == option.rank and o is not option
                and o.status in ("offered", "conditional", "blocked")]
        where = f"#{option.rank}" + (f" tied with {', '.join(tied)}" if tied else "") + f" ({option.standing})"
    else:
        where = _STATUS_WORDS.get(option.status, option.status)
    summary = f"{option.label}: {where}; {words}" if option.is_offered or option.status == "blocked" else f"{option.label}: {where}"
    if len(summary) >= SUMMARY_LIMIT and option.rank is not None:
        summary = f"{option.label}: #{option.rank}" + (" (tie)" if "tied" in where else "") + f"; {words}"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _fit(summary),
        "indicator": indicator,
        "detail": card_detail(result, link, option),
        "source": _source(result, base_url),
        "links": [{"label": "Full report for this patient (jdm-kg)", "url": link, "type": "absolute"}],
    }
    suggestions: list[dict[str, Any]] = []
    if option.is_offered:
        first = pending_first(option)
        computed = [d for d in option.doses if d.status == "computed"]
        if len(computed) == 1 and isinstance(order.get("id"), str):
            dose = computed[0]
            updated = _updated_order(order, dose, first, result)
            waiting = ", ".join(g.condition_label for g in option.gates if g.state in ("required", "blocking"))
            label = (f"After {waiting} screening: set {dose.regimen.drug_label} to {dose.amount()} (the guideline's dose)"
                     if first else f"Set {dose.regimen.drug_label} to {dose.amount()}, the guideline's dose for this child")
            suggestions.append({
                "label": _fit(label),
                "uuid": str(uuid.uuid4()),
                "isRecommended": not first,
                "actions": [{"type": "update", "description": _fit(f"Update the draft order {order['resourceType']}/"
                                                                   f"{order['id']}: {dose.summary()}", 300),
                             "resource": updated}],
            })
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    return card


def _updated_order(order: dict[str, Any], dose: Any, first: str, result: PatientResult) -> dict[str, Any]:
    """The selected draft MedicationRequest, whole, with the guideline's dose for this child in
    ``dosageInstruction`` (text, doseAndRate, timing) and what must happen first in a note: an
    ``update`` of the order being signed (its id kept), never a second order."""
    updated = json.loads(json.dumps(order))  # the whole resource, as CDS Hooks' update requires
    updated["dosageInstruction"] = [dosage_instruction(dose)]
    notes = list(updated.get("note") or [])
    if first:
        notes.append({"text": f"Not to be started before screening: {first}. jdm-kg (decision support, not a prescription)."})
    notes.append({"text": f"Dose from guideline {result.guideline_version} via jdm-kg ({dose.regimen.label}); "
                          "the prescriber decides."})
    updated["note"] = notes
    return checked(updated)


def check_feedback(body: Any) -> int:
    """The number of feedback entries after checking their shape (CDS Hooks 2.0 "Feedback")."""
    entries = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise Problem("bad-request", "feedback is {\"feedback\": [{card, outcome, outcomeTimestamp, ...}]}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("card"), str):
            raise Problem("bad-request", f"feedback[{i}] lacks the card's uuid ('card')")
        if entry.get("outcome") not in ("accepted", "overridden"):
            raise Problem("bad-request", f"feedback[{i}].outcome must be 'accepted' or 'overridden'")
        if not isinstance(entry.get("outcomeTimestamp"), str):
            raise Problem("bad-request", f"feedback[{i}] lacks outcomeTimestamp")
    return len(entries)


