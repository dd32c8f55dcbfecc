"""Turn a validated patient record into ranked, explained recommendations.

The clinical logic is in the graph and the SPARQL files; this module runs the queries, works
out doses and safety gates, and assembles the result. Everything that does not depend on the
patient (regimens, safety actions, statement provenance) is computed once per guideline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

from rdflib import RDFS, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.dosing import ROUNDING_NOTE, BodyMeasures, ComputedDose, Regimen, compute_dose
from jdm_kg.engines import EngineChoice, QueryEngine, RdflibEngine, as_engine, oxigraph_answered, query_engines
from jdm_kg.guideline import JDM, Guideline, load_guideline, with_guideline
from jdm_kg.queries import Row
from jdm_kg.validation import Issue, RecordRef, ValidationReport, validate_graphs

__all__ = [
    "Provenance",
    "Reason",
    "Gate",
    "OptionAssessment",
    "PatientResult",
    "recommend_graph",
    "recommend_graphs",
    "assess_patient",
    "guideline_facts",
]


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


def _split(row: Row, key: str) -> list[str]:
    value = _s(row, key)
    return sorted(v for v in value.split("|") if v) if value else []


def _date(node: Node | None) -> date | None:
    if isinstance(node, Literal) and isinstance(node.toPython(), date):
        return node.toPython()  # type: ignore[no-any-return]
    return None


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

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


@dataclass(frozen=True)
class Reason:
    """A reason for or against an option, tied to a patient fact and a guideline statement."""

    direction: str  # "for" or "against"
    text: str
    contribution: int = 0
    statement: Provenance | None = None
    patient_fact: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"direction": self.direction, "text": self.text, "contribution": self.contribution}
        if self.patient_fact:
            out["patientFact"] = self.patient_fact
        if self.statement:
            out["statement"] = self.statement.as_dict()
        return out


@dataclass(frozen=True)
class Gate:
    """One screening gate for one option."""

    condition: str
    condition_label: str
    state: str  # "passed", "required", "blocking"
    text: str
    statement: Provenance
    result_date: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"condition": self.condition_label, "state": self.state, "text": self.text}
        if self.result_date:
            out["resultDate"] = self.result_date
        out["statement"] = self.statement.statement  # type: ignore[assignment]
        return out


@dataclass(frozen=True)
class Action:
    """A safety or care action for an option."""

    kind: str
    timing: str | None
    text: str
    items: list[str]
    statement: Provenance

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "timing": self.timing,
            "text": self.text,
            "items": self.items,
            "quote": self.statement.quote,
            "statement": self.statement.statement,
        }


@dataclass
class OptionAssessment:
    """jdm-kg's verdict on one option for one patient."""

    option: str
    label: str
    role: str
    score: int
    status: str = "offered"  # offered, blocked, excluded, not-applicable
    rank: int | None = None
    reasons: list[Reason] = field(default_factory=list)
    doses: list[ComputedDose] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    caveats: list[Provenance] = field(default_factory=list)
    gaps: list[dict[str, str]] = field(default_factory=list)

    @property
    def reasons_for(self) -> list[Reason]:
        return [r for r in self.reasons if r.direction == "for"]

    @property
    def reasons_against(self) -> list[Reason]:
        return [r for r in self.reasons if r.direction == "against"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "option": self.option,
            "label": self.label,
            "role": self.role,
            "status": self.status,
            "rank": self.rank,
            "score": self.score,
            "reasonsFor": [r.as_dict() for r in self.reasons_for],
            "reasonsAgainst": [r.as_dict() for r in self.reasons_against],
            "doses": [_dose_dict(d) for d in self.doses],
            "gates": [g.as_dict() for g in self.gates],
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
        out.update(
            low=str(dose.low),
            high=str(dose.high),
            unit=dose.unit,
            basis=dose.basis_text,
            formula=dose.formula,
            rounding=ROUNDING_NOTE,
        )
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

    @property
    def blocked_by_validation(self) -> bool:
        return any(i.severity == "violation" for i in self.issues)

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
        return {
            "source": self.source,
            "patientId": self.record.patient_id,
            "patient": str(self.record.node),
            "guidelineVersion": self.guideline_version,
            "asOf": self.as_of.isoformat(),
            "applicable": self.applicable,
            "applicability": self.applicability,
            "jakInhibitorFailures": self.jak_failures,
            "issues": [i.__dict__ for i in self.issues],
            "body": body,
            "options": [o.as_dict() for o in self.options],
            "caveats": [{"statement": c.statement, "text": c.label, "quote": c.quote} for c in self.caveats],
        }


# --------------------------------------------------------------------------------------
# Patient-independent facts, computed once per guideline


@dataclass(frozen=True)
class _Policy:
    screening_max_age_days: int
    measurement_max_age_days: int


class _GuidelineFacts:
    """Cached answers to the patient-independent queries over one compiled guideline."""

    def __init__(self, guideline: Guideline, engine: QueryEngine) -> None:
        self.guideline = guideline
        self.graph = guideline.graph
        self.select = engine.select
        self._provenance: dict[str, Provenance] = {}
        self._per_option: dict[tuple[str, str], Any] = {}
        self._labels: dict[str, str] = {}
        rows = self.select("policy")
        if not rows:
            raise ValueError("the guideline graph has no jdm:RankingPolicy")
        self.policy = _Policy(int(rows[0]["screeningMaxAgeDays"]), int(rows[0]["measurementMaxAgeDays"]))  # type: ignore[call-overload]

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
                        basis={str(JDM.PerKgBodyWeight): "kg", str(JDM.PerM2BodySurfaceArea): "m2"}.get(basis or ""),
                        route=_s(row, "routeLabel"),
                        interval_min=_d(row, "intervalMin"),
                        interval_max=_d(row, "intervalMax"),
                        interval_unit=_s(row, "intervalUnit"),
                        number_of_doses=int(row["numberOfDoses"]) if "numberOfDoses" in row else None,  # type: ignore[call-overload]
                        administration_days=int(row["administrationDays"]) if "administrationDays" in row else None,  # type: ignore[call-overload]
                        schedule_text=_s(row, "scheduleText"),
                        max_dose=_d(row, "maxDose"),
                        max_dose_unit=_s(row, "maxDoseUnit"),
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
            text = self._labels[iri] = str(value) if value is not None else iri.rsplit("/", 1)[-1]
        return text


@cache
def guideline_facts(guideline: Guideline, view: QueryEngine | None = None) -> _GuidelineFacts:
    """The patient-independent answers (regimens, safety actions, provenance) for ``guideline``,
    cached; asked of ``view`` (an engine over the guideline alone), by default rdflib."""
    return _GuidelineFacts(guideline, view or RdflibEngine(guideline.graph))


# --------------------------------------------------------------------------------------
# Per patient


def _body_measures(rows: list[Row], as_of: date, max_age_days: int) -> BodyMeasures:
    row = rows[0] if rows else {}

    def usable(prefix: str, unit: str, label: str) -> tuple[Decimal | None, str | None, date | None]:
        value = _d(row, f"{prefix}Value")
        when = _date(row.get(f"{prefix}Date"))
        if value is None:
            return None, f"no {label} recorded", None
        if _s(row, f"{prefix}Unit") != unit:
            return None, f"{label} is not in {unit}", when
        if when is None:
            return None, f"{label} has no date, so it may be out of date: record when it was measured", None
        age = (as_of - when).days
        if age > max_age_days:
            return None, f"{label} from {when.isoformat()} is {age} days old (limit {max_age_days}): measure again", when
        return value, None, when

    weight, weight_problem, weight_date = usable("weight", "kg", "body weight")
    height, height_problem, height_date = usable("height", "cm", "body height")
    return BodyMeasures(
        weight, height, weight_problem, height_problem, weight_date, height_date,
        weight_node=row.get("weight"), height_node=row.get("height"),
    )


def _gates(
    facts: _GuidelineFacts, screenings: dict[str, list[Row]], actions: list[tuple[Action, list[str]]], as_of: date
) -> list[Gate]:
    gates = []
    max_age = facts.policy.screening_max_age_days
    for action, conditions in actions:
        for condition in conditions:
            label = facts.label(condition)
            rows = screenings.get(condition, [])
            dated = [r for r in rows if _date(r.get("date"))]
            latest = dated[0] if dated else (rows[0] if rows else None)
            when = _date(latest.get("date")) if latest else None
            when_text = when.isoformat() if when else None
            if latest is None:
                state, text = "required", f"No {label} screening recorded: required before starting."
            elif latest["result"] == JDM.Positive:
                state = "blocking"
                text = f"{label} screening positive ({when_text or 'undated'}): specialist assessment needed before starting."
            elif latest["result"] != JDM.Negative:
                state, text = "required", f"{label} screening {latest['resultLabel']} ({when_text or 'undated'}): repeat before starting."
            elif when is None:
                state, text = "required", f"{label} screening negative but undated: cannot count as recent; repeat or record the date."
            elif (as_of - when).days > max_age:
                state = "required"
                text = f"{label} screening negative on {when_text}, older than {max_age} days: repeat before starting."
            else:
                state, text = "passed", f"{label} screening negative on {when_text} (within {max_age} days)."
            gates.append(Gate(condition, label, state, text, action.statement, when_text))
    return gates


def _as_of(rows: list[Row], today: date | None) -> date:
    recorded = _date(rows[0].get("recordDate")) if rows else None
    return recorded or today or date.today()


def _by(rows: list[Row], key: str) -> dict[str, list[Row]]:
    """Rows grouped by the value of ``key``, each group in query order."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(str(row[key]), []).append(row)
    return out


def assess_patient(
    data: Graph | QueryEngine,
    record: RecordRef,
    source: str,
    issues: list[Issue],
    guideline: Guideline | None = None,
    today: date | None = None,
) -> PatientResult:
    """Assess every option for one patient in ``data`` (guideline closure + patient triples, as a
    graph or a :class:`~jdm_kg.engines.QueryEngine` over them)."""
    guideline = guideline or load_guideline()
    engine = as_engine(data)
    select = engine.select
    facts = guideline_facts(guideline, engine.guideline_view)
    patient = record.node
    fact_rows = select("patient-facts", patient=patient)
    as_of = _as_of(fact_rows, today)
    failures = [
        {
            "drug": str(r["drugLabel"]),
            "outcome": str(r["outcomeLabel"]),
            "start": _s(r, "startDate") or "",
            "end": _s(r, "endDate") or "",
        }
        for r in select("jak-failure", patient=patient)
    ]
    blocked = any(i.severity == "violation" for i in issues)
    if blocked:
        applicable, applicability = False, "The record has violations (listed above); fix them to get a recommendation."
    elif not failures:
        applicable = False
        applicability = (
            "No JAK inhibitor failure is recorded (a JAK inhibitor episode with outcome inadequate response, "
            "loss of response or intolerance). This guideline covers the next line of treatment after JAK "
            "inhibitor failure, so it does not apply to this record."
        )
    else:
        episodes = "; ".join(f"{f['drug']} ({f['outcome']})" for f in failures)
        applicable, applicability = True, f"The guideline applies: JAK inhibitor failure recorded: {episodes}."

    body = _body_measures(fact_rows, as_of, facts.policy.measurement_max_age_days) if not blocked else None
    options: list[OptionAssessment] = []
    if not blocked:
        reasons = _by(select("option-reasons", patient=patient), "option")
        unmatched = _by(select("unmatched-preferences", patient=patient), "option")
        prior_failures = _by(select("prior-failures", patient=patient), "option")
        screenings = _by(select("screening", patient=patient), "condition")
        for row in select("ranked-options", patient=patient):
            option = str(row["option"])
            assessment = OptionAssessment(
                option=option,
                label=str(row["optionLabel"]),
                role=str(row["roleLabel"]),
                score=int(row["score"]),  # type: ignore[call-overload]
            )
            actions = facts.actions(option)
            assessment.actions = [a for a, _ in actions]
            assessment.caveats = facts.caveats(option)
            assessment.gaps = facts.gaps(option)
            _add_reasons(facts, assessment, reasons.get(option, []), unmatched.get(option, []))
            assessment.doses = [compute_dose(r, body) for r in facts.regimens(option)] if body else []
            assessment.gates = _gates(facts, screenings, actions, as_of)
            _add_exclusions(assessment, prior_failures.get(option, []))
            if not applicable:
                assessment.status = "not-applicable"
            elif assessment.status != "excluded" and any(g.state == "blocking" for g in assessment.gates):
                assessment.status = "blocked"
                for gate in assessment.gates:
                    if gate.state == "blocking":
                        assessment.reasons.append(Reason("against", gate.text, statement=gate.statement))
            options.append(assessment)
        _rank(options)
    caveats: dict[str, Provenance] = {}
    for o in options:
        for c in o.caveats:
            caveats[c.statement] = c
    return PatientResult(
        source=source,
        record=record,
        guideline_version=guideline.version,
        as_of=as_of,
        issues=issues,
        applicable=applicable,
        applicability=applicability,
        jak_failures=failures,
        body=body,
        options=options,
        caveats=list(caveats.values()),
    )


def _episode_fact(row: Row, period: str) -> dict[str, str]:
    fact = {"outcome": str(row["outcomeLabel"]), "period": period}
    if isinstance(row.get("episode"), URIRef):
        fact["episode"] = str(row["episode"])
    return fact


def _add_reasons(
    facts: _GuidelineFacts, assessment: OptionAssessment, rows: list[Row], unmatched: list[Row]
) -> None:
    for row in rows:
        contribution = int(row["contribution"])  # type: ignore[call-overload]
        prov = facts.provenance(str(row["statement"]))
        level = str(row["levelLabel"])
        fact = None
        if "manifestation" in row:
            predominant = bool(row["predominant"].toPython())  # type: ignore[union-attr]
            manifestation = str(row["manifestationLabel"])
            fact = {"manifestation": manifestation, "predominant": "yes" if predominant else "no"}
            if isinstance(row.get("finding"), URIRef):  # blank-node ids mean nothing outside this run
                fact["node"] = str(row["finding"])
            where = f"{manifestation} ({'predominant' if predominant else 'present, not predominant'})"
            text = f"{level.capitalize()} for {where}: {prov.label}"
        else:
            text = f"{level.capitalize()}: {prov.label}"
        assessment.reasons.append(Reason("for" if contribution > 0 else "against", text, contribution, prov, fact))
    for row in unmatched:
        if int(row["weight"]) <= 0:  # type: ignore[call-overload]
            continue
        prov = facts.provenance(str(row["statement"]))
        text = f"{str(row['levelLabel']).capitalize()} for {row['manifestationLabel']}, which this patient does not have"
        assessment.reasons.append(Reason("against", text, 0, prov, {"manifestation": str(row["manifestationLabel"]), "present": "no"}))
    for gap in assessment.gaps:
        assessment.reasons.append(Reason("against", f"Guideline gap: {gap['label']}. {gap['text']}"))


def _add_exclusions(assessment: OptionAssessment, rows: list[Row]) -> None:
    for row in rows:
        period = f"{_s(row, 'startDate') or '?'} to {_s(row, 'endDate') or '?'}"
        text = f"Already tried and failed: {assessment.label} {period}, outcome {row['outcomeLabel']}. Not offered again."
        assessment.status = "excluded"
        assessment.reasons.append(
            Reason("against", text, patient_fact=_episode_fact(row, period))
        )


def _rank(options: list[OptionAssessment]) -> None:
    """Competition ranking (1, 2, 2, 4) by score among options that are not excluded."""
    ranked = [o for o in options if o.status in ("offered", "blocked")]
    for option in ranked:
        option.rank = 1 + sum(1 for other in ranked if other.score > option.score)
    options.sort(key=lambda o: (o.rank is None, o.rank or 0, -o.score, o.label))


def recommend_graph(
    patient_graph: Graph,
    source: str,
    guideline: Guideline | None = None,
    today: date | None = None,
    engine: EngineChoice = "rdflib",
) -> tuple[ValidationReport, list[PatientResult]]:
    """Validate then assess every patient record in ``patient_graph``; ``engine`` runs the
    queries ("rdflib" or "oxigraph": the same results)."""
    report, results = recommend_graphs([(source, patient_graph)], guideline, today, engine, keep_shacl=True)[0]
    return report, results


def recommend_graphs(
    sources: list[tuple[str, Graph]],
    guideline: Guideline | None = None,
    today: date | None = None,
    engine: EngineChoice = "rdflib",
    keep_shacl: bool = False,
) -> list[tuple[ValidationReport, list[PatientResult]]]:
    """:func:`recommend_graph` for several (source, graph) pairs that share no nodes, validated
    in one SHACL run and queried in one store: the batch path, with the same results."""
    guideline = guideline or load_guideline()
    graphs = [g for _, g in sources]
    # rdflib's engine queries a plain rdflib graph; the others validate on one whose SPARQL
    # Oxigraph answers (and the embedded engine reuses that Oxigraph store for its queries).
    data = with_guideline(guideline, *graphs) if engine == "rdflib" else oxigraph_answered(guideline, graphs)
    reports = validate_graphs(sources, guideline, data, keep_shacl)
    # Each file is queried on its own (its own graph beside the guideline): the cost of a query
    # then does not grow with the size of the group.
    with query_engines(engine, guideline, data, graphs) as engines:
        return [
            (report, [assess_patient(queries, r, source, report.issues_for(r), guideline, today) for r in report.records])
            for (source, _), report, queries in zip(sources, reports, engines)
        ]
