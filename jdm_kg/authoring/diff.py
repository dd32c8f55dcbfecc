"""``jdm-kg diff OLD NEW``: what changed in the guideline, in clinical terms, and for whom.

OLD and NEW are guideline versions: a folder of ``.ttl`` files, one ``.ttl`` file that replaces
its namesake in the bundled ``ontology/`` (e.g. an edited ``guideline.ttl``), or a git
revision (``HEAD``, ``v1.0``, ``main~3``) whose ``ontology/`` folder is read with ``git show``.

The changes are listed per term (statement, regimen, drug, source...), by the labels of the
things and properties involved, not as raw triples. The impact is found by running the
vignettes and example patients under both versions and comparing each option's status, rank,
doses and safety gates.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import RDF, RDFS, SKOS, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from jdm_kg.authoring.vignettes import VignetteResult, run_vignettes
from jdm_kg.errors import InputError
from jdm_kg.inputs.intake import review_patient_graph
from jdm_kg.inputs.loading import load_rdf_file, rdf_files
from jdm_kg.knowledge.guideline import Guideline, compile_guideline, guideline_files
from jdm_kg.reasoning.dosing import ComputedDose
from jdm_kg.reasoning.recommend import PatientResult, recommend_graph
from jdm_kg.resources import guideline_home, resource_dir

__all__ = ["resolve_version", "clinical_changes", "impact", "GuidelineDiff", "diff_guidelines"]

_KEEP: list[tempfile.TemporaryDirectory[str]] = []  # git checkouts live as long as the process


def _git_files(revision: str) -> list[Path]:
    """The ``ontology/*.ttl`` files at ``revision`` of the git repository around the cwd."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        listing = subprocess.run(
            ["git", "-C", top, "ls-tree", "--name-only", f"{revision}:ontology"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        raise InputError(
            revision, "not a folder, a .ttl file, or a git revision with an ontology/ folder (in this repository)"
        ) from None
    folder = tempfile.TemporaryDirectory(prefix="jdm-kg-diff-")
    _KEEP.append(folder)
    files = []
    for name in sorted(n for n in listing if n.endswith(".ttl")):
        text = subprocess.run(
            ["git", "-C", top, "show", f"{revision}:ontology/{name}"], capture_output=True, check=True
        ).stdout
        target = Path(folder.name) / name
        target.write_bytes(text)
        files.append(target)
    if not files:
        raise InputError(revision, "that revision has no ontology/*.ttl files")
    return files


def resolve_version(spec: str) -> list[Path]:
    """The guideline files named by ``spec``: a folder, a replacement file, or a git revision."""
    path = Path(spec)
    if path.is_dir():
        return guideline_files(path)
    if path.is_file():
        bundled = guideline_files(resource_dir("ontology"))
        names = [p.name for p in bundled]
        if path.name not in names:
            raise InputError(
                spec, f"a single file must be named like the guideline file it replaces ({', '.join(names)}); "
                "or give a folder"
            )
        return [path if p.name == path.name else p for p in bundled]
    return _git_files(spec)


# --------------------------------------------------------------------------------------
# What changed


def _label(graphs: tuple[Graph, Graph], node: Node) -> str:
    for graph in graphs:
        value = graph.value(node, RDFS.label) or graph.value(node, SKOS.prefLabel)
        if value is not None:
            return str(value)
    text = str(node)
    return text.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _value(graphs: tuple[Graph, Graph], graph: Graph, node: Node) -> str:
    if isinstance(node, Literal):
        return f'"{node}"' if isinstance(node.toPython(), str) else str(node)
    if isinstance(node, BNode):
        if (node, RDF.first, None) in graph:
            return "(" + ", ".join(_value(graphs, graph, item) for item in Collection(graph, node)) + ")"
        parts = sorted(f"{_label(graphs, p)} {_value(graphs, graph, o)}" for p, o in graph.predicate_objects(node))
        return "[" + "; ".join(parts) + "]"
    return _label(graphs, node)


def _kind(graphs: tuple[Graph, Graph], graph: Graph, node: Node) -> str:
    types = sorted(_label(graphs, t) for t in graph.objects(node, RDF.type))
    return types[0] if types else "term"


def clinical_changes(old: Graph, new: Graph) -> list[str]:
    """Per-term changes between two asserted guideline graphs, in words."""
    graphs = (new, old)
    subjects = {s for g in (old, new) for s in g.subjects() if isinstance(s, URIRef)}
    lines: list[tuple[str, str, str]] = []
    for subject in subjects:
        in_old, in_new = (subject, None, None) in old, (subject, None, None) in new
        label = _label(graphs, subject)
        if not in_old:
            kind = _kind(graphs, new, subject)
            definition = new.value(subject, SKOS.definition)
            lines.append((kind, label, f"added {kind} '{label}'" + (f": {definition}" if definition else "")))
            continue
        if not in_new:
            kind = _kind(graphs, old, subject)
            lines.append((kind, label, f"removed {kind} '{label}'"))
            continue
        kind = _kind(graphs, new, subject)
        for predicate in sorted({p for g in (old, new) for p in g.predicates(subject)}):
            before = sorted(_value(graphs, old, o) for o in old.objects(subject, predicate))
            after = sorted(_value(graphs, new, o) for o in new.objects(subject, predicate))
            if before == after:
                continue
            prop = _label(graphs, predicate)
            if before and after:
                text = f"{kind} '{label}': {prop} changed from {', '.join(before)} to {', '.join(after)}"
            elif after:
                text = f"{kind} '{label}': {prop} added: {', '.join(after)}"
            else:
                text = f"{kind} '{label}': {prop} removed (was {', '.join(before)})"
            lines.append((kind, label, text))
    return [text for _, _, text in sorted(lines)]


# --------------------------------------------------------------------------------------
# For whom


def _dose_text(dose: ComputedDose) -> str:
    if dose.status != "computed":
        return dose.status
    amount = f"{dose.low} {dose.unit}" if dose.low == dose.high else f"{dose.low}-{dose.high} {dose.unit}"
    return f"{amount} per dose"


def _summary(result: PatientResult) -> dict[str, str]:
    """One entry per thing a clinician would notice: applicability, status and rank, dose, gate."""
    out = {"guideline": "applies" if result.applicable else "does not apply"}
    for option in result.options:
        out[f"{option.label}: status"] = option.status + (f", rank {option.rank}" if option.rank is not None else "")
        for dose in option.doses:
            out[f"{option.label}: dose ({dose.regimen.drug_label})"] = _dose_text(dose)
        for gate in option.gates:
            out[f"{option.label}: {gate.condition_label} gate"] = gate.state
    return out


def _results(paths: list[Path], guideline: Guideline) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in paths:
        try:
            _, found = recommend_graph(review_patient_graph(load_rdf_file(path), guideline), str(path), guideline)
        except InputError:
            continue
        for result in found:
            out[f"{result.record.patient_id} ({path.name})"] = _summary(result)
    return out


def _compare(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    lines = []
    for patient in sorted(set(before) | set(after)):
        b, a = before.get(patient, {}), after.get(patient, {})
        for key in sorted(set(b) | set(a)):
            if b.get(key) != a.get(key):
                lines.append(f"{patient}: {key}: {b.get(key, 'not assessed')} -> {a.get(key, 'not assessed')}")
    return lines


def impact(old: Guideline, new: Guideline, patients: list[Path]) -> list[str]:
    """How each patient's recommendation differs between the two versions."""
    return _compare(_results(patients, old), _results(patients, new))


@dataclass
class GuidelineDiff:
    old_version: str
    new_version: str
    changes: list[str]
    impact: list[str]
    vignettes: list[str] = field(default_factory=list)
    #: where each came from, as given (a folder, a file, a git revision)
    old_from: str = ""
    new_from: str = ""

    def text(self) -> str:
        def named(version: str, where: str) -> str:
            return f"{version} ({where})" if where else version

        out = [f"Guideline {named(self.old_version, self.old_from)} -> {named(self.new_version, self.new_from)}", ""]
        out.append(f"What changed ({len(self.changes)}):")
        out += [f"  - {c}" for c in self.changes] or ["  nothing: the two graphs hold the same statements"]
        out.append("")
        out.append(f"Who is affected ({len(self.impact)} differences in vignettes and examples):")
        out += [f"  - {line}" for line in self.impact] or ["  no vignette or example patient gets a different recommendation"]
        if self.vignettes:
            out.append("")
            out.append("Vignettes whose outcome changed:")
            out += [f"  - {line}" for line in self.vignettes]
        return "\n".join(out)


def diff_guidelines(old_spec: str, new_spec: str, patients: list[Path], vignettes: list[Path]) -> GuidelineDiff:
    """Compare two guideline versions and their effect on ``patients`` and ``vignettes``."""
    old, new = compile_guideline(resolve_version(old_spec)), compile_guideline(resolve_version(new_spec))
    changes = clinical_changes(old.asserted, new.asserted)
    if not changes:
        return GuidelineDiff(old.version, new.version, [], [], old_from=old_spec, new_from=new_spec)
    affected = impact(old, new, patients)
    before_v, after_v = run_vignettes(list(vignettes), old), run_vignettes(list(vignettes), new)

    def summaries(results: list[VignetteResult]) -> dict[str, dict[str, str]]:
        return {f"vignette {r.name} ({Path(r.file).name})": _summary(r.result) for r in results if r.result}

    affected += _compare(summaries(before_v), summaries(after_v))
    flipped = []
    was = {r.name: r for r in before_v}
    for r in after_v:
        if r.name in was and was[r.name].passed != r.passed:
            flipped.append(f"{r.name}: {'pass' if was[r.name].passed else 'FAIL'} -> {'pass' if r.passed else 'FAIL'}"
                           + (f" ({'; '.join(r.differences)})" if r.differences else ""))
    return GuidelineDiff(old.version, new.version, changes, affected, flipped, old_spec, new_spec)


def default_patients() -> tuple[list[Path], list[Path]]:
    """The example patients and vignettes of the checkout in use (see
    :func:`jdm_kg.resources.guideline_home`), when there is one."""
    root = guideline_home().root
    if root is None:
        return [], []
    examples, vignettes = root / "examples", root / "tests" / "vignettes"
    return (
        [p for p in rdf_files([str(examples)]) if p.parent == examples] if examples.is_dir() else [],
        rdf_files([str(vignettes)]) if vignettes.is_dir() else [],
    )
