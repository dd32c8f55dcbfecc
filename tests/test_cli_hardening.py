"""The command line on hostile files (issue 22): limits on depth, list length, item counts and
literal size, each a clear exit-2 line; drug IRIs that name no drug; SIGTERM to a --jobs run;
output that cannot be written; JSON-LD and Turtle that rdflib's readers fail on with Python internals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, cli  # in-process; what only a process shows (full disk, pipes, SIGTERM) runs below as one

EX = ROOT / "examples"
SKIN = (EX / "skin-predominant.ttl").read_text()


def _record_with(extra: str) -> str:
    """The skin example with ``extra`` (Turtle predicate-object pairs) added to its patient."""
    head, _, _ = SKIN.rpartition(".")
    return f"{head};\n    {extra} .\n"


def _error_lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {line.split(":", 2)[1].strip().split(":")[0].rsplit("/", 1)[-1]: line
            for line in proc.stderr.splitlines() if line.startswith("error: ")}


def test_hostile_shapes_are_refused_from_the_text_with_the_limit_named(tmp_path: Path) -> None:
    """Blank nodes nested 100,000 deep (1.4 MB: over 7 minutes and 1.4 GB before), a 200,000-item
    list, 100,000 treatments in JSON-LD, 1,001 treatments in Turtle, a 10 MB literal: one error
    line each (exit 2), before the parser builds a graph; the good file beside them still validates."""
    n = 100_000
    (tmp_path / "deep.ttl").write_text(_record_with("<urn:x:deep> " + "[ <urn:x:p> " * n + '"v"' + " ]" * n))
    (tmp_path / "list.ttl").write_text(_record_with("<urn:x:list> ( " + " ".join(map(str, range(200_000))) + " )"))
    document = json.loads((EX / "muscle-predominant.jsonld").read_text())
    document["treatments"] = [dict(document["treatments"][0]) for _ in range(100_000)]
    (tmp_path / "treatments.jsonld").write_text(json.dumps(document))
    episodes = ", ".join(f'[ jdm:drug jdmg:methotrexate ; jdm:startDate "2020-01-01"^^xsd:date ; jdm:outcome jdm:Ongoing ]'
                         for _ in range(1_001))
    (tmp_path / "episodes.ttl").write_text(_record_with(f"jdm:treatmentEpisode {episodes}"))
    (tmp_path / "literal.ttl").write_text(SKIN.replace('"kg"', '"' + "k" * (10 * 1024 * 1024) + '"', 1))
    (tmp_path / "good.ttl").write_text(SKIN)
    proc = cli("validate", str(tmp_path))
    assert proc.returncode == 2
    errors = _error_lines(proc)
    assert "blank nodes or lists nested more than 32 deep" in errors["deep.ttl"]
    assert "an RDF list ( ... ) of more than 1000 items" in errors["list.ttl"]
    assert "the JSON list 'treatments' has 100000 items; jdm-kg reads at most 1000" in errors["treatments.jsonld"]
    assert "more than 1000 values of treatmentEpisode" in errors["episodes.ttl"]
    assert "a string of 10485760 characters; jdm-kg reads values of at most 100000" in errors["literal.ttl"]
    assert "good.ttl: conforms" in proc.stdout


def test_query_data_with_a_deep_list_is_refused(tmp_path: Path) -> None:
    """``query --data`` on a 41 KB list nested 10,000 deep did not finish in 5 minutes: now exit 2."""
    path = tmp_path / "nested.ttl"
    text = _record_with("<urn:x:l> " + "(" * 10_000 + ")" * 10_000)
    path.write_text(text)
    line = text[: text.index("<urn:x:l>")].count("\n") + 1  # the line the deep list is on
    proc = cli("query", "patients", "--data", str(path))
    assert proc.returncode == 2 and "nested more than 32 deep" in proc.stderr and f"nested.ttl:{line}" in proc.stderr


@pytest.mark.parametrize("drug, says", [
    ("jdmg:Tofacitinib", "'Tofacitinib' is not a drug the guideline graph knows: did you mean tofacitinib? IRIs are "
                         "case-sensitive: write jdmg:tofacitinib."),
    ("jdm:JAKInhibitor", "'JAKInhibitor' names a class (JAK inhibitor), not a drug: did you mean one of its drugs "
                         "(jdmg:baricitinib, jdmg:ruxolitinib, jdmg:tofacitinib, jdmg:upadacitinib)?"),
    ("jdmg:JuvenileDermatomyositis", "'JuvenileDermatomyositis' is a disease (juvenile dermatomyositis (JDM)), not a "
                                     "drug: did you mean"),
    ("ex:P-SKIN", "'P-SKIN' is the patient record, not a drug: did you mean"),
])
def test_a_drug_iri_that_names_no_drug_is_a_violation(tmp_path: Path, drug: str, says: str) -> None:
    """A capital T (which conformed with a warning, then "does not apply"), a class, the disease or
    the patient as a treatment's drug: a violation with "did you mean", not another medication."""
    path = tmp_path / "p.ttl"
    path.write_text(SKIN.replace("jdm:drug jdmg:tofacitinib", f"jdm:drug {drug}", 1))
    proc = cli("validate", str(path))
    assert proc.returncode == 1, proc.stdout
    assert "violation" in proc.stdout and says in proc.stdout


def test_malformed_json_ld_and_a_cut_turtle_file_get_a_clear_message(tmp_path: Path) -> None:
    files = {"null.jsonld": "null", "one.jsonld": "1", "context.jsonld": '{"@context": 5, "@id": "urn:x"}',
             "cut.ttl": "@prefix jdm:  <https://w3id.org/jdm-kg/vocab#> .\n@pre"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = cli("validate", *(str(tmp_path / n) for n in files))
    assert proc.returncode == 2
    errors = _error_lines(proc)
    assert "the document is null: a JSON-LD patient record is a JSON object" in errors["null.jsonld"]
    assert "the document is 1:" in errors["one.jsonld"]
    assert '"@context" is 5: a context is an IRI' in errors["context.jsonld"]
    assert "is the file cut short (it ends at line 2)" in errors["cut.ttl"]
    for line in errors.values():
        assert "object has no attribute" not in line and "local variable" not in line and "index out of" not in line


def test_output_that_cannot_be_written_is_exit_2_with_the_reason(tmp_path: Path) -> None:
    """A full disk (``> /dev/full``) and a docs folder that cannot be made: exit 2 naming why
    (they were exit 3, "please report"); a table piped into ``head -1`` is 141 like every other
    output closed early (it was exit 3: rich asked the escaping writer for its fileno)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "validate", str(EX / "skin-predominant.ttl")],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert "error: standard output: cannot write the output (No space left on device)" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    docs = cli("docs", "-o", "/proc/jdm-kg-site")
    assert docs.returncode == 2 and "cannot write here" in docs.stderr and "please report" not in docs.stderr
    piped = subprocess.run(f"set -o pipefail; {sys.executable} -m jdm_kg.cli query patients --data "
                           f"{EX / 'skin-predominant.ttl'} | head -1", shell=True, capture_output=True, text=True,
                           cwd=ROOT, timeout=300, executable="/bin/bash")
    assert piped.returncode == 141 and "internal error" not in piped.stderr and "Traceback" not in piped.stderr


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_ends_a_jobs_run_and_its_workers(tmp_path: Path) -> None:
    """SIGTERM to ``--jobs 2`` left both workers running (120 MB each) for minutes: now the run
    ends with 143 and its worker processes are gone."""
    folder = tmp_path / "registry"
    folder.mkdir()
    for i in range(900):
        (folder / f"p{i}.ttl").write_text(SKIN.replace("P-SKIN", f"P-{i}"))
    proc = subprocess.Popen([sys.executable, "-m", "jdm_kg.cli", "validate", str(folder), "--jobs", "2",
                             "--summary-only", "--summary"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.2)
        assert len(workers) >= 2, "the workers never started"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        gone = time.monotonic() + 10
        while time.monotonic() < gone and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.1)
        assert not any(Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
                       for w in workers)
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
