"""Issue 21: safe at the point of care. Each point on records of its own
(``tests/fixtures/point-of-care/``): what is pending stands next to each option in every output,
ILD counts when present, ties and gaps are said (report, FHIR, CDS card, web page), nothing reads
stronger or narrower than the seed, gaps are said where they matter, one screen."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import RDFS, URIRef

from jdm_kg import recommend_file
from jdm_kg.knowledge.guideline import JDM, JDMG
from jdm_kg.outputs.fhir_output import results_bundle
from jdm_kg.outputs.report import result_text, results_text

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "fixtures" / "point-of-care"
EXAMPLES = sorted((ROOT / "examples").glob("*.ttl")) + sorted((ROOT / "examples").glob("*.jsonld")) + sorted(
    (ROOT / "examples" / "fhir").glob("*.json"))

_RESULTS: dict[str, object] = {}


def result(name: str):
    if name not in _RESULTS:
        _, results = recommend_file(str(CASES / name))
        assert len(results) == 1
        _RESULTS[name] = results[0]
    return _RESULTS[name]


def by_name(res):
    return {o.option.rsplit("/", 1)[-1]: o for o in res.options}


def first_rank(res):
    return {o.option.rsplit("/", 1)[-1] for o in res.options if o.rank == 1}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def option_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s+#\d", line)]


# ---------------------------------------------------------------- 1. pending screening next to each option


def test_every_option_line_says_the_screening_still_to_do():
    res = result("muscle-tb-missing.ttl")
    ranked = [o for o in res.options if o.ranked]
    assert ranked and all(o.screening_state == "screen first: tuberculosis (no result on record)" for o in ranked)
    text = result_text(res)
    lines = option_lines(text)
    assert len(lines) >= 3 and all("screen first: tuberculosis" in line for line in lines), text
    dosed = next(line for line in lines if "rituximab" in line)
    assert "dose once screened: 559.0 mg per dose" in dosed  # never a plain dose while screening is pending
    markdown = results_text([res], markdown=True)
    assert all("screen first: tuberculosis" in line for line in markdown.splitlines() if line.startswith("- #"))
    assert res.as_dict()["options"][0]["screeningState"] == "screen first: tuberculosis (no result on record)"


def test_retest_and_blocked_states_carry_their_policy():
    retest = result_text(result("skin-hepatitis-b-indeterminate.ttl"))
    assert all("retest: hepatitis B (jdm-kg policy: screening history gates biologics)" in line
               for line in option_lines(retest)), retest
    blocked = result_text(result("refractory-hepatitis-c-positive.ttl"))
    assert all("BLOCKED: hepatitis C positive (jdm-kg policy: screening history gates biologics)" in line
               for line in option_lines(blocked)), blocked
    assert "doses once cleared: adalimumab: no dose in the guideline; infliximab: 156.0-260.0 mg per dose" in blocked
    assert "rituximab: 573.6 mg per dose" in blocked


def test_when_every_biologic_waits_the_report_says_so_first_with_the_expert_centre():
    res = result("muscle-tb-missing.ttl")
    first = res.notices[0]
    assert first.text.startswith("No next-line biologic can start yet: screen first: tuberculosis (no result on record)")
    assert "Meanwhile: consult a JDM expert centre early" in first.text
    assert first.policy is not None and first.policy.label == "screening history gates biologics"
    text = result_text(res)
    notice_at = text.index("! No next-line biologic can start yet")
    assert notice_at < text.index("Next-line biologic options")
    # what assumes a biologic is starting says "once a biologic starts"
    assert "Once a biologic starts: consider continuing methotrexate with the new biologic" in text
    passed = result_text(result("skin-predominant-ild-present.ttl"))
    assert "No next-line biologic can start yet" not in passed and "Once a biologic starts" not in passed


def _bundle(name: str) -> dict:
    res = result(name)
    return results_bundle([res], source=name)


def _validate(bundle: dict):
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle)


def _options(group: dict) -> list[dict]:
    """The option actions of a RequestGroup: under its report sections, after the screening actions."""
    return [a for section in group["action"] if not section.get("id", "").startswith("screen-")
            for a in section["action"]]


def test_fhir_proposal_depends_on_the_screening_action_while_screening_is_pending():
    bundle = _bundle("muscle-tb-missing.ttl")
    _validate(bundle)
    resources = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    group = next(r for r in resources.values() if r["resourceType"] == "RequestGroup")
    actions = {a["id"]: a for a in group["action"] if "id" in a}  # the screening actions, before the sections
    screen = actions["screen-Tuberculosis"]
    assert screen["requiredBehavior"] == "must" and screen["title"] == "Screen first: tuberculosis"
    requests = [r for r in resources.values() if r["resourceType"] == "MedicationRequest"]
    assert {r["medicationCodeableConcept"]["text"] for r in requests} == {"rituximab", "infliximab"}
    for request in requests:
        assert request["statusReason"]["text"] == "waiting for screening: screen first: tuberculosis (no result on record)"
        assert request["note"][0]["text"].startswith("Not to be started before screening: screen first: tuberculosis")
        assert "patientInstruction" not in json.dumps(request)
        ref = f"urn:uuid:{request['id']}"  # an option's one proposal is its resource; several: one sub-action each
        holder = next(a for a in _options(group) if a.get("resource", {}).get("reference") == ref
                      or any(sub["resource"]["reference"] == ref for sub in a.get("action", [])))
        subs = [sub for sub in holder.get("action", []) if sub["resource"]["reference"] == ref]
        for link in [holder["relatedAction"]] + [sub["relatedAction"] for sub in subs]:
            assert link == [{"actionId": "screen-Tuberculosis", "relationship": "after-end"}]
        assert "First: screen first: tuberculosis" in holder["description"]


def test_fhir_passed_screening_needs_no_condition_and_blocked_options_get_no_proposal():
    passed = _bundle("skin-predominant-ild-present.ttl")
    group = next(e["resource"] for e in passed["entry"] if e["resource"]["resourceType"] == "RequestGroup")
    assert not any(a.get("id", "").startswith("screen-") for a in group["action"])
    assert _options(group) and not any("relatedAction" in a for a in _options(group))
    requests = [e["resource"] for e in passed["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    assert requests and not any("statusReason" in r for r in requests)
    blocked = _bundle("refractory-hepatitis-c-positive.ttl")
    _validate(blocked)
    group = next(e["resource"] for e in blocked["entry"] if e["resource"]["resourceType"] == "RequestGroup")
    assert next(a for a in group["action"] if a["id"] == "screen-HepatitisC")["title"].startswith(
        "hepatitis C: positive: a clinician assesses it")
    assert not [e for e in blocked["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]


# ---------------------------------------------------------------- 2. ILD counts when present


def test_ild_present_counts_for_rituximab_and_ties_with_the_skin_options():
    res = result("skin-predominant-ild-present.ttl")
    assert first_rank(res) == {"rituximab", "adalimumab", "infliximab"}
    options = by_name(res)
    assert options["rituximab"].standing == ("preferred for interstitial lung disease (ILD), which counts when present")
    heading = [r for r in options["rituximab"].reasons if r.statement and r.statement.quote == "For interstitial lung disease:"]
    assert heading and heading[0].policy.label == "ILD counts when present"
    [tie] = [t for t in res.ties if t.startswith("adalimumab, infliximab, rituximab tie at #1")]
    assert "rituximab for interstitial lung disease (ILD)" in tie and "adalimumab, infliximab for skin disease" in tie
    assert "the guideline does not say which feature to treat first (jdm-kg policy: options for different features tie)" in tie
    text = result_text(res)
    assert "interstitial lung disease (ILD) (present; it counts: jdm-kg policy: ILD counts when present)" in text
    assert "present but not predominant (so it does not rank)" not in text


def test_an_option_less_effective_for_a_feature_that_counts_is_not_lifted_into_the_tie():
    res = result("skin-and-muscle-predominant-ild-present.ttl")
    assert first_rank(res) == {"rituximab"}
    options = by_name(res)
    assert options["infliximab"].rank == 2 and options["infliximab"].against_counting
    assert not any("which feature to treat first" in t for t in res.ties)


# ---------------------------------------------------------------- 3. cards and the web page


def test_card_summary_names_the_tie_the_gap_and_what_is_pending():
    from jdm_kg.service.cds_hooks import SUMMARY_LIMIT, card_summary

    cases = {
        "skin-predominant-ild-present.ttl": ("info", "adalimumab, infliximab or rituximab (tie, #1); screening passed"),
        "calcinosis-alone-screened.ttl": ("info", "no biologic named for calcinosis: expert centre; 5 bDMARDs tie"),
        "muscle-tb-missing.ttl": ("warning", "rituximab first (#1); screen first: tuberculosis"),
        "refractory-hepatitis-c-positive.ttl": ("critical", "(tie, #1); blocked: hepatitis C positive"),
    }
    for name, (indicator, words) in cases.items():
        got, summary = card_summary(result(name))
        assert got == indicator and words in summary and len(summary) < SUMMARY_LIMIT, (name, summary)
        assert "ranks first" not in summary
    _, calcinosis = card_summary(result("calcinosis-alone-screened.ttl"))
    assert "abatacept" not in calcinosis


def test_card_detail_is_at_most_15_lines_with_a_link_to_the_full_report():
    from jdm_kg.service.cds_hooks import card_detail

    for name in sorted(p.name for p in CASES.glob("*.ttl")):
        detail = card_detail(result(name), "https://cds.example/report/abc")
        lines = detail.splitlines()
        assert len(lines) <= 15, (name, detail)
        assert lines[-1].startswith("[Full report for this patient") and lines[-1].endswith("(https://cds.example/report/abc)")
    pending = card_detail(result("muscle-tb-missing.ttl"), "https://cds.example/r")
    assert "No next-line biologic can start yet" in pending and "screen first: tuberculosis" in pending


def _order(order_id: str, code: str, display: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": order_id, "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": code, "display": display}]},
            "subject": {"reference": "Patient/x"}, "note": [{"text": "the prescriber's own note"}]}


def test_order_select_updates_the_selected_draft_order(guideline):
    from fhir.resources.R4B.medicationrequest import MedicationRequest

    from jdm_kg.service.cds_hooks import order_select_cards

    order = _order("draft-rtx", "121191", "rituximab")
    [card] = order_select_cards(result("muscle-tb-missing.ttl"), [order], guideline, "https://cds.example", "https://l")
    assert card["indicator"] == "warning" and card["summary"].startswith("rituximab: #1 (preferred")
    [suggestion] = card["suggestions"]
    assert suggestion["isRecommended"] is False  # screening pending: not the recommended click
    assert suggestion["label"].startswith("After tuberculosis screening: set rituximab to 559.0 mg per dose")
    [action] = suggestion["actions"]
    assert action["type"] == "update"
    updated = action["resource"]
    MedicationRequest.model_validate(updated)
    assert (updated["id"], updated["intent"], updated["status"]) == ("draft-rtx", "order", "draft")
    assert updated["note"][0] == {"text": "the prescriber's own note"}  # the whole order, its own fields kept
    assert any(n["text"].startswith("Not to be started before screening: screen first: tuberculosis") for n in updated["note"])
    dosage = updated["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 559.0 and "559.0 mg" in dosage["text"]
    assert "patientInstruction" not in json.dumps(card)
    ready = _order("draft-ifx", "191831", "infliximab")
    [card] = order_select_cards(result("skin-predominant-ild-present.ttl"), [ready], guideline, "https://c", "https://l")
    assert "tied with" in card["summary"] and card["suggestions"][0]["isRecommended"] is True
    assert card["suggestions"][0]["actions"][0]["resource"]["id"] == "draft-ifx"


def test_web_page_shows_the_patient_the_notice_ties_state_and_evidence():
    sys.path.insert(0, str(ROOT / "tests"))
    from service_support import client

    page = client().post("/", files={"file": ("muscle-tb-missing.ttl", (CASES / "muscle-tb-missing.ttl").read_bytes(),
                                               "text/turtle")})
    assert page.status_code == 200, page.text
    html = page.text
    assert "Decision support, not a prescription." in html
    for fact in ("<dt>Age</dt><dd>15 y</dd>", "<dt>Sex</dt><dd>male</dd>", "<dt>Weight</dt><dd>50 kg (2026-10-25)</dd>",
                 "<dt>Height</dt><dd>160 cm (2026-10-25)</dd>", "<dt>BSA</dt><dd>1.49 m² (Mosteller)</dd>"):
        assert fact in html
    assert html.index("<dt>Age</dt>") < html.index("Next-line biologic options")
    assert "(tie)" in html and "Tie: abatacept, tocilizumab tie at #2" in html
    rituximab = html[html.index('data-option="https://w3id.org/jdm-kg/guideline/rituximab"'):]
    rituximab = rituximab[:rituximab.index("</summary>")]
    assert "screen first: tuberculosis (no result on record)" in rituximab
    assert "Dose once screened: rituximab: 559.0 mg per dose" in rituximab and "UNVERIFIED" in rituximab


# ---------------------------------------------------------------- 4. nothing stronger or narrower than the seed


def test_jak_failure_definition_names_the_policy(guideline):
    g = guideline.graph
    situation = JDMG["situation-jaki-failure"]
    assert (situation, JDM.underPolicy, JDMG["policy-failure-reading"]) in g
    assert "jdm-kg policy: intolerance counts as JAK inhibitor failure" in str(g.value(situation, URIRef(
        "http://www.w3.org/2004/02/skos/core#definition")))


def test_ivig_reads_as_the_seed_says_with_its_split_labelled():
    text = result_text(result("skin-predominant-ild-present.ttl"))
    ivig = next(line for line in text.splitlines() if line.strip().startswith("intravenous immunoglobulin"))
    assert "(to consider)" not in ivig and "particularly useful for skin disease" in ivig
    assert "given as 40.0 g a day over 2 days (jdm-kg policy: equal daily split)" in ivig
    assert ("Adjunctive therapy, alongside a next-line biologic (not the next line) (jdm-kg policy: adjunct/escalation "
            "sections):") in text


def test_combination_is_not_narrowed_to_multiple_manifestations():
    text = result_text(result("muscle-tb-missing.ttl"))
    line = next(x for x in text.splitlines() if x.strip().startswith("combination"))
    assert 'the guideline names it "for severe, multi-system disease" and "in refractory cases"' in line
    assert "with multiple manifestations" not in line
    refractory = result("refractory-hepatitis-c-positive.ttl")
    share = next(r for r in by_name(refractory)["infliximab"].reasons if r.statement and "SHARE" in r.statement.label)
    assert "recorded: refractory disease with multiple manifestations (predominant)" in share.text  # the record's words
    assert "named among the options in refractory cases" in by_name(refractory)["infliximab"].brief


def test_infusion_reactions_and_the_efficacy_caveat_say_what_the_seed_says(guideline):
    g = guideline.graph
    action = str(g.value(JDMG["safety-rituximab-infusion"], JDM.actionText))
    assert action == "Rituximab: monitor for infusion reactions." and "each" not in action
    caveat = JDMG["caveat-efficacy-not-documented"]
    assert set(g.objects(caveat, JDM.population)) == {JDM.Juvenile}
    assert set(g.objects(caveat, JDM.extrapolatedFrom)) == {JDM.AdultRheumatoidArthritis}
    assert str(g.value(JDM.AdultRheumatoidArthritis, RDFS.label)) == "adults with rheumatoid arthritis"


def test_fhir_examples_code_hpo_terms_with_their_prefix_and_own_display():
    names = {"HP:0001029": "Poikiloderma", "HP:0001324": "Muscle weakness"}  # docs/reference-sheet.md
    seen = 0
    for path in sorted((ROOT / "examples" / "fhir").glob("*.json")):
        for coding in re.findall(r'\{[^{}]*"system": "http://human-phenotype-ontology.org"[^{}]*\}', path.read_text()):
            coding = json.loads(coding)
            assert re.fullmatch(r"HP:\d{7}", coding["code"]), (path.name, coding)
            assert coding["display"] == names[coding["code"]], (path.name, coding)
            seen += 1
    assert seen >= 8


# ---------------------------------------------------------------- 5. gaps said where they matter


def test_hepatitis_positive_says_the_gap_on_the_combination_line():
    res = result("refractory-hepatitis-c-positive.ttl")
    combination = by_name(res)["combination-mtx-csa-ivig"]
    assert combination.status == "offered"
    assert ("guideline gap: nothing on hepatitis for methotrexate or ciclosporin (hepatitis C positive 2026-10-01 on "
            "record)") in combination.notes
    assert "nothing on hepatitis for methotrexate or ciclosporin" in next(
        x for x in result_text(res).splitlines() if x.strip().startswith("combination"))
    clean = by_name(result("skin-predominant-ild-present.ttl"))["combination-mtx-csa-ivig"]
    assert not any("hepatitis" in n for n in clean.notes)


def test_a_child_under_2_years_and_10_kg_gets_the_caution_first():
    res = result("toddler-under-10-kg.ttl")
    caution = res.notices[0]
    assert caution.text.startswith("Caution, under 2 years (20 mo) and under 10 kg (9.5 kg): no lower age or weight "
                                   "bound in the guideline; the evidence linked to its doses is from adults")
    assert "ProDERM 2022" in caution.more  # the gap in full, with --details
    assert "ProDERM 2022" in result_text(res, detail=True) and "ProDERM 2022" not in result_text(res)
    assert caution.policy.label == "caution under 2 years or 10 kg" and "jdm-kg policy: caution" in caution.text
    assert not any(n.text.startswith("Caution") for n in result("muscle-tb-missing.ttl").notices)


def test_the_young_child_caution_travels_with_every_proposal_and_the_card():
    """Beside any dose, wherever it goes: the GuidanceResponse and each MedicationRequest note,
    the CDS card's summary (a warning, not info). Found by a clinical review: the FHIR proposals
    and the card's summary had dropped it."""
    from jdm_kg.service.cds_hooks import SUMMARY_LIMIT, card_summary

    bundle = _bundle("toddler-under-10-kg.ttl")
    resources = [e["resource"] for e in bundle["entry"]]
    requests = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    [guidance] = [r for r in resources if r["resourceType"] == "GuidanceResponse"]
    assert requests and all(r["note"][0]["text"].startswith("Caution, under 2 years (20 mo) and under 10 kg")
                            for r in requests)
    assert any(n["text"].startswith("Caution, under 2 years") for n in guidance["note"])
    indicator, summary = card_summary(result("toddler-under-10-kg.ttl"))
    assert indicator in ("warning", "critical") and "Caution, under 2 years (20 mo) and under 10 kg" in summary
    assert len(summary) < SUMMARY_LIMIT
    older = _bundle("muscle-tb-missing.ttl")  # no caution for an older, heavier child
    assert not any("Caution" in n["text"] for e in older["entry"] for n in e["resource"].get("note", []))


# ---------------------------------------------------------------- 6. one screen


def _reports(text: str) -> list[str]:
    text = text.split("\n", 1)[1] if text.startswith("Guideline ") else text  # the command's first line
    return [block for block in re.split(r"\n\n(?=Patient )", text.strip()) if block.startswith("Patient ")]


def test_every_report_fits_40_rows_at_120_columns_and_details_hold_the_rest():
    files = [str(p.relative_to(ROOT)) for p in EXAMPLES + sorted(CASES.glob("*.ttl"))]  # as a user names them
    proc = cli("recommend", *files, "--width", "120")
    assert proc.returncode == 0, proc.stderr
    reports = _reports(proc.stdout)
    assert len(reports) == len(files)
    for report in reports:
        lines = report.splitlines()
        assert len(lines) <= 40 and all(len(line) <= 120 for line in lines), report
        if "The guideline applies" in report:
            assert lines[-1].startswith("More (quotes, rationale, caveats, silences, policies used): --details")
            for moved in ("quote:", "Caveats stated by the guideline", "Where the guideline is silent",
                          "jdm-kg policies used", "Rationale:"):
                assert moved not in report, (moved, report)
    narrow = cli("recommend", str(CASES / "muscle-tb-missing.ttl"), "--width", "80")
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines()[1:])
    unwrapped = cli("recommend", str(CASES / "muscle-tb-missing.ttl"))  # a pipe: no wrapping
    assert any(len(line) > 120 for line in unwrapped.stdout.splitlines())
    details = cli("recommend", str(CASES / "muscle-tb-missing.ttl"), "--details")
    for moved in ('quote: "Particularly effective for muscle involvement and ILD"', "Caveats stated by the guideline",
                  "Where the guideline is silent", "jdm-kg policies used (not guideline content)", "Rationale:",
                  "[required] tuberculosis: no result on record: screen before starting"):
        assert moved in details.stdout, moved


@pytest.mark.parametrize("width", ["12", "wide", "0"])
def test_a_bad_width_is_a_usage_error(width):
    proc = cli("recommend", str(CASES / "muscle-tb-missing.ttl"), "--width", width)
    assert proc.returncode == 2 and "--width" in proc.stderr
