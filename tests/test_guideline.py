"""The guideline graph: loads, is consistent under OWL RL, and holds every statement of the
seed text with its quote and source, section by section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rdflib import DCTERMS, RDF, RDFS, SKOS, Literal, URIRef

from jdm_kg.knowledge.guideline import JDM, JDMG

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "ontology" / "jak-failure-jdm-guideline.txt").read_text(encoding="utf-8")
SEED = ROOT.parent / "shared" / "seed" / "jak-failure-jdm-guideline.txt"


def quotes(graph):
    """The guideline text the graph holds: quotes, section headings and the guideline's title."""
    texts = {str(q) for q in graph.objects(None, JDM.quote)} | {str(q) for q in graph.objects(None, JDM.section)}
    return texts | {str(graph.value(JDMG.guideline, DCTERMS.title))}


def test_bundled_text_is_the_seed():
    if not SEED.exists():
        pytest.skip("shared/seed not beside this checkout")
    assert SEED.read_text(encoding="utf-8") == TEXT


def test_owl_rl_closure_is_consistent(guideline):
    assert guideline.inconsistencies == ()
    # the closure does real work: drug classes are inferred
    assert (JDMG.infliximab, RDF.type, JDM.BiologicDMARD) in guideline.graph
    assert (JDMG.infliximab, RDF.type, JDM.BiologicDMARD) not in guideline.asserted


def test_every_quote_is_verbatim_guideline_text(guideline):
    for quote in guideline.asserted.objects(None, JDM.quote):
        assert str(quote) in TEXT, quote


def _sentences():
    """Every non-heading line of the guideline text, split into sentences."""
    out = []
    for line in TEXT.splitlines():
        line = line.strip().lstrip("- ").strip()
        if len(line) < 20 or line.endswith(":"):
            continue
        out += [s.strip() for s in re.split(r"(?<=[a-z0-9\"]\.)\s+(?=[A-Z])", line) if len(s.strip()) > 15]
    return out


@pytest.mark.parametrize("sentence", _sentences(), ids=lambda s: s[:40])
def test_every_guideline_sentence_is_in_the_graph(guideline, sentence):
    # The sentence, or the sentence less its list prefix ("Dosing: ..."), is covered by a quote.
    assert any(sentence in q or q in sentence and len(q) > 0.6 * len(sentence) for q in quotes(guideline.asserted)), sentence


@pytest.mark.parametrize(
    "heading",
    [
        "Treatment Algorithm After JAK Inhibitor Failure",
        "Evidence-Based Rationale",
        "Important Considerations",
        "Specific Medication Considerations: Rituximab",
        "Specific Medication Considerations: TNF Inhibitors",
        "Specific Medication Considerations: IVIG",
        "Specific Medication Considerations: Combination Therapy",
    ],
)
def test_each_section_has_statements_with_sources(guideline, heading):
    g = guideline.asserted
    statements = list(g.subjects(JDM.section, Literal(heading)))
    assert statements, heading
    for s in statements:
        assert g.value(s, JDM.quote) is not None
        assert g.value(s, JDM.evidenceType) is not None
        assert g.value(s, JDM.inGuideline) == JDMG.guideline


def test_cited_statements_carry_their_marker(guideline):
    g = guideline.asserted
    for s, quote in g.subject_objects(JDM.quote):
        match = re.search(r" ([123])\.?$", str(quote))
        if match:
            assert (s, JDM.citesMarker, JDMG[f"citation-{match.group(1)}"]) in g, s


def test_step_2_mapping_is_marked_as_derived(guideline):
    g = guideline.asserted
    assert g.value(JDMG["step-2"], JDM.derivation) is not None
    for s in g.subjects(RDF.type, JDM.PreferenceStatement):
        if (s, JDM.forManifestation, None) in g:
            assert g.value(s, JDM.derivation) is not None, s


def test_regimens_are_structured(guideline):
    g = guideline.graph
    rit = JDMG["regimen-rituximab"]
    assert (g.value(rit, JDM.doseMin).toPython(), g.value(rit, JDM.doseUnit).toPython()) == (375, "mg/m2")
    assert g.value(rit, JDM.numberOfDoses).toPython() == 4
    inf = JDMG["regimen-infliximab"]
    assert [g.value(inf, p).toPython() for p in (JDM.doseMin, JDM.doseMax, JDM.intervalMin, JDM.intervalMax)] == [3, 5, 4, 8]
    assert g.value(inf, JDM.route) == JDM.Intravenous
    ivig = JDMG["regimen-ivig"]
    assert g.value(ivig, JDM.administrationDays).toPython() == 2
    assert g.value(ivig, JDM.intervalMin).toPython() == 28


@pytest.mark.parametrize("drug", ["tocilizumab", "abatacept", "adalimumab", "ciclosporin"])
def test_silent_doses_are_explicit_gaps(guideline, drug):
    g = guideline.graph
    regimen = g.value(JDMG[drug], JDM.hasRegimen)
    assert g.value(regimen, JDM.doseGiven).toPython() is False
    assert g.value(regimen, JDM.doseMin) is None
    assert g.value(regimen, JDM.gap) is not None


def test_every_term_has_label_and_definition(guideline):
    g = guideline.asserted
    for s in set(g.subjects(RDF.type, None)):
        if isinstance(s, URIRef) and str(s).startswith(("https://w3id.org/jdm-kg/vocab#", str(JDMG))):
            if (s, RDF.type, JDM.CodeSystem) in g or (s, RDF.type, URIRef("http://www.w3.org/2002/07/owl#Ontology")) in g:
                continue
            assert g.value(s, RDFS.label) is not None, s
            assert g.value(s, SKOS.definition) is not None, s


def test_codes_from_clinical_facts(guideline):
    g = guideline.asserted
    assert (JDMG.rituximab, SKOS.exactMatch, URIRef("http://purl.bioontology.org/ontology/RXNORM/121191")) in g
    assert (JDMG.JuvenileDermatomyositis, SKOS.exactMatch, URIRef("http://purl.obolibrary.org/obo/MONDO_0008054")) in g
    # verified in the updated fact sheet: tofacitinib's RxNorm code, and the pre-2024 ATC code data still uses
    assert (JDMG.tofacitinib, SKOS.exactMatch, URIRef("http://purl.bioontology.org/ontology/RXNORM/1357536")) in g
    assert (JDMG.tofacitinib, SKOS.exactMatch, URIRef("http://purl.bioontology.org/ontology/ATC/L04AA29")) in g
    # unverified RxNorm codes (IVIG's) are not loaded, but named
    assert not [o for o in g.objects(JDMG.ivig, SKOS.exactMatch) if "RXNORM" in str(o)]
    assert any("UNVERIFIED" in str(note) for note in g.objects(JDMG.ivig, SKOS.editorialNote))  # (one of its notes)


def test_unverified_and_adult_evidence_is_labelled(guideline):
    g = guideline.asserted
    assert g.value(JDMG["src-proderm-2022"], JDM.population) == JDM.AdultsOnly
    assert g.value(JDMG["rat-eular-ra"], JDM.evidenceType) == JDM.ExtrapolatedFromRA
    assert g.value(JDMG["pref-share-refractory"], JDM.verificationStatus) == JDM.Unverified
