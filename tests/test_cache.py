"""The compiled-guideline cache checks itself: a file cut short, edited or emptied is rebuilt, with a notice."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdm_kg.knowledge.guideline import load_guideline


def _damage_cut(text: str) -> str:  # cut at a line boundary: every line left is valid N-Quads
    lines = text.splitlines(keepends=True)
    return "".join(lines[: len(lines) - 191])


def _damage_edit(text: str) -> str:  # one number changed, as in the "4375.0 mg" report
    at = text.index('"375"') if '"375"' in text else text.index("375")
    return text[:at] + text[at:].replace("375", "4375", 1)


def _damage_empty(text: str) -> str:
    return ""


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JDM_KG_CACHE", str(tmp_path))
    load_guideline.cache_clear()
    yield tmp_path
    load_guideline.cache_clear()


@pytest.mark.parametrize("damage", [_damage_cut, _damage_edit, _damage_empty], ids=["cut", "edited", "emptied"])
def test_a_damaged_cache_is_detected_and_rebuilt(cache: Path, damage, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    fresh = load_guideline()  # compiles and writes the cache
    (path,) = cache.glob("guideline-*.nq")
    good = path.read_text(encoding="utf-8")
    assert good.startswith('# {"inconsistencies": ') and '"sha256": ' in good.splitlines()[0]
    path.write_text(damage(good), encoding="utf-8")
    load_guideline.cache_clear()
    rebuilt = load_guideline()
    notice = capsys.readouterr().err.splitlines()
    assert len(notice) == 1 and str(path) in notice[0] and "compiling the guideline again" in notice[0]
    assert len(rebuilt.graph) == len(fresh.graph) and len(rebuilt.asserted) == len(fresh.asserted)
    assert rebuilt.version == fresh.version
    load_guideline.cache_clear()
    again = load_guideline()  # the rewritten file is whole: read back without a word
    assert capsys.readouterr().err == "" and len(again.graph) == len(fresh.graph)
    assert not list(cache.glob("*.partial"))  # written through a temporary file, renamed into place
