"""pySHACL's own conformance tests (the W3C SHACL core tests and the DASH core tests shipped in
its sdist) give exactly the same results with jdm-kg's speed-ups in place as without them.

The sdist of the installed pySHACL version is downloaded once into jdm-kg's cache folder (the
only test that reaches the network); without network the test is skipped, saying why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

from jdm_kg.reasoning._pyshacl_speedups import TESTED_VERSIONS
from jdm_kg.resources import cache_dir

TESTS = Path(__file__).resolve().parent
#: The W3C core tests (sht_tests/core, both of pySHACL's modes) and DASH's core tests: the plugin selects them.
SELECTION = ["-p", "pyshacl_speedups_plugin", "test/test_sht_validate.py", "test/test_dash_validate.py"]


def _pyshacl_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = version("pyshacl")
    folder = (cache_dir() or tmp_path_factory.mktemp("downloads")) / "pyshacl-sdist"
    unpacked = folder / f"pyshacl-{found}"
    if (unpacked / "test" / "test_sht_validate.py").is_file():
        return unpacked
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
             "--disable-pip-version-check", f"pyshacl=={found}", "-d", str(folder)],
            capture_output=True, text=True, timeout=180,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pySHACL {found}'s sdist could not be downloaded in 180 s (no network?)")
    archive = folder / f"pyshacl-{found}.tar.gz"
    if done.returncode != 0 or not archive.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"pySHACL {found}'s sdist could not be downloaded (no network?): {last}")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return unpacked


def _start(sources: Path, speedups: bool) -> subprocess.Popen[str]:
    """pySHACL's selected tests, in a process of their own (the two modes run side by side)."""
    env = dict(os.environ, PYTHONPATH=str(TESTS), PYTHONDONTWRITEBYTECODE="1",
               JDM_KG_PYSHACL_SPEEDUPS="1" if speedups else "0")
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "-W", "ignore", *SELECTION],
        cwd=sources, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _outcome(run: subprocess.Popen[str]) -> tuple[int, list[str]]:
    """(number passed, the ids of those that failed)."""
    stdout, stderr = run.communicate(timeout=1200)
    passed = re.search(r"(\d+) passed", stdout)
    assert passed, stdout[-3000:] + stderr[-3000:]
    return int(passed.group(1)), sorted(re.findall(r"^FAILED (\S+)", stdout, re.M))


@pytest.mark.conformance  # ~100 s: run by `.ci/run` as its own step (`pytest -m conformance`), not by default
def test_pyshacl_conformance_tests_give_the_same_results_with_the_speed_ups(tmp_path_factory):
    if version("pyshacl") not in TESTED_VERSIONS:
        pytest.skip(f"the speed-ups switch themselves off with pySHACL {version('pyshacl')}: nothing to compare")
    sources = _pyshacl_sources(tmp_path_factory)
    runs = [_start(sources, speedups=False), _start(sources, speedups=True)]
    without, with_speedups = (_outcome(run) for run in runs)
    assert without[0] > 150  # the W3C core tests in both modes, and DASH's
    assert with_speedups == without
    assert not any("property-001" in test for test in without[1])  # one result per focus node


def test_speed_ups_switch_themselves_off_on_an_untested_pyshacl(monkeypatch, capsys):
    """On a pySHACL version they were not tested with, the speed-ups leave pySHACL alone and say
    so once, in one line; validation then gives pySHACL's own results."""
    from pyshacl.constraints.core.logical_constraints import OrConstraintComponent
    from pyshacl.constraints.core.shape_based_constraints import PropertyConstraintComponent

    from jdm_kg.reasoning import _pyshacl_speedups as speedups

    monkeypatch.setattr(speedups, "_pyshacl_version", lambda: "0.99.0")
    monkeypatch.setattr(speedups, "_noticed", False)
    own = (OrConstraintComponent._evaluate_or_constraint, PropertyConstraintComponent._evaluate_property_shape)
    for _ in range(2):
        with speedups.faster_pyshacl():
            assert (OrConstraintComponent._evaluate_or_constraint,
                    PropertyConstraintComponent._evaluate_property_shape) == own
    notice = capsys.readouterr().err.splitlines()
    assert len(notice) == 1 and "pySHACL 0.99.0" in notice[0] and "without them" in notice[0]


def test_speed_ups_are_in_place_only_within_the_block():
    from pyshacl.constraints.core.logical_constraints import OrConstraintComponent

    from jdm_kg.reasoning import _pyshacl_speedups as speedups

    own = OrConstraintComponent._evaluate_or_constraint
    if not speedups.available():
        pytest.skip(f"the speed-ups do not apply to pySHACL {version('pyshacl')}")
    with speedups.faster_pyshacl():
        with speedups.faster_pyshacl():  # nested: still in place after the inner block
            pass
        assert OrConstraintComponent._evaluate_or_constraint is speedups._evaluate_or_in_order
    assert OrConstraintComponent._evaluate_or_constraint is own
