"""Render validation and recommendation results as text, Markdown, JSON or RDF (PROV-O)."""

from __future__ import annotations

import json
import textwrap
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from rdflib import PROV, RDF, XSD, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.knowledge.guideline import JDM, JDMG, Guideline
from jdm_kg.reasoning.dosing import ComputedDose, reading as _reading, span
from jdm_kg.reasoning.recommend import (
    APPLIES,
    CANNOT_TELL,
    CANNOT_TELL_STATUS,
    OptionAssessment,
    PatientResult,
    Provenance,
)
from jdm_kg.reasoning.validation import ValidationReport
from jdm_kg.version import __version__

__all__ = ["MARKDOWN_TITLE", "validation_text", "validation_json", "validation_turtle", "results_text", "results_json",
           "results_graph", "explain_text", "dose_details", "dose_evidence"]


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
    """The SHACL validation report graph pySHACL produced, with the guideline's prefixes, its
    shapes named and each result linked to its patient (:mod:`jdm_kg.outputs.shacl_report`)."""
    from jdm_kg.outputs.shacl_report import shacl_report_graph

    return shacl_report_graph([report])


# ---------------------------------------------------------------- recommendations
#
# A report is built once as a list of blocks (heading, line, item, detail) and rendered as
# plain text or Markdown, so both formats follow the same structure. The summary fits one
# screen; ``detail=True`` adds every reason with its quote, source and evidence.

_Block = tuple[str, str]  # (kind, text): "title", "line", "notice", "heading", "item", "sub", "detail", "detail2"


def _prov_lines(p: Provenance) -> list[str]:
    out = []
    if p.quote:
        out.append(f'quote: "{" ".join(p.quote.split())}" [{p.section or "guideline"}]')
    cited = []
    if p.markers:
        cited.append(", ".join(p.markers))
    cited += [s.get("label", s["iri"]) for s in p.sources]
    if cited:
        out.append(f"source: {'; '.join(cited)}")
    if p.flags:
        out.append(f"evidence: {'; '.join(p.flags)}")
    if p.related_evidence:
        out.append("related evidence: " + "; ".join(s.get("label", s["iri"]) for s in p.related_evidence))
    if p.derivation:
        out.append(f"derivation (jdm-kg): {p.derivation}")
    if p.note:
        out.append(f"note: {p.note}")
    return out


def _flags(p: Provenance | None) -> str:
    return f" [{'; '.join(p.flags)}]" if p and p.flags else ""


def _weak_flags(p: Provenance | None) -> str:
    """The evidence flags a reader must see on one screen (uncited, extrapolated, population,
    UNVERIFIED): a plain guideline assertion says nothing more."""
    flags = [f for f in p.flags if not f.startswith("guideline assertion")] if p else []
    return f" [{'; '.join(flags)}]" if flags else ""


def _said(value: object) -> str:
    """A fact's value in words (yes/no, not Python's True/False)."""
    return {True: "yes", False: "no"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def dose_details(dose: ComputedDose) -> tuple[list[str], str, str]:
    """What the report's dose line says of a computed dose after its amount: the route, schedule
    and number of doses; the guideline's dose (``375 mg/m2``); and the measure it was worked out
    from (``BSA 1.17 m² from 140 cm and 35 kg``)."""
    r = dose.regimen
    words = [w for w in (r.route, r.schedule(), f"{r.number_of_doses} doses" if r.number_of_doses else None) if w]
    return words, f"{span(r.dose_min, r.dose_max)} {r.dose_unit}", str(dose.basis_text)


def dose_evidence(o: OptionAssessment) -> str:
    """The evidence words after an option's dose line (citation markers, UNVERIFIED, population),
    or "" when its dosing statements have none to say."""
    flags = sorted({f for p in o.dose_statements for f in p.flags if f == "UNVERIFIED" or f.startswith("population")})
    markers = sorted({m for p in o.dose_statements for m in p.markers})
    cited = f"{', '.join(markers)}; " if markers and flags else ""
    return f"{cited}{'; '.join(flags)}" if flags else ""


def _dose_text(o: OptionAssessment, short: bool = False) -> str:
    """The option's doses in words, with their evidence flags; ``short`` (one screen) names the
    measure without the values it came from (the body line has them)."""
    parts = []
    for dose in o.doses:
        drug = f"{dose.regimen.drug_label} " if len(o.doses) > 1 else ""
        if dose.status == "computed" and short and len(o.doses) > 1:  # a combination: each drug's amount and schedule
            r = dose.regimen
            amount = dose.amount() if dose.uncapped_low is not None else f"{span(dose.low, dose.high)} {dose.unit} {dose.per}"
            parts.append(f"{drug}{amount}" + (f" {r.schedule()}" if r.schedule() else ""))
        elif dose.status == "computed":
            words, guideline_dose, measure = dose_details(dose)
            if short:
                measure = measure.split(" from ", 1)[0]
            parts.append(", ".join([f"{drug}{dose.amount()}", *words]) + f" ({guideline_dose}; {measure})")
        elif dose.status == "not-given":
            parts.append(f"{dose.regimen.drug_label}: no dose in the guideline" if len(o.doses) > 1
                         else "the guideline gives no dose")
        else:
            parts.append(f"{drug.strip() + ': ' if drug else ''}no dose worked out: " + "; ".join(dose.notes))
    evidence = dose_evidence(o)
    return "; ".join(parts) + (f" [{evidence}]" if evidence else "")


_NOT_OFFERED = {
    "excluded": "not offered",
    "current": "already on",
    "not-indicated": "not indicated",
    "not-applicable": "not applicable",
    CANNOT_TELL_STATUS: "cannot tell",
}


def _whatif_block(result: PatientResult | None, o: OptionAssessment) -> list[_Block]:
    """Under an option not offered or not first (``--details``): its shortest what-if."""
    from jdm_kg.outputs.whatif_report import shortest_line

    line = shortest_line(result, o.option) if result is not None and o.status not in ("excluded", "current") else None
    return [("detail", line)] if line else []


def _option_label(o: OptionAssessment, detail: bool) -> str:
    """The option's name; where the option itself is jdm-kg's reading, the derivation (in full
    with --details, its first clause on one screen)."""
    if not o.derivation:
        return o.label
    return f"{o.label} ({o.derivation if detail else o.derivation.split(':', 1)[0]})"


def _short_state(o: OptionAssessment) -> str:
    """The screening state in a few words, alike conditions together: 'screen first: hepatitis B,
    tuberculosis; BLOCKED: hepatitis C positive'."""
    grouped: dict[str, list[str]] = {}
    for g in o.gates:
        if g.need:
            grouped.setdefault(g.need, []).append(g.condition_label + (" positive" if g.need == "blocked" else ""))
    return "; ".join(f"{'BLOCKED' if need == 'blocked' else need}: {', '.join(names)}" for need, names in grouped.items())


def _state_and_dose(o: OptionAssessment, short: bool = False) -> str:
    """What must happen first (screening not passed: 'screen first: tuberculosis'), then the dose."""
    state = _short_state(o) if short else o.screening_state
    tag = next((g.policy.tag for g in o.gates if g.need and g.need != "screen first"), "")
    dose = _dose_text(o, short)
    parts = []
    if state:
        parts.append(f"{state}" + (f" ({tag})" if tag else ""))
    waiting = any(g.state == "required" for g in o.gates)
    if dose and not all(d.status == "not-given" for d in o.doses):
        word = ("dose once cleared" if o.status == "blocked" else "dose once screened" if waiting else "dose")
        parts.append(f"{word}: {dose}")
    elif dose:
        parts.append(dose)
    return "; ".join(parts)


def _compact_head(o: OptionAssessment, label: str) -> str:
    """Rank, name, standing and the reason in a few words (with its evidence flags and the record's notes)."""
    why = "; ".join(x for x in [o.brief + _flags(o.summary_statement if o.brief else None), *o.notes] if x.strip())
    if o.ranked:
        head = f"#{o.rank} {label}: {o.standing}" + (f" ({o.band_policy.tag})" if o.band_policy else "")
    else:
        head = f"{label}" + (" (only if severe and multi-system)" if o.status == "conditional" else "")
    return head + (f": {why}" if why else "")


def _compact_option(o: OptionAssessment, label: str | None = None) -> list[_Block]:
    """One option on one screen: rank, name, standing, the reason in a few words, what must happen
    first (screening) and the dose, in one line (``label``: the names of tied options that say the
    same)."""
    line = _compact_head(o, label or _option_label(o, False))
    if o.status == "conditional":  # to consider only if: its doses with --details
        return [("item", line + "; doses: --details")]
    tail = _state_and_dose(o, short=True)
    return [("item", line + (f"; {tail}" if tail else ""))]


def _compact_section(options: list[OptionAssessment]) -> list[_Block]:
    """The options of a section on one screen. Tied options that say the same words share a line;
    those that differ only in their doses share it too, each dose after its option's name (the
    screening state, the same for all of them, stays on that line)."""
    blocks: list[_Block] = []
    groups: list[list[OptionAssessment]] = []

    def state(o: OptionAssessment) -> tuple[tuple[str, str], ...]:
        return tuple((g.need, g.condition_label) for g in o.gates if g.need)

    for o in options:
        same = next((g for g in groups if o.ranked and g[0].ranked and g[0].rank == o.rank
                     and _compact_head(g[0], "X") == _compact_head(o, "X") and state(g[0]) == state(o)), None)
        if same is not None:
            same.append(o)
        else:
            groups.append([o])
    for group in groups:
        alike = [g for g in group if _compact_option(g, "X") == _compact_option(group[0], "X")]
        if len(alike) == len(group):
            blocks += _compact_option(group[0], ", ".join(_option_label(o, False) for o in group))
            continue
        o = group[0]
        line = _compact_head(o, ", ".join(_option_label(x, False) for x in group))
        pending = _short_state(o)
        tag = next((g.policy.tag for g in o.gates if g.need and g.need != "screen first"), "")
        if pending:
            line += f"; {pending}" + (f" ({tag})" if tag else "")
        waiting = any(g.state == "required" for g in o.gates)
        word = "doses once cleared" if o.status == "blocked" else "doses once screened" if waiting else "doses"
        doses = "; ".join(f"{x.label}: " + (_dose_text(x, True) if not all(d.status == "not-given" for d in x.doses)
                                            else "no dose in the guideline") for x in group)
        blocks.append(("item", f"{line}; {word}: {doses}"))
    return blocks


def _option_blocks(o: OptionAssessment, detail: bool, result: PatientResult | None = None) -> list[_Block]:
    """What the report says of one option: under "Not offered" when it is not offered, else in its
    section (on one screen, or with every reason and its shortest what-if when ``detail``)."""
    if o.status not in ("offered", "conditional", "blocked"):
        return [("item", f"{o.label} ({_NOT_OFFERED.get(o.status, o.status)}): {o.summary}")] + (
            _whatif_block(result, o) + _reason_details(o) if detail else [])
    if not detail:
        return _compact_option(o)
    blocks: list[_Block] = []
    label = _option_label(o, detail)
    if o.ranked:
        head = f"#{o.rank} {label}: {o.standing}" + (f" ({o.band_policy.tag})" if o.band_policy else "")
        if o.status == "blocked":
            blocking = ", ".join(g.condition_label for g in o.gates if g.state == "blocking")
            head += f" - BLOCKED by {blocking} screening ({next(g for g in o.gates if g.state == 'blocking').policy.tag})"
        blocks.append(("item", head + ": " + o.summary + _flags(o.summary_statement)))
    else:
        word = "consider only if severe and multi-system" if o.status == "conditional" else o.role
        blocks.append(("item", f"{label} ({word}): {o.summary}" + _flags(o.summary_statement)))
    sub = _state_and_dose(o)  # screening stands next to each option, whatever its state
    if sub:
        blocks.append(("sub", sub))
    if detail:
        blocks += _whatif_block(result, o)
        blocks += _reason_details(o)
    return blocks


def _reason_details(o: OptionAssessment) -> list[_Block]:
    blocks: list[_Block] = []
    for reason in o.reasons_for + o.reasons_against:
        sign = "+" if reason.direction == "for" else "-"
        policy = f" ({reason.policy.tag})" if reason.policy and reason.policy.tag not in reason.text else ""
        blocks.append(("detail", f"{sign} {reason.text}{policy}"))
        if reason.statement:
            blocks += [("detail2", line) for line in _prov_lines(reason.statement)]
    for gap in o.gaps:
        blocks.append(("detail", f"- guideline gap: {gap['label']}. {gap['text']}"))
    return blocks


def _who(result: PatientResult) -> str:
    """'12 y, female' (what the record says), for the title line."""
    bits = [b for b in (result.age_text, result.sex) if b]
    return ", ".join(bits)


def _screening_blocks(result: PatientResult, detail: bool) -> list[_Block]:
    """What is pending before any biologic, first; the passed ones in one line. With --details
    every condition with its whole history."""
    if not result.screening:
        return []
    if detail:
        b: list[_Block] = [("heading", "Screening before any biologic (every result on record, oldest first)")]
        for gate in result.screening:
            used = (f"; on record: {', '.join(e.text() for e in gate.history)}"  # which tests, when the record says
                    if len(gate.history) > 1 or any(e.test for e in gate.history) else "")
            b.append(("item", f"[{gate.state}] {gate.text}{used}"))
        return b
    if result.held_back:  # the first notice said what is pending, and what passed
        return []
    pending = [g for g in result.screening if g.state != "passed"]
    passed = [g for g in result.screening if g.state == "passed"]
    tag = result.screening[0].policy.tag
    names = ", ".join(g.condition_label for g in passed)
    if not pending:
        return [("line", f"Screening before any biologic: passed: {names} (negative, recent enough: {tag})")]
    text = "; ".join(f"[{g.state}] {g.text}" for g in pending) + (f"; passed: {names}" if names else "")
    heading = ("Pending before any biologic" if any(g.state in ("required", "blocking") for g in pending)
               else "Screening before any biologic")
    return [("line", f"{heading}: {text}" + ("" if tag in text else f" ({tag})"))]


def _actions_blocks(result: PatientResult, detail: bool) -> list[_Block]:
    if not result.shared_actions:
        return []
    b: list[_Block] = [("heading", "Safety and care (once for all options above)")]
    if detail:
        for action in result.shared_actions:
            when = f" ({action.timing})" if action.timing else ""
            b.append(("item", f"{action.text}{when}"))
            b += [("detail2", line) for line in _prov_lines(action.statement)]
        return b
    by_time: dict[str, list[str]] = {}
    once = "Once a biologic starts: "
    said = {n.statement.statement for n in result.notices if n.statement}  # (the expert-centre step, said first)
    for action in result.shared_actions:
        if action.statement.statement not in said:
            by_time.setdefault(action.timing or "", []).append(action.text.rstrip("."))
    for timing, texts in by_time.items():  # "once a biologic starts" said once, before what it applies to
        later = [t[len(once):] for t in texts if t.startswith(once)]
        if len(later) > 1:
            by_time[timing] = [t for t in texts if not t.startswith(once)] + [once + "; ".join(later)]
    return [("line", f"Safety and care{', ' + timing if timing else ''}: " + "; ".join(texts) + ".")
            for timing, texts in by_time.items()]


def result_blocks(result: PatientResult, detail: bool = False) -> list[_Block]:
    """The report for one patient, as blocks (see :func:`render`). On one screen: the patient,
    applicability, what is pending, the options with dose and state, ties and gaps; ``detail``
    adds the quotes, rationale, caveats, the guideline's silences, the policies used and, under
    each option not offered or not first, its shortest what-if. A result under ``--assume`` is
    marked HYPOTHETICAL first, with its assumptions."""
    from jdm_kg.outputs.whatif_report import hypothetical_lines

    who = _who(result)
    mark = "HYPOTHETICAL: " if result.assumptions else ""
    b: list[_Block] = [("title", f"{mark}Patient {result.record.patient_id}{', ' + who if who else ''} "
                                 f"({result.source}); guideline {result.guideline_version}; as of {result.as_of}")]
    b += [("notice", line) for line in hypothetical_lines(result)]
    if result.state == CANNOT_TELL:  # said first: the answer hangs on these data
        b.append(("notice", result.applicability))
        for needed in result.data_needed:
            b.append(("notice", f"Needed: {needed.text()}"))
    for issue in result.issues:
        b.append(("line", issue.line(result.source).split(": ", 1)[1].replace(f"record {issue.record}: ", "", 1)))
    if result.state != CANNOT_TELL:
        b.append(("line", result.applicability))
    if result.state not in (APPLIES, CANNOT_TELL):
        return b
    if result.features:
        none = "" if any(f.predominant for f in result.features) else (
            " (none marked predominant: every feature recorded ranks; record which predominates)")
        b.append(("line", "Features: " + "; ".join(f.text() for f in result.features) + none))
    if result.history:
        b.append(("line", "Treatments: " + "; ".join(e.text() for e in result.history)))
    if result.body:
        body = result.body
        bits = [  # rounded for reading; doses are worked out from the exact values
            f"weight {_reading(body.weight_kg)} kg ({body.weight_date})" if body.weight_kg is not None
            else f"weight: {body.weight_problem}",
            f"height {_reading(body.height_cm)} cm ({body.height_date})" if body.height_cm is not None
            else f"height: {body.height_problem}",
        ]
        if body.bsa is not None:
            bits.append(f"BSA {body.bsa.quantize(Decimal('0.01'))} m²" + (" (Mosteller 1987)" if detail else ""))
        b.append(("line", "Body: " + "; ".join(bits)))
    for notice in result.notices:
        tag = f" ({notice.policy.tag})" if notice.policy and notice.policy.tag not in notice.text else ""
        more = f" {notice.more}" if detail and notice.more else ""
        b.append(("notice", notice.text + more + tag + (_flags if detail else _weak_flags)(notice.statement)))
    b += _screening_blocks(result, detail)
    sections: dict[int, list[OptionAssessment]] = {}
    for o in result.options:
        sections.setdefault(o.section, []).append(o)
    not_offered = []
    for order in sorted(sections):
        shown = [o for o in sections[order] if o.status in ("offered", "conditional", "blocked") or o.if_applies]
        not_offered += [o for o in sections[order] if o not in shown]
        if not shown:
            continue
        first = sections[order][0]
        heading = first.section_heading + (f" ({first.section_policy.tag})" if first.section_policy else "")
        if result.state == CANNOT_TELL:
            heading += ": only if the data needed (above) settle it; cannot tell yet"
        b.append(("heading", heading))
        if first.ranked and result.next_line and detail:
            nl = result.next_line
            b.append(("line", f'Guideline: "{_short(nl.quote or nl.label)}"{_flags(nl)}'))
            if result.rationales:
                b.append(("line", "Rationale: " + "; ".join(f"{r.label}{_flags(r)}" for r in result.rationales)))
        # cannot tell: each option as it would be, marked as conditional on the data needed ("if so:")
        view = [replace(o, status=o.if_applies) if o.status == CANNOT_TELL_STATUS and o.if_applies else o for o in shown]
        said = [x for o in view for x in _option_blocks(o, detail, result)] if detail else _compact_section(view)
        if result.state == CANNOT_TELL:
            said = [(kind, "if so: " + text) if kind == "item" else (kind, text) for kind, text in said]
        b += said
        if first.ranked:
            for tie in result.ties:
                b.append(("line", f"Tie: {tie}"))
    if not_offered:
        b.append(("heading", "Not offered"))
        for o in not_offered:
            b += _option_blocks(o, detail, result)
    b += _actions_blocks(result, detail)
    if detail and result.caveats:
        b.append(("heading", "Caveats stated by the guideline"))
        for caveat in result.caveats:
            b.append(("item", f'"{" ".join((caveat.quote or caveat.label).split())}"{_flags(caveat)}'))
    if detail and result.document_gaps:
        b.append(("line", "Where the guideline is silent: " + "; ".join(f"{g['label']}" for g in result.document_gaps) + "."))
    if detail and result.policies:
        b.append(("line", "jdm-kg policies used (not guideline content): " + "; ".join(p.label for p in result.policies) + "."))
    if any(d.status == "computed" for o in result.options for d in o.doses):
        rounding = next((p for p in result.policies if "rounding" in p.label), None)
        b.append(("line", "Doses are from exact weight and BSA, rounded half-up to 0.1 unit; vial sizes are the prescriber's"
                          + (f" ({rounding.tag})" if rounding else "")))
    if not detail:
        b.append(("line", "More (quotes, rationale, caveats, silences, policies used): --details, or jdm-kg explain FILE [DRUG]."))
    return b


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


_INDENT = {"title": "", "line": "", "notice": "! ", "heading": "", "item": "  ", "sub": "      ", "detail": "      ",
           "detail2": "          "}


def render(blocks: list[_Block], markdown: bool = False, width: int | None = None) -> str:
    """Blocks as plain text (one screen) or Markdown (headings and lists). ``width`` wraps plain
    text at that many columns, each continuation indented under its line's text (Markdown is
    never wrapped)."""
    lines: list[str] = []
    for kind, text in blocks:
        if not markdown:
            line = f"{text}:" if kind == "heading" else _INDENT[kind] + text
            if width and len(line) > width:
                indent = " " * (len(_INDENT.get(kind, "")) + 2)
                lines += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=True,
                                       break_on_hyphens=False)
            else:
                lines.append(line)
            continue
        if kind == "title":
            lines.append(f"## {text}\n")
        elif kind == "heading":
            lines.append(f"\n### {text}\n")
        elif kind == "notice":
            lines.append(f"> **{text}**\n")
        elif kind == "item":
            lines.append(f"- {text}")
        elif kind in ("sub", "detail"):
            lines.append(f"  - {text}")
        elif kind == "detail2":
            lines.append(f"    - {text}")
        else:
            lines.append(f"{text}\n")
    return "\n".join(lines)


def result_text(result: PatientResult, detail: bool = False, width: int | None = None) -> str:
    return render(result_blocks(result, detail), width=width)


#: The title of a Markdown report.
MARKDOWN_TITLE = "# jdm-kg recommendations"


def results_text(results: list[PatientResult], markdown: bool = False, detail: bool = False, title: bool = True,
                 width: int | None = None) -> str:
    """The reports of ``results`` as text (wrapped at ``width`` columns if given), or as one
    Markdown document (with its title unless ``title`` is False)."""
    if not markdown:
        return "\n\n".join(result_text(r, detail, width) for r in results)
    return (MARKDOWN_TITLE + "\n\n" if title else "") + "\n\n".join(
        render(result_blocks(r, detail), markdown=True) for r in results)


def results_json(results: list[PatientResult]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in results]


def _add_child(
    g: Graph, parent: URIRef, link: URIRef, cls: URIRef, text: str, derived: list[Node], values: dict[URIRef, Literal]
) -> None:
    """Add a typed child node (reason, dose, gate) with its text, values and prov:wasDerivedFrom;
    named ``{parent}/{kind}-{n}`` so that the same input gives the same graph, byte for byte."""
    kind = str(link).rsplit("#", 1)[-1]
    n = 1
    while (child := URIRef(f"{parent}/{kind}-{n}")) in set(g.objects(parent, link)):
        n += 1
    g.add((parent, link, child))
    g.add((child, RDF.type, cls))
    g.add((child, JDM.text, Literal(text)))
    for prop, value in values.items():
        g.add((child, prop, value))
    for source in derived:
        g.add((child, PROV.wasDerivedFrom, source))


def _measurement_nodes(g: Graph, patient: Node, result: PatientResult, run: str) -> dict[str, Node]:
    """The weight and height a dose was computed from, as PROV entities in the output graph.

    A measurement with an IRI in the patient record keeps it; a blank node gets one under the run,
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
        out = node if isinstance(node, URIRef) else URIRef(f"{run}/{name}")
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
    for result in results:
        # The same input gives the same graph, byte for byte: the run's IRI is a name-based UUID
        # of what it produced (no clock, no random number), and a patient that is a blank node
        # in the input gets an IRI under the run.
        content = json.dumps(result.as_dict(), sort_keys=True, ensure_ascii=False)
        run = URIRef(f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'jdm-kg {__version__} ' + content)}")
        patient = result.record.node if isinstance(result.record.node, URIRef) else URIRef(f"{run}/patient")
        g.add((run, RDF.type, JDM.RecommendationRun))
        g.add((run, JDM.asOf, Literal(result.as_of, datatype=XSD.date)))
        g.add((run, PROV.wasAssociatedWith, agent))
        g.add((run, PROV.used, guideline.version_iri))
        g.add((run, PROV.used, patient))
        g.add((run, JDM.forPatient, patient))
        g.add((run, JDM.status, Literal({APPLIES: "applicable", CANNOT_TELL: "cannot tell"}.get(result.state, "not applicable"))))
        g.add((run, JDM.text, Literal(result.applicability)))
        if result.assumptions:  # recommend --assume: a hypothetical run, with what it assumed
            g.add((run, JDM.hypothetical, Literal(True)))
            for assumption in result.assumptions:
                g.add((run, JDM.assumption, Literal(f"{assumption['assume']}: {assumption['text']}")))
        g.add((guideline.version_iri, RDF.type, PROV.Entity))
        g.add((patient, JDM.patientId, Literal(result.record.patient_id)))
        measures = _measurement_nodes(g, patient, result, str(run))
        for option in result.options:
            node = URIRef(f"{run}/{option.option.rsplit('/', 1)[-1]}")
            g.add((node, RDF.type, JDM.OptionAssessment))
            g.add((node, PROV.wasGeneratedBy, run))
            g.add((node, JDM.forPatient, patient))
            g.add((node, JDM.assessedOption, URIRef(option.option)))
            g.add((node, JDM.status, Literal(option.status)))
            if option.standing_iri:
                g.add((node, JDM.standing, URIRef(option.standing_iri)))
            for policy in (option.status_policy, option.band_policy):
                if policy:
                    g.add((node, PROV.wasDerivedFrom, URIRef(policy.iri)))
            if option.rank is not None:
                g.add((node, JDM.rank, Literal(option.rank)))
            for reason in option.reasons:
                derived = [URIRef(reason.statement.statement)] if reason.statement else []
                if reason.policy:
                    derived.append(URIRef(reason.policy.iri))
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
                    [URIRef(gate.statement.statement), URIRef(gate.policy.iri)], {JDM.status: Literal(gate.state)},
                )
    return g


def explain_text(result: PatientResult, drug: str | None = None) -> str:
    """Why and why not, option by option, with the quote and source behind every reason and the
    jdm-kg policy behind every rule."""
    lines = [f"Patient {result.record.patient_id}: {result.applicability}"]
    for needed in result.data_needed:
        lines.append(f"! Needed: {needed.text()}")
    for notice in result.notices:
        lines.append(f"! {notice.text}")
    for option in result.options:
        if drug and option.option != drug:
            continue
        verdict = {
            "offered": f"OFFERED ({option.role})" + (f", rank {option.rank}: {option.standing}" if option.ranked else ""),
            "conditional": f"TO CONSIDER ONLY IF severe and multi-system ({option.role})",
            "blocked": f"BLOCKED until a clinician clears the positive screening (rank {option.rank}: {option.standing})",
            "excluded": "NOT OFFERED (history)",
            "current": "ALREADY ON IT",
            "not-indicated": f"NOT INDICATED for this patient ({option.role})",
            "not-applicable": "not offered (guideline does not apply)",
            CANNOT_TELL_STATUS: (f"CANNOT TELL: {option.if_applies.upper()} only if the data needed settle it"
                                 + (f" (rank {option.rank}: {option.standing})" if option.rank else "")
                                 if option.if_applies else "CANNOT TELL (the record contradicts itself)"),
        }[option.status]
        lines.append("")
        policies = [p.tag for p in (option.band_policy, option.status_policy) if p and option.status != "not-applicable"]
        policy = f" ({'; '.join(policies)})" if policies else ""
        lines.append(f"{option.label}: {verdict}{policy}")
        lines.append(f"  In one line: {option.summary}")
        for heading, reasons in (("Reasons for", option.reasons_for), ("Reasons against", option.reasons_against)):
            lines.append(f"  {heading}:" if reasons else f"  {heading}: none")
            for reason in reasons:
                sign = "+" if reason.direction == "for" else "-"
                tag = f" ({reason.policy.tag})" if reason.policy and reason.policy.tag not in reason.text else ""
                lines.append(f"    {sign} {reason.text}{tag}")
                if reason.statement:
                    lines += ["        " + line for line in _prov_lines(reason.statement)]
                if reason.patient_fact:
                    fact = ", ".join(f"{k} {_said(v)}" for k, v in reason.patient_fact.items()
                                     if k not in ("node", "episode", "drugIri"))
                    lines.append(f"        patient fact: {fact}")
        for gap in option.gaps:
            lines.append(f"    - guideline gap: {gap['label']}. {gap['text']}")
        if option.doses:
            lines.append("  Dose: " + "; ".join(d.summary() for d in option.doses))
        for gate in option.gates:
            lines.append(f"  Screening [{gate.state}] {gate.text}")
    return "\n".join(lines)


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
