"""Hostile input and one-file failures: the fuzz corpus, batch isolation, exit codes, terminal safety."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fuzz.generate import write as write_corpus
from helpers import ROOT, cli, run  # run: a subprocess, as a user runs it; cli: in-process

import jdm_kg.batch as batch
from jdm_kg import InputError, __version__, recommend_file, validate_file
from jdm_kg.batch import process_files

EX = ROOT / "examples"
GOOD = sorted(EX.glob("*.ttl")) + sorted(EX.glob("*.jsonld")) + sorted((EX / "fhir").glob("*.json"))

#: One file of each kind that once crashed a batch, by name: content.
CRASHERS = {
    "impossible-date.ttl": (EX / "refractory-multisystem.ttl").read_text().replace('"2024-09-01"', '"2020-02-30"'),
    "empty-date.ttl": (EX / "refractory-multisystem.ttl").read_text().replace('"2024-09-01"', '""'),
    "short-date.ttl": (EX / "skin-predominant.ttl").read_text().replace('"2025-09-01"', '"2012-2-3"'),
    "nan-weight.ttl": (EX / "skin-predominant.ttl").read_text().replace("jdm:value 35.0", 'jdm:value "NaN"^^xsd:decimal'),
    "odd-datatype.ttl": (EX / "skin-predominant.ttl").read_text().replace('"female"', '"female"^^<urn:a"b>'),
    "odd-key.jsonld": json.dumps(dict(json.loads((EX / "muscle-predominant.jsonld").read_text()), **{"a<": "x"})),
    "date-object.jsonld": json.dumps(dict(json.loads((EX / "muscle-predominant.jsonld").read_text()),
                                          treatments=[{"drug": "baricitinib", "startDate": {}, "endDate": "2026-09-20",
                                                       "outcome": "LossOfResponse"}])),
    "deep.jsonld": "[" * 500 + "]" * 500,
    "huge-number.json": '{"resourceType": "Patient", "id": "p", "multipleBirthInteger": ' + "7" * 5000 + "}",
    "entry-string.json": '{"resourceType": "Bundle", "type": "collection", "entry": ["x"]}',
    "entry-empty.json": '{"resourceType": "Bundle", "type": "collection", "entry": [{}]}',
    "conditionx.json": json.dumps(dict(json.loads((EX / "fhir" / "skin-predominant.json").read_text()),
                                       entry=[{"resource": {"resourceType": "Conditionx"}}])),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.slow
def test_fuzz_corpus_every_case_ends_cleanly(corpus: list[Path]) -> None:
    """Every case through the batch API: ok, violations or unusable, each naming its file; never a bug."""
    assert len(corpus) >= 1000
    paths = [str(p) for p in corpus]
    outcomes = process_files(paths, "recommend", engine="oxigraph")
    assert [o.path for o in outcomes] == paths
    assert [o.error for o in outcomes if o.internal] == []
    ends = Counter()
    for outcome in outcomes:
        if outcome.error:
            assert outcome.error.startswith(outcome.path + ":"), outcome.error
            ends["unusable"] += 1
        else:
            assert outcome.report is not None and outcome.report.source == outcome.path
            ends["ok" if outcome.report.conforms else "violations"] += 1
        assert all("Traceback" not in note for note in outcome.notes)
    assert min(ends["ok"], ends["violations"], ends["unusable"]) >= 50, ends  # the corpus reaches every end


def test_fuzz_corpus_is_seeded(tmp_path: Path, corpus: list[Path]) -> None:
    again = write_corpus(tmp_path)
    assert [p.name for p in again] == [p.name for p in corpus]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(again, corpus))


def test_fuzz_sample_on_the_command_line(corpus: list[Path], tmp_path: Path) -> None:
    """A sample of every kind of case through the CLI as a user runs it: exit 0, 1 or 2, no traceback,
    every file named, no control character from the input on the terminal."""
    by_kind: dict[str, list[Path]] = {}
    for path in corpus:
        by_kind.setdefault(path.name.split("-")[0], []).append(path)
    rng = random.Random(13)
    sample = sorted(p for paths in by_kind.values() for p in rng.sample(paths, min(3, len(paths))))
    proc = run("recommend", "--format", "jsonl", "--summary", *map(str, sample), tmp_path=tmp_path)
    assert proc.returncode in (1, 2)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    named = {row["file"] for row in rows} | {line.split(": ")[1].split(":")[0] for line in proc.stderr.splitlines()
                                            if line.startswith("error: ")}
    assert named == {str(p) for p in sample}
    assert f"files: {len(sample)} (" in proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and proc.net_attempts == []


def _folder(tmp_path: Path, crashers: bool) -> Path:
    folder = tmp_path / ("mixed" if crashers else "good")
    folder.mkdir()
    for path in GOOD:
        shutil.copy(path, folder / f"{path.parent.name}-{path.name}")
    if crashers:
        for name, text in CRASHERS.items():
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_batch_isolation_on_the_command_line(tmp_path: Path) -> None:
    """Good files plus one of each crashing kind: each file once in the output, the summary counts
    them all, the exit code is the worst, and the good files' results are what they are alone."""
    mixed = cli("recommend", "--format", "jsonl", "--summary", str(_folder(tmp_path, True)))
    alone = cli("recommend", "--format", "jsonl", str(_folder(tmp_path, False)))
    assert mixed.returncode == 2 and alone.returncode == 0
    rows = [json.loads(line) for line in mixed.stdout.splitlines()]
    errors = [line for line in mixed.stderr.splitlines() if line.startswith("error: ")]
    files = Counter(Path(r["file"]).name for r in rows) + Counter(Path(e.split(": ")[1].split(":")[0]).name for e in errors)
    everything = {f"{p.parent.name}-{p.name}" for p in GOOD} | set(CRASHERS)
    assert set(files) == everything and set(files.values()) == {1}
    assert f"files: {len(everything)} (" in mixed.stderr
    # (odd-key.jsonld: an unknown JSON-LD key is a violation naming it, not an unusable file)
    unusable = {"odd-datatype.ttl", "date-object.jsonld", "deep.jsonld", "huge-number.json",
                "entry-string.json", "entry-empty.json", "conditionx.json"}
    assert {Path(e.split(": ")[1].split(":")[0]).name for e in errors} == unusable
    assert "please report" not in mixed.stderr
    good_rows = [r for r in rows if Path(r["file"]).name not in CRASHERS]
    def named(row: dict) -> dict:  # the same file in another folder
        return dict(row, file=Path(row["file"]).name, source=Path(row["source"]).name)

    assert [named(r) for r in good_rows] == [named(r) for r in map(json.loads, alone.stdout.splitlines())]
    blocked = {Path(r["file"]).name: r for r in rows if Path(r["file"]).name in CRASHERS}
    assert set(blocked) == set(CRASHERS) - unusable
    for name, row in blocked.items():  # each an honest violation naming the field, not a crash
        assert row["applicable"] is False and any(i["severity"] == "violation" for i in row["issues"]), name


@pytest.mark.parametrize("name, field, value", [
    ("impossible-date.ttl", "treatmentEpisode.endDate", "2020-02-30"),
    ("empty-date.ttl", "treatmentEpisode.endDate", ""),
    ("short-date.ttl", "treatmentEpisode.startDate", "2012-2-3"),
    ("nan-weight.ttl", "bodyWeight.value", "NaN"),
])
def test_ill_typed_literal_is_a_violation_not_a_crash(tmp_path: Path, name: str, field: str, value: str) -> None:
    path = tmp_path / name
    path.write_text(CRASHERS[name], encoding="utf-8")
    report = validate_file(path)
    issues = [i for i in report.issues if i.field == field and i.value == value]
    assert issues and issues[0].severity == "violation" and "not a valid" in issues[0].message
    assert issues[0].record.startswith("P-")
    report, results = recommend_file(str(path))
    assert results and all(r.blocked_by_validation for r in results)


def test_an_unexpected_exception_costs_only_its_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug met while processing one file of a group: that file gets an internal error (stage, exception,
    version, "please report"); the group is rerun without it and the others' results are unchanged."""
    paths = [str(p) for p in GOOD]
    expected = {o.path: [r.as_dict() for r in o.results] for o in process_files(paths, "recommend")}
    victim = paths[3]
    real = batch.recommend_graphs

    def fails_on_victim(sources, *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(path == victim for path, _ in sources):
            raise KeyError("boom")
        return real(sources, *args, **kwargs)

    monkeypatch.setattr(batch, "recommend_graphs", fails_on_victim)
    outcomes = process_files(paths, "recommend")
    assert [o.path for o in outcomes] == paths
    failed = [o for o in outcomes if o.error]
    assert [o.path for o in failed] == [victim] and failed[0].internal
    assert failed[0].error.startswith(f"{victim}: validation and recommendation: internal error (KeyError: 'boom')")
    assert f"jdm-kg {__version__}: please report" in failed[0].error
    assert {o.path: [r.as_dict() for r in o.results] for o in outcomes if not o.error} == {
        p: r for p, r in expected.items() if p != victim}


def test_internal_error_exits_3_and_says_please_report(tmp_path: Path) -> None:
    code = ("import sys, jdm_kg.batch as b\n"
            "def boom(*a, **k): raise RuntimeError('simulated bug')\n"
            "b.validate_graphs = boom\n"
            "from jdm_kg.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "validate", str(EX / "skin-predominant.ttl"),
                           str(EX / "invalid" / "malformed.ttl")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"skin-predominant.ttl: validation: internal error (RuntimeError: simulated bug); this is a bug in jdm-kg {__version__}: please report" in proc.stderr
    assert "malformed.ttl:4: not valid turtle" in proc.stderr  # the other file still reported


def test_control_characters_are_escaped_on_output(tmp_path: Path) -> None:
    path = tmp_path / "esc.ttl"
    path.write_text((EX / "skin-predominant.ttl").read_text().replace('"P-SKIN"', '"P-\\u001b[2J\\u009bSKIN"'))
    for fmt in ("text", "json", "jsonl", "markdown"):
        proc = cli("recommend", "--format", fmt, str(path))
        assert proc.returncode == 0
        assert "\x1b" not in proc.stdout and "\x9b" not in proc.stdout
        assert "\\u001b[2J" in proc.stdout or "\\\\u001b[2J" in proc.stdout
    data = json.loads(cli("recommend", "--format", "json", str(path)).stdout)
    assert data[0]["patientId"] == "P-\x1b[2J\x9bSKIN"  # JSON output still carries the exact value


def test_output_closed_early_is_not_success() -> None:
    proc = subprocess.run(f"{sys.executable} -m jdm_kg.cli recommend {EX} | head -2", shell=True, capture_output=True,
                          text=True, cwd=ROOT, timeout=300, executable="/bin/bash")
    assert proc.stdout.startswith("Guideline ") and proc.stdout.splitlines()[1].startswith("Patient ")
    status = subprocess.run(f"set -o pipefail; {sys.executable} -m jdm_kg.cli recommend {EX} | head -2 >/dev/null",
                            shell=True, cwd=ROOT, timeout=300, executable="/bin/bash")
    assert status.returncode == 141
    assert "Traceback" not in proc.stderr


def test_special_files_are_reported_and_skipped(tmp_path: Path) -> None:
    """A FIFO named .ttl does not block, a link to a device is refused before it is read, an empty
    folder named on the command line is one error line, and every other path is still processed."""
    folder = tmp_path / "registry"
    folder.mkdir()
    shutil.copy(EX / "skin-predominant.ttl", folder / "good.ttl")
    os.mkfifo(folder / "pipe.ttl")
    (folder / "zero.ttl").symlink_to("/dev/zero")
    (folder / "random.jsonld").symlink_to("/dev/urandom")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("validate", "--summary", str(empty), str(folder), str(EX / "ild-predominant.ttl"), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"error: {empty}: no patient files in this folder" in proc.stderr
    assert f"error: {folder / 'pipe.ttl'}: is a FIFO (named pipe), not a regular file" in proc.stderr
    assert f"error: {folder / 'zero.ttl'}: is a character device, not a regular file" in proc.stderr
    assert f"error: {folder / 'random.jsonld'}: is a character device" in proc.stderr
    assert f"{folder / 'good.ttl'}: conforms" in proc.stdout and "ild-predominant.ttl: conforms" in proc.stdout
    assert "files: 6 (4 unusable)" in proc.stdout


def test_size_limit_is_checked_on_what_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jdm_kg.inputs.loading as loading

    path = tmp_path / "big.ttl"
    path.write_text((EX / "skin-predominant.ttl").read_text(), encoding="utf-8")
    monkeypatch.setenv("JDM_KG_MAX_FILE_MB", str(100 / 2**20))
    with pytest.raises(InputError, match="over the 9.53674e-05 MiB limit .* JDM_KG_MAX_FILE_MB"):
        loading.load_patient_file(path)
    monkeypatch.setenv("JDM_KG_MAX_FILE_MB", "1")
    assert len(loading.load_patient_file(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    (folder / "locked").mkdir(parents=True)
    shutil.copy(EX / "skin-predominant.ttl", folder / "good.ttl")
    (folder / "locked").chmod(0)
    try:
        proc = run("validate", str(folder), tmp_path=tmp_path)
    finally:
        (folder / "locked").chmod(0o755)
    assert proc.returncode == 2 and "locked: cannot read this folder (Permission denied)" in proc.stderr
    assert "good.ttl: conforms" in proc.stdout


def test_unreadable_folder_is_reported_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, for a run as root (who reads any folder): the folder listing fails as it would."""
    import errno

    from jdm_kg.inputs.loading import rdf_files

    folder = tmp_path / "registry"
    (folder / "locked").mkdir(parents=True)
    shutil.copy(EX / "skin-predominant.ttl", folder / "good.ttl")
    shutil.copy(EX / "skin-predominant.ttl", folder / "locked" / "hidden.ttl")
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems: list[InputError] = []
    assert rdf_files([str(folder)], problems) == [folder / "good.ttl"]
    assert [str(p) for p in problems] == [f"{folder / 'locked'}: cannot read this folder (Permission denied); its files were skipped"]
    with pytest.raises(InputError, match="cannot read this folder"):
        rdf_files([str(folder)])


def test_query_with_graph_on_local_data_is_a_usage_error(tmp_path: Path) -> None:
    query = tmp_path / "g.rq"
    query.write_text("SELECT * WHERE { GRAPH <urn:x> { ?s ?p ?o } }")
    proc = cli("query", str(query), "--data", str(EX / "skin-predominant.ttl"))
    assert proc.returncode == 2 and "the query reads named graphs (GRAPH)" in proc.stderr


def test_unreachable_service_is_an_error_not_a_bug(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    query = tmp_path / "s.rq"
    query.write_text(f"SELECT * WHERE {{ SERVICE <http://127.0.0.1:{port}/sparql> {{ ?s ?p ?o }} }}")
    proc = run("query", str(query), "--allow-service", tmp_path=tmp_path)
    assert proc.returncode == 2 and "a SERVICE endpoint could not be reached" in proc.stderr


@pytest.mark.slow
def test_a_literal_over_oxigraphs_16_mib_parser_buffer(tmp_path: Path) -> None:
    """A 17 MiB literal (over Oxigraph's 16 MiB token buffer, where rdflib used to read the file) is
    refused from the text before either parser sees it: that file's error, naming the line and the limit."""
    path = tmp_path / "big-literal.ttl"
    path.write_text((EX / "skin-predominant.ttl").read_text().replace('"kg"', '"' + "k" * (17 * 1024 * 1024) + '"', 1))
    outcome = process_files([str(path)], "recommend", engine="oxigraph")[0]
    assert outcome.error is not None and "characters; jdm-kg reads values of at most 100000" in str(outcome.error)


def test_a_file_of_many_patients_is_processed_in_slices_with_the_same_results(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The records of one file are cut apart (patient_slices) and processed in groups like separate
    files: the same report and results as the whole file processed at once."""
    from rdflib import Graph

    from jdm_kg.inputs.loading import load_patient_file
    from jdm_kg.reasoning.validation import patients_in

    merged = Graph()
    for path in sorted(EX.glob("*.ttl")) + [EX / "invalid" / "height-in-metres.ttl"]:
        merged += load_patient_file(path)
    path = tmp_path / "registry.ttl"
    path.write_text(merged.serialize(format="turtle").replace('"2024-09-01"^^xsd:date', '"2024-09-31"^^xsd:date'))
    records = patients_in(load_patient_file(path))
    assert len(batch.patient_slices(load_patient_file(path), records)) == len(records) == 7
    sliced = process_files([str(path)], "recommend", engine="oxigraph")[0]
    monkeypatch.setattr(batch, "patient_slices", lambda graph, records: [graph])
    whole = process_files([str(path)], "recommend", engine="oxigraph")[0]
    assert sliced.report is not None and whole.report is not None
    assert sliced.report.records == whole.report.records and sliced.report.issues == whole.report.issues
    assert [r.as_dict() for r in sliced.results] == [r.as_dict() for r in whole.results]
    assert any(i.value == "2024-09-31" and i.severity == "violation" for i in sliced.report.issues)


def test_records_that_share_a_node_are_not_sliced() -> None:
    from rdflib import Graph

    from jdm_kg.reasoning.validation import patients_in

    graph = Graph().parse(data="""@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .
        <urn:p1> a jdm:Patient ; jdm:patientId "1" ; jdm:bodyWeight <urn:w> .
        <urn:p2> a jdm:Patient ; jdm:patientId "2" ; jdm:bodyWeight <urn:w> .
        <urn:w> jdm:value 30 .""", format="turtle")
    assert batch.patient_slices(graph, patients_in(graph)) == [graph]
    orphan = Graph().parse(data="""@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .
        <urn:p1> a jdm:Patient . <urn:p2> a jdm:Patient . <urn:x> jdm:value 30 .""", format="turtle")
    assert batch.patient_slices(orphan, patients_in(orphan)) == [orphan]


def test_the_summary_is_the_same_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Reasons counted the same number of times are listed alphabetically, not in set order
    (which follows Python's per-process string hashing): the same input, byte-identical output."""
    outputs = set()
    for seed in ("1", "2", "3"):
        proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "validate", "--summary", "--summary-only", str(EX)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env=dict(os.environ, PYTHONHASHSEED=seed))
        assert proc.returncode == 2 and "invalid, by reason:" in proc.stdout
        outputs.add(proc.stdout + proc.stderr)
    assert len(outputs) == 1


def test_an_ill_typed_literal_is_in_the_turtle_report_too(tmp_path: Path) -> None:
    """The SHACL report graph (--format turtle) says what the text report says: not conforming."""
    path = tmp_path / "impossible-date.ttl"
    path.write_text(CRASHERS["impossible-date.ttl"], encoding="utf-8")
    proc = cli("validate", "--format", "turtle", str(path))
    assert proc.returncode == 1
    assert "sh:conforms false" in proc.stdout and '"2020-02-30"^^xsd:date' in proc.stdout
    assert "sh:DatatypeConstraintComponent" in proc.stdout
