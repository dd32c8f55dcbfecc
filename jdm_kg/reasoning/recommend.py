"""Turn a validated patient record into recommendations that follow the guideline's structure.

The clinical content is in the graph and the SPARQL files; this module runs the queries and
applies the guideline's structure as the graph describes it:

- **roles** (``jdm:role``, with each role's report section): the next-line bDMARDs, ranked
  among themselves; adjuncts to consider alongside; the escalation for severe, multi-system
  refractory disease. Nothing outside the next line is ranked with it.
- **ranking in words** (``jdm:RankingBand``, a jdm-kg policy): statements about a feature
  marked predominant decide first; one statement counts once per option; options in the same
  band tie.
- **history**: a drug that failed, a drug the patient is on now, a combination with a failed
  component: not offered as new, each with its episode and the policy it rests on.
- **screening history**: every result counts in date order; a positive blocks until a
  clinician records a clearance (a jdm-kg policy).

Everything that does not depend on the patient (options, bands, regimens, safety actions,
statement provenance, policies, gaps) is read once per guideline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from rdflib import PROV, RDF, RDFS, SKOS, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.knowledge.guideline import JDM, JDMG, Guideline, load_guideline, with_guideline
from jdm_kg.knowledge.queries import Row
from jdm_kg.reasoning.choose import query_engines
from jdm_kg.reasoning.dosing import ROUNDING_NOTE, BodyMeasures, ComputedDose, Regimen, compute_dose, reading
from jdm_kg.reasoning.engines import EngineChoice, QueryEngine, RdflibEngine, as_engine, oxigraph_answered
from jdm_kg.reasoning.validation import Issue, RecordRef, ValidationReport, set_aside_ill_typed, validate_graphs

__all__ = [
    "Provenance",
    "PolicyRef",
    "Reason",
    "Gate",
    "ScreeningEntry",
    "Action",
    "Episode",
    "Feature",
    "OptionAssessment",
    "PatientResult",
    "recommend_graph",
    "recommend_graphs",
    "assess_patient",
    "guideline_facts",
    "OFFERED_STATUSES",
    "CANNOT_TELL_STATUS",
    "DataNeeded",
    "APPLIES",
    "DOES_NOT_APPLY",
    "CANNOT_TELL",
    "NOT_ASSESSED",
]

#: Statuses of an option a clinician can act on (the others are "not offered" with a reason).
OFFERED_STATUSES = ("offered", "conditional")
#: An option's status when the answer hangs on a datum jdm-kg could not read: the status it would
#: have is kept in ``OptionAssessment.if_applies``.
CANNOT_TELL_STATUS = "cannot-tell"

# The jdm-kg policies this engine applies; each is a jdm:Policy node in ontology/guideline.ttl
# with the label and definition a report shows (a test checks that every one exists).
POLICY_BANDS = JDMG["policy-ranking-bands"]
POLICY_FAILED = JDMG["policy-exclude-failed-drug"]
POLICY_CURRENT = JDMG["policy-already-on"]
POLICY_COMPONENT = JDMG["policy-combination-component-failed"]
POLICY_SCREENING = JDMG["policy-screening-gate"]
POLICY_MEASURES = JDMG["policy-measurement-recency"]
POLICY_MULTISYSTEM = JDMG["policy-multisystem-question"]
POLICY_ROUNDING = JDMG["policy-dose-rounding"]
POLICY_FAILURE = JDMG["policy-failure-reading"]
POLICY_SPLIT = JDMG["policy-equal-daily-split"]
POLICY_ROLES = JDMG["policy-option-roles"]
POLICY_ILD = JDMG["policy-ild-counts-when-present"]
POLICY_FEATURES_TIE = JDMG["policy-features-tie"]
POLICY_YOUNG = JDMG["policy-young-child-caution"]
POLICY_CANNOT_TELL = JDMG["policy-cannot-tell"]
POLICY_CONTRADICTION = JDMG["policy-contradictory-episodes"]
POLICY_IRIS = (POLICY_BANDS, POLICY_FAILED, POLICY_CURRENT, POLICY_COMPONENT, POLICY_SCREENING, POLICY_MEASURES,
               POLICY_MULTISYSTEM, POLICY_ROUNDING, POLICY_FAILURE, POLICY_SPLIT, POLICY_ROLES, POLICY_ILD,
               POLICY_FEATURES_TIE, POLICY_YOUNG, POLICY_CANNOT_TELL, POLICY_CONTRADICTION)

#: Whether the guideline applies, in three values (and "not-assessed": a record with violations).
APPLIES, DOES_NOT_APPLY, CANNOT_TELL, NOT_ASSESSED = "applies", "does-not-apply", "cannot-tell", "not-assessed"
#: The settings this engine reads from the jdm:Policy nodes (columns of queries/policy.rq, each a
#: jdm: property), with the policy that carries each in ontology/guideline.ttl. Each is a whole
#: number of days or manifestations. `jdm-kg check` reads this and POLICY_IRIS: it reports a
#: policy or setting that is missing, and a setting that is not a positive whole number.
POLICY_SETTINGS = {"screeningMaxAgeDays": POLICY_SCREENING, "measurementMaxAgeDays": POLICY_MEASURES,
                   "multiSystemMinManifestations": POLICY_MULTISYSTEM, "cautionAgeYears": POLICY_YOUNG,
                   "cautionWeightKg": POLICY_YOUNG}
#: The dose bases a dose is worked out from, each with the denominator its jdm:doseUnit must have
#: ("mg/kg" for a dose per kg). The QC query queries/qc/dose-unit-basis.rq reports a regimen whose
#: unit and basis disagree (a test keeps its pairs the same as these).
DOSE_BASES = {str(JDM.PerKgBodyWeight): "kg", str(JDM.PerM2BodySurfaceArea): "m2"}
GAP_AFTER_POSITIVE = str(JDMG["gap-after-positive-screening"])
#: The statement a report puts first when the guideline names no option for a feature.
REFERRAL = str(JDMG["care-early-expert-consultation"])
GAP_SWITCH_IN_CLASS = str(JDMG["gap-switch-within-class"])
GAP_LOWER_AGE_WEIGHT = str(JDMG["gap-lower-age-weight"])

REFRACTORY = str(JDMG.RefractoryMultiSystemDisease)


def _s(row: Row, key: str) -> str | None:
    value = row.get(key)
    return str(value) if value is not None else None


def _d(row: Row, key: str) -> Decimal | None:
    """The number in ``row[key]``, in canonical form (``43.0`` and ``43`` both give ``43``), so
    that results do not depend on how a store writes numbers back."""
    value = row.get(key)
    if value is None:
        return None
    number = Decimal(str(value))
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def _b(row: Row, key: str) -> bool:
    value = row.get(key)
    return bool(value.toPython()) if isinstance(value, Literal) else False


def _split(row: Row, key: str) -> list[str]:
    value = _s(row, key)
    return sorted(v for v in value.split("|") if v) if value else []


def _date(node: Node | None) -> date | None:
    if isinstance(node, Literal) and isinstance(node.toPython(), date):
        return node.toPython()  # type: ignore[no-any-return]
    return None


def _iso(value: date | None) -> str:
    return value.isoformat() if value else "undated"


@dataclass(frozen=True)
class Provenance:
    """Where a statement comes from: quote, section, citation markers, sources, evidence."""

    statement: str
    label: str
    quote: str | None
    section: str | None
    markers: list[str]
    sources: list[dict[str, str]]
    related_evidence: list[dict[str, str]]
    evidence_types: list[str]
    populations: list[str]
    verification: str | None
    derivation: str | None
    note: str | None
    rationales: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}

    @property
    def flags(self) -> list[str]:
        """Evidence labels a reader must see: evidence types, population, UNVERIFIED."""
        out = list(self.evidence_types)
        if self.populations:
            out.append("population: " + ", ".join(self.populations))
        if self.verification == "unverified":
            out.append("UNVERIFIED")
        return out


@dataclass(frozen=True)
class PolicyRef:
    """A jdm-kg policy (not guideline content) that a line of a report rests on."""

    iri: str
    label: str
    definition: str

    @property
    def tag(self) -> str:
        return f"jdm-kg policy: {self.label}"

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.iri, "label": self.label}


@dataclass(frozen=True)
class Reason:
    """A reason for or against an option, tied to a patient fact and a guideline statement, or
    to a jdm-kg policy."""

    direction: str  # "for" or "against"
    text: str
    statement: Provenance | None = None
    patient_fact: dict[str, str] | None = None
    policy: PolicyRef | None = None
    more: str | None = None  # said after the text with --details (a gap's definition)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"direction": self.direction, "text": self.text}
        if self.more:
            out["more"] = self.more
        if self.patient_fact:
            out["patientFact"] = self.patient_fact
        if self.statement:
            out["statement"] = self.statement.as_dict()
        if self.policy:
            out["policy"] = self.policy.as_dict()
        return out


@dataclass(frozen=True)
class ScreeningEntry:
    """One screening result or clearance on record."""

    kind: str  # "result" or "clearance"
    condition: str
    date: date | None
    result: str | None = None  # "positive", "negative", "indeterminate", ...
    result_iri: str | None = None
    test: str | None = None
    cleared_by: str | None = None
    note: str | None = None
    test_iri: str | None = None

    def text(self) -> str:
        if self.kind == "clearance":
            who = f" by {self.cleared_by}" if self.cleared_by else ""
            return f"clearance{who} {_iso(self.date)}" + (f" ({self.note})" if self.note else "")
        test = f" ({self.test})" if self.test else ""
        return f"{self.result}{test} {_iso(self.date)}"

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in {"kind": self.kind, "result": self.result, "test": self.test,
                                 "clearedBy": self.cleared_by, "note": self.note}.items() if v}
        out["date"] = self.date.isoformat() if self.date else None
        return out


@dataclass(frozen=True)
class Gate:
    """The screening state of one condition for one patient, from the whole screening history."""

    condition: str
    condition_label: str
    state: str  # "passed", "cleared" (a positive cleared by a clinician), "required", "blocking"
    text: str
    statement: Provenance
    policy: PolicyRef
    history: tuple[ScreeningEntry, ...] = ()
    result_date: str | None = None
    need: str = ""  # what must happen first: "screen first", "retest", "blocked", "cleared by a clinician"; "" when passed
    why: str = ""  # in a few words: "indeterminate", "negative 2025-03-01, 610 days old", "positive 2026-10-01"

    @property
    def words(self) -> str:
        """The state next to an option: 'screen first: tuberculosis', 'retest: hepatitis B (indeterminate)',
        'blocked: hepatitis B positive 2026-10-01'; '' when passed."""
        if not self.need:
            return ""
        if self.need == "blocked":
            return f"blocked: {self.condition_label} {self.why}".rstrip()
        return f"{self.need}: {self.condition_label}" + (f" ({self.why})" if self.why else "")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.condition_label, "state": self.state, "text": self.text}
        if self.need:
            out["needed"] = self.words
        if self.result_date:
            out["resultDate"] = self.result_date
        out["history"] = [e.as_dict() for e in self.history]
        out["statement"] = self.statement.statement
        out["policy"] = self.policy.as_dict()
        return out


def gate_words(gates: list[Gate] | tuple[Gate, ...]) -> str:
    """The words of gates that did not pass, those alike said once: 'screen first: hepatitis B,
    hepatitis C, tuberculosis (no result on record); retest: ...'."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for g in gates:
        if g.need:
            grouped.setdefault((g.need, g.why), []).append(g.condition_label)
    out = []
    for (need, why), names in grouped.items():
        if need == "blocked":
            out.append("; ".join(f"blocked: {n} {why}".rstrip() for n in names))
        else:
            out.append(f"{need}: {', '.join(names)}" + (f" ({why})" if why else ""))
    return "; ".join(out)


@dataclass(frozen=True)
class Action:
    """A safety or care action for an option."""

    kind: str
    timing: str | None
    text: str
    items: list[str]
    statement: Provenance
    only_if_on: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "timing": self.timing,
            "text": self.text,
            "items": self.items,
            "quote": self.statement.quote,
            "statement": self.statement.statement,
        }


@dataclass(frozen=True)
class Episode:
    """One treatment episode from the record."""

    drug: str | None
    label: str
    outcome: str | None
    outcome_label: str
    failure: bool
    current: bool
    start: date | None
    end: date | None
    node: str | None = None
    outcome_text: str | None = None  # a stop reason jdm-kg could not read
    jak: bool = False  # the drug is a JAK inhibitor
    known: bool = True  # the guideline graph knows the drug

    @property
    def period(self) -> str:
        if self.start and not self.end:
            return f"from {self.start.isoformat()}" + ("" if self.current else " (end not recorded)")
        return f"{_iso(self.start)} to {_iso(self.end)}" if (self.start or self.end) else "dates not recorded"

    def text(self) -> str:
        said = ("" if not self.outcome_text else f" (stop reason {self.outcome_text!r} not read)" if self.outcome is None
                else f" (stop reason {self.outcome_text!r}, read so by jdm-kg)")
        return f"{self.label} {self.period}: {self.outcome_label}{said}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"drug": self.label, "outcome": self.outcome_label, "period": self.period,
                               "failure": self.failure, "current": self.current}
        if self.outcome_text:
            out["stopReasonAsGiven"] = self.outcome_text
        if self.drug:
            out["drugIri"] = self.drug
        if self.node:
            out["episode"] = self.node
        return out


@dataclass(frozen=True)
class Feature:
    """A manifestation recorded for the patient."""

    manifestation: str
    label: str
    predominant: bool
    stated: bool
    basis: PolicyRef | None = None  # the policy a reader took it as predominant by
    counts: str | None = None  # "jdm-kg policy: ..." when it ranks without being predominant (ILD present)

    def text(self) -> str:
        if self.counts:
            return f"{self.label} (present; it counts: {self.counts})"
        if self.predominant and self.basis is not None:
            return f"{self.label} (predominant: {self.basis.tag})"
        return f"{self.label} (predominant)" if self.predominant else self.label


@dataclass(frozen=True)
class DataNeeded:
    """What jdm-kg could not read and an answer hangs on: the datum, the question to ask, what
    the answer would change, the record entries concerned and the kind of FHIR resource that
    would carry it."""

    datum: str  # "medication", "stop-reason", "contradiction", "manifestations"
    question: str
    changes: str
    entries: tuple[str, ...] = ()
    resource_type: str = "MedicationStatement"  # the kind of resource, unless the entries say (fhir_type)
    codes: tuple[str, ...] = ()  # SYSTEM|CODE as given, for a medication

    @property
    def fhir_type(self) -> str:
        """The kind of FHIR resource that would carry the datum: the entries' own (a
        MedicationRequest the record sent), else :attr:`resource_type`."""
        for entry in self.entries:
            found = re.search(r"(?:^|/)(MedicationRequest|MedicationStatement|Condition|Observation)/[^/]+$", entry)
            if found:
                return found[1]
        return self.resource_type

    def text(self) -> str:
        return f"{self.question} {self.changes}".strip()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"datum": self.datum, "question": self.question, "changes": self.changes,
                               "entries": list(self.entries), "resourceType": self.fhir_type}
        if self.codes:
            out["codes"] = list(self.codes)
        return out


@dataclass
class OptionAssessment:
    """jdm-kg's verdict on one option for one patient."""

    option: str
    label: str
    role: str
    role_iri: str = ""
    section: int = 0
    section_heading: str = ""
    ranked: bool = False
    status: str = "offered"  # offered, conditional, blocked, excluded, current, not-indicated, not-applicable
    rank: int | None = None
    standing: str | None = None  # band label (ranked options only)
    standing_iri: str | None = None
    standing_order: int | None = None
    summary: str = ""  # the one-line reason a report prints
    brief: str = ""  # the reason in a few words, for the one-screen report ('particularly effective for ...')
    notes: list[str] = field(default_factory=list)  # facts from the record said on the option's line (also in summary)
    summary_statement: Provenance | None = None  # the statement that one-line reason quotes
    derivation: str | None = None  # where the option itself is jdm-kg's reading of the guideline
    dose_statements: list[Provenance] = field(default_factory=list)  # the dosing statements behind the doses
    status_policy: PolicyRef | None = None  # the policy behind a status other than "offered"
    band_policy: PolicyRef | None = None  # the policy behind the standing (ranked options)
    reasons: list[Reason] = field(default_factory=list)
    doses: list[ComputedDose] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    caveats: list[Provenance] = field(default_factory=list)
    gaps: list[dict[str, str]] = field(default_factory=list)
    section_policy: PolicyRef | None = None  # the policy behind the report section, where jdm-kg wrote its heading
    # ranked options: the best band order for each feature that counts (for the features-tie policy), and
    # whether a sentence calls the option less effective for a feature that counts
    feature_bands: dict[str, int] = field(default_factory=dict)
    against_counting: bool = False
    if_applies: str | None = None  # status "cannot-tell": the status the option would have
    if_applies_policy: PolicyRef | None = None  # ... and the policy behind that status (what-if lines quote it)

    @property
    def screening_state(self) -> str:
        """What must happen first for this option, gate by gate, when not passed ('screen first:
        tuberculosis; retest: hepatitis B (indeterminate ...)'); '' when every gate passed or none applies."""
        return gate_words(self.gates)

    @property
    def reasons_for(self) -> list[Reason]:
        return [r for r in self.reasons if r.direction == "for"]

    @property
    def reasons_against(self) -> list[Reason]:
        return [r for r in self.reasons if r.direction == "against"]

    @property
    def is_offered(self) -> bool:
        return self.status in OFFERED_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "label": self.label,
            "role": self.role,
            "section": self.section_heading,
            "status": self.status,
            **({"ifApplies": self.if_applies} if self.if_applies else {}),
            "statusPolicy": self.status_policy.as_dict() if self.status_policy else None,
            "standingPolicy": self.band_policy.as_dict() if self.band_policy else None,
            "rank": self.rank,
            "standing": self.standing,
            "standingBand": self.standing_iri,
            "summary": self.summary,
            "brief": self.brief,
            "derivation": self.derivation,
            "reasonsFor": [r.as_dict() for r in self.reasons_for],
            "reasonsAgainst": [r.as_dict() for r in self.reasons_against],
            "doses": [_dose_dict(d) for d in self.doses],
            "gates": [g.as_dict() for g in self.gates],
            "screeningState": self.screening_state or None,
            "actions": [a.as_dict() for a in self.actions],
            "caveats": [{"statement": c.statement, "text": c.label, "quote": c.quote} for c in self.caveats],
            "gaps": self.gaps,
        }


def _dose_dict(dose: ComputedDose) -> dict[str, Any]:
    r = dose.regimen
    out: dict[str, Any] = {
        "drug": r.drug_label,
        "regimen": r.iri,
        "regimenLabel": r.label,
        "status": dose.status,
        "summary": dose.summary(),
        "route": r.route,
        "schedule": r.schedule_text,
    }
    if dose.status == "computed":
        out.update(low=str(dose.low), high=str(dose.high), unit=dose.unit, basis=dose.basis_text,
                   formula=dose.formula, rounding=ROUNDING_NOTE)
        if dose.uncapped_low is not None:
            out.update(uncappedLow=str(dose.uncapped_low), uncappedHigh=str(dose.uncapped_high),
                       cap=str(r.max_dose), capUnit=r.max_dose_unit)
        if r.number_of_doses:
            out["numberOfDoses"] = r.number_of_doses
        if dose.per_day_low is not None:
            out.update(perDayLow=str(dose.per_day_low), perDayHigh=str(dose.per_day_high), days=r.administration_days)
        if r.interval_min is not None:
            out["interval"] = {"min": str(r.interval_min), "max": str(r.interval_max), "unit": r.interval_unit}
    if dose.notes:
        out["notes"] = dose.notes
    if r.statement:
        out["statement"] = r.statement
    return out


@dataclass
class PatientResult:
    """Everything jdm-kg says about one patient record."""

    source: str
    record: RecordRef
    guideline_version: str
    as_of: date
    issues: list[Issue]
    applicable: bool
    applicability: str
    jak_failures: list[dict[str, str]]
    body: BodyMeasures | None
    options: list[OptionAssessment]
    caveats: list[Provenance]
    features: list[Feature] = field(default_factory=list)
    history: list[Episode] = field(default_factory=list)
    screening: list[Gate] = field(default_factory=list)
    notices: list[Reason] = field(default_factory=list)  # what the report says first (gaps, questions)
    next_line: Provenance | None = None
    rationales: list[Provenance] = field(default_factory=list)
    shared_actions: list[Action] = field(default_factory=list)
    document_gaps: list[dict[str, str]] = field(default_factory=list)
    policies: list[PolicyRef] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    age_years: Decimal | None = None  # at the record date: from the birth date (whole years), else as recorded
    age_text: str | None = None  # "12 y", "18 mo"
    sex: str | None = None
    weight_recorded: Decimal | None = None  # the latest weight in kg, even one too old to dose from
    held_back: bool = False  # every next-line biologic waits for a screening (said first)
    #: Hypothetical facts this result assumes (``recommend --assume``; empty: the record as written),
    #: each ``{"assume": "FACT=VALUE", "text": ...}`` (see :mod:`jdm_kg.reasoning.whatif`).
    assumptions: list[dict[str, Any]] = field(default_factory=list)
    #: The shortest what-if of each option not offered or not first, where asked for (report
    #: details, web page): option IRI -> a :class:`~jdm_kg.reasoning.whatif.WhatIf`, or why none.
    whatif: dict[str, Any] = field(default_factory=dict)
    state: str = ""  # applies, does-not-apply, cannot-tell, not-assessed (APPLIES, ...)
    data_needed: list[DataNeeded] = field(default_factory=list)  # when state is cannot-tell

    @property
    def hypothetical(self) -> bool:
        return bool(self.assumptions)

    @property
    def cannot_tell(self) -> bool:
        return self.state == CANNOT_TELL

    @property
    def cautions(self) -> list[Reason]:
        """The cautions said first for this child (under the young-child policy's age or weight),
        which every output carries beside any dose."""
        return [n for n in self.notices if n.policy is not None and n.policy.iri == str(POLICY_YOUNG)]

    @property
    def blocked_by_validation(self) -> bool:
        return any(i.severity == "violation" for i in self.issues)

    def section(self, order: int) -> list[OptionAssessment]:
        return [o for o in self.options if o.section == order]

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] | None = None
        if self.body is not None:
            body = {
                "weightKg": str(self.body.weight_kg) if self.body.weight_kg is not None else None,
                "heightCm": str(self.body.height_cm) if self.body.height_cm is not None else None,
                "weightProblem": self.body.weight_problem,
                "heightProblem": self.body.height_problem,
            }
            bsa = self.body.bsa
            if bsa is not None:
                body["bsaM2"] = str(bsa.quantize(Decimal("0.01")))
                body["bsaFormula"] = "Mosteller 1987: sqrt(height cm × weight kg / 3600)"
        sections: dict[str, list[str]] = {}
        for o in self.options:
            sections.setdefault(o.section_heading, []).append(o.option)
        hypothetical: dict[str, Any] = {"hypothetical": True, "assumptions": self.assumptions} if self.assumptions else {}
        return {
            **hypothetical,
            "source": self.source,
            "patientId": self.record.patient_id,
            "patient": str(self.record.node),
            "guidelineVersion": self.guideline_version,
            "asOf": self.as_of.isoformat(),
            "applicable": self.applicable,
            "applicability": self.state,
            "applicabilityText": self.applicability,
            "dataNeeded": [d.as_dict() for d in self.data_needed],
            "jakInhibitorFailures": self.jak_failures,
            "issues": [i.__dict__ for i in self.issues],
            "age": self.age_text,
            "sex": self.sex,
            "features": [{"manifestation": f.label, "predominant": f.predominant,
                          **({"predominanceBasis": f.basis.as_dict()} if f.basis else {})} for f in self.features],
            "history": [e.as_dict() for e in self.history],
            "body": body,
            "notices": [r.as_dict() for r in self.notices],
            "nextLine": self.next_line.as_dict() if self.next_line else None,
            "screening": [g.as_dict() for g in self.screening],
            "sections": sections,
            "ties": self.ties,
            "options": [o.as_dict() for o in self.options],
            "sharedActions": [a.as_dict() for a in self.shared_actions],
            "caveats": [{"statement": c.statement, "text": c.label, "quote": c.quote} for c in self.caveats],
            "guidelineGaps": self.document_gaps,
            "policies": [p.as_dict() for p in self.policies],
        }


# --------------------------------------------------------------------------------------
# Patient-independent facts, computed once per guideline


@dataclass(frozen=True)
class _Band:
    iri: str
    label: str
    order: int
    side: str | None
    level: str | None
    needs_predominant: bool
    is_default: bool
    policy: str


@dataclass(frozen=True)
class _Candidate:
    option: str
    label: str
    role: str
    role_label: str
    section: int
    heading: str
    ranked: bool
    components: tuple[str, ...]
    classes: tuple[str, ...] = ()
    derivation: str | None = None
    role_from: str | None = None


class _GuidelineFacts:
    """Cached answers to the patient-independent queries over one compiled guideline."""

    def __init__(self, guideline: Guideline, engine: QueryEngine) -> None:
        self.guideline = guideline
        self.graph = guideline.graph
        self.select = engine.select
        self._provenance: dict[str, Provenance] = {}
        self._per_option: dict[tuple[str, str], Any] = {}
        self._labels: dict[str, str] = {}
        self._types: dict[tuple[str, str], bool] = {}
        self.policies: dict[str, PolicyRef] = {}
        settings: dict[str, Decimal] = {}
        for row in self.select("policy"):
            iri = str(row["policy"])
            self.policies[iri] = PolicyRef(iri, str(row["label"]), str(row["definition"]))
            for key in POLICY_SETTINGS:
                if key in row:
                    settings[key] = _d(row, key)  # type: ignore[assignment]
        missing = [str(p) for p in POLICY_IRIS if str(p) not in self.policies]
        missing += [k for k in POLICY_SETTINGS if k not in settings]
        if missing:  # an edit removed them: the guideline, not the patient, is unusable
            raise InputError("guideline", "the guideline graph lacks jdm-kg policies or settings it needs: "
                             + ", ".join(missing) + "; run jdm-kg check, and restore them in ontology/guideline.ttl")
        self.screening_max_age_days = int(settings["screeningMaxAgeDays"])
        self.measurement_max_age_days = int(settings["measurementMaxAgeDays"])
        self.multisystem_min = int(settings["multiSystemMinManifestations"])
        self.caution_age_years = int(settings["cautionAgeYears"])
        self.caution_weight_kg = int(settings["cautionWeightKg"])
        # Readings the engine applies that the graph spells out (each under a jdm:Policy):
        # manifestations that count when present (with the statement the policy rests on),
        # the verb phrases of the preference levels, the quote's own words for whom a statement
        # is for, the policy behind a report section, and gaps said when a screening is positive.
        g = self.graph
        self.counts_when_present: dict[str, PolicyRef] = {}
        self.counts_reason: dict[str, Provenance] = {}
        for policy_node, manifestation in sorted(g.subject_objects(JDM.countsWhenPresent)):
            if str(policy_node) in self.policies:
                self.counts_when_present[str(manifestation)] = self.policies[str(policy_node)]
                source = g.value(policy_node, PROV.wasDerivedFrom)
                if source is not None:
                    self.counts_reason[str(manifestation)] = self.provenance(str(source))
        self.verb_phrases = {str(level): sorted(str(p) for p in g.objects(level, JDM.verbPhrase))
                             for level in g.subjects(RDF.type, JDM.PreferenceLevel)}
        self.scope_text = {str(st): str(text) for st, text in g.subject_objects(JDM.scopeText)}
        self.role_policy = {str(role): self.policies[str(policy)] for role, policy in g.subject_objects(JDM.underPolicy)
                            if (role, RDF.type, JDM.OptionRole) in g and str(policy) in self.policies}
        self.positive_gaps: list[tuple[dict[str, str], frozenset[str], frozenset[str]]] = []
        for gap in sorted(set(g.subjects(JDM.saidWhenPositive, None))):
            label, definition = g.value(gap, RDFS.label), g.value(gap, SKOS.definition)
            self.positive_gaps.append((
                {"gap": str(gap), "label": str(label or gap), "text": str(definition or "")},
                frozenset(str(c) for c in g.objects(gap, JDM.saidWhenPositive)),
                frozenset(str(o) for o in g.objects(gap, JDM.aboutOption))))
        lower = [gap for gap in g.subjects(RDF.type, JDM.GuidelineGap) if str(gap) == GAP_LOWER_AGE_WEIGHT]
        self.lower_bound_gap = ({"gap": str(lower[0]), "label": str(g.value(lower[0], RDFS.label)),
                                 "text": str(g.value(lower[0], SKOS.definition))} if lower else None)
        self.bands = [
            _Band(str(r["band"]), str(r["label"]), int(r["order"]), _s(r, "side"), _s(r, "level"),  # type: ignore[call-overload]
                  _b(r, "needsPredominant"), _b(r, "isDefault"), str(r["policy"]))
            for r in self.select("ranking-bands")
        ]
        if not any(b.is_default for b in self.bands):
            raise ValueError("the guideline graph has no default jdm:RankingBand (jdm:bandIsDefault true)")
        self.candidates = [
            _Candidate(str(r["option"]), str(r["optionLabel"]), str(r["role"]), str(r["roleLabel"]),
                       int(r["sectionOrder"]), str(r["sectionHeading"]), _b(r, "ranked"),  # type: ignore[call-overload]
                       tuple(_split(r, "components")), tuple(_split(r, "classes")), _s(r, "derivation"),
                       _s(r, "roleFrom"))
            for r in self.select("candidate-options")
        ]
        # option -> (side, level label, manifestation label, manifestation, statement)
        self.named_for: dict[str, list[tuple[str, str, str, str, str]]] = {}
        for r in self.select("option-statements"):
            self.named_for.setdefault(str(r["option"]), []).append(
                (str(r["side"]), str(r["levelLabel"]), str(r["manifestationLabel"]), str(r["manifestation"]),
                 str(r["statement"])))
        self.document_gaps: list[dict[str, str]] = []
        self.feature_gaps: dict[str, list[dict[str, str]]] = {}
        for r in self.select("guideline-gaps"):
            gap = {"gap": str(r["gap"]), "label": str(r["label"]), "text": str(r["definition"])}
            if "manifestation" in r:
                self.feature_gaps.setdefault(str(r["manifestation"]), []).append(gap)
            elif "aboutOption" not in r and not _b(r, "onRegimen") and gap not in self.document_gaps:
                self.document_gaps.append(gap)
        # condition -> the tests a policy requires for it (hepatitis B: HBsAg and anti-HBc)
        self.required_tests: dict[str, list[tuple[str, str, str]]] = {}
        for r in self.select("required-tests"):
            self.required_tests.setdefault(str(r["condition"]), []).append(
                (str(r["test"]), str(r["testLabel"]), str(r["policy"])))
        # The guideline's own recommendation (the next line), shown with its rationale.
        recommendations = sorted(self.graph.subjects(RDF.type, JDM.Recommendation))
        self.next_line = self.provenance(str(recommendations[0])) if recommendations else None

    def policy(self, iri: URIRef) -> PolicyRef:
        return self.policies[str(iri)]

    def is_a(self, iri: str, cls: URIRef) -> bool:
        """Whether the guideline graph types ``iri`` as ``cls`` (a JAK inhibitor, a drug), remembered."""
        key = (iri, str(cls))
        if key not in self._types:
            self._types[key] = (URIRef(iri), RDF.type, cls) in self.graph
        return self._types[key]

    def source(self, iri: str) -> dict[str, str]:
        rows = self.select("source", source=URIRef(iri))
        out = {"iri": iri}
        if rows:
            out.update({k: str(v) for k, v in rows[0].items() if k != "source"})
        return out

    def provenance(self, statement: str) -> Provenance:
        if statement not in self._provenance:
            rows = self.select("statement-provenance", statement=URIRef(statement))
            row = rows[0] if rows else {}
            self._provenance[statement] = Provenance(
                statement=statement,
                label=_s(row, "label") or statement,
                quote=_s(row, "quote"),
                section=_s(row, "section"),
                markers=_split(row, "markers"),
                sources=[self.source(s) for s in _split(row, "sources")],
                related_evidence=[self.source(s) for s in _split(row, "relatedEvidence")],
                evidence_types=_split(row, "evidenceTypes"),
                populations=_split(row, "populations"),
                verification=_s(row, "verification"),
                derivation=_s(row, "derivation"),
                note=_s(row, "note"),
                rationales=_split(row, "rationales"),
            )
        return self._provenance[statement]

    def _cached(self, kind: str, option: str, compute: Any) -> Any:
        key = (kind, option)
        if key not in self._per_option:
            self._per_option[key] = compute()
        return self._per_option[key]

    def regimens(self, option: str) -> list[Regimen]:
        def compute() -> list[Regimen]:
            out = []
            for row in self.select("regimen", option=URIRef(option)):
                basis = _s(row, "basis")
                out.append(
                    Regimen(
                        iri=str(row["regimen"]),
                        drug=str(row["drug"]),
                        drug_label=str(row["drugLabel"]),
                        label=str(row["regimenLabel"]),
                        dose_given=bool(row["doseGiven"].toPython()),  # type: ignore[union-attr]
                        dose_min=_d(row, "doseMin"),
                        dose_max=_d(row, "doseMax"),
                        dose_unit=_s(row, "doseUnit"),
                        basis=DOSE_BASES.get(basis or ""),
                        route=_s(row, "routeLabel"),
                        interval_min=_d(row, "intervalMin"),
                        interval_max=_d(row, "intervalMax"),
                        interval_unit=_s(row, "intervalUnit"),
                        number_of_doses=int(row["numberOfDoses"]) if "numberOfDoses" in row else None,  # type: ignore[call-overload]
                        administration_days=int(row["administrationDays"]) if "administrationDays" in row else None,  # type: ignore[call-overload]
                        schedule_text=_s(row, "scheduleText"),
                        max_dose=_d(row, "maxDose"),
                        max_dose_unit=_s(row, "maxDoseUnit"),
                        max_dose_source=self.label(str(row["maxDoseSource"])) if "maxDoseSource" in row else None,
                        statement=_s(row, "statement"),
                    )
                )
            return out

        return self._cached("regimens", option, compute)  # type: ignore[no-any-return]

    def actions(self, option: str) -> list[tuple[Action, list[str]]]:
        def compute() -> list[tuple[Action, list[str]]]:
            out = []
            for row in self.select("safety-actions", option=URIRef(option)):
                kind = "safety" if row["kind"] == JDM.SafetyStatement else "care"
                action = Action(
                    kind=kind,
                    timing=_s(row, "timingLabel"),
                    text=str(row["action"]),
                    items=_split(row, "items"),
                    statement=self.provenance(str(row["statement"])),
                    only_if_on=_s(row, "onlyIfOn"),
                )
                out.append((action, _split(row, "screenings")))
            return out

        return self._cached("actions", option, compute)  # type: ignore[no-any-return]

    def caveats(self, option: str) -> list[Provenance]:
        return self._cached(  # type: ignore[no-any-return]
            "caveats",
            option,
            lambda: [self.provenance(str(r["caveat"])) for r in self.select("caveats", option=URIRef(option))],
        )

    def gaps(self, option: str) -> list[dict[str, str]]:
        return self._cached(  # type: ignore[no-any-return]
            "gaps",
            option,
            lambda: [
                {"gap": str(r["gap"]), "label": str(r["label"]), "text": str(r["definition"])}
                for r in self.select("gaps", option=URIRef(option))
            ],
        )

    def label(self, iri: str) -> str:
        text = self._labels.get(iri)
        if text is None:
            value = self.graph.value(URIRef(iri), RDFS.label)
            text = self._labels[iri] = str(value) if value is not None else iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
        return text


@cache
def guideline_facts(guideline: Guideline, view: QueryEngine | None = None) -> _GuidelineFacts:
    """The patient-independent answers (options, bands, regimens, safety actions, provenance,
    policies) for ``guideline``, cached; asked of ``view`` (an engine over the guideline
    alone), by default rdflib."""
    return _GuidelineFacts(guideline, view or RdflibEngine(guideline.graph))


# --------------------------------------------------------------------------------------
# Per patient


def _body_measures(rows: list[Row], as_of: date, max_age_days: int, policy: PolicyRef) -> BodyMeasures:
    row = rows[0] if rows else {}

    def usable(prefix: str, unit: str, label: str) -> tuple[Decimal | None, str | None, date | None]:
        value = _d(row, f"{prefix}Value")
        when = _date(row.get(f"{prefix}Date"))
        if value is None:
            return None, f"no {label} recorded", None
        if _s(row, f"{prefix}Unit") != unit:
            return None, f"{label} is not in {unit}", when
        if when is None:
            return None, f"{label} has no date, so it may be out of date: record when it was measured ({policy.tag})", None
        age = (as_of - when).days
        if age > max_age_days:
            return None, (f"{label} from {when.isoformat()} is {age} days old, over {max_age_days} days: "
                          f"measure again ({policy.tag})"), when
        return value, None, when

    weight, weight_problem, weight_date = usable("weight", "kg", "body weight")
    height, height_problem, height_date = usable("height", "cm", "body height")
    return BodyMeasures(
        weight, height, weight_problem, height_problem, weight_date, height_date,
        weight_node=row.get("weight"), height_node=row.get("height"),
    )


def _screening_history(rows: list[Row]) -> dict[str, list[ScreeningEntry]]:
    out: dict[str, list[ScreeningEntry]] = {}
    for row in rows:
        condition = str(row["condition"])
        entry = ScreeningEntry(
            kind=str(row["kind"]),
            condition=condition,
            date=_date(row.get("date")),
            result=_s(row, "resultLabel"),
            result_iri=_s(row, "result"),
            test=_s(row, "testLabel"),
            cleared_by=_s(row, "clearedBy"),
            note=_s(row, "note"),
            test_iri=_s(row, "test"),
        )
        out.setdefault(condition, []).append(entry)
    for entries in out.values():  # oldest first; undated ones first (they cannot be placed in time)
        entries.sort(key=lambda e: (e.date is not None, e.date or date.min, e.kind, e.result or "", e.test or ""))
    return out


def _gate(condition: str, label: str, entries: list[ScreeningEntry], as_of: date, facts: _GuidelineFacts,
          statement: Provenance) -> Gate:
    """The state of one screened condition from its whole history (jdm-kg policy)."""
    policy = facts.policy(POLICY_SCREENING)
    max_age = facts.screening_max_age_days
    results = [e for e in entries if e.kind == "result"]
    clearances = [e for e in entries if e.kind == "clearance"]
    history = tuple(entries)

    def cleared(positive: ScreeningEntry) -> ScreeningEntry | None:
        for c in clearances:
            if positive.date is None or (c.date is not None and c.date >= positive.date):
                return c
        return None

    positives = [r for r in results if r.result_iri == str(JDM.Positive)]
    uncleared = [p for p in positives if cleared(p) is None]
    if uncleared:
        first = uncleared[-1]
        later = [r for r in results if r.date and first.date and r.date > first.date]
        tail = (f"; the later {later[-1].text()} does not clear it" if later else "")
        which = f" ({_short_test(first.test)})" if first.test else ""  # the test, where the record says it
        text = (f"{label}: positive{which} on {_iso(first.date)}{tail}: blocked until a clinician assesses it and "
                f"records a clearance ({policy.tag}){_after_positive(facts)}")
        return Gate(condition, label, "blocking", text, statement, policy, history,
                    first.date.isoformat() if first.date else None, "blocked", f"positive{which} {_iso(first.date)}")
    if not results:
        return Gate(condition, label, "required", f"{label}: no result on record: screen before starting", statement,
                    policy, history, None, "screen first", "no result on record")
    latest = results[-1]
    when = latest.date
    cleared_note = cleared_why = ""
    for p in positives:
        c = cleared(p)
        if c is not None:
            cleared_note = f"; positive {_iso(p.date)}, {c.text()}{_after_positive(facts)}"
            cleared_why = f"positive {_iso(p.date)}"
    if latest.result_iri == str(JDM.Positive):  # a cleared positive is the latest result
        return Gate(condition, label, "cleared", f"{label}: cleared by a clinician, not by a negative test{cleared_note} "
                    f"({policy.tag})", statement, policy, history, when.isoformat() if when else None,
                    "cleared by a clinician", cleared_why)
    if latest.result_iri != str(JDM.Negative):
        return Gate(condition, label, "required",
                    f"{label}: {latest.text()}: retest before starting ({policy.tag})", statement, policy, history,
                    when.isoformat() if when else None, "retest", latest.text())
    if when is None:
        return Gate(condition, label, "required",
                    f"{label}: negative but undated: retest or record the date ({policy.tag})", statement, policy, history,
                    None, "retest", "negative, undated")
    age = (as_of - when).days
    if age > max_age:
        return Gate(condition, label, "required",
                    f"{label}: negative {when.isoformat()} is {age} days old, over {max_age}: retest before starting "
                    f"({policy.tag})", statement, policy, history, when.isoformat(), "retest",
                    f"negative {when.isoformat()}, {age} days old")
    return Gate(condition, label, "cleared" if cleared_note else "passed",
                f"{label}: negative {when.isoformat()}, within {max_age} days{cleared_note} ({policy.tag})",
                statement, policy, history, when.isoformat(), "cleared by a clinician" if cleared_note else "", cleared_why)


def _gaps_when_positive(option: OptionAssessment, screenings: dict[str, list[ScreeningEntry]],
                        facts: _GuidelineFacts) -> None:
    """Say on the option's line a gap the guideline leaves when a screening result is positive
    (it gates only biologics: nothing on hepatitis for methotrexate or ciclosporin)."""
    for gap, conditions, options in facts.positive_gaps:
        if option.option not in options:
            continue
        positive = sorted({f"{facts.label(c)} positive {_iso(e.date)}" for c in conditions for e in screenings.get(c, [])
                           if e.kind == "result" and e.result_iri == str(JDM.Positive)})
        if positive:
            option.summary += f"; guideline gap: {gap['label'].lower()} ({'; '.join(positive)} on record)"
            option.notes.append(f"guideline gap: {gap['label'].lower()} ({'; '.join(positive)} on record)")
            option.reasons.append(Reason("against", f"Guideline gap: {gap['label']}. {gap['text']}",
                                         patient_fact={"screening": "; ".join(positive)}))


def _short_test(label: str) -> str:
    """``"hepatitis B surface antigen (HBsAg)"`` -> ``"HBsAg"``: the name in brackets, if any."""
    return label.rsplit("(", 1)[1].rstrip(")") if label.endswith(")") and "(" in label else label


def _gate_tests(condition: str, label: str, entries: list[ScreeningEntry], as_of: date, facts: _GuidelineFacts,
                statement: Provenance) -> Gate:
    """:func:`_gate`, and where a policy requires several tests for the condition (hepatitis B:
    HBsAg and anti-HBc), complete only when each has a usable result; a result that does not say
    which test it is counts as neither (a positive one still blocks)."""
    whole = _gate(condition, label, entries, as_of, facts, statement)
    required = facts.required_tests.get(condition)
    if not required or whole.state == "blocking":
        return whole
    policy = facts.policy(URIRef(required[0][2]))
    results = [e for e in entries if e.kind == "result"]
    clearances = [e for e in entries if e.kind == "clearance"]
    parts, missing, states, subs = [], [], [], []
    for test, test_label, _ in required:
        name = _short_test(test_label)
        mine = [e for e in results if e.test_iri == test]
        if not mine:
            missing.append(name)
            continue
        sub = _gate(condition, name, sorted(mine + clearances, key=lambda e: (e.date is not None, e.date or date.min)),
                    as_of, facts, statement)
        states.append(sub.state)
        subs.append((name, test_label, sub))
        latest = mine[-1] if mine else None
        parts.append(f"{name} negative {_iso(latest.date)}" if sub.state == "passed" and latest else sub.text)
    unknown = [e for e in results if e.test_iri is None]
    if not results:
        return replace(whole, text=f"{label}: no result on record: screen before starting "
                       f"({' and '.join(_short_test(r[1]) for r in required)}; {policy.tag})", policy=policy)
    words = list(parts)
    if whole.state == "cleared" and "cleared" not in states:  # a positive of unknown test, cleared: say so
        words.insert(0, whole.text.split(": ", 1)[1])
    if missing:
        words.append("required: " + ", ".join(missing))
    unread = [e for e in unknown if e.result_iri != str(JDM.Positive)]
    if unread:
        words.append("test unknown, counted as neither: " + ", ".join(e.text() for e in unread))
    state = "required" if missing or "required" in states else (
        "cleared" if "cleared" in states or whole.state == "cleared" else "passed")
    within = f", within {facts.screening_max_age_days} days" if state == "passed" else ""
    text = f"{label}: " + "; ".join(words) + f"{within} ({facts.policy(POLICY_SCREENING).tag}; {policy.tag})"
    dated = [e.date for e in results if e.date]
    retest = [f"{name} {sub.why.replace(f' ({test_label})', '')}" for name, test_label, sub in subs
              if sub.state == "required"]
    absent = [f"{', '.join(missing)} not on record"] if missing else []
    if missing or retest:  # what must happen first, beside each option: the test missing, or the one to repeat
        need, why = ("retest" if retest and not missing else "screen first"), "; ".join(absent + retest)
    elif state == "cleared":
        need = "cleared by a clinician"
        why = whole.why or next((sub.why for _, _, sub in subs if sub.state == "cleared"), "")
    else:
        need, why = "", ""
    # the policy the need rests on: a test missing, the two-test policy; else the screening history's
    gate_policy = policy if missing else facts.policy(POLICY_SCREENING)
    return Gate(condition, label, state, text, statement, gate_policy, whole.history,
                max(dated).isoformat() if dated and state != "required" else whole.result_date, need, why)


def _after_positive(facts: _GuidelineFacts) -> str:
    gap = next((g for g in facts.document_gaps if g["gap"] == GAP_AFTER_POSITIVE), None)
    return f"; guideline gap: {gap['label'].lower()}" if gap else ""


def _age(rows: list[Row], as_of: date) -> tuple[Decimal | None, str | None]:
    """The age at the record date: whole years (months under 2) from the birth date, else the
    age as recorded."""
    row = rows[0] if rows else {}
    birth = _date(row.get("birthDate"))
    if birth is not None and birth <= as_of:
        months = (as_of.year - birth.year) * 12 + as_of.month - birth.month - (1 if as_of.day < birth.day else 0)
        years = months // 12
        return Decimal(months) / Decimal(12), (f"{years} y" if years >= 2 else f"{months} mo")
    age = _d(row, "ageYears")
    return (age, f"{age} y") if age is not None else (None, None)


def _as_of(rows: list[Row], today: date | None) -> date:
    recorded = _date(rows[0].get("recordDate")) if rows else None
    return recorded or today or date.today()


def _episodes(rows: list[Row], facts: _GuidelineFacts) -> list[Episode]:
    out = []
    for row in rows:
        drug = _s(row, "drug")
        label = _s(row, "drugLabel") or _s(row, "drugText") or (facts.label(drug) if drug else "unnamed drug")
        out.append(Episode(
            drug=drug,
            label=label,
            outcome=_s(row, "outcome"),
            outcome_label=_s(row, "outcomeLabel") or "outcome not recorded",
            failure=_b(row, "failure"),
            current=_b(row, "current"),
            start=_date(row.get("startDate")),
            end=_date(row.get("endDate")),
            node=str(row["episode"]) if isinstance(row.get("episode"), URIRef) else None,
            outcome_text=_s(row, "outcomeText"),
            jak=drug is not None and facts.is_a(drug, JDM.JAKInhibitor),
            known=drug is not None and facts.is_a(drug, JDM.Drug),
        ))
    out.sort(key=lambda e: (e.start is not None, e.start or date.min, e.end or date.max, e.label, e.outcome_label))
    return out


def _features(rows: list[Row], facts: _GuidelineFacts) -> list[Feature]:
    seen: dict[str, Feature] = {}
    for row in rows:
        basis = facts.policies.get(str(row["basis"])) if row.get("basis") is not None else None
        f = Feature(str(row["manifestation"]), str(row["manifestationLabel"]), _b(row, "predominant"),
                    _b(row, "predominantStated"), basis if _b(row, "predominant") else None)
        if f.manifestation not in seen or f.predominant:
            seen[f.manifestation] = f
    return sorted(seen.values(), key=lambda f: (not f.predominant, f.label))


def assess_patient(
    data: Graph | QueryEngine,
    record: RecordRef,
    source: str,
    issues: list[Issue],
    guideline: Guideline | None = None,
    today: date | None = None,
) -> PatientResult:
    """Assess every option for one patient in ``data`` (guideline closure + patient triples, as a
    graph or a :class:`~jdm_kg.reasoning.engines.QueryEngine` over them)."""
    guideline = guideline or load_guideline()
    engine = as_engine(data)
    select = engine.select
    facts = guideline_facts(guideline, engine.guideline_view)
    patient = record.node
    fact_rows = select("patient-facts", patient=patient)
    as_of = _as_of(fact_rows, today)
    failure_rows = select("jak-failure", patient=patient)
    failures = [
        {
            "drug": str(r["drugLabel"]),
            "outcome": str(r["outcomeLabel"]),
            "start": _s(r, "startDate") or "",
            "end": _s(r, "endDate") or "",
            "outcomeIri": str(r["outcome"]),
        }
        for r in failure_rows
    ]
    blocked = any(i.severity == "violation" for i in issues)
    result = PatientResult(
        source=source, record=record, guideline_version=guideline.version, as_of=as_of, issues=issues,
        applicable=False, applicability="", jak_failures=failures, body=None, options=[], caveats=[],
    )
    if blocked:
        result.state = NOT_ASSESSED
        result.applicability = "The record has violations (listed above); fix them to get a recommendation."
        return result
    result.age_years, result.age_text = _age(fact_rows, as_of)
    result.sex = _s(fact_rows[0], "sex") if fact_rows else None
    if fact_rows and _s(fact_rows[0], "weightUnit") == "kg":
        result.weight_recorded = _d(fact_rows[0], "weightValue")
    result.body = _body_measures(fact_rows, as_of, facts.measurement_max_age_days, facts.policy(POLICY_MEASURES))
    result.features = _features(select("manifestations", patient=patient), facts)
    if any(f.predominant for f in result.features):  # ILD counts when present (jdm-kg policy)
        result.features = [replace(f, counts=facts.counts_when_present[f.manifestation].tag)
                           if not f.predominant and f.manifestation in facts.counts_when_present else f
                           for f in result.features]
    result.history = _episodes(select("treatment-history", patient=patient), facts)
    contradictions = _contradictions(result.history)
    contradicted = {drug for drug, _, _ in contradictions}
    sure = [f for f, r in zip(failures, failure_rows) if str(r["drug"]) not in contradicted]
    _applicability(result, sure, contradictions, facts)
    applicable = result.state in (APPLIES, CANNOT_TELL)  # assess the options (conditionally, for cannot-tell)
    screenings = _screening_history(select("screening", patient=patient))
    matches = _by(select("option-matches", patient=patient), "option")
    result.next_line = facts.next_line
    result.rationales = [facts.provenance(r) for r in (facts.next_line.rationales if facts.next_line else [])]

    gates: dict[str, Gate] = {}
    current = {e.drug for e in result.history if e.current and e.drug}
    for candidate in facts.candidates:
        option = _option(candidate, facts, matches.get(candidate.option, []), result)
        actions = facts.actions(candidate.option)
        option.actions = [a for a, _ in actions if a.only_if_on is None or a.only_if_on in current]
        option.caveats = facts.caveats(candidate.option)
        option.gaps = facts.gaps(candidate.option)
        for action, conditions in actions:
            for condition in conditions:
                if condition not in gates:
                    gates[condition] = _gate_tests(condition, facts.label(condition), screenings.get(condition, []),
                                                   as_of, facts, action.statement)
                option.gates.append(gates[condition])
        option.gates.sort(key=lambda g: g.condition_label)
        _history_status(option, candidate, result.history, facts)
        _same_class_failures(option, candidate, result.history, facts)
        _earlier_courses(option, candidate, result.history)
        _contradicted(option, contradictions, facts)
        if not applicable:
            option.status, option.summary = "not-applicable", "the guideline does not apply to this record"
        elif option.status in OFFERED_STATUSES and any(g.state == "blocking" for g in option.gates):
            option.status = "blocked"
            blocking = [g for g in option.gates if g.state == "blocking"]
            option.status_policy = facts.policy(POLICY_SCREENING)
            for gate in blocking:
                option.reasons.append(Reason("against", gate.text, gate.statement, policy=gate.policy))
        if option.status in ("offered", "conditional", "blocked") and result.body is not None:
            split = facts.policy(POLICY_SPLIT).tag
            option.doses = [replace(d, split_policy=split) if d.per_day_low is not None else d
                            for d in (compute_dose(r, result.body) for r in facts.regimens(candidate.option))]
            option.dose_statements = [facts.provenance(r.statement) for r in facts.regimens(candidate.option) if r.statement]
        option.section_policy = facts.role_policy.get(candidate.role)
        if applicable and option.status in ("offered", "conditional"):
            _gaps_when_positive(option, screenings, facts)
        result.options.append(option)
    result.screening = sorted(gates.values(), key=lambda g: g.condition_label)
    _rank(result, facts)
    _notices(result, facts)
    for drug, first, second in contradictions:
        policy = facts.policy(POLICY_CONTRADICTION)
        result.notices.insert(0, Reason("against", f"Contradictory record for {first.label}: {first.text()} and "
                                        f"{second.text()} ({policy.tag})", policy=policy))
    _shared(result, facts)
    if result.state == CANNOT_TELL:
        _conditional(result, facts)
    return result


def _contradictions(history: list[Episode]) -> list[tuple[str, Episode, Episode]]:
    """Pairs of episodes of one drug that contradict each other (jdm-kg policy): one ongoing and
    one stopped while the ongoing one had already started, or two outcomes for the same time."""
    out = []
    for i, first in enumerate(history):
        for second in history[i + 1:]:
            if not first.drug or first.drug != second.drug or first.outcome is None or second.outcome is None:
                continue
            if first.current != second.current:
                ongoing, stopped = (first, second) if first.current else (second, first)
                clash = (ongoing.start is not None and stopped.end is not None and ongoing.start < stopped.end) or (
                    ongoing.start is not None and ongoing.start == stopped.start)
            elif not first.current and first.outcome != second.outcome:
                clash = (first.start is not None and first.start == second.start) or (
                    None not in (first.start, first.end, second.start, second.end)
                    and first.start < second.end and second.start < first.end)  # type: ignore[operator]
            else:
                clash = False
            if clash:
                out.append((first.drug, first, second))
    return out


def _applicability(result: PatientResult, sure: list[dict[str, str]],
                   contradictions: list[tuple[str, Episode, Episode]], facts: _GuidelineFacts) -> None:
    """Applies, does not apply, or cannot tell (a jdm-kg policy), with the data that would settle it."""
    history = result.history
    if sure:
        episodes = "; ".join(f"{f['drug']} ({f['outcome']}" + (f", stopped {f['end']})" if f["end"] else ")") for f in sure)
        result.state, result.applicable = APPLIES, True
        result.applicability = f"The guideline applies: JAK inhibitor failure recorded: {episodes}."
        if any(f["outcomeIri"] == str(JDM.Intolerance) for f in sure):
            result.applicability += f" ({facts.policy(POLICY_FAILURE).tag})"
        failed = {e.drug for e in history if e.jak and e.failure}
        running = [e for e in history if e.jak and e.current and e.drug not in failed]
        for e in running:
            result.applicability += (f" Note: {e.label} is still recorded as ongoing ({e.period}): the guideline describes "
                                     "what follows a JAK inhibitor failure, not adding a biologic to a JAK inhibitor "
                                     "still being taken; confirm it was stopped.")
        if not result.features:
            policy = facts.policy(POLICY_CANNOT_TELL)
            result.state, result.applicable = CANNOT_TELL, False
            result.data_needed.append(DataNeeded(
                "manifestations", "Which manifestations does the child have, and which predominates? None could be "
                "read from the record.", "Recording them ranks the next-line options (guideline step 1).",
                resource_type="Condition"))
            result.applicability = ("Cannot tell which option ranks first: no manifestation could be read "
                                f"({policy.tag}). " + result.applicability)
        return
    policy = facts.policy(POLICY_CANNOT_TELL)
    jak_names = ", ".join(sorted(facts.label(str(d)) for d in facts.graph.subjects(RDF.type, JDM.JAKInhibitor)))
    needed: list[DataNeeded] = []
    for e in history:
        where = (e.node,) if e.node else ()
        if e.jak and not e.failure and not e.current and e.outcome is None:
            said = (f"the stop reason {e.outcome_text!r} names no outcome jdm-kg reads" if e.outcome_text
                    else "no stop reason or outcome is recorded")
            needed.append(DataNeeded("stop-reason", f"Why was {e.label} stopped ({e.period})? {said[0].upper()}{said[1:]}.",
                                     "If for inadequate response, loss of response or intolerance, the guideline applies",
                                     where))
        elif not e.known and (e.failure or (e.outcome is None and e.outcome_text)):
            why = (f" and was it stopped for a failure (the stop reason {e.outcome_text!r} names no outcome jdm-kg reads)"
                   if e.outcome_text and e.outcome is None else f" ({e.outcome_label}, {e.period})")
            needed.append(DataNeeded("medication", f"Is {e.label!r} a JAK inhibitor ({jak_names}){why}?",
                                     "If it is a JAK inhibitor that failed, the guideline applies", where))
    for drug, first, second in contradictions:
        if first.jak and (first.failure or second.failure):
            contradiction = facts.policy(POLICY_CONTRADICTION)
            needed.append(DataNeeded("contradiction", f"Did {first.label} fail? The record has {first.text()} and "
                                     f"{second.text()}, which contradict each other ({contradiction.tag}).",
                                     "If it failed, the guideline applies",
                                     tuple(e.node for e in (first, second) if e.node)))
    if needed:
        result.state, result.data_needed = CANNOT_TELL, needed
        result.applicability = ("Cannot tell whether the guideline applies: no JAK inhibitor failure is read, but the "
                                f"record may show one ({policy.tag}); what would settle it is below.")
        return
    result.state = DOES_NOT_APPLY
    result.applicability = (
        "No JAK inhibitor failure is recorded (a JAK inhibitor episode with outcome inadequate response, "
        "loss of response or intolerance). This guideline covers the next line of treatment after JAK "
        "inhibitor failure, so it does not apply to this record."
    )
    jak = [e for e in history if e.jak]  # say which JAK inhibitor episodes there are, if any, and why they do not count
    if jak:
        result.applicability += " JAK inhibitor episodes recorded: " + "; ".join(e.text() for e in jak) + "."


def _contradicted(option: OptionAssessment, contradictions: list[tuple[str, Episode, Episode]],
                  facts: _GuidelineFacts) -> None:
    """An option whose drug the record contradicts itself about (failed or current?): cannot tell."""
    for drug, first, second in contradictions:
        if drug == option.option:
            policy = facts.policy(POLICY_CONTRADICTION)
            option.status, option.status_policy = CANNOT_TELL_STATUS, policy
            option.summary = (f"the record contradicts itself: {first.text()} and {second.text()}: whether it already "
                              f"failed or is being given cannot be told; correct the record ({policy.tag})")
            option.reasons.append(Reason("against", f"Contradictory record: {first.text()}; {second.text()}",
                                         patient_fact=first.as_dict(), policy=policy))
            return


def _conditional(result: PatientResult, facts: _GuidelineFacts) -> None:
    """Cannot tell: every option that would be offered (or blocked) is shown as conditional on the
    data needed, with the status it would have; each datum says what it would change."""
    policy = facts.policy(POLICY_CANNOT_TELL)
    first = [o.label for o in result.options if o.ranked and o.rank == 1 and o.status in ("offered", "blocked")]
    for option in result.options:
        if option.status in ("offered", "conditional", "blocked"):
            option.if_applies, option.status = option.status, CANNOT_TELL_STATUS
            option.if_applies_policy, option.status_policy = option.status_policy, policy
    if first:
        ranks = (f"{first[0]} ranks first" if len(first) == 1 else f"{', '.join(first[:-1])} and {first[-1]} tie first")
        result.data_needed = [replace(d, changes=f"{d.changes} and {ranks}; if not, it does not apply.")
                              if d.datum != "manifestations" else d for d in result.data_needed]
    result.data_needed = [d if d.changes.endswith(".") else replace(d, changes=d.changes + ".") for d in result.data_needed]
    if policy.iri not in {p.iri for p in result.policies}:
        result.policies = sorted([*result.policies, policy], key=lambda p: p.label)


def _by(rows: list[Row], key: str) -> dict[str, list[Row]]:
    """Rows grouped by the value of ``key``, each group in query order."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(str(row[key]), []).append(row)
    return out


def _option(candidate: _Candidate, facts: _GuidelineFacts, rows: list[Row], result: PatientResult) -> OptionAssessment:
    """The option with its matching statements (one reason per statement) and, for a ranked
    role, its band."""
    option = OptionAssessment(
        option=candidate.option, label=candidate.label, role=candidate.role_label, role_iri=candidate.role,
        section=candidate.section, section_heading=candidate.heading, ranked=candidate.ranked,
        derivation=candidate.derivation,
    )
    by_statement: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        by_statement.setdefault((str(row["statement"]), str(row["side"])), []).append(row)
    any_predominant = any(f.predominant for f in result.features)
    matched: list[tuple[str, str, bool, str]] = []  # (side, level, counts, text)
    truly: list[tuple[str, str, bool]] = []  # (side, level, a feature marked predominant), per matched
    said_by: dict[str, Provenance] = {}
    brief_of: dict[str, str] = {}  # reason text -> the same in a few words
    names_of: dict[str, str] = {}  # reason text -> the patient's features it matched
    present_counts: dict[str, str] = {}  # manifestation -> label, for features that count only by a policy

    def counts(row: Row) -> bool:  # ILD counts when present (jdm-kg policy), once some feature is predominant
        return any_predominant and not _b(row, "predominant") and str(row["manifestation"]) in facts.counts_when_present

    for (statement, side), group in sorted(by_statement.items()):
        prov = facts.provenance(statement)
        level = str(group[0]["level"])
        features = sorted({(str(r["manifestationLabel"]), _b(r, "predominant"), counts(r)) for r in group})
        where = ", ".join(f"{m} ({'predominant' if p else 'present; counts when present' if c else 'present'})"
                          for m, p, c in features)
        predominant = any(p for _, p, _ in features)
        counted = predominant or any(c for _, _, c in features)
        fact = {"manifestation": "; ".join(m for m, _, _ in features),
                "predominant": "yes" if predominant else "no"}
        said = f'"{" ".join(prov.quote.split())}"' if prov.quote and len(prov.quote) <= 90 else prov.label
        names = " and ".join(m for m, _, _ in features)
        extra = ""  # (a feature that counts when present says so on the Features line and in the standing)
        if side == "for" and level == str(JDMG["level-comparison"]):
            text = f"{said}: works better for {where}"
            brief = f"works better for {names}{extra}"
        elif side == "for":
            verb = _verb(facts, level, str(group[0]['levelLabel']), prov.quote)
            text = f"{said} ({verb}; recorded: {where})"
            brief = f"{verb} {facts.scope_text.get(statement) or 'for ' + names}{extra}"
        else:
            text = f"{said}: works less well for {where}"
            brief = f"works less well for {names}"
        brief_of[text] = brief
        names_of[text] = names
        option.reasons.append(Reason(side, text, prov, fact))
        matched.append((side, level, counted, text))
        truly.append((side, level, predominant))
        said_by[text] = prov
        for row in group:
            if counts(row):
                present_counts[str(row["manifestation"])] = str(row["manifestationLabel"])
            if candidate.ranked and (_b(row, "predominant") or counts(row)):
                if side == "against":
                    option.against_counting = True
                else:
                    band = _band([(side, level, True, text)], facts, True)
                    if not band.is_default:
                        name = str(row["manifestationLabel"])
                        option.feature_bands[name] = min(option.feature_bands.get(name, band.order), band.order)
    for manifestation, name in sorted(present_counts.items()):
        policy, heading = facts.counts_when_present[manifestation], facts.counts_reason.get(manifestation)
        quoted = f'"{" ".join(heading.quote.split())}"' if heading and heading.quote else "its step 2 heading"
        option.reasons.append(Reason("for", f"{name} is present, not predominant, and counts: the step 2 heading {quoted} "
                                     "leaves out \"predominant\"", heading, {"manifestation": name, "predominant": "no"},
                                     policy))
    if candidate.ranked:
        band = _band(matched, facts, any_predominant)
        option.standing, option.standing_iri, option.standing_order = band.label, band.iri, band.order
        option.band_policy = facts.policy(URIRef(band.policy))
        if (any_predominant and band.needs_predominant and present_counts
                and not any(p and _fits(band, side, True) and (band.level is None or lv == band.level)
                            for side, lv, p in truly)):
            # the band was reached through a feature that counts when present, not a predominant one
            names = " and ".join(sorted(present_counts.values()))
            option.standing = (band.label.replace("the predominant feature", f"{names}, which counts when present")
                               if "the predominant feature" in band.label else f"{band.label} ({names}, which counts when present)")
        named = facts.named_for.get(candidate.option, [])
        others = [t for side, _, p, t in matched if side == "for" and not p] if any_predominant else []
        if band.is_default and others:
            option.summary = ("nothing about the predominant feature; for a feature present but not predominant "
                              "(so it does not rank): " + "; ".join(others))
            option.brief = "; ".join(f"{brief_of[t]} ({names_of[t]} present, not predominant: does not rank)" for t in others)
        elif band.is_default and named:
            features_named = sorted({_named_words(facts, n) for n in named if n[0] == "for"})
            option.summary = ("the guideline ties it to none of this patient's features (it names it "
                              + ", ".join(features_named) + ")") if features_named else "no feature-specific guidance"
        elif band.is_default:
            option.summary = "the guideline names it as a next-line bDMARD without tying it to any feature"
        else:
            option.summary = next((t for s, _, p, t in matched if _fits(band, s, p) and (p or not any_predominant)),
                                  matched[0][3])
            option.brief = brief_of.get(option.summary, "")
        option.summary_statement = said_by.get(option.summary)
    else:
        _unranked(option, candidate, matched, facts, result)
        positive = [t for s, _, _, t in matched if s == "for"]
        if positive and option.summary.startswith(positive[0]):
            option.brief = brief_of[positive[0]] + (f" (and {len(positive) - 1} more: --details)" if len(positive) > 1 else "")
        elif not option.brief:
            option.brief = option.summary
        if option.summary_statement is None:
            option.summary_statement = next((said_by[t] for t in said_by if option.summary.startswith(t)), None)
    return option


def _verb(facts: _GuidelineFacts, level: str, level_label: str, quote: str | None) -> str:
    """The words of the quote that give its level ('particularly useful', not the level's label
    'particularly effective or useful for'); a level no verb calls for ('named among the
    options for') by its label, without the trailing preposition."""
    for phrase in facts.verb_phrases.get(level, []):
        if quote and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", quote, re.IGNORECASE):
            return phrase.lower()
    return re.sub(r"\s+(for|in)$", "", level_label)


def _named_words(facts: _GuidelineFacts, named: tuple[str, str, str, str, str]) -> str:
    """Whom a statement names an option for, in the quote's own words where the graph gives them
    (jdm:scopeText: 'in refractory cases'), else 'for' and the manifestation's label."""
    scope = facts.scope_text.get(named[4])
    return f'"{scope}"' if scope else f"for {named[2]}"


def _fits(band: _Band, side: str, predominant: bool) -> bool:
    return band.side == side and (predominant or not band.needs_predominant)


def _band(matched: list[tuple[str, str, bool, str]], facts: _GuidelineFacts, any_predominant: bool) -> _Band:
    """The band an option's matching statements place it in (a jdm-kg policy, as data): with
    a feature marked predominant, only statements about predominant features rank; with none
    marked, every feature recorded does (and no option is 'preferred')."""
    default = next(b for b in facts.bands if b.is_default)

    def best(rows: list[tuple[str, str, bool, str]], predominant: bool) -> _Band | None:
        fitting = [
            b for b in facts.bands if not b.is_default and (predominant or not b.needs_predominant)
            and any(side == b.side and (b.level is None or level == b.level) for side, level, _, _ in rows)
        ]
        return min(fitting, key=lambda b: b.order) if fitting else None

    if any_predominant:
        return best([m for m in matched if m[2]], True) or default
    return best(matched, False) or default


def _unranked(option: OptionAssessment, candidate: _Candidate, matched: list[tuple[str, str, bool, str]],
              facts: _GuidelineFacts, result: PatientResult) -> None:
    """Adjuncts and the escalation: offered where a sentence speaks for them for a feature the
    patient has; the escalation asks the multi-system question when it is not answered."""
    positive = [t for s, _, _, t in matched if s == "for"]
    named_rows = [n for n in facts.named_for.get(candidate.option, []) if n[0] == "for"]
    named = sorted({n[2] for n in named_rows})
    named_words = sorted({_named_words(facts, n) for n in named_rows})
    refractory = sorted({n[4] for n in named_rows if n[3] == REFRACTORY})
    recorded = [f for f in result.features if f.manifestation != REFRACTORY]
    if positive:
        option.summary = positive[0] + (f" (and {len(positive) - 1} more statement(s): --details)" if len(positive) > 1 else "")
        return
    if candidate.role == str(JDM.AdjunctiveTherapy) and candidate.role_from:
        # the sentence that makes it an adjunct ("... and as adjunctive therapy") speaks for it for anyone
        prov = facts.provenance(candidate.role_from)
        level = facts.graph.value(URIRef(candidate.role_from), JDM.preferenceLevel)
        verb = _verb(facts, str(level), "", prov.quote) if level is not None else ""
        option.summary = (f"{verb + ' ' if verb else ''}as adjunctive therapy (the guideline names it for "
                          f"{' and '.join(named)}, {'neither' if len(named) == 2 else 'not'} recorded)")
        option.brief = option.summary
        option.reasons.append(Reason("for", f'"{_short_quote(prov.quote or prov.label)}": as adjunctive therapy', prov))
        option.summary_statement = prov
        return
    if refractory and len(recorded) >= facts.multisystem_min:
        policy = facts.policy(POLICY_MULTISYSTEM)
        option.status, option.status_policy = "conditional", policy
        option.summary = (f"{len(recorded)} manifestations recorded, refractory disease not "
                          f"marked: if the disease is severe and multi-system, the guideline says to consider "
                          f"this approach ({policy.tag})")
        option.brief = (f"{len(recorded)} manifestations, refractory disease not marked: the guideline says to consider it "
                        f"for severe, multi-system disease ({policy.tag})")
        for statement in refractory:
            prov = facts.provenance(statement)
            option.reasons.append(Reason("for", f'If severe and multi-system: "{_short_quote(prov.quote or prov.label)}"',
                                         prov, policy=policy))
        return
    policy = facts.policy(POLICY_MULTISYSTEM)
    option.status, option.status_policy = "not-indicated", policy
    option.summary = ("the guideline names it " + " and ".join(named_words) + "; this record shows "
                      + ("neither" if len(named_words) == 2 else "none of these" if len(named_words) > 2 else "no such disease")
                      + f" ({policy.tag})" if named_words else f"no feature of this patient is named for it ({policy.tag})")


def _short_quote(quote: str) -> str:
    text = " ".join(quote.split())
    return text if len(text) <= 110 else text[:107].rsplit(" ", 1)[0] + "..."


def _history_status(option: OptionAssessment, candidate: _Candidate, history: list[Episode],
                    facts: _GuidelineFacts) -> None:
    """Not offered as new: a failed drug, a drug the patient is on now, a combination with a
    failed component; each with the episode and the policy it rests on."""
    if option.status not in OFFERED_STATUSES:
        return
    mine = [e for e in history if e.drug == candidate.option]
    failed = [e for e in mine if e.failure]
    current = [e for e in mine if e.current]
    components = [e for e in history if e.drug in candidate.components and e.failure]
    if failed:
        policy = facts.policy(POLICY_FAILED)
        episode = failed[-1]
        option.status, option.status_policy = "excluded", policy
        option.summary = f"already failed: {episode.text()} ({policy.tag})"
        for e in failed:
            option.reasons.append(Reason("against", f"Already failed: {e.text()}", patient_fact=e.as_dict(), policy=policy))
    elif current:
        policy = facts.policy(POLICY_CURRENT)
        option.status, option.status_policy = "current", policy
        option.summary = f"already on it: {current[-1].text()} ({policy.tag})"
        option.reasons.append(Reason("against", f"Already on it: {current[-1].text()}", patient_fact=current[-1].as_dict(),
                                     policy=policy))
    elif components:
        policy = facts.policy(POLICY_COMPONENT)
        option.status, option.status_policy = "excluded", policy
        named = "; ".join(f"{e.label} ({e.outcome_label}, {e.period})" for e in components)
        option.summary = f"a component already failed or was not tolerated: {named} ({policy.tag})"
        for e in components:
            option.reasons.append(Reason("against", f"Component already failed: {e.text()}", patient_fact=e.as_dict(),
                                         policy=policy))


def _same_class_failures(option: OptionAssessment, candidate: _Candidate, history: list[Episode],
                         facts: _GuidelineFacts) -> None:
    """Say so when another drug of the option's class already failed: the guideline is silent on
    switching within a class (a gap, not a rule)."""
    if option.status not in OFFERED_STATUSES or not candidate.classes:
        return
    failed = [e for e in history if e.failure and e.drug and e.drug != candidate.option
              and any(facts.is_a(e.drug, URIRef(c)) for c in candidate.classes)]
    gap = next((g for g in facts.document_gaps if g["gap"] == GAP_SWITCH_IN_CLASS), None)
    if failed and gap:
        names = ", ".join(sorted({e.label for e in failed}))
        option.summary += f"; note: {names}, of the same class, already failed: {gap['label'].lower()} in the guideline"
        option.notes.append(f"note: {names}, of the same class, already failed: {gap['label'].lower()} in the guideline")
        option.reasons.append(Reason("against", f"{names}, of the same class, already failed ({failed[-1].period}). "
                                     f"Guideline gap: {gap['text']}", patient_fact=failed[-1].as_dict()))


def _earlier_courses(option: OptionAssessment, candidate: _Candidate, history: list[Episode]) -> None:
    """Say so when the patient had the offered drug before, ended and not recorded as a failure
    (e.g. a completed course with no outcome): the report is offering it again, and the clinician
    should know. A fact from the record, not a rule."""
    if option.status not in OFFERED_STATUSES:
        return
    earlier = [e for e in history if e.drug == candidate.option and not e.failure and not e.current]
    if earlier:
        said = "; ".join(f"{e.period}, {e.outcome_label}" for e in earlier)
        option.summary += f"; note: given before, {said}: find out how that course went"
        option.notes.append(f"note: given before, {said}: find out how that course went")
        for e in earlier:
            option.reasons.append(Reason("against", f"Given before, not recorded as a failure: {e.text()}",
                                         patient_fact=e.as_dict()))


def _rank(result: PatientResult, facts: _GuidelineFacts | None = None) -> None:
    """Competition ranking (1, 1, 3) by band among the ranked options still in play; ties stay
    ties and are named, each with why and the policy it rests on. With two features that count
    and different best options for each, those best options tie (jdm-kg policy: the guideline
    does not say which feature to treat first)."""
    ranked = [o for o in result.options if o.ranked and o.status in ("offered", "blocked")]
    key = {o.option: o.standing_order or 0 for o in ranked}
    lifted = _features_tie(ranked, key) if facts is not None and any(f.predominant for f in result.features) else {}
    for option in ranked:
        option.rank = 1 + sum(1 for other in ranked if key[other.option] < key[option.option])
    result.options.sort(key=lambda o: (o.section, o.rank is None, o.rank or 0, o.label))
    by_rank: dict[int, list[OptionAssessment]] = {}
    for option in ranked:
        by_rank.setdefault(option.rank or 0, []).append(option)
    result.ties = []
    for rank, options in sorted(by_rank.items()):
        if len(options) < 2:
            continue
        labels = ", ".join(sorted(o.label for o in options))
        if lifted and all(o.option in lifted for o in options) and facts is not None:
            why = "; ".join(f"{', '.join(sorted(o.label for o in options if lifted[o.option] == feature))} for {feature}"
                            for feature in sorted(set(lifted.values())))
            result.ties.append(f"{labels} tie at #{rank}: {why}; the guideline does not say which feature to treat first "
                               f"({facts.policy(POLICY_FEATURES_TIE).tag})")
        else:
            tag = f" ({options[0].band_policy.tag})" if options[0].band_policy else ""
            result.ties.append(f"{labels} tie at #{rank}: nothing in the guideline separates them{tag}")


def _features_tie(ranked: list[OptionAssessment], key: dict[str, int]) -> dict[str, str]:
    """Lift the best options for each feature that counts to the best rank of any of them when the
    features' best options differ; returns option -> the feature it was best for (empty: no lift).
    An option the guideline calls less effective for a feature that counts is never lifted."""
    best: dict[str, int] = {}
    for option in ranked:
        for feature, order in option.feature_bands.items():
            best[feature] = min(best.get(feature, order), order)
    tops = {feature: [o for o in ranked if o.feature_bands.get(feature) == order and not o.against_counting]
            for feature, order in best.items()}
    tops = {f: options for f, options in tops.items() if options}
    groups = {frozenset(o.option for o in options) for options in tops.values()}
    if len(tops) < 2 or len(groups) < 2:
        return {}
    top = min(best[f] for f in tops)
    lifted: dict[str, str] = {}
    for feature in sorted(tops):
        for option in tops[feature]:
            key[option.option] = min(key[option.option], top)
            lifted.setdefault(option.option, feature)
    return lifted


def _notices(result: PatientResult, facts: _GuidelineFacts) -> None:
    """What the report says before the options: predominant features the guideline maps no
    next-line option to (with expert-centre referral first), and no predominant feature."""
    if not result.applicable:
        return
    predominant = [f for f in result.features if f.predominant]
    for feature in predominant:
        for gap in facts.feature_gaps.get(feature.manifestation, []):
            result.notices.append(Reason("against", f"{feature.label} is predominant: {gap['label']} (a guideline gap): the "
                                         "next-line bDMARDs are offered without a feature preference.",
                                         patient_fact={"manifestation": feature.label, "predominant": "yes"}, more=gap["text"]))
    for feature in result.features:
        if not feature.predominant:
            for gap in facts.feature_gaps.get(feature.manifestation, []):
                result.notices.append(Reason("against", f"{feature.label} is recorded (not predominant): {gap['label']}.",
                                             patient_fact={"manifestation": feature.label, "predominant": "no"},
                                             more=gap["text"]))
    referral = _referral(result)
    held = _held_back(result)
    if held is not None:  # no next-line biologic can start: said first, with the expert-centre step
        pending = gate_words([g for g in result.screening if g.state in ("required", "blocking")])
        others = [g for g in result.screening if g.state not in ("required", "blocking")]
        by_state: dict[str, list[str]] = {}
        for g in others:
            by_state.setdefault(g.state, []).append(g.condition_label)
        others_said = "".join(f"; {state}: {', '.join(names)}" for state, names in by_state.items())
        step = f" Meanwhile: {referral.text[0].lower()}{referral.text[1:]}" if referral is not None else ""
        gap = next((g for g in facts.document_gaps if g["gap"] == GAP_AFTER_POSITIVE), None)
        if gap and any(g.state == "blocking" for g in result.screening):
            step += f" Guideline gap: {gap['label'].lower()}."
        result.held_back = True
        result.notices.insert(0, Reason("against", f"No next-line biologic can start yet: {pending}{others_said} "
                                        f"({held.tag}).{step}", referral.statement if referral else None, policy=held))
    elif result.notices and referral is not None:
        result.notices.insert(0, Reason("for", f"Refer early: {referral.text}", referral.statement))
    caution = _young_child(result, facts)
    if caution is not None:
        result.notices.insert(1 if held is not None else 0, caution)
    for option in result.options:
        if option.ranked and option.status == "current" and option.status_policy:
            since = next((e.period for e in result.history if e.drug == option.option and e.current), "")
            result.notices.append(Reason(
                "against", f"Already on {option.label}, a next-line bDMARD ({since}): the options below are the "
                f"alternatives if it fails or is not tolerated ({option.status_policy.tag})", policy=option.status_policy))



def _held_back(result: PatientResult) -> PolicyRef | None:
    """The screening policy when every next-line biologic still in play waits for a screening
    (one to do or repeat, or a positive result a clinician has not cleared); else None."""
    in_play = [o for o in result.options if o.ranked and o.status in ("offered", "blocked")]
    held = [g for o in in_play for g in o.gates if g.state in ("required", "blocking")]
    if in_play and all(any(g.state in ("required", "blocking") for g in o.gates) for o in in_play):
        return held[0].policy
    return None


def _young_child(result: PatientResult, facts: _GuidelineFacts) -> Reason | None:
    """A caution first for a child under the policy's age or weight: the guideline gives no lower
    bound (a gap), and the evidence behind its doses is from older patients."""
    gap = facts.lower_bound_gap
    if gap is None:
        return None
    policy = facts.policy(POLICY_YOUNG)
    said = []
    if result.age_years is not None and result.age_years < facts.caution_age_years:
        said.append(f"under {facts.caution_age_years} years ({result.age_text})")
    weight = result.body.weight_kg if result.body and result.body.weight_kg is not None else result.weight_recorded
    if weight is not None and weight < facts.caution_weight_kg:
        said.append(f"under {facts.caution_weight_kg} kg ({reading(weight)} kg)")
    if not said:
        return None
    return Reason("against", f"Caution, {' and '.join(said)}: {gap['label'].lower()} in the guideline; the evidence "
                  f"linked to its doses is from adults, or adults with some children ({policy.tag})",
                  patient_fact={"age": result.age_text or "not recorded"}, policy=policy, more=gap["text"])


def _referral(result: PatientResult) -> Action | None:
    """The guideline's early expert-centre consultation, from the options' care actions."""
    for option in result.options:
        for action in option.actions:
            if action.statement.statement == REFERRAL:
                return action
    return None


def _shared(result: PatientResult, facts: _GuidelineFacts) -> None:
    """Safety and care actions of the options offered, each once; caveats once; policies used."""
    seen: dict[str, Action] = {}
    caveats: dict[str, Provenance] = {}
    carried_by: dict[str, set[bool]] = {}  # action statement -> whether each option carrying it is a next-line biologic
    for option in result.options:
        if option.status not in ("offered", "conditional", "blocked", "current"):
            continue
        for action in option.actions:
            seen.setdefault(action.statement.statement, action)
            carried_by.setdefault(action.statement.statement, set()).add(option.ranked)
        for caveat in option.caveats:
            caveats.setdefault(caveat.statement, caveat)
    if _held_back(result) is not None:
        # no biologic can start yet: what assumes one is starting says "once a biologic starts"
        for statement, action in seen.items():
            if action.timing == "during treatment" and carried_by[statement] == {True}:
                seen[statement] = replace(action, text=f"Once a biologic starts: {action.text[0].lower()}{action.text[1:]}")
    order = {"before starting": 0, "during treatment": 1}
    result.shared_actions = sorted(seen.values(), key=lambda a: (order.get(a.timing or "", 2), a.text))
    result.caveats = sorted(caveats.values(), key=lambda c: c.statement)
    result.document_gaps = list(facts.document_gaps)
    used: dict[str, PolicyRef] = {}
    for option in result.options:
        for policy in (option.status_policy, option.band_policy):
            if policy and option.status != "not-applicable":
                used[policy.iri] = policy
        for gate in option.gates:
            used[gate.policy.iri] = gate.policy
        if option.status in ("offered", "conditional", "blocked"):
            for reason in option.reasons:
                if reason.policy:
                    used[reason.policy.iri] = reason.policy
            if option.section_policy:
                used[option.section_policy.iri] = option.section_policy
            if any(d.split_policy for d in option.doses):
                used[str(POLICY_SPLIT)] = facts.policy(POLICY_SPLIT)
    for notice in result.notices:
        if notice.policy:
            used[notice.policy.iri] = notice.policy
    if any("jdm-kg policy: " + facts.policy(POLICY_FEATURES_TIE).label in tie for tie in result.ties):
        used[str(POLICY_FEATURES_TIE)] = facts.policy(POLICY_FEATURES_TIE)
    if result.applicable and "jdm-kg policy: " + facts.policy(POLICY_FAILURE).label in result.applicability:
        policy = facts.policy(POLICY_FAILURE)
        used[policy.iri] = policy
    if any(d.status == "computed" for o in result.options for d in o.doses):
        policy = facts.policy(POLICY_ROUNDING)
        used[policy.iri] = policy
    for feature in result.features:  # a predominance read by a policy
        if feature.basis is not None:
            used[feature.basis.iri] = feature.basis
    for notice in result.notices:
        if notice.policy is not None:
            used[notice.policy.iri] = notice.policy
    if result.body and (result.body.weight_problem or result.body.height_problem):
        policy = facts.policy(POLICY_MEASURES)
        used[policy.iri] = policy
    result.policies = sorted(used.values(), key=lambda p: p.label)


def recommend_graph(
    patient_graph: Graph,
    source: str,
    guideline: Guideline | None = None,
    today: date | None = None,
    engine: EngineChoice = "rdflib",
    text: str | None = None,
) -> tuple[ValidationReport, list[PatientResult]]:
    """Validate then assess every patient record in ``patient_graph``; ``engine`` runs the
    queries ("rdflib" or "oxigraph": the same results); ``text``: what the graph was read from,
    when ``source`` is not a file (a request body), for the lines of validation messages."""
    report, results = recommend_graphs([(source, patient_graph)], guideline, today, engine, keep_shacl=True,
                                       texts={source: text} if text is not None else None)[0]
    return report, results


def recommend_graphs(
    sources: list[tuple[str, Graph]],
    guideline: Guideline | None = None,
    today: date | None = None,
    engine: EngineChoice = "rdflib",
    keep_shacl: bool = False,
    texts: dict[str, str] | None = None,
) -> list[tuple[ValidationReport, list[PatientResult]]]:
    """:func:`recommend_graph` for several (source, graph) pairs that share no nodes, validated
    in one SHACL run and queried in one store: the batch path, with the same results."""
    guideline = guideline or load_guideline()
    graphs = [set_aside_ill_typed(g) for _, g in sources]  # (idempotent: the batch path has done it already)
    # rdflib's engine queries a plain rdflib graph; the others validate on one whose SPARQL
    # Oxigraph answers (and the embedded engine reuses that Oxigraph store for its queries).
    data = with_guideline(guideline, *graphs) if engine == "rdflib" else oxigraph_answered(guideline, graphs)
    reports = validate_graphs(sources, guideline, data, keep_shacl, texts)
    # Each file is queried on its own (its own graph beside the guideline): the cost of a query
    # then does not grow with the size of the group.
    with query_engines(engine, guideline, data, graphs) as engines:
        return [
            (report, [assess_patient(queries, r, source, report.issues_for(r), guideline, today) for r in report.records])
            for (source, _), report, queries in zip(sources, reports, engines)
        ]
