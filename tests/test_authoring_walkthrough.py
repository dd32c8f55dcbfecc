"""AUTHORING.md's worked example, done as an author does it.

A fresh copy of the repository (the files git tracks), jdm-kg installed from it with
``pip install .`` (a wheel, not an editable install), the edits the text describes, then the
commands it shows, run inside the copy with no extra flags. Each output block of the worked
example must appear in what the command prints (``...`` stands for lines or text left out;
line numbers and the version are not compared).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUTHORING = ROOT / "AUTHORING.md"


def _worked_example_blocks() -> list[list[str]]:
    """The output blocks (fenced, no language) of AUTHORING.md's worked example, in order."""
    text = AUTHORING.read_text(encoding="utf-8")
    section = text.split("## Worked example: change a regimen", 1)[1].split("\n## ", 1)[0]
    blocks: list[list[str]] = []
    language, lines = None, []
    for line in section.splitlines():
        fence = re.fullmatch(r"\s*```(\w*)\s*", line)
        if fence and language is None:
            language, lines = fence.group(1), []
        elif fence:
            if language == "":
                blocks.append([text.strip() for text in lines if text.strip()])
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def _pattern(line: str) -> re.Pattern[str]:
    pattern = re.escape(line).replace(re.escape("..."), ".*")
    pattern = re.sub(r"\\\.ttl:\d+", r"\\.ttl:\\d+", pattern)  # line numbers move with any edit above
    pattern = re.sub(r"v\d{4}\\-\d{2}\\-\d{2}", r"v\\d{4}-\\d{2}-\\d{2}", pattern)  # the version changes at release
    return re.compile(pattern)


def assert_shows(block: list[str], output: str) -> None:
    """Every line of ``block`` matches a line of ``output``, in the same order."""
    lines = output.splitlines()
    at = 0
    for wanted in block:
        if wanted == "...":
            continue
        pattern = _pattern(wanted)
        for index in range(at, len(lines)):
            if pattern.fullmatch(lines[index].strip()):
                at = index + 1
                break
        else:
            raise AssertionError(f"AUTHORING.md shows {wanted!r}, but the command printed:\n{output}")


@pytest.fixture(scope="module")
def author_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """A fresh copy of the repository with jdm-kg installed from it (not editable):
    (the copy, the environment, the ``jdm-kg`` script)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout, to copy the files git tracks")
    base = tmp_path_factory.mktemp("author")
    clone = base / "jdm-kg"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is not in the copy either
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    git = ["git", "-c", "user.name=author", "-c", "user.email=author@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "as cloned"], cwd=clone, check=True)
    wheels, site = base / "wheels", base / "site"
    def pip(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=clone, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]

    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), ".")  # what `pip install .` builds
    pip("install", "--quiet", "--no-deps", "--no-compile", "--target", str(site), *map(str, wheels.glob("jdm_kg-*.whl")))
    # The installed copy comes first on the path (before the test run's own jdm-kg); the
    # libraries jdm-kg needs are this interpreter's.
    env = {**os.environ, "PYTHONPATH": str(site), "JDM_KG_CACHE": str(base / "cache")}
    env.pop("JDM_KG_GUIDELINE", None)
    where = subprocess.run([sys.executable, "-c", "import jdm_kg; print(jdm_kg.__file__)"], cwd=base, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site) and (site / "jdm_kg" / "_data" / "ontology").is_dir(), where
    return clone, env, site / "bin" / "jdm-kg"


def _jdm(setup: tuple[Path, dict[str, str], Path], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clone, env, script = setup
    proc = subprocess.run([str(script), *args], cwd=cwd or clone, env=env, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == count, f"{path.name}: expected {count} x {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _edit_as_step_1(clone: Path) -> None:
    """Step 1 of the worked example, edit by edit."""
    guideline, text = clone / "ontology" / "guideline.ttl", clone / "ontology" / "jak-failure-jdm-guideline.txt"
    _replace(guideline, "jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;\n    jdm:doseUnit \"mg/m2\"",
             "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;\n    jdm:doseUnit \"mg/m2\"")
    _replace(guideline, '"rituximab 375 mg/m² weekly x4"@en', '"rituximab 500 mg/m² weekly x4"@en')
    _replace(guideline, '"375 mg/m² per dose, every week, 4 doses;', '"500 mg/m² per dose, every week, 4 doses;')
    _replace(guideline, '"Rituximab dosing: 375 mg/m² weekly', '"Rituximab dosing: 500 mg/m² weekly')
    _replace(guideline, '"Rituximab 375 mg per m² body surface area', '"Rituximab 500 mg per m² body surface area')
    _replace(guideline, 'jdm:quote "Dosing: 375 mg/m² weekly', 'jdm:quote "Dosing: 500 mg/m² weekly')
    note = re.search(r'\n    skos:editorialNote "No source was found for rituximab 375 mg/m²[^\n]*', guideline.read_text())
    assert note is not None
    _replace(guideline, note.group(0), "")
    _replace(text, "Dosing: 375 mg/m² weekly", "Dosing: 500 mg/m² weekly")


@pytest.mark.slow
def test_the_worked_example_behaves_as_authoring_md_says(author_copy, tmp_path):
    clone = author_copy[0]
    shown = _worked_example_blocks()
    assert len(shown) == 5, "check, two check mistakes, test, diff"
    check_ok, check_typo, check_stale, test_out, diff_out = shown
    installed = _jdm(author_copy, "check")
    assert installed.returncode == 0 and installed.stdout.startswith("Guideline v"), installed.stdout

    _edit_as_step_1(clone)
    # 2. check sees the edit in the working tree, not the installed copy
    proc = _jdm(author_copy, "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_shows(check_ok, proc.stdout)
    # ... from a subfolder too, with the same first line naming the same folder
    proc = _jdm(author_copy, "check", cwd=clone / "ontology")
    assert proc.returncode == 0 and proc.stdout.startswith("Guideline v") and "from ./:" in proc.stdout.splitlines()[0]
    # the two mistakes step 2 shows, each on a copy of the edited file
    guideline = clone / "ontology" / "guideline.ttl"
    edited = guideline.read_text(encoding="utf-8")
    try:
        _replace(guideline, "jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;",
                 "jdm:doseMax 50.0 ;\n    jdm:doseMin 500.0 ;")
        proc = _jdm(author_copy, "check")
        assert proc.returncode == 1
        assert_shows(check_typo, proc.stdout + proc.stderr)
        guideline.write_text(edited, encoding="utf-8")
        _replace(guideline, '"500 mg/m² per dose, every week, 4 doses;', '"375 mg/m² per dose, every week, 4 doses;')
        proc = _jdm(author_copy, "check")
        assert proc.returncode == 1
        assert_shows(check_stale, proc.stdout + proc.stderr)
    finally:
        guideline.write_text(edited, encoding="utf-8")

    # 3. the vignettes that expected 375 mg/m² fail, with the difference
    proc = _jdm(author_copy, "test")
    assert proc.returncode == 1
    assert_shows(test_out, proc.stdout)
    # 4. what changed, and for whom
    proc = _jdm(author_copy, "diff", "HEAD", "ontology")
    assert proc.returncode == 0, proc.stderr
    assert_shows(diff_out, proc.stdout)
    # 5. the site shows the new dose
    proc = _jdm(author_copy, "docs", "-o", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html"))
    assert "rituximab 500 mg/m² weekly x4" in pages and "rituximab 375 mg/m²" not in pages

    # Outside the checkout the installed copy is used, and the first line says so
    proc = _jdm(author_copy, "recommend", str(clone / "examples" / "skin-predominant.ttl"), cwd=tmp_path)
    first = proc.stdout.splitlines()[0]
    assert proc.returncode == 0 and "the installed copy" in first and "_data/ontology" in first
    assert "437.5 mg" in proc.stdout and "583.3 mg" not in proc.stdout  # the installed guideline: 375 mg/m²
    # --guideline overrides: the edited folder, from anywhere
    proc = _jdm(author_copy, "recommend", str(clone / "examples" / "skin-predominant.ttl"),
                "--guideline", str(clone / "ontology"), cwd=tmp_path)
    assert proc.returncode == 0 and "chosen with --guideline" in proc.stdout.splitlines()[0]
    assert "583.3 mg" in proc.stdout
