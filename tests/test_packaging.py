"""The wheel ships the Turtle, SPARQL and JSON-LD files, and nothing stray."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_exactly_the_resources(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("jdm_kg-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n for n in names if n.startswith("jdm_kg/_data/")}
    expected = set()
    for folder in ("ontology", "shapes", "queries", "context"):
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and f.suffix in {".ttl", ".rq", ".jsonld", ".txt"}:
                expected.add(f"jdm_kg/_data/{f.relative_to(ROOT)}")
    assert expected <= data
    assert not [n for n in data if n.endswith(("~", ".swp", ".pyc"))]
    assert "jdm_kg/py.typed" in names
