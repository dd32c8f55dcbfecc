"""Render validation and recommendation results as text, Markdown, JSON or RDF (PROV-O)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from rdflib import PROV, RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg import __version__
from jdm_kg.dosing import ROUNDING_NOTE
from jdm_kg.guideline import JDM, JDMG, Guideline
from jdm_kg.recommend import OptionAssessment, PatientResult, Provenance, Reason
from jdm_kg.validation import ValidationReport

__all__ = ["validation_text", "validation_json", "validation_turtle", "results_text", "results_json", "results_graph", "explain_text"]


# ---------------------------------------------------------------- validation


def validation_text(report: ValidationReport) -> str:
    lines = []
    verdict = "conforms" if report.conforms else "does NOT conform"
    ids = ", ".join(r.patient_id for r in report.records) or "no patient records"
    lines.append(f"{report.source}: {verdict} ({len(report.records)} record(s): {ids})")
    for issue in report.issues:
        lines.append("  " + issue.line(report.source).split(": ", 1)[1])
    return "\n".join(lines)


def validation_json(report: ValidationReport) -> dict[str, Any]:
    return {
        "source": report.source,
        "conforms": report.conforms,
        "records": [r.patient_id for r in report.records],
        "issues": [i.__dict__ for i in report.issues],
    }


def validation_turtle(report: ValidationReport) -> Graph:
    """The SHACL validation report graph pySHACL produced."""
    return report.shacl_report if report.shacl_report is not None else Graph()


# ---------------------------------------------------------------- recommendations


def _prov_line(p: Provenance, indent: str) -> list[str]:
    out = []
    if p.quote:
        quote = " ".join(p.quote.split())
        out.append(f'{indent}quote: "{quote}" [{p.section or "guideline"}]')
    cited = []
    if p.markers:
        cited.append(", ".join(p.markers))
    cited += [s.get("label", s["iri"]) for s in p.sources]
    if cited:
        out.append(f"{indent}source: {'; '.join(cited)}")
    flags = list(p.evidence_types)
    if p.populations:
        flags.append("population: " + ", ".join(p.populations))
    if p.verification == "unverified":
        flags.append("UNVERIFIED")
    if flags:
        out.append(f"{indent}evidence: {'; '.join(flags)}")
    if p.related_evidence:
        out.append(f"{indent}related evidence: " + "; ".join(s.get("label", s["iri"]) for s in p.related_evidence))
    if p.note:
        out.append(f"{indent}note: {p.note}")
    return out


def _reason_lines(reason: Reason, indent: str, detail: bool) -> list[str]:
    sign = "+" if reason.direction == "for" else "-"
    score = f" [{reason.contribution:+d}]" if reason.contribution else ""
    lines = [f"{indent}{sign} {reason.text}{score}"]
    if detail and reason.statement:
        lines += _prov_line(reason.statement, indent + "    ")
    return lines


def _option_lines(o: OptionAssessment, detail: bool) -> list[str]:
    rank = f"#{o.rank}" if o.rank else "--"
    lines = [f"{rank} {o.label} [{o.status}] score {o.score} ({o.role})"]
    for reason in o.reasons_for + o.reasons_against:
        lines += _reason_lines(reason, "    ", detail)
    if o.doses:
        lines.append("    Dose:")
        for dose in o.doses:
            lines.append(f"      {dose.summary()}")
            if dose.status == "computed" and dose.regimen.interval_min is not None:
                r = dose.regimen
                lines.append(f"        schedule: {r.schedule_text}; route: {r.route}")
            for note in dose.notes if dose.status == "computed" else []:
                lines.append(f"        note: {note}")
    if o.gates:
        lines.append("    Before starting (screening):")
        for gate in o.gates:
            lines.append(f"      [{gate.state}] {gate.text}")
    if o.actions:
        lines.append("    Safety and care:")
        for action in o.actions:
            when = f" ({action.timing})" if action.timing else ""
            lines.append(f"      {action.text}{when}")
            if detail:
                lines += _prov_line(action.statement, "          ")
    return lines


def result_text(result: PatientResult, detail: bool = True) -> str:
    lines = [
        f"Patient {result.record.patient_id} ({result.source}); guideline {result.guideline_version}; as of {result.as_of}",
    ]
    for issue in result.issues:
        lines.append(f"  {issue.severity}: {issue.field}: {issue.message}" + (f" (value: {issue.value})" if issue.value else ""))
    lines.append(result.applicability)
    if result.body and result.applicable:
        b = result.body
        bsa = b.bsa
        bits = [
            f"weight {b.weight_kg} kg" if b.weight_kg is not None else f"weight: {b.weight_problem}",
            f"height {b.height_cm} cm" if b.height_cm is not None else f"height: {b.height_problem}",
        ]
        if bsa is not None:
            bits.append(f"BSA {bsa.quantize(Decimal('0.01'))} m² (Mosteller 1987)")
        lines.append("Body measures: " + "; ".join(bits))
    if result.applicable:
        lines.append("")
        lines.append("Options, most favoured first:")
        for option in result.options:
            lines += ["  " + line for line in _option_lines(option, detail)]
        if result.caveats:
            lines.append("")
            lines.append("Caveats stated by the guideline:")
            for caveat in result.caveats:
                lines.append(f"  - {' '.join((caveat.quote or caveat.label).split())}")
        lines.append("")
        lines.append("Doses: " + ROUNDING_NOTE)
    return "\n".join(lines)


def results_text(results: list[PatientResult], markdown: bool = False) -> str:
    blocks = [result_text(r) for r in results]
    if not markdown:
        return "\n\n".join(blocks)
    out = []
    for r, block in zip(results, blocks):
        out.append(f"## Patient {r.record.patient_id}\n")
        out.append("```text\n" + block + "\n```\n")
    return "# jdm-kg recommendations\n\n" + "\n".join(out)


def results_json(results: list[PatientResult]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in results]


def _add_child(
    g: Graph, parent: URIRef, link: URIRef, cls: URIRef, text: str, derived: list[Node], values: dict[URIRef, Literal]
) -> None:
    """Add a typed child node (reason, dose, gate) with its text, values and prov:wasDerivedFrom."""
    child = BNode()
    g.add((parent, link, child))
    g.add((child, RDF.type, cls))
    g.add((child, JDM.text, Literal(text)))
    for prop, value in values.items():
        g.add((child, prop, value))
    for source in derived:
        g.add((child, PROV.wasDerivedFrom, source))


def _measurement_nodes(g: Graph, patient: Node, result: PatientResult) -> dict[str, Node]:
    """The weight and height a dose was computed from, as PROV entities in the output graph.

    A measurement with an IRI in the patient record keeps it; a blank node gets a fresh one here,
    attached to the patient with the same property, value, UCUM unit and date as the input.
    """
    body = result.body
    nodes: dict[str, Node] = {}
    if body is None:
        return nodes
    for name, link, node, value, unit, when in (
        ("weight", JDM.bodyWeight, body.weight_node, body.weight_kg, "kg", body.weight_date),
        ("height", JDM.bodyHeight, body.height_node, body.height_cm, "cm", body.height_date),
    ):
        if value is None or node is None:
            continue
        out = node if isinstance(node, URIRef) else BNode()
        g.add((patient, link, out))
        g.add((out, RDF.type, PROV.Entity))
        g.add((out, JDM.value, Literal(value, datatype=XSD.decimal)))
        g.add((out, JDM.unit, Literal(unit)))
        if when is not None:
            g.add((out, JDM.date, Literal(when, datatype=XSD.date)))
        nodes[name] = out
    return nodes


def results_graph(results: list[PatientResult], guideline: Guideline) -> Graph:
    """The results as RDF: a PROV-O activity per patient, option assessments derived from statements."""
    g = Graph()
    g.bind("jdm", JDM)
    g.bind("jdmg", JDMG)
    g.bind("prov", PROV)
    agent = URIRef("https://w3id.org/jdm-kg/software/jdm-kg")
    g.add((agent, RDF.type, PROV.SoftwareAgent))
    g.add((agent, PROV.value, Literal(f"jdm-kg {__version__}")))
    now = Literal(datetime.now(timezone.utc).isoformat(), datatype=XSD.dateTime)
    for result in results:
        run = URIRef(f"urn:uuid:{uuid.uuid4()}")
        patient = result.record.node
        g.add((run, RDF.type, JDM.RecommendationRun))
        g.add((run, PROV.startedAtTime, now))
        g.add((run, PROV.wasAssociatedWith, agent))
        g.add((run, PROV.used, guideline.version_iri))
        g.add((run, PROV.used, patient))
        g.add((run, JDM.forPatient, patient))
        g.add((run, JDM.status, Literal("applicable" if result.applicable else "not applicable")))
        g.add((run, JDM.text, Literal(result.applicability)))
        g.add((guideline.version_iri, RDF.type, PROV.Entity))
        g.add((patient, JDM.patientId, Literal(result.record.patient_id)))
        measures = _measurement_nodes(g, patient, result)
        for option in result.options:
            node = URIRef(f"{run}/{option.option.rsplit('/', 1)[-1]}")
            g.add((node, RDF.type, JDM.OptionAssessment))
            g.add((node, PROV.wasGeneratedBy, run))
            g.add((node, JDM.forPatient, patient))
            g.add((node, JDM.assessedOption, URIRef(option.option)))
            g.add((node, JDM.status, Literal(option.status)))
            g.add((node, JDM.score, Literal(option.score)))
            if option.rank is not None:
                g.add((node, JDM.rank, Literal(option.rank)))
            for reason in option.reasons:
                derived = [URIRef(reason.statement.statement)] if reason.statement else []
                _add_child(g, node, JDM.reason, JDM.Reason, reason.text, derived, {JDM.direction: Literal(reason.direction)})
                for statement in derived:
                    g.add((node, PROV.wasDerivedFrom, statement))
            for dose in option.doses:
                values: dict[URIRef, Literal] = {JDM.status: Literal(dose.status)}
                derived: list[Node] = [URIRef(dose.regimen.iri)]
                if dose.status == "computed":
                    values[JDM.amountLow] = Literal(dose.low, datatype=XSD.decimal)
                    values[JDM.amountHigh] = Literal(dose.high, datatype=XSD.decimal)
                    values[JDM.amountUnit] = Literal(dose.unit)
                    if dose.formula:
                        values[JDM.formula] = Literal(dose.formula)
                    body = result.body
                    if body is not None:
                        derived += [measures[name] for name in dose.measures_used if name in measures]
                        if dose.regimen.basis == "m2" and body.bsa is not None:
                            values[JDM.bodySurfaceArea] = Literal(
                                body.bsa.quantize(Decimal("0.0001")), datatype=XSD.decimal
                            )
                            derived.append(JDMG["src-mosteller-1987"])
                _add_child(g, node, JDM.computedDose, JDM.ComputedDose, dose.summary(), derived, values)
            for gate in option.gates:
                _add_child(
                    g, node, JDM.gate, JDM.GateResult, gate.text,
                    [URIRef(gate.statement.statement)], {JDM.status: Literal(gate.state)},
                )
    return g


def explain_text(result: PatientResult, drug: str | None = None) -> str:
    """Why and why not, option by option, with the quote and source behind every reason."""
    lines = [f"Patient {result.record.patient_id}: {result.applicability}"]
    for option in result.options:
        if drug and option.option != drug:
            continue
        verdict = {
            "offered": f"OFFERED, rank {option.rank}",
            "blocked": f"BLOCKED until a specialist assesses the positive screening (rank {option.rank})",
            "excluded": "EXCLUDED (already failed)",
            "not-applicable": "not offered (guideline does not apply)",
        }[option.status]
        lines.append("")
        lines.append(f"{option.label}: {verdict}; score {option.score}")
        for heading, reasons in (("Reasons for", option.reasons_for), ("Reasons against", option.reasons_against)):
            lines.append(f"  {heading}:" if reasons else f"  {heading}: none")
            for reason in reasons:
                lines += _reason_lines(reason, "    ", True)
                if reason.patient_fact:
                    fact = ", ".join(f"{k} {v}" for k, v in reason.patient_fact.items() if k != "node")
                    lines.append(f"        patient fact: {fact}")
    return "\n".join(lines)


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
