"""`jdm-kg check` catches edits that would give wrong advice or break `recommend`: a dose unit
that contradicts its basis, a missing or ill-typed engine policy, a quote that is a fragment, a
preference level that contradicts its quote's verb, an option ranked that the guideline never
names. Each test edits a copy of the bundled guideline the way an author would."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from jdm_kg.authoring.check import Problem, check_guideline

ROOT = Path(__file__).resolve().parent.parent
ONTOLOGY = ROOT / "ontology"


def _edited(tmp_path: Path, *edits: tuple[str, str], file: str = "guideline.ttl") -> Path:
    """A copy of the bundled guideline with each (old, new) replaced once in ``file``."""
    folder = tmp_path / "ontology"
    if not folder.exists():
        shutil.copytree(ONTOLOGY, folder)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not in {file} exactly once"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return folder


def _found(folder: Path, rule: str) -> list[Problem]:
    return [p for p in check_guideline(folder) if p.rule == rule]


def _block(name: str, file: str = "guideline.ttl") -> str:
    """The Turtle block of one subject, as written in the bundled file (up to its closing '.')."""
    text = (ONTOLOGY / file).read_text(encoding="utf-8")
    start = text.index(f"\n{name}\n") + 1
    return text[start : text.index("\n.\n", start) + 3]


def _located(problem: Problem, file: str) -> None:
    assert problem.file.endswith(file) and problem.line, problem
    assert problem.fix, problem


# ---------------------------------------------------------------- dose unit and basis


def _regimen_edit(tmp_path: Path, regimen: str, old: str, new: str) -> Path:
    block = _block(regimen)
    return _edited(tmp_path, (block, block.replace(old, new)))


def test_rituximab_basis_per_kg_with_unit_per_m2_is_caught(tmp_path):
    """The reviewer's edit: the report would print 375 mg/m² × weight, a 30-fold overdose."""
    folder = _regimen_edit(tmp_path, "jdmg:regimen-rituximab", "jdm:PerM2BodySurfaceArea", "jdm:PerKgBodyWeight")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-rituximab" and '"mg/m2" is per m2' in problem.message, problem
    assert "needs a unit per kg" in problem.message
    _located(problem, "guideline.ttl")


def test_unit_per_kg_with_basis_per_m2_is_caught(tmp_path):
    folder = _regimen_edit(tmp_path, "jdmg:regimen-infliximab", "jdm:PerKgBodyWeight", "jdm:PerM2BodySurfaceArea")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-infliximab" and "needs a unit per m2" in problem.message, problem
    assert '"mg/kg" is per kg' in str(problem)


def test_a_unit_with_no_basis_is_caught(tmp_path):
    """jdm:NoBasis says the guideline gives no dose: a unit beside it contradicts that."""
    folder = _regimen_edit(tmp_path, "jdmg:regimen-ivig", "jdm:PerKgBodyWeight", "jdm:NoBasis")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-ivig" and "says no dose is given" in problem.message, problem


def test_the_qc_pairs_are_the_ones_recommend_computes_with():
    from jdm_kg.reasoning.recommend import DOSE_BASES

    text = (ROOT / "queries" / "qc" / "dose-unit-basis.rq").read_text(encoding="utf-8")
    values = text[text.index("VALUES (?basis ?per)") :].split("}", 1)[0]
    pairs = dict(re.findall(r'\(jdm:(\w+) "(\w+)"\)', values))
    assert pairs == {iri.rsplit("#", 1)[1]: per for iri, per in DOSE_BASES.items()}
