"""Recommendations for each example: expected options and ranking, doses, gates, exclusions,
reasons and provenance (Python API)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rdflib import RDF, URIRef

from jdm_kg.knowledge.guideline import JDM, JDMG
from jdm_kg.outputs.report import results_graph
from jdm_kg.reasoning.dosing import BodyMeasures, Regimen, compute_dose, mosteller_bsa

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def result(recommend, name):
    report, results = recommend(name)
    assert len(results) == 1
    return results[0]


def by_label(res):
    return {o.option.rsplit("/", 1)[-1]: o for o in res.options}


def top(res):
    return {o.option.rsplit("/", 1)[-1] for o in res.options if o.rank == 1}


def test_skin_predominant_tnf_inhibitors_first_ivig_an_adjunct(recommend):
    res = result(recommend, "skin-predominant.ttl")
    assert res.applicable
    assert top(res) == {"infliximab", "adalimumab"}
    opts = by_label(res)
    # a comparison ("more effective for skin than muscle") makes them suitable, not preferred
    assert opts["infliximab"].standing == "suitable"
    assert opts["rituximab"].rank == 3 and opts["rituximab"].standing == "no feature-specific guidance"
    assert opts["ivig"].rank is None and opts["ivig"].status == "offered" and opts["ivig"].role == "adjunctive therapy"
    assert opts["combination-mtx-csa-ivig"].rank is None
    # muscle weakness is present but not predominant: the comparison's weaker side is a reason
    # against (for explain) but does not rank
    assert [r.patient_fact["manifestation"] for r in opts["infliximab"].reasons_against] == ["muscle weakness"]


def test_one_sentence_counts_once(recommend):
    """Every reason for an option comes from a different statement."""
    for name in ["skin-predominant.ttl", "refractory-multisystem.ttl", "muscle-predominant.jsonld", "ild-predominant.ttl"]:
        for option in result(recommend, name).options:
            for reasons in (option.reasons_for, option.reasons_against):
                statements = [r.statement.statement for r in reasons if r.statement and not r.policy]
                assert len(statements) == len(set(statements)), (name, option.label)


def test_muscle_predominant_favours_rituximab(recommend):
    res = result(recommend, "muscle-predominant.jsonld")
    assert top(res) == {"rituximab"}
    opts = by_label(res)
    assert opts["rituximab"].standing == "preferred for the predominant feature"
    assert opts["infliximab"].rank > opts["tocilizumab"].rank  # less suitable for muscle
    assert opts["infliximab"].standing == "less suitable for the predominant feature"


def test_ild_predominant_rituximab_first_but_blocked_by_positive_hepatitis_b(recommend):
    res = result(recommend, "ild-predominant.ttl")
    opts = by_label(res)
    assert top(res) == {"rituximab"}
    assert opts["rituximab"].status == "blocked"
    gates = {g.condition_label: g.state for g in opts["rituximab"].gates}
    assert gates == {"hepatitis B": "blocking", "hepatitis C": "passed", "tuberculosis": "passed"}
    assert not opts["ivig"].gates  # IVIG is not a bDMARD: no screening gate
    assert opts["ivig"].status == "offered" and opts["ivig"].rank is None  # an adjunct (skin disease is present)


def test_calcinosis_gates_and_missing_height(recommend):
    res = result(recommend, "calcinosis-predominant.ttl")
    opts = by_label(res)
    assert opts["ivig"].rank is None and opts["ivig"].status == "offered"  # an adjunct to consider
    assert top(res) == {"abatacept", "adalimumab", "infliximab", "rituximab", "tocilizumab"}  # no bDMARD named for it
    assert "No next-line biologic named for calcinosis" in res.notices[1].text
    # every biologic waits for the tuberculosis retest: said first, with the expert-centre step (issue 21)
    assert res.notices[0].text.startswith("No next-line biologic can start yet: retest: tuberculosis")
    assert "consult a JDM expert centre early" in res.notices[0].text
    tb = [g for g in opts["rituximab"].gates if g.condition_label == "tuberculosis"][0]
    assert tb.state == "required" and "over 365" in tb.text and "jdm-kg policy" in tb.text
    dose = opts["rituximab"].doses[0]
    assert dose.status == "missing-data" and "no body height" in " ".join(dose.notes)
    assert opts["infliximab"].doses[0].status == "computed"  # weight alone suffices


def test_refractory_excludes_failed_rituximab_with_episode(recommend):
    res = result(recommend, "refractory-multisystem.ttl")
    opts = by_label(res)
    assert opts["rituximab"].status == "excluded" and opts["rituximab"].rank is None
    assert any("2024-01-15 to 2024-09-01" in r.text for r in opts["rituximab"].reasons_against)
    assert not opts["rituximab"].doses
    assert top(res) == {"infliximab", "adalimumab"}  # named by SHARE for refractory disease
    assert opts["combination-mtx-csa-ivig"].status == "offered" and opts["combination-mtx-csa-ivig"].rank is None


def test_no_jak_failure_does_not_apply(recommend):
    res = result(recommend, "no-jak-failure.ttl")
    assert not res.applicable and "does not apply" in res.applicability
    assert all(o.status == "not-applicable" and o.rank is None for o in res.options)


def test_major_organ_involvement_is_a_gap(recommend):
    res = result(recommend, "major-organ.ttl")
    assert res.applicable
    # no statement names any option for it: every bDMARD ties, and the report says so first
    assert {o.option.rsplit("/", 1)[-1] for o in res.options if o.rank == 1} == {
        "abatacept", "adalimumab", "infliximab", "rituximab", "tocilizumab"}
    assert all(d.status != "computed" for o in res.options for d in o.doses)
    assert any("No option named for major organ involvement" in n.text for n in res.notices)


def test_violations_block_recommendation(recommend):
    report, results = recommend("invalid/height-in-metres.ttl")
    assert not report.conforms
    assert not results[0].applicable and results[0].options == []


def test_reasons_carry_quote_and_source(recommend):
    res = result(recommend, "refractory-multisystem.ttl")
    share = [r for o in res.options for r in o.reasons if r.statement and r.statement.statement.endswith("pref-share-refractory")]
    assert share
    prov = share[0].statement
    assert "SHARE initiative" in prov.quote
    assert prov.sources[0]["doi"] == "10.1136/annrheumdis-2016-209247"
    assert "guideline citation 1" in prov.markers
    assert prov.verification == "unverified"


# ---------------------------------------------------------------- doses, worked by hand


def _reg(**kw):
    base = dict(iri="r", drug="d", drug_label="x", label="x", dose_given=True)
    base.update(kw)
    return Regimen(**base)


def test_worked_example_35kg_140cm():
    body = BodyMeasures(Decimal(35), Decimal(140))
    # BSA = sqrt(140*35/3600) = sqrt(4900/3600) = 70/60 = 1.1666...
    assert mosteller_bsa(Decimal(140), Decimal(35)).quantize(Decimal("0.0001")) == Decimal("1.1667")
    rit = compute_dose(_reg(dose_min=Decimal(375), dose_max=Decimal(375), dose_unit="mg/m2", basis="m2", number_of_doses=4), body)
    assert (rit.low, rit.high, rit.unit) == (Decimal("437.5"), Decimal("437.5"), "mg")  # 375 * 7/6
    inf = compute_dose(_reg(dose_min=Decimal(3), dose_max=Decimal(5), dose_unit="mg/kg", basis="kg"), body)
    assert (inf.low, inf.high) == (Decimal("105.0"), Decimal("175.0"))
    ivig = compute_dose(_reg(dose_min=Decimal(2), dose_max=Decimal(2), dose_unit="g/kg", basis="kg", administration_days=2), body)
    assert (ivig.low, ivig.per_day_low, ivig.unit) == (Decimal("70.0"), Decimal("35.0"), "g")
    mtx = compute_dose(
        _reg(dose_min=Decimal(15), dose_max=Decimal(20), dose_unit="mg/m2", basis="m2", max_dose=Decimal(40), max_dose_unit="mg"), body
    )
    assert (mtx.low, mtx.high) == (Decimal("17.5"), Decimal("23.3"))  # 15*7/6, 20*7/6


def test_mtx_is_capped_at_the_share_maximum():
    body = BodyMeasures(Decimal(100), Decimal(200))  # BSA 2.357
    mtx = compute_dose(
        _reg(dose_min=Decimal(15), dose_max=Decimal(20), dose_unit="mg/m2", basis="m2", max_dose=Decimal(40), max_dose_unit="mg"), body
    )
    assert mtx.high == Decimal(40) and "capped" in mtx.notes[0]
    assert (mtx.uncapped_low, mtx.uncapped_high) == (Decimal("35.4"), Decimal("47.1"))
    assert mtx.amount().startswith("35.4-40.0 mg per dose (top end capped at the maximum;")
    whole = compute_dose(
        _reg(dose_min=Decimal(15), dose_max=Decimal(20), dose_unit="mg/m2", basis="m2", max_dose=Decimal(40), max_dose_unit="mg"),
        BodyMeasures(Decimal(150), Decimal(200)),  # BSA 2.887: 43.3-57.7 mg, all above 40
    )
    assert whole.amount().startswith("40.0 mg per dose (the maximum; 15-20 mg/m2 works out to 43.3-57.7 mg)")
    partial = compute_dose(
        _reg(dose_min=Decimal(15), dose_max=Decimal(20), dose_unit="mg/m2", basis="m2", max_dose=Decimal(40), max_dose_unit="mg"),
        BodyMeasures(Decimal(92), Decimal(178)),  # BSA 2.134: 32.0-42.7 mg, only the top end above 40
    )
    assert (partial.low, partial.high) == (Decimal("32.0"), Decimal("40.0"))
    assert partial.amount().startswith("32.0-40.0 mg per dose (top end capped at the maximum;")


def test_no_dose_from_missing_or_not_given():
    body = BodyMeasures(None, Decimal(140), weight_problem="no body weight recorded")
    assert compute_dose(_reg(dose_min=Decimal(3), dose_max=Decimal(5), dose_unit="mg/kg", basis="kg"), body).status == "missing-data"
    assert compute_dose(_reg(dose_given=False), body).status == "not-given"


def test_stale_weight_is_not_used(tmp_path):
    from jdm_kg import recommend_file

    text = (EXAMPLES / "skin-predominant.ttl").read_text()
    stale = tmp_path / "stale.ttl"
    stale.write_text(text.replace('jdm:value 35.0 ; jdm:unit "kg" ; jdm:date "2026-10-20"', 'jdm:value 35.0 ; jdm:unit "kg" ; jdm:date "2025-01-20"'))
    res = recommend_file(str(stale))[1][0]
    dose = by_label(res)["infliximab"].doses[0]
    assert dose.status == "missing-data" and "days old" in dose.notes[0]


def test_prov_graph(recommend, guideline):
    res = result(recommend, "skin-predominant.ttl")
    g = results_graph([res], guideline)
    runs = list(g.subjects(RDF.type, JDM.RecommendationRun))
    assert len(runs) == 1
    used = set(g.objects(runs[0], URIRef("http://www.w3.org/ns/prov#used")))
    assert guideline.version_iri in used and res.record.node in used
    assessed = list(g.subjects(JDM.assessedOption, JDMG.infliximab))
    derived = set(g.objects(assessed[0], URIRef("http://www.w3.org/ns/prov#wasDerivedFrom")))
    assert JDMG["pref-tnfi-skin"] in derived
    doses = list(g.objects(assessed[0], JDM.computedDose))
    assert {str(g.value(d, JDM.amountHigh)) for d in doses} == {"175.0"}


def test_prov_dose_is_derived_from_the_measurements_and_formula(recommend, guideline):
    """A computed dose names the regimen, the weight (and height for BSA) and the formula it used."""
    prov = URIRef("http://www.w3.org/ns/prov#wasDerivedFrom")
    res = result(recommend, "skin-predominant.ttl")
    g = results_graph([res], guideline)
    patient = res.record.node
    weight = g.value(patient, JDM.bodyWeight)
    height = g.value(patient, JDM.bodyHeight)
    assert (Decimal(str(g.value(weight, JDM.value))), str(g.value(weight, JDM.unit))) == (Decimal(35), "kg")
    assert (Decimal(str(g.value(height, JDM.value))), str(g.value(height, JDM.unit))) == (Decimal(140), "cm")
    assert str(g.value(weight, JDM.date)) == "2026-10-20"

    def dose_of(option):
        node = next(g.subjects(JDM.assessedOption, option))
        return next(g.objects(node, JDM.computedDose))

    infliximab = dose_of(JDMG.infliximab)  # mg/kg: weight only
    assert set(g.objects(infliximab, prov)) == {JDMG["regimen-infliximab"], weight}
    assert "weight (kg)" in str(g.value(infliximab, JDM.formula))
    rituximab = dose_of(JDMG.rituximab)  # mg/m2: weight, height and the Mosteller source
    assert set(g.objects(rituximab, prov)) == {JDMG["regimen-rituximab"], weight, height, JDMG["src-mosteller-1987"]}
    assert "sqrt(height cm × weight kg / 3600)" in str(g.value(rituximab, JDM.formula))
    assert str(g.value(rituximab, JDM.bodySurfaceArea)) == "1.1667"


def test_screening_not_documented_is_required_before_starting(recommend):
    """P-MUSCLE has hepatitis results but no tuberculosis screening: TB is 'required', not blocking."""
    res = result(recommend, "muscle-predominant.jsonld")
    for option in res.options:
        if not option.gates:
            continue
        gates = {g.condition_label: g for g in option.gates}
        assert gates["tuberculosis"].state == "required", option.label
        assert gates["tuberculosis"].text == "tuberculosis: no result on record: screen before starting"
        assert option.status == "offered"  # a missing screen does not block, it is a task
