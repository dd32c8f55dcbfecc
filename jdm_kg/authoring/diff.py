"""``jdm-kg diff OLD NEW``: what changed in the guideline, in clinical terms, and for whom.

OLD and NEW are guideline versions: a folder of ``.ttl`` files, one ``.ttl`` file that replaces
its namesake in the bundled ``ontology/`` (e.g. an edited ``guideline.ttl``), or a git
revision (``HEAD``, ``v1.0``, ``main~3``) whose ``ontology/`` folder is read with ``git show``.

The changes are listed per term (statement, regimen, drug, source...), by the labels of the
things and properties involved, not as raw triples. The impact is found by running the
vignettes and the patient files (the examples, or ``--patients``: every format ``recommend``
reads, FHIR JSON included) under both versions and comparing, for each option, what a report
says of it: status, section, rank and standing (the ranking band's words), the policies behind
them, the one-line reason, each dose with its route and schedule, and the safety gates.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import RDF, RDFS, SKOS, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from jdm_kg.authoring.vignettes import VignetteResult, run_vignettes
from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import load_patient_file, rdf_files
from jdm_kg.knowledge.guideline import Guideline, cached_compile, guideline_files
from jdm_kg.outputs.report import dose_details, dose_evidence
from jdm_kg.reasoning.recommend import OptionAssessment, PatientResult, recommend_graph
from jdm_kg.resources import guideline_home, resource_dir

__all__ = ["resolve_version", "clinical_changes", "impact", "Impact", "GuidelineDiff", "diff_guidelines",
           "default_patients"]

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

#: The fields of one option that a report shows, in the order the diff lists them. "standing"
#: is the rank and ranking band words (``#1 preferred for the predominant feature``).
_FIELDS = ("status", "section", "standing", "standing policy", "status policy", "reason", "derivation")

Summary = dict[str, dict[str, str]]  # option label ("" for the patient) -> field -> what the report says


def _dose_fields(option: OptionAssessment) -> dict[str, str]:
    out = {}
    for dose in sorted(option.doses, key=lambda d: (d.regimen.drug_label, d.regimen.iri)):
        drug = dose.regimen.drug_label
        if dose.status == "computed":
            words, guideline_dose, measure = dose_details(dose)
            # the amount with the guideline's dose it comes from (a capped amount says both already)
            out[f"dose ({drug})"] = dose.amount() + ("" if dose.uncapped_low is not None else f" ({guideline_dose})")
            out[f"dosing ({drug})"] = ", ".join([*words, measure])
        elif dose.status == "not-given":
            out[f"dose ({drug})"] = "the guideline gives no dose"
        else:
            out[f"dose ({drug})"] = "no dose worked out: " + "; ".join(dose.notes)
    evidence = dose_evidence(option)
    if evidence:
        out["dose evidence"] = evidence
    return out


def _option_fields(option: OptionAssessment) -> dict[str, str]:
    """Everything the report says of ``option`` on its lines: status, section, rank and standing,
    the policies behind them, the one-line reason with its evidence words, the derivation, each
    dose with its route, schedule and basis, the dose's evidence words, and each safety gate."""
    flags = option.summary_statement.flags if option.summary_statement else []
    out = {
        "status": option.status,
        "section": option.section_heading or "none",
        "standing": f"#{option.rank} {option.standing or ''}".strip() if option.rank is not None else "not ranked",
        "standing policy": option.band_policy.tag if option.band_policy else "none",
        "status policy": option.status_policy.tag if option.status_policy else "none",
        "reason": option.summary + (f" [{'; '.join(flags)}]" if flags else ""),
        "reason on one screen": "; ".join(x for x in [option.brief, *option.notes] if x) or "none",
        "derivation": option.derivation or "none",
    }
    out.update(_dose_fields(option))
    for gate in sorted(option.gates, key=lambda g: g.condition_label):
        out[f"{gate.condition_label} gate"] = gate.state
    return out


def _summary(result: PatientResult) -> Summary:
    """What a clinician reads in ``result``'s report: whether the guideline applies, and each
    option's lines (:func:`_option_fields`)."""
    out: Summary = {"": {"guideline": "applies" if result.applicable else (
        "cannot tell" if result.cannot_tell else "does not apply")}}
    for option in result.options:
        out[option.label] = _option_fields(option)
    return out


def _field_order(field_name: str) -> tuple[int, str]:
    if field_name in _FIELDS:
        return _FIELDS.index(field_name), ""
    if field_name.startswith("dose ("):
        return len(_FIELDS), field_name + " 0"
    if field_name.startswith("dosing ("):
        return len(_FIELDS), "dose (" + field_name[len("dosing ("):] + " 1"  # right after its dose
    if field_name == "dose evidence":
        return len(_FIELDS) + 1, ""
    return len(_FIELDS) + 2, field_name  # the gates, by condition


def _file_names(paths: list[Path]) -> dict[Path, str]:
    """Each patient file's name in the diff: its path from the folder that holds them all
    (``skin-predominant.ttl``, ``fhir/skin-predominant.json``), so that two files never share one."""
    absolute = {p: os.path.abspath(p) for p in paths}
    if len(set(absolute.values())) < 2:
        return {p: Path(p).name for p in paths}
    try:
        common = os.path.commonpath(list(absolute.values()))
    except ValueError:  # on different drives
        return {p: str(p) for p in paths}
    return {p: os.path.relpath(a, common) for p, a in absolute.items()}


def _results(
    paths: list[Path], names: dict[Path, str], guideline: Guideline
) -> tuple[dict[str, Summary], dict[Path, str]]:
    """Each patient's summary under ``guideline`` (keyed by patient and file); and the files that
    could not be read, with why."""
    out: dict[str, Summary] = {}
    failed: dict[Path, str] = {}
    for path in paths:
        try:
            _, found = recommend_graph(load_patient_file(path, guideline=guideline), str(path), guideline)
            if not found:
                raise InputError(str(path), "no patient record found (expected a node of type jdm:Patient)")
        except InputError as err:
            failed[path] = str(err)
            continue
        for result in found:
            key = f"{result.record.patient_id} ({names[path]})"
            while key in out:  # two records with one id in one file
                key += "'"
            out[key] = _summary(result)
    return out, failed


def _compare(before: dict[str, Summary], after: dict[str, Summary]) -> list[str]:
    """One line per field whose words differ, sorted: by patient, then option, then field. A
    patient assessed under one version only, or an option offered under one only, is one line."""
    lines = []
    for patient in sorted(set(before) | set(after)):
        b, a = before.get(patient), after.get(patient)
        if b is None or a is None:
            lines.append(f"{patient}: " + ("not assessed -> assessed" if b is None else "assessed -> not assessed")
                         + " (the file could not be read with the " + ("old" if b is None else "new") + " guideline)")
            continue
        for option in sorted(set(b) | set(a)):
            was, now = b.get(option), a.get(option)
            if was is None or now is None:
                lines.append(f"{patient}: {option}: {_in_short(was)} -> {_in_short(now)}")
                continue
            for key in sorted(set(was) | set(now), key=_field_order):
                old_words, new_words = was.get(key, "none"), now.get(key, "none")
                if old_words != new_words:
                    lines.append(f"{patient}: {option + ': ' if option else ''}{key}: {old_words} -> {new_words}")
    return lines


def _in_short(option: dict[str, str] | None) -> str:
    """An option in a few words: its status and standing, or "not an option"."""
    if option is None:
        return "not an option"
    standing = option["standing"]
    return option["status"] + ("" if standing == "not ranked" else f", {standing}")


@dataclass
class Impact:
    """Who is affected: one line per difference; how many patient files were compared (read with
    one version at least); the files that could not be read (with one version or both), and why."""

    lines: list[str]
    files: int
    unreadable: int
    errors: list[str]


def impact(old: Guideline, new: Guideline, patients: list[Path]) -> Impact:
    """How each patient's recommendation differs between the two versions. Every file is read
    as ``recommend`` reads it (Turtle, N-Triples, JSON-LD, FHIR JSON), under each version."""
    unique: dict[str, Path] = {}
    for path in patients:  # each file once, however it was named
        unique.setdefault(os.path.abspath(path), path)
    patients = list(unique.values())
    names = _file_names(patients)
    before, failed_before = _results(patients, names, old)
    after, failed_after = _results(patients, names, new)
    errors = []
    for path in sorted(set(failed_before) | set(failed_after), key=lambda p: names[p]):
        was, now = failed_before.get(path), failed_after.get(path)
        if was and now and was == now:
            errors.append(was)
        elif was and now:
            errors += [f"{was} (with the old guideline)", f"{now} (with the new guideline)"]
        else:
            errors.append(f"{was} (with the old guideline only)" if was else f"{now} (with the new guideline only)")
    read = sum(1 for p in patients if p not in failed_before or p not in failed_after)
    return Impact(_compare(before, after), read, len(set(failed_before) | set(failed_after)), errors)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


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
    #: what was compared: patient files read, vignettes run (None: nothing was, as nothing changed)
    patient_files: int | None = None
    vignette_count: int = 0
    #: how many patient files could not be read (with one version or both), and why: lines naming each
    unreadable: int = 0
    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        def named(version: str, where: str) -> str:
            return f"{version} ({where})" if where else version

        out = [f"Guideline {named(self.old_version, self.old_from)} -> {named(self.new_version, self.new_from)}", ""]
        out.append(f"What changed ({len(self.changes)}):")
        out += [f"  - {c}" for c in self.changes] or ["  nothing: the two graphs hold the same statements"]
        out.append("")
        if self.patient_files is None:
            out.append("Who is affected: no one (nothing changed, so no patient was compared)")
            return "\n".join(out)
        compared = f"{_count(self.patient_files, 'patient file')} and {_count(self.vignette_count, 'vignette')}"
        unread = f"; {_count(self.unreadable, 'patient file')} could not be read" if self.unreadable else ""
        out.append(f"Who is affected ({_count(len(self.impact), 'difference')} in {compared}{unread}):")
        out += [f"  - {line}" for line in self.impact] or [
            "  no patient file or vignette gets a different recommendation"]
        if self.vignettes:
            out.append("")
            out.append("Vignettes whose outcome changed:")
            out += [f"  - {line}" for line in self.vignettes]
        return "\n".join(out)


def diff_guidelines(old_spec: str, new_spec: str, patients: list[Path], vignettes: list[Path]) -> GuidelineDiff:
    """Compare two guideline versions and their effect on ``patients`` (files of any format
    ``recommend`` reads) and ``vignettes``."""
    # through the on-disk cache (keyed by the files' content): the version check or recommend compiled last is read back
    old, new = cached_compile(resolve_version(old_spec)), cached_compile(resolve_version(new_spec))
    changes = clinical_changes(old.asserted, new.asserted)
    if not changes:
        return GuidelineDiff(old.version, new.version, [], [], old_from=old_spec, new_from=new_spec)
    affected = impact(old, new, patients)
    before_v, after_v = run_vignettes(list(vignettes), old), run_vignettes(list(vignettes), new)

    def summaries(results: list[VignetteResult]) -> dict[str, Summary]:
        return {f"vignette {r.name} ({Path(r.file).name})": _summary(r.result) for r in results if r.result}

    lines = affected.lines + _compare(summaries(before_v), summaries(after_v))
    flipped = []
    was = {r.name: r for r in before_v}
    for r in after_v:
        if r.name in was and was[r.name].passed != r.passed:
            flipped.append(f"{r.name}: {'pass' if was[r.name].passed else 'FAIL'} -> {'pass' if r.passed else 'FAIL'}"
                           + (f" ({'; '.join(r.differences)})" if r.differences else ""))
    return GuidelineDiff(old.version, new.version, changes, lines, flipped, old_spec, new_spec,
                         patient_files=affected.files, vignette_count=len(after_v), unreadable=affected.unreadable,
                         errors=affected.errors)


def default_patients() -> tuple[list[Path], list[Path]]:
    """The example patients (``examples/`` and ``examples/fhir/``, the FHIR twins of the others)
    and the vignettes of the checkout in use (see :func:`jdm_kg.resources.guideline_home`), when
    there is one."""
    root = guideline_home().root
    if root is None:
        return [], []
    examples, vignettes = root / "examples", root / "tests" / "vignettes"
    patients = [p for p in rdf_files([str(examples)]) if p.parent in (examples, examples / "fhir")]
    return patients if examples.is_dir() else [], rdf_files([str(vignettes)]) if vignettes.is_dir() else []
