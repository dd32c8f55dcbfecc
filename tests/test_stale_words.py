"""QC rule stale-dose-words (issue 14): a regimen's words must give the amounts of its dose fields.

Each test runs the whole check on an edited copy (a few seconds each): AUTHORING's worked example
and its fix run by default, the other wordings under the ``slow`` marker (docs/testing.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jdm_kg.authoring.check import check_guideline

ONTOLOGY = Path(__file__).resolve().parent.parent / "ontology"


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "ontology"
    shutil.copytree(ONTOLOGY, folder)
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def _stale(folder: Path) -> list[str]:
    return [str(p) for p in check_guideline(folder) if p.rule == "qc:stale-dose-words"]


def test_worked_example_rituximab_375_to_500_flags_the_label_and_definition(tmp_path: Path) -> None:
    """AUTHORING's worked example: the dose fields say 500, the words still 375, in the regimen
    and in the statement it is derived from."""
    folder = _edited(tmp_path, "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;", "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;")
    stale = _stale(folder)
    regimen = [s for s in stale if "error [qc:stale-dose-words] jdmg:regimen-rituximab:" in s]
    statement = [s for s in stale if "error [qc:stale-dose-words] jdmg:dose-rituximab:" in s]
    assert len(regimen) == 2 and len(statement) == 3 and len(stale) == 5, stale
    assert all('"375 mg/m²"' in s or '"375 mg per m²"' in s for s in stale), stale
    assert all("500 mg/m2" in s for s in stale) and all("its regimen jdmg:regimen-rituximab's" in s for s in statement)
    assert any("rdfs:label" in s for s in regimen) and any("skos:definition" in s for s in regimen)
    assert {"rdfs:label", "skos:definition", "skos:editorialNote"} == {
        name for s in statement for name in ("rdfs:label", "skos:definition", "skos:editorialNote") if f"{name} says" in s}
    assert all("guideline.ttl:" in s and "Fix:" in s for s in stale), stale


def test_words_brought_up_to_date_pass(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;", "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;")
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    text = text.replace('"rituximab 375 mg/m² weekly x4"', '"rituximab 500 mg/m² weekly x4"')
    text = text.replace('"375 mg/m² per dose, every week', '"500 mg/m² per dose, every week')
    text = text.replace('"Rituximab dosing: 375 mg/m²', '"Rituximab dosing: 500 mg/m²')
    text = text.replace('"Rituximab 375 mg per m²', '"Rituximab 500 mg per m²')
    text = text.replace("No source was found for rituximab 375 mg/m² weekly x4", "No source was found for rituximab 500 mg/m² weekly x4")
    path.write_text(text, encoding="utf-8")
    assert _stale(folder) == []


@pytest.mark.slow
def test_a_changed_range_end_is_caught_in_every_wording(tmp_path: Path) -> None:
    """Methotrexate 15-20 mg/m² becomes 15-25: "15-20 mg/m²" and "15 to 20 mg/m²" are both stale."""
    folder = _edited(tmp_path, "jdm:doseMax 20.0 ;", "jdm:doseMax 25.0 ;")
    stale = _stale(folder)
    assert any('"15-20 mg/m²"' in s for s in stale) and any('"15 to 20 mg/m²"' in s for s in stale), stale
    assert all("regimen-mtx-high" in s for s in stale)


@pytest.mark.slow
def test_a_changed_maximum_is_caught(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "jdm:maxDose 40.0 ;", "jdm:maxDose 30.0 ;")
    stale = _stale(folder)
    assert stale and all("regimen-mtx-high" in s and "40 mg" in s and "maxDose says 30 mg" in s for s in stale), stale
    assert any("jdmg:dose-mtx-high: skos:editorialNote says \"maximum 40 mg/week\"" in s for s in stale), stale


@pytest.mark.slow
def test_other_ways_of_writing_per_square_metre_and_per_kilogram(tmp_path: Path) -> None:
    """"375 mg per square metre", "375 mg/m^2" and "375 mg/sqm" are the old dose too; and they are
    the right dose while the fields say 375 (no false alarm). The same for "mg per kilogram"."""
    wordings = ("375 mg per square metre", "375 mg per square meter", "375 mg/m^2", "375 mg/sqm")
    alt = "    skos:altLabel " + " , ".join(f'"{w}"@en' for w in wordings) + " ;\n"
    before = '    skos:definition "375 mg/m² per dose, every week'
    (tmp_path / "m2").mkdir()
    same = _edited(tmp_path / "m2", before, alt + before)
    assert _stale(same) == []
    path = same / "guideline.ttl"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;", "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;"), encoding="utf-8")
    said = {s.split('skos:altLabel says "')[1].split('"')[0] for s in _stale(same) if "skos:altLabel says" in s}
    assert said == set(wordings), said
    (tmp_path / "kg").mkdir()
    changed = _edited(tmp_path / "kg", '"3 to 5 mg/kg per dose', '"3 to 5 mg per kilogram per dose')
    assert _stale(changed) == []
    path = changed / "guideline.ttl"
    path.write_text(path.read_text(encoding="utf-8").replace("jdm:doseMax 5.0 ;", "jdm:doseMax 6.0 ;"), encoding="utf-8")
    assert any('skos:definition says "3 to 5 mg per kilogram"' in s for s in _stale(changed)), _stale(changed)
