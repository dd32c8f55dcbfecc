"""Shared fixtures: the compiled guideline and example results are computed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdm_kg import load_guideline, recommend_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def guideline():
    return load_guideline()


_CACHE: dict[str, object] = {}


@pytest.fixture(scope="session")
def recommend():
    """recommend(path) -> (report, results), cached per file (graphs parsed once)."""

    def run(name: str):
        if name not in _CACHE:
            _CACHE[name] = recommend_file(str(EXAMPLES / name))
        return _CACHE[name]

    return run
