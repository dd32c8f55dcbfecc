"""QC rule stale-dose-words (issue 14): a regimen's words must give the amounts of its dose fields."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    """AUTHORING's worked example: the dose fields say 500, the words still 375."""
    folder = _edited(tmp_path, "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;", "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;")
    stale = _stale(folder)
    assert len(stale) == 2, stale
    assert all("regimen-rituximab" in s and '"375 mg/m²"' in s and "500 mg/m2" in s for s in stale), stale
    assert any("rdfs:label" in s for s in stale) and any("skos:definition" in s for s in stale)
    assert all("guideline.ttl:" in s and "Fix:" in s for s in stale), stale


def test_words_brought_up_to_date_pass(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;", "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;")
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    text = text.replace('"rituximab 375 mg/m² weekly x4"', '"rituximab 500 mg/m² weekly x4"')
    text = text.replace('"375 mg/m² per dose, every week', '"500 mg/m² per dose, every week')
    path.write_text(text, encoding="utf-8")
    assert _stale(folder) == []


def test_a_changed_range_end_is_caught_in_every_wording(tmp_path: Path) -> None:
    """Methotrexate 15-20 mg/m² becomes 15-25: "15-20 mg/m²" and "15 to 20 mg/m²" are both stale."""
    folder = _edited(tmp_path, "jdm:doseMax 20.0 ;", "jdm:doseMax 25.0 ;")
    stale = _stale(folder)
    assert any('"15-20 mg/m²"' in s for s in stale) and any('"15 to 20 mg/m²"' in s for s in stale), stale
    assert all("regimen-mtx-high" in s for s in stale)


def test_a_changed_maximum_is_caught(tmp_path: Path) -> None:
    folder = _edited(tmp_path, "jdm:maxDose 40.0 ;", "jdm:maxDose 30.0 ;")
    stale = _stale(folder)
    assert stale and all("regimen-mtx-high" in s and "max 40 mg" in s and "30 mg" in s for s in stale), stale
