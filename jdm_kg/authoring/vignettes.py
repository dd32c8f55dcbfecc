"""Guideline test cases as data: patient vignettes with their expected outcome.

A vignette file (Turtle or JSON-LD) holds one or more patient records and, for each, a
``jdm:Vignette`` node that says what the guideline must give (see ``jdm:expect*`` in
``ontology/vocab.ttl``)::

    ex:V-SKIN a jdm:Vignette ;
        rdfs:label "Skin-predominant disease: TNF inhibitors and IVIG first" ;
        jdm:forPatient ex:P-SKIN ;
        jdm:expectApplicable true ;
        jdm:expectFirst jdmg:infliximab , jdmg:adalimumab , jdmg:ivig ;
        jdm:expectOrder ( jdmg:ivig jdmg:tocilizumab ) ;
        jdm:expectNotOffered jdmg:tofacitinib ;
        jdm:expectGate [ jdm:assessedOption jdmg:rituximab ; jdm:screenedFor jdmg:Tuberculosis ;
                         jdm:status "passed" ] ;
        jdm:expectDose [ jdm:assessedOption jdmg:infliximab ; jdm:status "computed" ;
                         jdm:amountLow 105.0 ; jdm:amountHigh 175.0 ; jdm:amountUnit "mg" ] ;
        jdm:expectWhatIf [ jdm:assessedOption jdmg:rituximab ; jdm:whatIfTarget "first" ;
                           jdm:assume "predominant=muscle-weakness" ] .

:func:`run_vignettes` checks each expectation and returns the differences in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rdflib import RDF, RDFS, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.intake import review_patient_graph
from jdm_kg.inputs.loading import load_rdf_file, rdf_files
from jdm_kg.knowledge.guideline import JDM, Guideline, load_guideline
from jdm_kg.outputs.report import result_text
from jdm_kg.reasoning.recommend import OptionAssessment, PatientResult, recommend_graph

__all__ = ["VignetteResult", "vignette_files", "run_vignettes", "results_table"]


@dataclass
class VignetteResult:
    """The outcome of one vignette: passed, or the differences from what was expected."""

    name: str
    label: str
    file: str
    differences: list[str] = field(default_factory=list)
    result: PatientResult | None = None

    @property
    def passed(self) -> bool:
        return not self.differences


def vignette_files(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders expand to the RDF files inside them (sorted)."""
    files = rdf_files([str(p) for p in paths])
    for path in files:
        if not path.is_file():
            raise InputError(str(path), "no such vignette file or folder")
    return files


def _local(node: Node | None) -> str:
    text = str(node)
    return text.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _bool(graph: Graph, node: Node, prop: URIRef) -> bool | None:
    value = graph.value(node, prop)
    return bool(value.toPython()) if isinstance(value, Literal) else None


def _label(options: dict[str, OptionAssessment], iri: Node) -> str:
    option = options.get(str(iri))
    return option.label if option else _local(iri)


def _describe(option: OptionAssessment | None) -> str:
    if option is None:
        return "not assessed (not an option the guideline presents)"
    return f"{option.status}" + (f", rank {option.rank}" if option.rank is not None else "")


def _check(graph: Graph, vignette: Node, valid: bool, result: PatientResult | None) -> list[str]:
    """Compare one patient's outcome with the vignette's expectations."""
    diffs: list[str] = []
    expect_valid = _bool(graph, vignette, JDM.expectValid)
    expect_valid = True if expect_valid is None else expect_valid
    if expect_valid != valid:
        problems = "; ".join(f"{i.field}: {i.message}" for i in (result.issues if result else []) if i.severity == "violation")
        diffs.append(f"record expected {'valid' if expect_valid else 'invalid'}, got {'valid' if valid else 'invalid'}"
                     + (f" ({problems})" if problems else ""))
    if result is None:
        return diffs
    expect_applicable = _bool(graph, vignette, JDM.expectApplicable)
    if expect_applicable is not None and expect_applicable != result.applicable:
        diffs.append(f"guideline expected to {'apply' if expect_applicable else 'not apply'}: {result.applicability}")
    options = {o.option: o for o in result.options}

    first_expected = {str(o) for o in graph.objects(vignette, JDM.expectFirst)}
    if first_expected:
        first = {o.option for o in result.options if o.rank == 1}
        if first != first_expected:
            diffs.append(
                "ranked first: expected " + ", ".join(sorted(_label(options, URIRef(o)) for o in first_expected))
                + "; got " + (", ".join(sorted(_label(options, URIRef(o)) for o in first)) or "nothing")
            )

    for order in graph.objects(vignette, JDM.expectOrder):
        listed = list(Collection(graph, order))
        ranks = [options[str(o)].rank if str(o) in options else None for o in listed]
        wanted = " > ".join(_label(options, o) for o in listed)
        got = ", ".join(f"{_label(options, o)} {_describe(options.get(str(o)))}" for o in listed)
        if any(r is None for r in ranks) or any(a > b for a, b in zip(ranks, ranks[1:])):  # type: ignore[operator]
            diffs.append(f"order {wanted} not met: {got}")

    for iri in sorted(graph.objects(vignette, JDM.expectNotOffered)):
        option = options.get(str(iri))
        if option is not None and option.is_offered:
            diffs.append(f"{option.label} expected not offered, got {_describe(option)}")

    for iri in sorted(graph.objects(vignette, JDM.expectNotRanked)):
        option = options.get(str(iri))
        if option is not None and option.rank is not None:
            diffs.append(f"{option.label} expected not ranked with the next line, got rank {option.rank}")

    for node in graph.objects(vignette, JDM.expectStanding):
        iri, band = graph.value(node, JDM.assessedOption), graph.value(node, JDM.standing)
        option = options.get(str(iri))
        if option is None or option.standing_iri != str(band):
            diffs.append(f"{_label(options, iri)}: expected standing {_local(band)}, got "
                         + (f"{option.standing} ({_describe(option)})" if option else "not assessed"))

    for node in graph.objects(vignette, JDM.expectReasonCount):
        iri, count = graph.value(node, JDM.assessedOption), graph.value(node, JDM["count"])
        option = options.get(str(iri))
        got = len(option.reasons_for) if option else 0
        if not isinstance(count, Literal) or got != int(count.toPython()):
            diffs.append(f"{_label(options, iri)}: expected {count} reason(s) for, got {got}"
                         + (": " + " | ".join(r.text for r in option.reasons_for) if option else ""))

    for iri in sorted(graph.objects(vignette, JDM.expectNoDose)):
        option = options.get(str(iri))
        if option is not None and option.doses:
            diffs.append(f"{option.label} ({option.status}) expected no dose, got " + " | ".join(d.summary() for d in option.doses))

    # what a report says: the one-screen report and the --details one (which adds the quotes,
    # rationale, screening history, caveats, silences and policies); the line limit is the one screen's
    checks = (JDM.expectReportContains, JDM.expectReportLacks, JDM.expectMaxReportLines)
    report = result_text(result) if any(graph.objects(vignette, p) for p in checks) else ""
    full = report + "\n" + result_text(result, detail=True) if report else ""
    for text in sorted(str(t) for t in graph.objects(vignette, JDM.expectReportContains)):
        if text not in full:
            diffs.append(f"report expected to contain {text!r}")
    for text in sorted(str(t) for t in graph.objects(vignette, JDM.expectReportLacks)):
        if text in full:
            line = next(l for l in full.splitlines() if text in l)
            diffs.append(f"report expected not to contain {text!r}: {line.strip()}")
    for limit in graph.objects(vignette, JDM.expectMaxReportLines):
        if len(report.splitlines()) > int(limit.toPython()):  # type: ignore[union-attr]
            diffs.append(f"report has {len(report.splitlines())} lines, expected at most {limit}")

    for node in graph.objects(vignette, JDM.expectOption):
        iri = graph.value(node, JDM.assessedOption)
        want = str(graph.value(node, JDM.status))
        option = options.get(str(iri))
        got = option.status if option else "not assessed"
        if got != want:
            diffs.append(f"{_label(options, iri)}: expected {want}, got {_describe(option)}")

    for node in graph.objects(vignette, JDM.expectGate):
        iri, condition = graph.value(node, JDM.assessedOption), graph.value(node, JDM.screenedFor)
        want = str(graph.value(node, JDM.status))
        option = options.get(str(iri))
        gate = next((g for g in option.gates if g.condition == str(condition)), None) if option else None
        got = gate.state if gate else "no gate"
        if got != want:
            diffs.append(f"{_label(options, iri)} {_local(condition)} gate: expected {want}, got {got}"
                         + (f" ({gate.text})" if gate else ""))

    for node in graph.objects(vignette, JDM.expectDose):
        diffs += _check_dose(graph, node, options)
    return diffs


def _check_whatif(graph: Graph, vignette: Node, result: PatientResult, path: Path, guideline: Guideline) -> list[str]:
    """The expected what-if lines (``jdm:expectWhatIf``: one of the smallest sets of changes that
    makes the option meet the target is exactly these ``jdm:assume`` facts) and the targets no
    change of at most two facts meets (``jdm:expectNoWhatIf``)."""
    wanted = list(graph.objects(vignette, JDM.expectWhatIf))
    none = list(graph.objects(vignette, JDM.expectNoWhatIf))
    if not wanted and not none or result.blocked_by_validation:
        return []
    from jdm_kg.reasoning.whatif import TARGETS, Baseline, what_if

    report = what_if(Baseline(graph, result.record, result, str(path), guideline))
    options = {o.option: o for o in result.options}
    diffs = []
    for node, expect in [(n, True) for n in wanted] + [(n, False) for n in none]:
        iri, target = graph.value(node, JDM.assessedOption), str(graph.value(node, JDM.whatIfTarget))
        label = _label(options, iri)
        if target not in TARGETS:
            diffs.append(f"{label}: what-if target {target!r} is not one of {', '.join(TARGETS)}")
            continue
        found = report.option(str(iri))
        lines = [w for w in found.lines if target in w.targets] if found else []
        got = "; ".join(" ".join(sorted(w.assume)) for w in lines) or "none"
        if expect:
            specs = sorted(str(a) for a in graph.objects(node, JDM.assume))
            if not any(sorted(w.assume) == specs for w in lines):
                diffs.append(f"{label}: expected a what-if making it {target} with {' '.join(specs)}; got {got}")
        elif lines:
            diffs.append(f"{label}: expected no what-if making it {target}; got {got}")
    return diffs


def _check_dose(graph: Graph, node: Node, options: dict[str, OptionAssessment]) -> list[str]:
    iri = graph.value(node, JDM.assessedOption)
    option = options.get(str(iri))
    want = {
        "status": graph.value(node, JDM.status),
        "low": graph.value(node, JDM.amountLow),
        "high": graph.value(node, JDM.amountHigh),
        "unit": graph.value(node, JDM.amountUnit),
    }
    wanted_text = " ".join(
        f"{k} {v}" for k, v in want.items() if v is not None
    )
    if option is None or not option.doses:
        return [f"{_label(options, iri)} dose: expected {wanted_text}, got no dose ({_describe(option)})"]
    got_texts = []
    for dose in option.doses:
        got = {"status": dose.status, "low": dose.low, "high": dose.high, "unit": dose.unit}
        ok = True
        for key, value in want.items():
            if value is None:
                continue
            if key in ("low", "high"):
                ok &= got[key] is not None and Decimal(str(value)) == got[key]
            else:
                ok &= str(value) == str(got[key])
        if ok:
            return []
        got_texts.append(dose.summary())
    return [f"{option.label} dose: expected {wanted_text}; got " + " | ".join(got_texts)]


def run_vignettes(paths: list[str | Path], guideline: Guideline | None = None) -> list[VignetteResult]:
    """Run every vignette found in ``paths`` against ``guideline`` (default: the bundled one)."""
    guideline = guideline or load_guideline()
    results: list[VignetteResult] = []
    for path in vignette_files(paths):
        graph = review_patient_graph(load_rdf_file(path), guideline)  # read as the CLI reads a patient file
        vignettes = sorted(graph.subjects(RDF.type, JDM.Vignette))
        if not vignettes:
            raise InputError(str(path), "no jdm:Vignette node found; a vignette file needs one per patient")
        _, found = recommend_graph(graph, str(path), guideline)
        by_node = {r.record.node: r for r in found}
        for vignette in vignettes:
            patient = graph.value(vignette, JDM.forPatient)
            label = str(graph.value(vignette, RDFS.label) or _local(vignette))
            outcome = VignetteResult(_local(vignette), label, str(path))
            if patient is None or patient not in by_node:
                outcome.differences.append("jdm:forPatient does not name a jdm:Patient record in this file")
            else:
                result = by_node[patient]
                outcome.result = result
                valid = not result.blocked_by_validation
                outcome.differences += _check(graph, vignette, valid, result)
                outcome.differences += _check_whatif(graph, vignette, result, path, guideline)
            results.append(outcome)
    return results


def results_table(results: list[VignetteResult]) -> str:
    """A plain-text pass/fail table, differences under each failed vignette."""
    width = max([len(r.name) for r in results] + [8])
    lines = [f"{'vignette'.ljust(width)}  result  description", f"{'-' * width}  ------  -----------"]
    for r in results:
        lines.append(f"{r.name.ljust(width)}  {'pass' if r.passed else 'FAIL'}    {r.label}")
        for diff in r.differences:
            lines.append(f"{' ' * width}    - {diff}")
    failed = sum(not r.passed for r in results)
    lines.append("")
    lines.append(f"{len(results) - failed} passed, {failed} failed, {len(results)} vignette{'s' if len(results) != 1 else ''}.")
    return "\n".join(lines)
