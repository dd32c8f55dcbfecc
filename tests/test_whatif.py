"""What would change the answer (``jdm-kg whatif``) and ``recommend --assume``: the lines on
real records, the facts never changed, the search's bounds, every output format, the service,
vignettes, and the property that holds them together: every what-if line, re-run with its
changes through ``--assume``, gives the standing it promised."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import ROOT, run

from jdm_kg.batch import process_file
from jdm_kg.errors import InputError
from jdm_kg.knowledge.guideline import load_guideline
from jdm_kg.reasoning.whatif import (
    MAX_DEPTH,
    Baseline,
    assess_variants,
    parse_assumptions,
    standing_of,
    what_if,
    what_if_file,
)

EX = ROOT / "examples"
VIGNETTES = ROOT / "tests" / "vignettes"
POLICY_SCREENING = "jdm-kg policy: screening history gates biologics"


def _option(report, name):
    return next(o for o in report.options if o.option.endswith("/" + name))


def _lines(report, name, target):
    return [w for w in _option(report, name).lines if target in w.targets]


@pytest.fixture(scope="module")
def ild():
    return what_if_file(EX / "ild-predominant.ttl")[1][0]


@pytest.fixture(scope="module")
def skin():
    return what_if_file(EX / "skin-predominant.ttl")[1][0]


# ----------------------------------------------------------------------------- the lines


def test_a_positive_screening_is_unblocked_only_by_a_clinicians_clearance(ild):
    line = _lines(ild, "rituximab", "offered")[0]
    assert line.assume == ["hepatitis-b=cleared"] and set(line.targets) == {"offered", "ready"}
    assert "a clinician, having assessed the positive hepatitis B result of 2026-10-01" in line.condition
    assert "nothing on what to do after a positive screening" in line.condition  # the guideline's silence, said
    assert not line.changes[0].action  # a judgement, never advice
    assert line.after.startswith("offered, #1 preferred for the predominant feature")
    assert POLICY_SCREENING in line.because
    # a negative result after a positive does not clear it (jdm-kg policy), so none is ever proposed
    assert not any("=negative" in spec for o in ild.options for w in o.lines for spec in w.assume)


def test_a_predominance_change_names_the_statement_that_makes_the_difference(skin):
    first = _lines(skin, "rituximab", "first")
    assert [w.assume for w in first][0] == ["predominant=muscle-weakness"]
    assert first[0].condition == "if muscle weakness were judged the predominant feature instead of skin disease"
    assert '"Particularly effective for muscle involvement and ILD"' in first[0].because
    assert "jdm-kg policy: ranking words" in first[0].because
    # an option the guideline ties to no feature never ranks first: said, not searched for ever deeper
    for name in ("abatacept", "tocilizumab"):
        assert "ties it to no feature" in _option(skin, name).unmet["first"]
    assert _option(skin, "infliximab").lines == [] and not _option(skin, "infliximab").unmet  # first already


def test_the_shortest_line_per_option_prefers_a_change_to_the_recorded_features(skin):
    from jdm_kg.reasoning.whatif import shortest

    line = shortest(skin, next(o.option for o in skin.options if o.label == "rituximab"))
    assert line is not None and line.assume == ["predominant=muscle-weakness"]


def test_the_guideline_applies_once_an_ongoing_jak_inhibitor_course_is_recorded_as_failed():
    report = what_if_file(VIGNETTES / "v07-jak-inhibitor-ongoing.ttl")[1][0]
    line = _lines(report, "rituximab", "applies")[0]
    assert line.assume == ["tofacitinib=inadequate-response"]
    assert line.condition.startswith("if the tofacitinib course (ongoing since 2026-03-01) were recorded as failed")
    assert line.because[0].startswith('"After JAK inhibitor failure in Juvenile Dermatomyositis')


def test_a_missing_height_is_what_keeps_a_dose_from_being_worked_out():
    report = what_if_file(VIGNETTES / "v04-calcinosis-no-height.ttl")[1][0]
    line = _lines(report, "rituximab", "dose")[0]
    assert line.assume == ["height=<cm>"] and line.changes[0].action
    assert line.after.endswith("its dose can be worked out")
    assert '"Dosing: 375 mg/m² weekly for 4 consecutive weeks 3"' in line.because
    assert "mg per dose" not in line.text()  # a dose from a value nobody measured is never shown


def test_changes_no_record_can_make_are_never_proposed():
    """A failure that happened stays (a drug that failed is never offered again by a what-if),
    an age is never changed, a result on record is never rewritten: the changes considered are
    new entries and judgements only."""
    report = what_if_file(VIGNETTES / "v13-infliximab-failed-skin.ttl")[1][0]
    infliximab = _option(report, "infliximab")
    assert infliximab.status == "excluded" and infliximab.lines == []
    assert "a failure that happened stays on record" in infliximab.unmet["offered"] and list(infliximab.unmet) == ["offered"]
    for applied in report.candidates:
        assert applied.change.kind in ("result", "clearance", "predominant", "present", "weight", "height", "outcome")
        assert not applied.removed or applied.change.kind in ("predominant", "weight", "height", "outcome")
        removed = {str(p) for _, p, _ in applied.removed}
        assert removed <= {"https://w3id.org/jdm-kg/vocab#predominant", "https://w3id.org/jdm-kg/vocab#bodyWeight",
                           "https://w3id.org/jdm-kg/vocab#bodyHeight", "https://w3id.org/jdm-kg/vocab#outcome"}


def test_no_jak_failure_and_a_record_with_violations_get_no_line():
    none = what_if_file(EX / "no-jak-failure.ttl")[1][0]
    assert none.candidates == [] and "a treatment failure is never assumed" in none.notes[0]
    assert all("applies" in o.unmet for o in none.options)
    bad = what_if_file(EX / "invalid" / "future-dates-and-adult.ttl")[1]
    assert all("fix them first" in r.notes[0] and not r.options for r in bad)


def test_only_the_smallest_sets_are_kept_and_the_search_is_bounded(tmp_path):
    guideline = load_guideline()
    path = _generated(tmp_path, 3)
    _, (deep,) = what_if_file(path, depth=2, guideline=guideline)
    _, (shallow,) = what_if_file(path, depth=1, guideline=guideline)
    for option in deep.options:
        for target in ("offered", "first", "ready", "dose", "applies"):
            sets = [set(w.assume) for w in option.lines if target in w.targets]
            assert len({len(s) for s in sets}) <= 1  # all of the one smallest size
            assert not any(a < b for a in sets for b in sets)  # no superset of a set that works
        ones = [w.assume for w in option.lines if len(w.changes) == 1]
        assert ones == [w.assume for w in shallow.option(option.option).lines]
    with pytest.raises(InputError, match="depth from 1 to"):
        what_if_file(path, depth=MAX_DEPTH + 1)


def test_the_same_answer_every_run_and_the_baseline_is_recommends(ild):
    again = what_if_file(EX / "ild-predominant.ttl")[1][0]
    assert json.dumps(again.as_dict()) == json.dumps(ild.as_dict())
    base = Baseline(*_loaded(EX / "ild-predominant.ttl"))
    (unchanged,) = assess_variants(base.guideline, base.triples, base.record, [((), ())], base.result.issues,
                                   base.source)
    guideline = load_guideline()
    for before, after in zip(base.result.options, unchanged.options):
        assert (before.option, before.summary, standing_of(before, guideline)) == \
               (after.option, after.summary, standing_of(after, guideline))


def test_record_x_and_this_changes_to_y_for_other_reports():
    """The functions the pending-screening and cannot-tell lines call."""
    from jdm_kg.reasoning.whatif import outcome_if, shortest_change

    graph, _, result, _, guideline = _loaded(EX / "calcinosis-predominant.ttl")
    rituximab = "https://w3id.org/jdm-kg/guideline/rituximab"
    line = shortest_change(graph, result, rituximab, "ready", guideline)
    assert line.assume == ["igra=negative"] and line.after.endswith("screening complete")
    assert shortest_change(graph, result, rituximab, "offered", guideline) is None  # offered already
    abatacept = "https://w3id.org/jdm-kg/guideline/abatacept"
    assert shortest_change(graph, result, abatacept, "first", guideline) is None  # #1 in a tie is #1
    skin_graph, _, skin, _, _ = _loaded(EX / "skin-predominant.ttl")
    assert "ties it to no feature" in shortest_change(skin_graph, skin, abatacept, "first", guideline)
    changed = outcome_if(graph, result, ["tuberculosis=positive"], guideline)
    assert {o.status for o in changed.options if o.ranked} == {"blocked"} and changed.hypothetical
    assert {o.status for o in result.options if o.ranked} == {"offered"}  # the record's own result is untouched


def _loaded(path):
    from jdm_kg.inputs.loading import load_patient_file
    from jdm_kg.reasoning.recommend import recommend_graph
    from jdm_kg.reasoning.validation import set_aside_ill_typed

    guideline = load_guideline()
    graph = set_aside_ill_typed(load_patient_file(path))
    _, (result,) = recommend_graph(graph, str(path), guideline, engine="oxigraph")
    return graph, result.record, result, str(path), guideline


# ----------------------------------------------------------------------------- --assume names


@pytest.mark.parametrize("spec, words", [
    ("hepatitis-q=cleared", "did you mean hepatitis-c or hepatitis-b?"),
    ("tuberculosis=clear", "did you mean cleared?"),
    ("predominant=skin", "did you mean skin-disease?"),
    ("hbsag=cleared", "a screening result is"),
    ("tofacitinib=ongoing", "cannot be assumed back to ongoing"),
    ("weight=35000", "must be 1-250 kg"),
    ("height=1.4", "in cm, not metres?"),
    ("age=12", "not a fact jdm-kg can assume"),
    ("tuberculosis", "write FACT=VALUE"),
])
def test_a_name_or_value_the_guideline_does_not_know_is_a_clear_error(spec, words):
    with pytest.raises(InputError, match=None) as err:
        parse_assumptions([spec])
    assert words in str(err.value) and str(err.value).startswith("--assume: ")


def test_names_come_from_the_guidelines_labels():
    changes = parse_assumptions(["HBsAg=Negative", "Anti-HBc=negative", "hepatitis B=cleared",
                                 "predominant=Interstitial Lung Disease,muscle-weakness", "weight=35 kg", "height=current",
                                 "Xeljanz=intolerance"])
    assert [c.spec for c in changes] == ["hbsag=negative", "anti-hbc=negative", "hepatitis-b=cleared",
                                         "predominant=interstitial-lung-disease,muscle-weakness", "weight=35",
                                         "height=current", "tofacitinib=intolerance"]
    with pytest.raises(InputError, match="change the same fact"):
        parse_assumptions(["hepatitis-b=cleared", "hepatitis-b=cleared"])


@pytest.mark.parametrize("spec, words", [
    ("tuberculosis=cleared", "no positive tuberculosis result for a clearance to clear"),
    ("present=skin-disease", "skin disease is already recorded"),
    ("rituximab=intolerance", "no ongoing rituximab course"),
    ("predominant=interstitial-lung-disease", "already the predominant feature"),
])
def test_an_assumption_that_does_not_fit_the_record_is_that_files_error(spec, words):
    outcome = process_file(str(EX / "ild-predominant.ttl"), "recommend", engine="oxigraph",
                           assume=parse_assumptions([spec]))
    assert outcome.error is not None and words in outcome.error and "record P-ILD" in outcome.error


# ----------------------------------------------------------------------------- the command line


def test_whatif_and_recommend_assume_from_the_command_line(tmp_path):
    proc = run("whatif", "examples/ild-predominant.ttl", "rituximab")
    assert proc.returncode == 0 and "[--assume hepatitis-b=cleared]" in proc.stdout
    assert "[offered, ready to start] if a clinician" in proc.stdout
    hypothetical = run("recommend", "examples/ild-predominant.ttl", "--assume", "hepatitis-b=cleared")
    assert hypothetical.returncode == 0
    lines = hypothetical.stdout.splitlines()
    assert lines[1].startswith("HYPOTHETICAL: Patient P-ILD") and lines[2].startswith("! HYPOTHETICAL: not the record")
    first = next(line for line in lines if line.startswith("  #1 rituximab"))
    assert "preferred for the predominant feature" in first and "BLOCKED" not in first  # no longer blocked
    assert "HYPOTHETICAL" in hypothetical.stderr
    typo = run("recommend", "examples/ild-predominant.ttl", "--assume", "hepatitis-q=cleared")
    assert typo.returncode == 2 and "did you mean hepatitis-c or hepatitis-b?" in typo.stderr and not typo.stdout.strip(
        ).endswith("rituximab")
    helptext = run("recommend", "--help").stdout
    for name in ("anti-hbc", "interstitial-lung-disease", "predominant=FEATURE", "inadequate-response", "weight=KG"):
        assert name in helptext


@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "jsonl", "turtle", "fhir", "none"])
def test_assume_marks_every_output_format_hypothetical(fmt, capsys):
    from jdm_kg.cli import main

    code = main(["recommend", str(EX / "skin-predominant.ttl"), "--format", fmt, "--assume", "predominant=muscle-weakness",
                 "--assume", "weight=40"])
    out, err = capsys.readouterr()
    assert code == 0 and "HYPOTHETICAL" in err
    if fmt == "text":
        assert out.splitlines()[1].startswith("HYPOTHETICAL: Patient P-SKIN")
        assert "a body weight of 40 kg is recorded (2026-11-01)" in out and "#1 rituximab" in out
    elif fmt == "markdown":
        assert "## HYPOTHETICAL: Patient P-SKIN" in out and "> **HYPOTHETICAL: not the record as written" in out
    elif fmt in ("json", "jsonl"):
        data = json.loads(out)[0] if fmt == "json" else json.loads(out.splitlines()[0])
        assert list(data)[:2] == ["hypothetical", "assumptions"] and data["hypothetical"] is True
        assert [a["assume"] for a in data["assumptions"]] == ["predominant=muscle-weakness", "weight=40"]
        assert data["body"]["weightKg"] == "40"
    elif fmt == "turtle":
        assert out.startswith("# P-SKIN: HYPOTHETICAL") and "jdm:hypothetical true" in out
        assert 'jdm:assumption "predominant=muscle-weakness:' in out
    elif fmt == "fhir":
        bundle = json.loads(out)
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        response = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "GuidanceResponse")
        assert "MedicationRequest" not in kinds and response["status"] == "data-required"
        assert response["note"][0]["text"].startswith("HYPOTHETICAL: not the record as written")
        real = json.loads(_fhir(capsys))
        assert response["id"] not in {e["resource"]["id"] for e in real["entry"]}  # never the real result's id
    else:
        assert out == ""


def _fhir(capsys) -> str:
    from jdm_kg.cli import main

    main(["recommend", str(EX / "skin-predominant.ttl"), "--format", "fhir"])
    return capsys.readouterr().out


def test_explain_ends_with_the_drugs_whatif_and_details_show_the_shortest(capsys):
    from jdm_kg.cli import main

    assert main(["explain", str(EX / "skin-predominant.ttl"), "rituximab"]) == 0
    out = capsys.readouterr().out
    tail = out[out.index("What would change it"):]
    assert "[first] if muscle weakness were judged the predominant feature instead of skin disease" in tail
    assert main(["recommend", str(EX / "ild-predominant.ttl"), "--details"]) == 0
    out = capsys.readouterr().out
    assert out.count("what would change it: if a clinician, having assessed the positive hepatitis B") == 5
    assert main(["recommend", str(EX / "ild-predominant.ttl")]) == 0
    assert "what would change it" not in capsys.readouterr().out  # the one-screen report stays one screen


def test_whatif_formats_and_usage_errors(capsys):
    from jdm_kg.cli import main

    assert main(["whatif", str(EX / "ild-predominant.ttl"), "--format", "json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["depth"] == 2 and report["variantsAssessed"] > 0
    rituximab = next(o for o in report["options"] if o["label"] == "rituximab")
    assert rituximab["whatIf"][0]["assume"] == ["hepatitis-b=cleared"]
    assert main(["whatif", str(EX / "ild-predominant.ttl"), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# jdm-kg: what would change the answer") and "\n## Patient P-ILD" in out
    assert main(["whatif", str(EX / "ild-predominant.ttl"), "--depth", "9"]) == 2
    assert "depth from 1 to 4" in capsys.readouterr().err
    assert main(["whatif", str(EX / "ild-predominant.ttl"), "tofacitinib"]) == 2
    assert "not a treatment option this guideline offers" in capsys.readouterr().err
    assert main(["whatif", str(EX / "invalid" / "future-dates-and-adult.ttl")]) == 1


# ----------------------------------------------------------------------------- cannot tell

CANNOT_TELL_EHR = "tests/fixtures/ehr/25-contained-unknown-medication-cannot-tell.json"
# (no Turtle or JSON-LD record under tests/fixtures is cannot-tell: this example is, for two data)
CANNOT_TELL_TTL = "examples/invalid/unknown-drug-and-missing-outcome.ttl"


def _said_apart_from_the_data_needed(text: str) -> str:
    """``text`` without its "Needed:" lines (each datum says what it would change, "if not, it
    does not apply", as recommend says it)."""
    return "\n".join(line for line in text.splitlines() if "Needed: " not in line)


@pytest.mark.parametrize("path, needed", [
    (CANNOT_TELL_EHR, ["Needed: Is 'Jyseleca 200 mg tablet' a JAK inhibitor (baricitinib"]),
    (CANNOT_TELL_TTL, ["Needed: Is 'anakinra' a JAK inhibitor", "Needed: Why was tofacitinib stopped"]),
])
def test_whatif_of_a_record_jdm_kg_cannot_tell_about_says_cannot_tell_first_and_what_would_settle_it(path, needed):
    proc = run("whatif", path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("Patient "))
    recommend = run("recommend", path).stdout.splitlines()
    said = next(line for line in recommend if line.startswith("! Cannot tell"))
    assert lines[title + 1] == said  # cannot tell, first, as recommend words it
    assert said.startswith("! Cannot tell whether the guideline applies")
    for k, datum in enumerate(needed):
        assert lines[title + 2 + k].startswith("! " + datum)
        assert lines[title + 2 + k] in recommend  # the same datum, in the same words
    rest = _said_apart_from_the_data_needed(proc.stdout)
    assert "does not apply" not in rest and "no change a record can make" not in rest
    options = [line for line in lines if line.startswith("  ") and ": now " in line]
    # every option the record's answer hangs on (the escalation may be "not indicated" either way)
    assert sum(": now cannot tell; if so: " in line for line in options) >= len(options) - 1 >= 6
    found = [line for line in lines if line.startswith("    [")]  # each option's lines, and the targets not reached
    assert found and all("] if so: " in line for line in found)
    assert any("[--assume " in line for line in found)  # the search ran on the options as they would be


def test_cannot_tell_in_markdown_json_and_recommend_details():
    markdown = run("whatif", CANNOT_TELL_EHR, "--format", "markdown").stdout
    quoted = [line for line in markdown.splitlines() if line.startswith("> ")]
    assert quoted[0].startswith("> Cannot tell whether the guideline applies")
    assert quoted[1].startswith("> Needed: Is 'Jyseleca 200 mg tablet' a JAK inhibitor")
    assert "does not apply" not in _said_apart_from_the_data_needed(markdown) and "] if so: " in markdown
    (report,) = json.loads(run("whatif", CANNOT_TELL_EHR, "--format", "json").stdout)
    assert report["applicability"] == "cannot-tell" and report["applicabilityText"].startswith("Cannot tell")
    assert report["dataNeeded"][0]["datum"] == "medication"
    assert report["dataNeeded"][0]["text"].startswith("Is 'Jyseleca 200 mg tablet' a JAK inhibitor")
    lines = [w for o in report["options"] for w in o["whatIf"]]
    assert lines and all(w["ifTheDataNeededSettleIt"] and w["standing"]["ifTheDataNeededSettleIt"] for w in lines)
    assert all(o["now"].startswith("cannot tell; if so: ") for o in report["options"] if o["status"] == "cannot-tell")
    assert "does not apply" not in json.dumps([report["options"], report["notes"]])
    details = run("recommend", CANNOT_TELL_EHR, "--details").stdout
    shortest = [line.strip() for line in details.splitlines() if "what would change it:" in line]
    assert shortest and all(line.startswith("what would change it: if so: ") for line in shortest)
    assert "does not apply" not in _said_apart_from_the_data_needed(details)


def test_every_conditional_line_keeps_its_promise():
    """Re-run through --assume, the changed record is still cannot tell, and each option would
    then stand (if the guideline applies) exactly as the line promised."""
    assert check_every_line(ROOT / CANNOT_TELL_EHR) > 3


# ----------------------------------------------------------------------------- the service


def test_post_whatif_and_the_web_page():
    from service_support import check_problem, client

    api = client()
    body = (EX / "ild-predominant.ttl").read_bytes()
    turtle = {"content-type": "text/turtle"}
    answer = api.post("/whatif", content=body, headers=turtle, params={"option": "rituximab"})
    assert answer.status_code == 200
    (report,) = answer.json()["whatIf"]
    assert [o["label"] for o in report["options"]] == ["rituximab"]
    assert report["options"][0]["whatIf"][0]["assume"] == ["hepatitis-b=cleared"]
    markdown = api.post("/whatif", content=body, headers={**turtle, "accept": "text/markdown"})
    assert markdown.status_code == 200 and "hepatitis-b=cleared" in markdown.text
    for params, words in (({"depth": "4"}, "give 1 to 3"), ({"depth": "two"}, "whole number"),
                          ({"option": "ritux"}, "did you mean rituximab?")):
        problem = api.post("/whatif", content=body, headers=turtle, params=params)
        check_problem(problem, 400)
        assert words in problem.json()["detail"]
    assert "/whatif" in api.get("/openapi.json").json()["paths"]
    page = api.post("/", files={"file": ("ild.ttl", body)})
    assert page.status_code == 200 and page.text.count('class="whatif"') == 6  # 5 blocked, the combination


# ----------------------------------------------------------------------------- vignettes


def test_a_vignette_states_expected_whatif_lines(tmp_path):
    from jdm_kg.authoring.vignettes import run_vignettes

    text = (VIGNETTES / "v03-ild-hepatitis-b-positive.ttl").read_text()
    wrong = text.replace('jdm:assume "hepatitis-b=cleared" ] ,', 'jdm:assume "hepatitis-b=negative" ] ,', 1)
    assert wrong != text
    (tmp_path / "v.ttl").write_text(wrong)
    (result,) = run_vignettes([tmp_path / "v.ttl"])
    assert result.differences == ["rituximab: expected a what-if making it offered with hepatitis-b=negative; got "
                                  "hepatitis-b=cleared"]


# ----------------------------------------------------------------------------- the property

PLACEHOLDERS = {"<kg>": "30", "<cm>": "130"}


def _concrete(spec: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        spec = spec.replace(placeholder, value)
    return spec


def check_every_line(path: Path) -> int:
    """Every what-if line of the file, re-run with its changes through ``--assume`` (the batch path
    ``recommend --assume`` takes: assumed facts added, then validated and assessed), gives the
    standing it promised. Returns the number of lines checked."""
    guideline = load_guideline()
    _, reports = what_if_file(path, guideline=guideline)
    checked = 0
    for report in reports:
        by_change: dict[tuple[str, ...], list] = {}
        for option in report.options:
            for line in option.lines:
                by_change.setdefault(tuple(line.assume), []).append(line)
        for specs, lines in by_change.items():
            outcome = process_file(str(path), "recommend", engine="oxigraph",
                                   assume=parse_assumptions([_concrete(s) for s in specs]))
            assert outcome.error is None, (path, specs, outcome.error)
            result = next(r for r in outcome.results if r.record.patient_id == report.record.patient_id)
            assert sorted(a["assume"] for a in result.assumptions) == sorted(_concrete(s) for s in specs)
            options = {o.option: o for o in result.options}
            for line in lines:
                got = standing_of(options[line.option], guideline)
                assert got == line.standing, (str(path), specs, line.label, got, line.standing)
                option = options[line.option]
                assert all(got.meets(t, option.ranked, bool(option.gates)) for t in line.targets)
                checked += 1
    return checked


def _generated(folder: Path, seed: int) -> Path:
    """A seeded patient record with what makes what-ifs: an ongoing or failed JAK inhibitor, one to
    three features (none, one or two predominant), screening missing, stale, indeterminate,
    positive or cleared, per condition or per test, and measurements missing or stale."""
    rng = random.Random(seed)
    features = rng.sample(["SkinDisease", "MuscleWeakness", "InterstitialLungDisease", "Calcinosis",
                           "MajorOrganInvolvement"], rng.randint(1, 3))
    marked = rng.choice([0, 1, 1, 2])
    findings = " , ".join(f"[ jdm:manifestation jdmg:{f} ; jdm:predominant {'true' if k < marked else 'false'} ]"
                          for k, f in enumerate(features))
    jak = rng.choice(["tofacitinib", "baricitinib", "upadacitinib"])
    outcome = rng.choice(["InadequateResponse", "LossOfResponse", "Intolerance", "Ongoing"])
    end = "" if outcome == "Ongoing" else ' ; jdm:endDate "2026-06-01"^^xsd:date'
    episodes = [f'[ jdm:drug jdmg:{jak} ; jdm:startDate "2025-06-01"^^xsd:date{end} ; jdm:outcome jdm:{outcome} ]']
    other = rng.choice([None, ("rituximab", "InadequateResponse"), ("infliximab", "Ongoing"), ("methotrexate", "Ongoing")])
    if other:
        stop = "" if other[1] == "Ongoing" else ' ; jdm:endDate "2025-05-01"^^xsd:date'
        episodes.append(f'[ jdm:drug jdmg:{other[0]} ; jdm:startDate "2024-06-01"^^xsd:date{stop} ; jdm:outcome jdm:{other[1]} ]')
    screening, clearances = [], []
    tests = {"Tuberculosis": "TBIGRATest", "HepatitisB": "HBsAgTest", "HepatitisC": "HCVAntibodyTest"}
    for condition, test in tests.items():
        state = rng.choice(["none", "negative", "negative", "stale", "indeterminate", "positive", "cleared"])
        named = f" ; jdm:screeningTest jdmg:{test}" if rng.random() < 0.5 else ""
        if state == "none":
            continue
        result = {"negative": "Negative", "stale": "Negative", "indeterminate": "Indeterminate"}.get(state, "Positive")
        when = "2025-01-10" if state == "stale" else "2026-10-01"
        screening.append(f'[ jdm:screenedFor jdmg:{condition}{named} ; jdm:result jdm:{result} ; jdm:date "{when}"^^xsd:date ]')
        if state == "cleared":
            clearances.append(f'[ jdm:screenedFor jdmg:{condition} ; jdm:date "2026-10-15"^^xsd:date ; '
                              f'jdm:clearedBy "hepatology" ]')
    weight = rng.choice(['jdm:bodyWeight [ jdm:value 32.0 ; jdm:unit "kg" ; jdm:date "2026-10-01"^^xsd:date ] ;',
                         'jdm:bodyWeight [ jdm:value 30.5 ; jdm:unit "kg" ; jdm:date "2025-12-01"^^xsd:date ] ;', ""])
    height = rng.choice(['jdm:bodyHeight [ jdm:value 138.0 ; jdm:unit "cm" ; jdm:date "2026-10-01"^^xsd:date ] ;', ""])
    text = f"""@prefix jdm: <https://w3id.org/jdm-kg/vocab#> . @prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:test:whatif:{seed}> a jdm:Patient ; jdm:patientId "G{seed:03d}" ; jdm:birthDate "2014-03-02"^^xsd:date ;
  jdm:recordDate "2026-11-01"^^xsd:date ; jdm:sex "female" ; jdm:diagnosis jdmg:JuvenileDermatomyositis ;
  {weight} {height}
  jdm:hasManifestation {findings} ;
  jdm:treatmentEpisode {" , ".join(episodes)}{" ; jdm:screening " + " , ".join(screening) if screening else ""}
  {"; jdm:screeningClearance " + " , ".join(clearances) if clearances else ""} .
"""
    path = folder / f"generated-{seed:03d}.ttl"
    path.write_text(text)
    return path


def test_every_line_keeps_its_promise_on_a_sample(tmp_path):
    """The default run: two examples, two vignettes, three generated records (the full sweep is
    under the slow mark)."""
    paths = [EX / "ild-predominant.ttl", EX / "fhir" / "calcinosis-predominant.json",
             VIGNETTES / "v07-jak-inhibitor-ongoing.ttl", VIGNETTES / "v09-stale-weight.ttl"]
    paths += [_generated(tmp_path, seed) for seed in (1, 2, 3)]
    assert sum(check_every_line(path) for path in paths) > 20


def _all_examples() -> list[Path]:
    return sorted(p for p in EX.rglob("*") if p.suffix in (".ttl", ".jsonld", ".json") and "invalid" not in p.parts)


@pytest.mark.slow
@pytest.mark.parametrize("path", _all_examples() + sorted(VIGNETTES.glob("*.*")), ids=lambda p: p.name)
def test_every_line_keeps_its_promise_on_every_example_and_vignette(path):
    check_every_line(path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_every_line_keeps_its_promise_on_generated_patients(tmp_path, seed):
    check_every_line(_generated(tmp_path, seed))
