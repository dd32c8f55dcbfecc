"""The guideline authors' toolkit: check, test (vignettes), diff, fmt and docs, as authors run them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli  # in-process; jdm() below runs each command as a user does
from rdflib import Graph
from rdflib.compare import isomorphic

from jdm_kg.authoring.check import check_guideline, qc_rules
from jdm_kg.authoring.diff import clinical_changes
from jdm_kg.authoring.fmt import format_turtle
from jdm_kg.authoring.vignettes import run_vignettes, vignette_files
from jdm_kg.inputs.loading import load_rdf_file

ROOT = Path(__file__).resolve().parent.parent
ONTOLOGY = ROOT / "ontology"
BROKEN = ROOT / "tests" / "fixtures" / "broken-guideline"
VIGNETTES = ROOT / "tests" / "vignettes"


def jdm(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``jdm-kg ARGS`` as a user runs it (a subprocess); :func:`helpers.cli` runs it in this process."""
    proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def guideline_copy(tmp_path: Path, *extra: Path) -> Path:
    """A copy of the bundled guideline folder, with ``extra`` files added to it."""
    folder = tmp_path / "ontology"
    shutil.copytree(ONTOLOGY, folder)
    for path in extra:
        shutil.copy(path, folder / f"zz-{path.name}")
    return folder


# ---------------------------------------------------------------- check


def test_bundled_guideline_passes_check():
    proc = cli("check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no problems found" in proc.stdout


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    rule, entity = first.split(":", 1)[1].split()
    return rule, entity


def _assert_caught(fixture: Path, problems) -> None:  # type: ignore[no-untyped-def]
    """The mistake ``fixture`` makes is among ``problems``: its rule, on its entity, located, with a fix."""
    rule, entity = _expectation(fixture)
    hits = [p for p in problems if p.rule == rule and (entity == "-" or entity.split(":")[1] in str(p))]
    assert hits, f"{fixture.name}: {rule} {entity} not reported; got: " + "\n".join(map(str, problems))
    for problem in hits:
        assert problem.fix or problem.rule == "consistency", problem
        assert problem.file and problem.line, f"problem not located: {problem}"


@pytest.fixture(scope="module")
def every_mistake(tmp_path_factory):
    """check on one copy of the guideline holding every broken fixture but the syntax error (which
    stops check before the others): one compile and one check instead of one per fixture."""
    fixtures = [p for p in sorted(BROKEN.glob("*.ttl")) if _expectation(p)[0] != "syntax"]
    return check_guideline(guideline_copy(tmp_path_factory.mktemp("every-mistake"), *fixtures))


@pytest.mark.parametrize("fixture", sorted(BROKEN.glob("*.ttl")), ids=lambda p: p.stem)
def test_each_deliberately_broken_guideline_is_caught(fixture, every_mistake, tmp_path):
    """Each fixture adds one kind of mistake to the guideline; check names it, among all the
    others (the syntax error alone: check stops at it). Each fixture alone in a copy of its own:
    test_each_deliberately_broken_guideline_is_caught_alone (slow)."""
    if _expectation(fixture)[0] == "syntax":
        _assert_caught(fixture, check_guideline(guideline_copy(tmp_path, fixture)))
    else:
        _assert_caught(fixture, every_mistake)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", sorted(BROKEN.glob("*.ttl")), ids=lambda p: p.stem)
def test_each_deliberately_broken_guideline_is_caught_alone(fixture, tmp_path):
    """Each fixture adds one kind of mistake to a copy of the guideline; check names it."""
    _assert_caught(fixture, check_guideline(guideline_copy(tmp_path, fixture)))


def test_every_qc_rule_and_check_kind_has_a_broken_fixture():
    covered = {_expectation(p)[0] for p in BROKEN.glob("*.ttl")}
    wanted = {f"qc:{rule.name}" for rule in qc_rules()} | {"syntax", "consistency", "shape", "quote", "policy"}
    assert wanted <= covered, f"no broken-guideline fixture for: {sorted(wanted - covered)}"


def test_qc_rule_headers_are_read_whole():
    """A continuation line that starts like a key ("#   orpha:, rxnorm:, ...") continues the
    text before it: the fix is not cut there."""
    rules = {rule.name: rule for rule in qc_rules()}
    assert rules["unknown-code-system"].fix.endswith("orpha:, rxnorm:, atc:, loinc:), or declare the code system in terms.ttl.")
    assert rules["unused-source"].fix.endswith("or delete the record.")
    assert {rule.graph for rule in rules.values()} == {"asserted", "compiled"}
    assert all(rule.description and rule.fix for rule in rules.values())


def test_check_cli_reports_file_line_and_fix_and_exits_1(tmp_path):
    folder = guideline_copy(tmp_path, BROKEN / "shape-regimen.ttl")
    proc = jdm("check", str(folder))
    assert proc.returncode == 1
    line = next(x for x in proc.stdout.splitlines() if "regimen-broken" in x and "interval" in x)
    assert re.match(r".*zz-shape-regimen\.ttl:\d+: error \[shape\] jdmg:regimen-broken: .+ Fix: .+", line), line
    assert "problems in" in proc.stderr


def test_check_cli_bad_folder_is_usage_error(tmp_path):
    proc = cli("check", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not a folder" in proc.stderr


# ---------------------------------------------------------------- vignettes


def test_there_are_at_least_twelve_vignettes_in_turtle_and_json():
    files = vignette_files([VIGNETTES])
    assert len(files) >= 12
    assert {p.suffix for p in files} >= {".ttl", ".jsonld"}


@pytest.mark.parametrize("vignette", vignette_files([VIGNETTES]), ids=lambda p: p.stem)
def test_vignette(vignette):
    results = run_vignettes([vignette])
    assert results
    for result in results:
        assert result.passed, f"{result.name}: " + "; ".join(result.differences)


def test_vignettes_cover_every_manifestation_gate_and_case():
    text = "\n".join(p.read_text(encoding="utf-8") for p in vignette_files([VIGNETTES]))
    for needed in ("SkinDisease", "MuscleWeakness", "InterstitialLungDisease", "Calcinosis", "MajorOrganInvolvement",
                   "RefractoryMultiSystemDisease", '"passed"', '"required"', '"blocking"', '"missing-data"',
                   '"excluded"', "expectApplicable false", "expectValid false"):
        assert needed in text or needed.strip('"') in text, needed


def test_cli_test_prints_table_and_fails_on_a_wrong_expectation(tmp_path):
    proc = cli("test")
    assert proc.returncode == 0, proc.stdout
    assert re.search(r"\d+ passed, 0 failed", proc.stdout)
    wrong = tmp_path / "v01-wrong.ttl"
    wrong.write_text((VIGNETTES / "v01-skin-predominant.ttl").read_text().replace("437.5", "400.0"))
    proc = jdm("test", str(wrong), "--format", "json")
    assert proc.returncode == 1
    [row] = json.loads(proc.stdout)
    assert not row["passed"] and "rituximab dose: expected" in row["differences"][0] and "437.5 mg" in row["differences"][0]


# ---------------------------------------------------------------- diff


def _edit_rituximab_dose(folder: Path) -> None:
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    block = text[text.index("jdmg:regimen-rituximab\n"):]
    block = block[: block.index("\n.\n")]
    path.write_text(text.replace(block, block.replace("375.0", "500.0")), encoding="utf-8")


def test_diff_names_the_dose_change_and_who_it_affects(tmp_path):
    new = guideline_copy(tmp_path)
    _edit_rituximab_dose(new)
    proc = jdm("diff", "ontology", str(new), "--patients", "examples/skin-predominant.ttl",
               "--vignettes", "tests/vignettes/v01-skin-predominant.ttl")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dose regimen 'rituximab 375 mg/m² weekly x4': dose (low end) changed from 375.0 to 500.0" in out
    assert ("P-SKIN (skin-predominant.ttl): rituximab: dose (rituximab): 437.5 mg per dose (375 mg/m2) -> "
            "583.3 mg per dose (500 mg/m2)") in out
    assert "Who is affected (2 differences in 1 patient file and 1 vignette):" in out  # P-SKIN and V01
    assert "V01: pass -> FAIL" in out
    assert "infliximab" not in out.split("Who is affected")[1]  # only what changed is listed
    assert "dosing (rituximab)" not in out  # route, schedule and BSA are unchanged


def _edit_rituximab_preference(folder: Path, old: str, new: str) -> None:
    """Change ``old`` to ``new`` in the statement 'Rituximab: particularly effective for muscle
    involvement and ILD'."""
    path = folder / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    block = text[text.index("jdmg:pref-rituximab-muscle-ild\n"):]
    block = block[: block.index("\n.\n")]
    assert old in block
    path.write_text(text.replace(block, block.replace(old, new)), encoding="utf-8")


_WEAKER_LEVEL = ("jdm:preferenceLevel jdmg:level-particularly-effective",
                 "jdm:preferenceLevel jdmg:level-may-be-effective")
_NOT_FOR_MUSCLE = ("jdmg:InterstitialLungDisease ,\n        jdmg:MuscleWeakness ;", "jdmg:InterstitialLungDisease ;")


def test_diff_lists_a_change_of_standing_in_every_patient_file_format(tmp_path):
    """The reviewer's edit: the level of the rituximab statement from 'particularly effective' to
    'may be effective'. Rank 1 either way, but the report's words change: listed, for the
    Turtle, JSON-LD and FHIR files alike; a file that cannot be read is named (exit 2) and the
    others are still compared; the heading says what was compared."""
    new = guideline_copy(tmp_path)
    _edit_rituximab_preference(new, *_WEAKER_LEVEL)
    proc = cli("diff", "ontology", str(new), "--patients", "examples/muscle-predominant.jsonld",
               "examples/ild-predominant.ttl", "examples/fhir", "examples/invalid/malformed.ttl", "--vignettes")
    assert proc.returncode == 2, proc.stderr
    out = proc.stdout
    for patient in ("P-MUSCLE (muscle-predominant.jsonld)", "P-MUSCLE (fhir/muscle-predominant.json)",
                    "P-ILD (ild-predominant.ttl)", "P-ILD (fhir/ild-predominant.json)"):
        assert f"{patient}: rituximab: standing: #1 preferred for the predominant feature -> #1 suitable" in out, out
        assert f"{patient}: rituximab: reason: " in out  # the reason quotes the level too
    assert " in 8 patient files and 0 vignettes; 1 patient file could not be read):" in out
    assert "no patient file or vignette gets a different recommendation" not in out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: examples/invalid/malformed.ttl:4: not valid turtle")
    patients = [line.split(": ", 1)[0] for line in out.split("Who is affected", 1)[1].splitlines()[1:]]
    assert patients == sorted(patients)  # deterministic: by patient and file, then option, then field


def test_diff_patients_a_path_that_does_not_exist_is_a_usage_error():
    proc = cli("diff", "HEAD", "ontology", "--patients", "examples/skin-predominant.ttl",
               "examples/no-such-patient.ttl")
    assert proc.returncode == 2 and not proc.stdout
    assert "error: examples/no-such-patient.ttl: no such file or folder" in proc.stderr


def test_diff_compare_says_who_was_assessed_and_which_options_came_or_went():
    from jdm_kg.authoring.diff import _compare

    ranked = {"status": "offered", "standing": "#2 suitable", "reason": "r"}
    before = {"P-A (a.ttl)": {"": {"guideline": "applies"}, "x": ranked},
              "P-B (b.json)": {"": {"guideline": "applies"}}}
    after = {"P-A (a.ttl)": {"": {"guideline": "applies"},
                             "y": {"status": "excluded", "standing": "not ranked", "reason": "r"}},
             "P-C (c.ttl)": {"": {"guideline": "does not apply"}}}
    assert _compare(before, after) == [
        "P-A (a.ttl): x: offered, #2 suitable -> not an option",
        "P-A (a.ttl): y: not an option -> excluded",
        "P-B (b.json): assessed -> not assessed (the file could not be read with the new guideline)",
        "P-C (c.ttl): not assessed -> assessed (the file could not be read with the old guideline)",
    ]


_STANDING_LOST = [  # muscle weakness taken out of the rituximab statement
    f"P-MUSCLE ({name}): {option}: standing: {was} -> #1 no feature-specific guidance"
    for name in ("muscle-predominant.jsonld", "fhir/muscle-predominant.json")
    for option, was in (("rituximab", "#1 preferred for the predominant feature"),
                        ("abatacept", "#2 no feature-specific guidance"))
]
_STANDING_WEAKER = [
    f"{patient}: rituximab: standing: #1 preferred for the predominant feature -> #1 suitable"
    for patient in ("P-MUSCLE (fhir/muscle-predominant.json)", "P-ILD (ild-predominant.ttl)")
]


@pytest.mark.parametrize("edit, expected", [(_WEAKER_LEVEL, _STANDING_WEAKER), (_NOT_FOR_MUSCLE, _STANDING_LOST)],
                         ids=["weaker-level", "not-for-muscle"])
def test_diff_lists_every_change_a_report_shows_on_an_option(tmp_path, monkeypatch, edit, expected):
    """Whatever a patient's report says differently of an option (its line, its dose line, its
    place among the offered or not offered), the diff has a line for that patient and option;
    over the default patients, the examples and their FHIR twins."""
    from jdm_kg.authoring.diff import default_patients, impact
    from jdm_kg.inputs.loading import load_patient_file
    from jdm_kg.knowledge.guideline import compile_guideline, guideline_files, load_guideline
    from jdm_kg.outputs.report import _option_blocks
    from jdm_kg.reasoning.recommend import recommend_graph

    folder = guideline_copy(tmp_path)
    _edit_rituximab_preference(folder, *edit)
    old, new = load_guideline(ONTOLOGY), compile_guideline(guideline_files(folder))
    monkeypatch.chdir(ROOT)  # the checkout's examples, as a run inside it uses
    monkeypatch.delenv("JDM_KG_GUIDELINE", raising=False)
    patients, _ = default_patients()
    assert {p.parent.name for p in patients} == {"examples", "fhir"}  # the FHIR twins too

    def shown(path: Path, guideline) -> dict[tuple[str, str], tuple]:
        _, results = recommend_graph(load_patient_file(path, guideline=guideline), str(path), guideline)
        return {(r.record.patient_id, o.label): (o.status, o.section_heading, _option_blocks(o, detail=False))
                for r in results for o in r.options}

    found = impact(old, new, patients)
    assert found.files == len(patients) and not found.errors
    assert set(expected) <= set(found.lines), found.lines
    changed = 0
    for path in patients:
        before, after = shown(path, old), shown(path, new)
        name = path.relative_to(ROOT / "examples").as_posix()
        for patient, option in sorted(set(before) | set(after)):
            if before.get((patient, option)) != after.get((patient, option)):
                changed += 1
                assert any(line.startswith(f"{patient} ({name}): {option}: ") for line in found.lines), (
                    f"{patient} ({name}): {option} reads differently in the report but the diff does not say so")
    assert changed >= 4  # the test compares something


def test_diff_statement_added_and_removed():
    old = Graph()
    for path in ONTOLOGY.glob("*.ttl"):
        old += load_rdf_file(path)
    new = Graph()
    new += old
    new += load_rdf_file(BROKEN / "qc-unused-source.ttl")
    changes = clinical_changes(old, new)
    assert changes == ["added bibliographic source 'orphan source': A source no statement uses."], changes
    assert clinical_changes(new, old) == ["removed bibliographic source 'orphan source'"]


def test_diff_against_a_git_revision(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ONTOLOGY, repo / "ontology")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=repo, check=True)
    same = cli("diff", "HEAD", "ontology", "--patients", "--vignettes", cwd=repo)
    assert same.returncode == 0 and "nothing: the two graphs hold the same statements" in same.stdout
    _edit_rituximab_dose(repo / "ontology")
    changed = cli("diff", "HEAD", "ontology", "--patients", "--vignettes", cwd=repo)
    assert "changed from 375.0 to 500.0" in changed.stdout
    bad = cli("diff", "no-such-revision", "ontology", cwd=repo)
    assert bad.returncode == 2 and "git revision" in bad.stderr


# ---------------------------------------------------------------- fmt


@pytest.mark.parametrize(
    "path", sorted(ONTOLOGY.glob("*.ttl")) + sorted((ROOT / "shapes").rglob("*.ttl")), ids=lambda p: p.name
)
def test_formatting_never_changes_the_graph_and_is_stable(path):
    text = path.read_text(encoding="utf-8")
    graph = load_rdf_file(path)
    once = format_turtle(text, graph, str(path))
    again = Graph().parse(data=once, format="turtle")
    assert isomorphic(graph, again)
    assert format_turtle(once, again, str(path)) == once  # idempotent


def test_fmt_check_passes_on_the_bundled_guideline_and_fixes_a_messy_copy(tmp_path):
    proc = jdm("fmt", "--check", "ontology")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    messy = tmp_path / "terms.ttl"
    graph = load_rdf_file(ONTOLOGY / "terms.ttl")
    messy.write_text(graph.serialize(format="turtle"), encoding="utf-8")
    assert cli("fmt", "--check", str(messy)).returncode == 1
    assert messy.read_text() == graph.serialize(format="turtle")  # --check changes nothing
    assert cli("fmt", str(messy)).returncode == 0
    assert isomorphic(load_rdf_file(messy), graph)
    assert cli("fmt", "--check", str(messy)).returncode == 0


# ---------------------------------------------------------------- docs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after headless Chromium has loaded it from disk (no server)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_docs_site_content_and_links(tmp_path):
    proc = jdm("docs", "-o", str(tmp_path / "site"))
    assert proc.returncode == 0, proc.stderr
    pages = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "site").glob("*.html")}
    assert set(pages) == {"index.html", "drugs.html", "statements.html", "sources.html", "vocabulary.html"}
    ids = {name: set(re.findall(r'id="([^"]+)"', text)) for name, text in pages.items()}
    for name, text in pages.items():
        for target, anchor in re.findall(r'href="([a-z]+\.html)#([^"]+)"', text):
            assert anchor in ids[target], f"{name}: broken link {target}#{anchor}"


def test_docs_templates_escape_what_the_graph_says():
    """The docs' HTML comes from Jinja2 templates with autoescaping: a label or definition holding
    markup is shown as text, never run as HTML."""
    from jdm_kg.outputs.docs import _TEMPLATES

    page = _TEMPLATES.get_template("vocabulary.html").render(
        title="Vocabulary", heading="G", css="", pages=[("vocabulary.html", "Vocabulary")], current="vocabulary.html",
        version="v1", jdm_kg_version="0", namespaces=[], code_systems=[], bundled=[], examples=[], max_instances=20,
        properties=[], classes=[{"anchor": "X", "label": "<script>alert(1)</script>", "definition": 'a "b" & c',
                                 "parents": [], "count": 0, "instances": [], "examples": []}])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &#34;b&#34; &amp; c" in page and '<h2 id="classes">Classes (1)</h2>' in page


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package chromium; .ci/run installs it)")
def test_docs_render_in_a_browser(tmp_path):
    assert cli("docs", "-o", str(tmp_path / "site")).returncode == 0
    index = _render(tmp_path / "site" / "index.html", tmp_path / "profile")
    assert "Version <strong>v2026-11-24</strong>" in index
    assert "Step 1: Evaluate Disease Manifestations" in index
    assert "major organ involvement" in index and "guideline gap" in index
    drugs = _render(tmp_path / "site" / "drugs.html", tmp_path / "profile")
    assert "rituximab 375 mg/m² weekly x4" in drugs and "375 mg/m2; weekly" in drugs and "375-375" not in drugs
    assert "tocilizumab: no dose given in the guideline" in drugs
    assert "RxNorm 121191" in drugs
    statements = _render(tmp_path / "site" / "statements.html", tmp_path / "profile")
    assert "Particularly effective for muscle involvement and ILD" in statements
    assert "UNVERIFIED" in statements
    vocabulary = _render(tmp_path / "site" / "vocabulary.html", tmp_path / "profile")
    assert "https://w3id.org/jdm-kg/vocab#" in vocabulary and "examples/preference-statements" in vocabulary
    assert "NOT A RECOMMENDATION" in vocabulary


# ---------------------------------------------------------------- versioning


def test_recommend_output_records_the_guideline_version():
    proc = cli("recommend", "examples/skin-predominant.ttl", "--format", "json")
    assert json.loads(proc.stdout)[0]["guidelineVersion"] == "v2026-11-24"
    assert "## v2026-11-24" in (ROOT / "ontology" / "CHANGELOG.md").read_text(encoding="utf-8")
