"""The command line as a user runs it (a subprocess, ``run``): outputs, exit codes, hostile input.
Each command runs here at least once as a subprocess; the tests of what a command prints in other
cases call the same ``main()`` in this process (``cli``: no interpreter to start, the compiled
guideline already in memory); what only a process shows (the network watch, --jobs workers, usage
errors from argparse, a run outside a checkout) stays a subprocess."""

from __future__ import annotations

import json
import re

import pytest

from helpers import ROOT, cli, run  # run: the CLI as a user runs it, with a network watch; cli: in-process

EX = ROOT / "examples"


def test_validate_ok_and_violations():
    ok = run("validate", str(EX / "skin-predominant.ttl"))
    assert ok.returncode == 0 and "conforms" in ok.stdout
    bad = run("validate", str(EX / "invalid" / "height-in-metres.ttl"))
    assert bad.returncode == 1
    assert "record P-BAD-UNITS: line 14: bodyHeight.value" in bad.stdout and "metres" in bad.stdout  # the line where the format has lines


def test_validate_json_and_turtle():
    out = json.loads(cli("validate", "--format", "json", str(EX / "invalid" / "typo-and-grams.jsonld")).stdout)
    assert out[0]["conforms"] is False and any(i["field"] == "sex" for i in out[0]["issues"])
    ttl = cli("validate", "--format", "turtle", str(EX / "invalid" / "height-in-metres.ttl")).stdout
    assert "sh:ValidationReport" in ttl


def test_recommend_text_report():
    proc = run("recommend", str(EX / "skin-predominant.ttl"))
    assert proc.returncode == 0
    out = proc.stdout
    # one screen (issue 21): tied options sharing their words share a line, each dose after its name
    assert "#1 adalimumab, infliximab: suitable (jdm-kg policy: ranking words): works better for skin disease" in out
    assert "infliximab: 105.0-175.0 mg per dose, intravenous (IV), every 4-8 weeks" in out
    assert "437.5 mg per dose" in out and "BSA 1.17" in out
    assert "Caveats stated by the guideline" not in out and "--details" in out
    detailed = run("recommend", str(EX / "skin-predominant.ttl"), "--details").stdout
    assert 'quote: "More effective for skin manifestations than muscle disease"' in detailed
    assert '"More effective for skin manifestations than muscle disease": works better for skin disease (predominant)' in detailed
    assert "Caveats stated by the guideline" in detailed


def test_recommend_json_markdown_turtle():
    data = json.loads(cli("recommend", "--format", "json", str(EX / "refractory-multisystem.ttl")).stdout)
    assert data[0]["options"][0]["label"] in ("adalimumab", "infliximab") and data[0]["options"][0]["rank"] == 1
    combination = [o for o in data[0]["options"] if o["label"].startswith("combination")][0]
    assert combination["rank"] is None and combination["section"].startswith("Escalation")
    rit = [o for o in data[0]["options"] if o["label"] == "rituximab"][0]
    assert rit["status"] == "excluded" and rit["reasonsAgainst"]
    md = cli("recommend", "--format", "markdown", str(EX / "skin-predominant.ttl")).stdout
    assert md.startswith("# jdm-kg recommendations") and "## Patient P-SKIN" in md
    ttl = cli("recommend", "--format", "turtle", str(EX / "skin-predominant.ttl")).stdout
    assert "jdm:RecommendationRun" in ttl and "prov:wasDerivedFrom" in ttl


def test_recommend_not_applicable_says_so():
    proc = cli("recommend", str(EX / "no-jak-failure.ttl"))
    assert proc.returncode == 0 and "does not apply" in proc.stdout


def test_explain_three_patients():
    skin = cli("explain", str(EX / "skin-predominant.ttl"), "infliximab").stdout
    assert "infliximab: OFFERED (next-line bDMARD), rank 1: suitable" in skin
    assert "patient fact: manifestation skin disease, predominant yes" in skin
    ild = cli("explain", str(EX / "ild-predominant.ttl")).stdout
    assert "rituximab: BLOCKED" in ild and "hepatitis B: positive (anti-HBc) on 2026-10-01" in ild
    ref = cli("explain", str(EX / "refractory-multisystem.ttl"), "rituximab").stdout
    assert "NOT OFFERED (history)" in ref and "2024-01-15 to 2024-09-01" in ref
    assert "jdm-kg policy: a drug that failed is not offered again" in ref
    mtx = cli("explain", str(EX / "skin-predominant.ttl"), "methotrexate").stdout
    assert "not a treatment option" in mtx and "co-medication" in mtx


def test_explain_unknown_drug_is_usage_error():
    proc = run("explain", str(EX / "skin-predominant.ttl"), "aspirin")
    assert proc.returncode == 2 and "'aspirin' is not a drug" in proc.stderr


def test_query_bundled_with_bound_param():
    proc = run(
        "query", "option-matches", "--data", str(EX / "skin-predominant.ttl"),
        "--param", "patient=<https://w3id.org/jdm-kg/example/patient/P-SKIN>", "--format", "csv",
    )
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("patient,option,statement") and "adalimumab" in lines[1]


def test_query_param_is_bound_not_pasted():
    # A value that would break out of the query if pasted is just a literal that matches nothing.
    proc = cli("query", "option-matches", "--param", 'patient=x" } ; DROP ALL ; #', "--format", "json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    assert not [row for row in rows if row.get("option")]  # a literal that names no patient: nothing ranked
    again = cli("query", "option-matches", "--data", str(EX / "skin-predominant.ttl"), "--format", "json",
                "--param", "patient=<https://w3id.org/jdm-kg/example/patient/P-SKIN>")
    # the guideline is intact and still answers: TNF inhibitors (both sides of the comparison), IVIG, rituximab
    assert len(json.loads(again.stdout)) == 6


@pytest.mark.parametrize("cmd", ["validate", "recommend"])
def test_remote_jsonld_context_refused_without_network(cmd, tmp_path):
    proc = run(cmd, str(EX / "invalid" / "remote-context.jsonld"), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "is remote; jdm-kg never fetches contexts" in proc.stderr
    assert proc.net_attempts == []


def test_query_service_refused_without_network(tmp_path):
    q = tmp_path / "service.rq"
    q.write_text("SELECT * WHERE { SERVICE <https://query.example.org/sparql> { ?s ?p ?o } }")
    proc = run("query", str(q), tmp_path=tmp_path)
    assert proc.returncode == 2 and "SERVICE" in proc.stderr and "--allow-service" in proc.stderr
    assert proc.net_attempts == []
    q.write_text("SELECT * FROM <https://data.example.org/g> WHERE { ?s ?p ?o }")
    proc = run("query", str(q), tmp_path=tmp_path)
    assert proc.returncode == 2 and "FROM" in proc.stderr and proc.net_attempts == []


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.ttl", b"", "file is empty"),
        ("binary.ttl", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        ("latin1.ttl", "# patient Müller\n".encode("latin-1"), "not UTF-8"),
        ("truncated.jsonld", b'{"@context": "https://w3id.org/jdm-kg/context.jsonld", "patientId": "P', "not valid JSON"),
        ("notes.txt", b"hello", "unknown file type"),
        ("nopatient.ttl", b"<urn:a> <urn:b> <urn:c> .", "no patient record found"),
    ],
)
def test_malformed_input_is_one_clear_line(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    for cmd in ("validate", "recommend"):
        proc = cli(cmd, str(path))
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and str(path) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_syntax_error_names_the_line():
    proc = cli("validate", str(EX / "invalid" / "malformed.ttl"))
    assert proc.returncode == 2 and "malformed.ttl:4:" in proc.stderr


def test_missing_file_and_usage_errors():
    assert run("validate", "does-not-exist.ttl").returncode == 2
    assert run("validate").returncode == 2
    assert run("frobnicate").returncode == 2


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix : <x> . :a :b")
    proc = cli("recommend", str(bad), str(EX / "skin-predominant.ttl"))
    assert proc.returncode == 2 and "Patient P-SKIN" in proc.stdout and "bad.ttl" in proc.stderr


def test_many_patients_one_broken(tmp_path):
    skin = (EX / "skin-predominant.ttl").read_text()
    broken = skin.replace("ex:P-SKIN", "ex:P-TWO").replace('"P-SKIN"', '"P-TWO"').replace("jdm:value 140.0", "jdm:value 1.40")
    both = tmp_path / "two.ttl"
    both.write_text(skin + "\n" + broken.split("\n", 6)[-1])
    proc = cli("recommend", "--format", "json", str(both))
    assert proc.returncode == 1
    data = {r["patientId"]: r for r in json.loads(proc.stdout)}
    assert data["P-SKIN"]["applicable"] is True
    assert data["P-TWO"]["applicable"] is False and data["P-TWO"]["issues"][0]["field"] == "bodyHeight.value"


def test_huge_literal_is_handled(tmp_path):
    """A 2 MB literal (a 10 MB one cost 1.37 GB) is refused from the text, naming the line and the limit."""
    skin = (EX / "skin-predominant.ttl").read_text()
    big = tmp_path / "big.ttl"
    big.write_text(skin.replace('jdm:patientId "P-SKIN"', 'jdm:patientId "' + "P" * 2_000_000 + '"'))
    proc = cli("validate", str(big))
    assert proc.returncode == 2
    assert "a string of 2000000 characters; jdm-kg reads values of at most 100000 characters" in proc.stderr


def test_batch_jsonl_summary_and_jobs(tmp_path):
    """Many files: one JSON line per patient, a summary, the same output with 2 workers, bad files reported."""
    folder = tmp_path / "registry"
    folder.mkdir()
    for name in ("skin-predominant.ttl", "muscle-predominant.jsonld", "ild-predominant.ttl", "no-jak-failure.ttl"):
        (folder / name).write_bytes((EX / name).read_bytes())
    (folder / "height-in-metres.ttl").write_bytes((EX / "invalid" / "height-in-metres.ttl").read_bytes())
    (folder / "broken.ttl").write_text("this is not turtle", encoding="utf-8")
    one = run("recommend", str(folder), "--format", "jsonl", "--summary", "--jobs", "1", "--no-progress")
    two = run("recommend", str(folder), "--format", "jsonl", "--summary", "--jobs", "2", "--no-progress")
    assert one.returncode == two.returncode == 2  # an unusable file: exit 2, the others still processed
    assert one.stdout == two.stdout
    rows = [json.loads(line) for line in one.stdout.splitlines()]
    assert [r["patientId"] for r in rows] == ["P-BAD-UNITS", "P-ILD", "P-MUSCLE", "P-NOJAK", "P-SKIN"]
    assert {r["patientId"]: r["applicable"] for r in rows}["P-NOJAK"] is False
    summary = one.stderr
    assert "files: 6 (1 unusable)" in summary
    assert "patient records: 5: 4 valid, 1 invalid" in summary
    assert "bodyHeight.value: Body height is outside 30-230 cm" in summary
    assert re.search(r"\n\s+1\s+rituximab\n", summary.split("ranked first and offered")[1])
    assert "broken.ttl:1: not valid turtle" in summary


def test_a_folder_without_patient_files_is_an_error_and_linked_folders_are_followed(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a patient file", encoding="utf-8")
    proc = cli("recommend", str(empty), "--summary")
    assert proc.returncode == 2 and f"{empty}: no patient files in this folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    registry = tmp_path / "registry"
    (registry / "site-a").mkdir(parents=True)
    (registry / "site-a" / "skin.ttl").write_bytes((EX / "skin-predominant.ttl").read_bytes())
    (registry / "site-b").symlink_to(EX / "fhir", target_is_directory=True)  # a linked folder is read
    (registry / "site-a" / "back").symlink_to(registry, target_is_directory=True)  # a loop is walked once
    out = cli("validate", str(registry), "--summary", "--summary-only", "--no-progress")
    assert out.returncode == 0, out.stderr
    fhir_files = len(list((EX / "fhir").glob("*.json")))
    assert f"files: {1 + fhir_files} (0 unusable)" in out.stdout


def test_validate_summary_only(tmp_path):
    proc = cli("validate", str(EX), "--summary", "--summary-only", "--no-progress")
    assert proc.returncode == 2  # examples/invalid holds unusable files too (malformed, remote context)
    first, rest = proc.stdout.split("\n", 1)
    assert first.startswith("Guideline v") and rest.lstrip().startswith("Summary")  # the guideline line, then only the summary
    assert "invalid, by reason:" in proc.stdout


def test_query_table_is_a_rich_table_with_every_row():
    proc = cli("query", "candidate-options")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Guideline v")
    assert lines[1].startswith("NOT A RECOMMENDATION: ") and lines[2] == ""  # (tests/test_query_truth.py)
    assert lines[3].split()[:3] == ["option", "optionLabel", "role"] and set(lines[4]) <= {"─", " "}
    assert "(7 rows)" in proc.stdout and "abatacept" in proc.stdout and "\x1b[" not in proc.stdout  # no colour codes


# ---------------------------------------------------------------- which guideline


def _edited_guideline(tmp_path):
    """A copy of ontology/ with rituximab at 500 mg/m² (numbers only)."""
    import shutil

    folder = tmp_path / "draft"
    shutil.copytree(ROOT / "ontology", folder)
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    block = text[text.index("jdmg:regimen-rituximab\n"):]
    block = block[: block.index("\n.\n")]
    path.write_text(text.replace(block, block.replace("375.0", "500.0")), encoding="utf-8")
    return folder


def test_guideline_option_reaches_worker_processes_and_names_the_folder(tmp_path):
    draft = _edited_guideline(tmp_path)
    files = [str(EX / "skin-predominant.ttl"), str(EX / "ild-predominant.ttl")]
    proc = run("recommend", *files, "--jobs", "2", "--guideline", str(draft))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("Guideline v") and f"from {draft}/: chosen with --guideline" in first
    assert "583.3 mg per dose" in proc.stdout and "437.5 mg per dose" not in proc.stdout  # both workers used the draft
    default = run("recommend", files[0])
    assert default.stdout.startswith("Guideline v") and "from ontology/: the working tree of the checkout" in default.stdout
    assert "437.5 mg per dose" in default.stdout


def test_guideline_line_goes_to_stderr_for_machine_formats(tmp_path):
    for args in (["recommend", "--format", "json"], ["validate", "--format", "json"], ["recommend", "--format", "fhir"]):
        proc = cli(*args, str(EX / "skin-predominant.ttl"))
        json.loads(proc.stdout)  # stdout stays JSON
        assert proc.stderr.startswith("Guideline v"), proc.stderr
    csv_out = cli("query", "patients", "--data", str(EX / "skin-predominant.ttl"), "--format", "csv")
    assert csv_out.stdout.splitlines()[0] == "patient,patientId" and "\\u000d" not in csv_out.stdout
    assert csv_out.stderr.startswith("Guideline v")
    md = cli("recommend", "--format", "markdown", str(EX / "skin-predominant.ttl")).stdout.splitlines()
    assert md[0] == "# jdm-kg recommendations" and md[2].startswith("Guideline v")


def test_guideline_option_errors_and_fmt_outside_a_checkout(tmp_path):
    missing = cli("check", "--guideline", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "guideline.ttl").write_text((ROOT / "ontology" / "guideline.ttl").read_text(encoding="utf-8"))
    incomplete = cli("recommend", str(EX / "skin-predominant.ttl"), "--guideline", str(partial))
    assert incomplete.returncode == 2 and "lacks sources.ttl, terms.ttl, vocab.ttl" in incomplete.stderr
    assert incomplete.stdout == ""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "fmt", "--check"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "not in a checkout" in proc.stderr and "Traceback" not in proc.stderr


def test_a_checkout_of_another_version_gets_a_note(tmp_path):
    import shutil

    for folder in ("ontology", "shapes", "queries"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "jdm-kg"\nversion = "9.9.9"\n')
    proc = cli("validate", str(EX / "skin-predominant.ttl"), cwd=tmp_path / "ontology")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Guideline v") and "from ./: the working tree of the checkout" in proc.stdout
    assert "note: this checkout is jdm-kg 9.9.9 but the program running is jdm-kg" in proc.stderr


def _guideline_with(tmp_path, old: str, new: str, within: str | None = None):
    """A copy of ontology/ with ``old`` replaced by ``new`` (in the block of ``within`` only, if given)."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(ROOT / "ontology", folder)
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    start = text.index(within + "\n") if within else 0
    end = text.index("\n.\n", start) if within else len(text)
    assert old in text[start:end]
    path.write_text(text[:start] + text[start:end].replace(old, new) + text[end:], encoding="utf-8")
    return folder


def test_a_dose_unit_that_contradicts_its_basis_is_never_multiplied_out(tmp_path):
    """An author's slip (per-kg basis, unit still mg/m2) must not print a 30-fold rituximab dose."""
    folder = _guideline_with(tmp_path, "jdm:PerM2BodySurfaceArea", "jdm:PerKgBodyWeight", "jdmg:regimen-rituximab")
    proc = cli("recommend", str(EX / "skin-predominant.ttl"), "--guideline", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "13125" not in proc.stdout and "437.5" not in proc.stdout
    assert "no dose worked out: the guideline graph's dose unit 'mg/m2' does not match its basis" in proc.stdout


def test_a_guideline_without_a_policy_setting_is_a_clear_error_not_a_bug(tmp_path):
    folder = _guideline_with(tmp_path, "jdm:screeningMaxAgeDays 365 ;", "")
    proc = cli("recommend", str(EX / "skin-predominant.ttl"), "--guideline", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert "lacks jdm-kg policies or settings it needs: screeningMaxAgeDays; run jdm-kg check" in proc.stderr
    assert "please report" not in proc.stderr


def test_query_data_says_which_records_do_not_conform_and_which_are_merged(tmp_path):
    export = tmp_path / "skin-export.json"  # the FHIR twin, exported under the Turtle record's patient IRI
    export.write_text((EX / "fhir" / "skin-predominant.json").read_text(encoding="utf-8").replace(
        "example/fhir/Patient/P-SKIN", "example/patient/P-SKIN"), encoding="utf-8")
    proc = cli("query", "patients", "--data", str(EX / "invalid" / "height-in-metres.ttl"),
               str(EX / "skin-predominant.ttl"), str(export))
    assert proc.returncode == 0, proc.stderr
    assert "record P-BAD-UNITS does not conform (2 violation(s), e.g. bodyHeight.value): its facts are queried as " \
           "written" in proc.stderr
    assert "P-SKIN> is in " in proc.stderr and "the query sees their facts merged" in proc.stderr
    assert "record P-SKIN does not conform" not in proc.stderr  # each file is validated alone
    assert "P-BAD-UNITS" in proc.stdout
