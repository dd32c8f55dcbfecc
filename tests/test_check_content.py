"""`jdm-kg check` catches edits that would give wrong advice or break `recommend`: a dose unit
that contradicts its basis, a missing or ill-typed engine policy, a quote that is a fragment, a
preference level that contradicts its quote's verb, an option ranked that the guideline never
names. Each test edits a copy of the bundled guideline the way an author would, and runs the whole
check on it (a few seconds each): one edit of each kind runs by default, the other variants under
the ``slow`` marker (docs/testing.md lists them and what covers each by default; every check kind
is also in tests/test_authoring.py's broken-guideline fixtures)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from jdm_kg.authoring.check import Problem, check_guideline

ROOT = Path(__file__).resolve().parent.parent
ONTOLOGY = ROOT / "ontology"


def _edited(tmp_path: Path, *edits: tuple[str, str], file: str = "guideline.ttl") -> Path:
    """A copy of the bundled guideline with each (old, new) replaced once in ``file``."""
    folder = tmp_path / "ontology"
    if not folder.exists():
        shutil.copytree(ONTOLOGY, folder)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not in {file} exactly once"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return folder


def _found(folder: Path, rule: str) -> list[Problem]:
    return [p for p in check_guideline(folder) if p.rule == rule]


def _block(name: str, file: str = "guideline.ttl") -> str:
    """The Turtle block of one subject, as written in the bundled file (up to its closing '.')."""
    text = (ONTOLOGY / file).read_text(encoding="utf-8")
    start = text.index(f"\n{name}\n") + 1
    return text[start : text.index("\n.\n", start) + 3]


def _located(problem: Problem, file: str) -> None:
    assert problem.file.endswith(file) and problem.line, problem
    assert problem.fix, problem


# ---------------------------------------------------------------- dose unit and basis


def _regimen_edit(tmp_path: Path, regimen: str, old: str, new: str) -> Path:
    block = _block(regimen)
    return _edited(tmp_path, (block, block.replace(old, new)))


def test_rituximab_basis_per_kg_with_unit_per_m2_is_caught(tmp_path):
    """The reviewer's edit: the report would print 375 mg/m² × weight, a 30-fold overdose."""
    folder = _regimen_edit(tmp_path, "jdmg:regimen-rituximab", "jdm:PerM2BodySurfaceArea", "jdm:PerKgBodyWeight")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-rituximab" and '"mg/m2" is per m2' in problem.message, problem
    assert "needs a unit per kg" in problem.message
    _located(problem, "guideline.ttl")


@pytest.mark.slow
def test_unit_per_kg_with_basis_per_m2_is_caught(tmp_path):
    folder = _regimen_edit(tmp_path, "jdmg:regimen-infliximab", "jdm:PerKgBodyWeight", "jdm:PerM2BodySurfaceArea")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-infliximab" and "needs a unit per m2" in problem.message, problem
    assert '"mg/kg" is per kg' in str(problem)


@pytest.mark.slow
def test_a_unit_with_no_basis_is_caught(tmp_path):
    """jdm:NoBasis says the guideline gives no dose: a unit beside it contradicts that."""
    folder = _regimen_edit(tmp_path, "jdmg:regimen-ivig", "jdm:PerKgBodyWeight", "jdm:NoBasis")
    [problem] = _found(folder, "qc:dose-unit-basis")
    assert problem.entity == "jdmg:regimen-ivig" and "says no dose is given" in problem.message, problem


def test_the_qc_pairs_are_the_ones_recommend_computes_with():
    from jdm_kg.reasoning.recommend import DOSE_BASES

    text = (ROOT / "queries" / "qc" / "dose-unit-basis.rq").read_text(encoding="utf-8")
    values = text[text.index("VALUES (?basis ?per)") :].split("}", 1)[0]
    pairs = dict(re.findall(r'\(jdm:(\w+) "(\w+)"\)', values))
    assert pairs == {iri.rsplit("#", 1)[1]: per for iri, per in DOSE_BASES.items()}


# ---------------------------------------------------------------- policies and settings recommend needs


def _engine_error(folder: Path) -> str:
    """The error `recommend` stops with on this guideline ('' if it starts)."""
    from jdm_kg.errors import InputError
    from jdm_kg.knowledge.guideline import cached_compile, guideline_files
    from jdm_kg.reasoning.recommend import guideline_facts

    try:  # (through the on-disk cache, as recommend compiles it: check reads the same file back)
        guideline_facts(cached_compile(guideline_files(folder)))
    except (ValueError, InputError) as err:
        return str(err)
    return ""


@pytest.mark.slow
def test_a_deleted_setting_is_reported_where_recommend_would_fail(tmp_path):
    folder = _edited(tmp_path, ("    jdm:screeningMaxAgeDays 365 ;\n", ""))
    assert "screeningMaxAgeDays" in _engine_error(folder)
    [problem] = _found(folder, "policy")
    assert problem.entity == "jdmg:policy-screening-gate" and "has no jdm:screeningMaxAgeDays" in problem.message
    _located(problem, "guideline.ttl")


@pytest.mark.slow
def test_a_deleted_policy_is_reported(tmp_path):
    folder = _edited(tmp_path, (_block("jdmg:policy-exclude-failed-drug"), ""))
    assert "policy-exclude-failed-drug" in _engine_error(folder)
    [problem] = _found(folder, "policy")
    assert problem.entity == "jdmg:policy-exclude-failed-drug" and "missing" in problem.message, problem
    _located(problem, "guideline.ttl")  # where the other policies are written


@pytest.mark.slow
def test_a_policy_that_lost_its_type_is_reported(tmp_path):
    block = _block("jdmg:policy-already-on")
    folder = _edited(tmp_path, (block, block.replace("    a jdm:Policy ;\n", "")))
    assert "policy-already-on" in _engine_error(folder)
    problems = _found(folder, "policy")
    assert [p.entity for p in problems] == ["jdmg:policy-already-on"] and "not typed jdm:Policy" in problems[0].message


def test_every_policy_and_setting_recommend_needs_is_checked(tmp_path):
    """The lists come from the engine: delete each in turn from one copy, check names them all."""
    from jdm_kg.reasoning.recommend import POLICY_IRIS, POLICY_SETTINGS

    text = (ONTOLOGY / "guideline.ttl").read_text(encoding="utf-8")
    lines = {key: re.search(rf"    jdm:{key} \S+ ;\n", text) for key in POLICY_SETTINGS}
    edits = [(found.group(0), "") for found in lines.values() if found]
    assert len(edits) == len(POLICY_SETTINGS)
    policies = [p for p in POLICY_IRIS if p not in POLICY_SETTINGS.values()]
    edits += [(_block("jdmg:" + str(p).rsplit("/", 1)[1]), "") for p in policies]
    folder = _edited(tmp_path, *edits)
    reported: dict[str, str] = {}  # (a policy with two settings, such as the young-child caution, has two problems)
    for problem in _found(folder, "policy"):
        reported[problem.entity] = reported.get(problem.entity, "") + problem.message + "\n"
    assert set(reported) == {"jdmg:" + str(p).rsplit("/", 1)[1] for p in POLICY_IRIS}, reported
    for key, owner in POLICY_SETTINGS.items():
        assert f"has no jdm:{key}" in reported["jdmg:" + str(owner).rsplit("/", 1)[1]]


@pytest.mark.slow
def test_settings_that_are_not_positive_whole_numbers_are_reported(tmp_path):
    folder = _edited(tmp_path, ("jdm:screeningMaxAgeDays 365 ;", 'jdm:screeningMaxAgeDays "365" ;'),
                     ("jdm:measurementMaxAgeDays 90 ;", "jdm:measurementMaxAgeDays -1 ;"),
                     ("jdm:multiSystemMinManifestations 2 ;", "jdm:multiSystemMinManifestations 0 ;"),
                     ("jdm:adultAgeYears 18 ;", "jdm:adultAgeYears 18.5 ;"))
    messages = sorted(f"{p.entity}: {p.message}" for p in _found(folder, "policy"))
    assert messages == [
        "jdmg:policy-adult-age: jdm:adultAgeYears 18.5 is not a positive whole number",
        "jdmg:policy-measurement-recency: jdm:measurementMaxAgeDays -1 is not a positive whole number",
        "jdmg:policy-multisystem-question: jdm:multiSystemMinManifestations 0 is not a positive whole number",
        'jdmg:policy-screening-gate: jdm:screeningMaxAgeDays "365" is not a positive whole number',
    ], messages


@pytest.mark.slow
def test_a_missing_default_ranking_band_is_reported(tmp_path):
    folder = _edited(tmp_path, ("    jdm:bandIsDefault true ;\n", ""))
    assert "default" in _engine_error(folder)
    [problem] = _found(folder, "policy")
    assert "bandIsDefault" in problem.message and problem.entity == "jdmg:policy-ranking-bands", problem


# ---------------------------------------------------------------- quotes


def _quote_problems(tmp_path: Path, quote: str) -> list[Problem]:
    old = 'jdm:quote "Particularly effective for muscle involvement and ILD" ;'
    folder = _edited(tmp_path, (old, f'jdm:quote "{quote}" ;'))
    return [p for p in _found(folder, "quote") if p.entity == "jdmg:pref-rituximab-muscle-ild"]


@pytest.mark.slow
def test_a_quote_cut_inside_a_word_is_caught(tmp_path):
    [problem] = _quote_problems(tmp_path, "articularly effective for muscle involvement and IL")
    assert "starts or ends inside a word" in problem.message
    _located(problem, "guideline.ttl")


@pytest.mark.slow
def test_a_quote_too_short_to_name_its_sentence_is_caught(tmp_path):
    [problem] = _quote_problems(tmp_path, "ILD")
    assert "is 1 word" in problem.message and "at least 3 words" in problem.fix


def test_whole_words_with_other_spacing_pass(tmp_path):
    """Line breaks and runs of spaces count as one space: the quote is still word for word."""
    assert _quote_problems(tmp_path, "Particularly effective for\\n  muscle involvement and ILD") == []


def test_every_bundled_quote_is_long_enough():
    """The minimum is below the shortest quote of the bundled guideline."""
    from rdflib import Graph

    from jdm_kg.authoring.check import QUOTE_MIN_WORDS
    from jdm_kg.namespaces import JDM

    graph = Graph()
    for path in ONTOLOGY.glob("*.ttl"):
        graph.parse(path)
    shortest = min(len(str(q).split()) for q in graph.objects(None, JDM.quote))
    assert QUOTE_MIN_WORDS < shortest == 4


# ---------------------------------------------------------------- preference level and the quote's verb


def _level_edit(tmp_path: Path, statement: str, old: str, new: str) -> Path:
    block = _block(statement)
    return _edited(tmp_path, (block, block.replace(f"jdm:preferenceLevel {old} ;", f"jdm:preferenceLevel {new} ;")))


@pytest.mark.slow
def test_level_weaker_than_the_quotes_verb_is_caught(tmp_path):
    """The reviewer's edit: "may be effective" on "Particularly effective for muscle involvement and ILD"
    (it would move rituximab out of the 'preferred' band)."""
    folder = _level_edit(tmp_path, "jdmg:pref-rituximab-muscle-ild", "jdmg:level-particularly-effective",
                         "jdmg:level-may-be-effective")
    [problem] = _found(folder, "qc:level-verb")
    assert problem.entity == "jdmg:pref-rituximab-muscle-ild", problem
    assert problem.message == ('jdm:preferenceLevel jdmg:level-may-be-effective ("may be effective in") needs the quote '
                               'to say "may be effective", but the quote says "particularly effective", the verb of '
                               "jdmg:level-particularly-effective"), problem
    _located(problem, "guideline.ttl")


@pytest.mark.slow
def test_level_stronger_than_the_quotes_verb_is_caught(tmp_path):
    folder = _level_edit(tmp_path, "jdmg:pref-ivig-calcinosis", "jdmg:level-consider", "jdmg:level-particularly-effective")
    [problem] = _found(folder, "qc:level-verb")
    assert problem.entity == "jdmg:pref-ivig-calcinosis"
    assert 'needs the quote to say "particularly effective" or "particularly useful"' in problem.message
    assert 'the quote says "consider", the verb of jdmg:level-consider' in problem.message


@pytest.mark.slow
def test_a_level_without_a_verb_on_a_quote_with_one_is_caught(tmp_path):
    folder = _level_edit(tmp_path, "jdmg:pref-combination-refractory", "jdmg:level-may-be-effective",
                         "jdmg:level-named-among-options")
    [problem] = _found(folder, "qc:level-verb")
    assert "names no verb, but the quote says \"may be effective\"" in problem.message, problem


def test_the_verbs_are_data_on_the_levels(tmp_path):
    """An author who gives a level another phrase changes what the rule reads: no code to edit."""
    block = _block("jdmg:level-may-be-effective")
    folder = _edited(tmp_path, (block, block.replace('jdm:verbPhrase "may be effective"', 'jdm:verbPhrase "can be effective"')))
    [problem] = _found(folder, "qc:level-verb")
    assert problem.entity == "jdmg:pref-combination-refractory" and '"can be effective"' in problem.message


# ---------------------------------------------------------------- options the guideline names


def _with_extra(tmp_path: Path, turtle: str) -> Path:
    folder = _edited(tmp_path)
    prefixes = ("@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .\n@prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .\n"
                "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n")
    (folder / "zz-added.ttl").write_text(prefixes + turtle, encoding="utf-8")
    return folder


def _role_problems(folder: Path) -> dict[str, str]:
    return {p.entity: p.message for p in _found(folder, "qc:option-role-source")}


@pytest.mark.slow
def test_a_drug_with_a_role_and_no_source_is_caught(tmp_path):
    """The reviewer's edit: before, the drug passed check and was ranked #1."""
    folder = _with_extra(tmp_path, 'jdmg:newdrugumab a jdm:BiologicDMARD ; rdfs:label "newdrugumab"@en ;\n'
                                   "    jdm:role jdm:NextLineBDMARD .\n")
    assert _role_problems(folder) == {"jdmg:newdrugumab": "has jdm:role jdm:NextLineBDMARD (next-line bDMARD, ranked) "
                                                          "but no jdm:roleFrom: no guideline statement gives it that role"}


@pytest.mark.slow
def test_a_role_from_a_statement_that_does_not_name_the_drug_is_caught(tmp_path):
    folder = _with_extra(tmp_path, 'jdmg:newdrugumab a jdm:BiologicDMARD ; rdfs:label "newdrugumab"@en ;\n'
                                   "    jdm:role jdm:NextLineBDMARD ; jdm:roleFrom jdmg:pref-ivig-calcinosis .\n")
    assert "its jdm:roleFrom jdmg:pref-ivig-calcinosis is not a guideline statement about it" in \
        _role_problems(folder)["jdmg:newdrugumab"]


@pytest.mark.slow
def test_a_drug_named_only_by_its_class_needs_a_statement_or_a_derivation(tmp_path):
    """'a TNF inhibitor' does not name every TNF inhibitor: jdm-kg's choice must say so, as tocilizumab's does."""
    drug = ('jdmg:newtnfimab a jdm:TNFInhibitor ; rdfs:label "newtnfimab"@en ;\n'
            "    jdm:role jdm:NextLineBDMARD ; jdm:roleFrom jdmg:rec-next-line-bdmard")
    folder = _with_extra(tmp_path, drug + " .\n")
    assert "which names only its class" in _role_problems(folder)["jdmg:newtnfimab"]
    shutil.rmtree(folder)
    folder = _with_extra(tmp_path, drug + ' ;\n    jdm:derivation "a TNF inhibitor chosen by jdm-kg (fixture)" .\n')
    assert _role_problems(folder) == {}


def test_tocilizumab_without_its_derivation_is_caught(tmp_path):
    block = _block("jdmg:tocilizumab", "terms.ttl")
    line = '    jdm:derivation "the IL-6 inhibitor chosen by jdm-kg: the guideline names only the class" ;\n'
    folder = _edited(tmp_path, (block, block.replace(line, "")), file="terms.ttl")
    assert list(_role_problems(folder)) == ["jdmg:tocilizumab"]
