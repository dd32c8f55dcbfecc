"""The progress bar of many-file runs (rich, on stderr): counts files, names the last one with its
control characters escaped (a file name must not drive the terminal)."""

from __future__ import annotations

import io
import shutil

from helpers import ROOT

import jdm_kg.batch as batch


def test_progress_bar_counts_files_and_escapes_their_names(tmp_path, monkeypatch):
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda **_: Console(file=screen, force_terminal=True, width=120))
    names = ["skin.ttl", "red\x1b[31m.ttl"]
    for name in names:
        shutil.copy(ROOT / "examples" / "skin-predominant.ttl", tmp_path / name)
    outcomes = list(batch.run_batch([str(tmp_path / n) for n in names], "validate", progress=True))
    assert [o.path for o in outcomes] == [str(tmp_path / n) for n in names]
    shown = screen.getvalue()
    assert "2/2" in shown and "red\\u001b[31m.ttl" in shown
    assert "red\x1b[31m" not in shown


def test_no_progress_bar_unless_asked(tmp_path, monkeypatch):
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda **_: Console(file=screen, force_terminal=True, width=120))
    shutil.copy(ROOT / "examples" / "skin-predominant.ttl", tmp_path / "a.ttl")
    assert len(list(batch.run_batch([str(tmp_path / "a.ttl")], "validate"))) == 1
    assert screen.getvalue() == ""
