"""The guideline as a FHIR R4 package in the shape of HL7's Clinical Practice Guidelines (CPG)
implementation guide: what ``jdm-kg release`` writes into ``fhir/``.

Resources (canonical URLs under :data:`CANONICAL_BASE`, each carrying the release version):

- one ``PlanDefinition`` (type ``clinical-protocol``, the guideline as a whole), with one action
  per report section (the next-line bDMARDs: ``selectionBehavior`` ``at-most-one``; the adjuncts:
  ``any``; the escalation: ``at-most-one``) and in each one action per option: its
  applicability in words (``description``: what the guideline's sentences name it for, what
  keeps it from being offered, the screening before it), the statements quoted and the
  evidence they rest on (``documentation``), and ``definitionCanonical`` the option's
  ActivityDefinition (an option of several drugs, such as the escalation combination, has one
  sub-action per drug, ``selectionBehavior`` ``all``). R4's ``Expression`` takes CQL, FHIRPath
  or a FHIR query, none of which jdm-kg has (it applies the guideline in SPARQL), so the
  conditions are given as text and no ``condition`` element claims logic that does not exist;
- one ``ActivityDefinition`` per dose regimen (kind ``MedicationRequest``, intent ``proposal``):
  the drug's codes and, where the guideline gives a dose, the ``dosage`` (per kg or per m² in
  UCUM, with timing, route and maximum); where it gives none, no dosage and the gap said;
- one ``Evidence`` per bibliographic source (R4 has no Citation resource): title, citation,
  DOI and PMID, findings, evidence type, verification status, and ``exposureBackground`` the
  ``EvidenceVariable`` of the population the source studied (one per population);
- ``package.json`` and ``.index.json``: the FHIR NPM package manifest (FHIR 4.0.1, canonical,
  version) and its index of the resources.

Everything comes from the compiled guideline graph (:func:`jdm_kg.reasoning.recommend.guideline_facts`);
each resource but ``Evidence`` (whose R4 shape is not R4B's) is checked with ``fhir.resources``.
The canonical URLs are :mod:`jdm_kg.outputs.fhir_canonical`'s, which the recommendation output
(:mod:`jdm_kg.outputs.fhir_output`) points at.

>>> package_version("v2027-01-05"), package_version("v2027-01-05-draft")
('2027.1.5', '2027.1.5-draft')
"""

from __future__ import annotations

import json
import re
from typing import Any

from rdflib import RDF, RDFS, SKOS, Graph, URIRef
from rdflib.term import Node

from jdm_kg.knowledge.guideline import JDM, Guideline
from jdm_kg.outputs.fhir_canonical import (
    CANONICAL_BASE,
    PLAN_DEFINITION_ID,
    SELECTION,
    activity_definition_canonical,
    regimen_id,
)
from jdm_kg.outputs.fhir_canonical import fhir_id as _fhir_id
from jdm_kg.outputs.fhir_canonical import local_name as _local
from jdm_kg.outputs.fhir_output import _quantity, checked, drug_codings, regimen_schedule
from jdm_kg.reasoning.dosing import Regimen
from jdm_kg.reasoning.recommend import (
    POLICY_BANDS,
    POLICY_COMPONENT,
    POLICY_CURRENT,
    POLICY_FAILED,
    POLICY_FAILURE,
    POLICY_SCREENING,
    Provenance,
    guideline_facts,
)

__all__ = ["PACKAGE_NAME", "cpg_package", "cpg_resources", "package_version"]

PACKAGE_NAME = "w3id.jdm-kg.guideline"
GUIDELINE_CODES = "https://w3id.org/jdm-kg/guideline"  # the code system of options (as fhir_output's action.code)
FHIR_VERSION = "4.0.1"
DCTERMS_TITLE = URIRef("http://purl.org/dc/terms/title")
DCTERMS_CITATION = URIRef("http://purl.org/dc/terms/bibliographicCitation")

def package_version(version: str) -> str:
    """The package's semantic version from the guideline's ``vYYYY-MM-DD`` (npm versions have no
    leading zeros); a draft keeps its ``-draft`` suffix."""
    match = re.fullmatch(r"v(\d{4})-(\d{2})-(\d{2})(-draft)?", version)
    if not match:
        raise ValueError(f"not a release version: {version!r}")
    return f"{int(match.group(1))}.{int(match.group(2))}.{int(match.group(3))}{match.group(4) or ''}"


def _text(graph: Graph, node: Node, prop: URIRef) -> str | None:
    value = graph.value(node, prop)
    return str(value) if value is not None else None


def _common(kind: str, ident: str, version: str, draft: bool, title: str) -> dict[str, Any]:
    date = version[1:11]
    return {
        "resourceType": kind,
        "id": ident,
        "url": f"{CANONICAL_BASE}/{kind}/{ident}",
        "version": version,
        "name": re.sub(r"[^A-Za-z0-9]", "", title.title())[:60] or ident.replace("-", ""),
        "title": title,
        "status": "draft" if draft else "active",
        "date": date,
        "publisher": "jdm-kg guideline authors",
    }


def _statement_artifact(p: Provenance, kind: str = "citation") -> dict[str, Any]:
    artifact: dict[str, Any] = {"type": kind, "label": p.label[:60], "url": p.statement}
    display = f"\u201c{p.quote}\u201d" + (f" ({p.section})" if p.section else "") if p.quote else p.label
    if p.flags:
        display += f" [evidence: {'; '.join(p.flags)}]"
    artifact["display"] = display
    return artifact


def _evidence_artifacts(p: Provenance, version: str) -> list[dict[str, Any]]:
    out = []
    for source in [*p.sources, *p.related_evidence]:
        if "citation" not in source:  # a citation marker or the reference sheet: not a bibliographic record
            continue
        out.append({"type": "justification", "label": source.get("label", "")[:60], "display": source.get("label"),
                    "citation": source["citation"],
                    "resource": f"{CANONICAL_BASE}/Evidence/{_fhir_id(_local(source['iri']))}|{version}"})
    return out


def _dosage(r: Regimen) -> dict[str, Any]:
    """The guideline's dose of a regimen (per kg or per m², in UCUM) as a ``Dosage``."""
    dosage: dict[str, Any] = {"sequence": 1, "text": r.label}
    if r.dose_min is not None and r.dose_max is not None and r.dose_min == r.dose_max:
        dosage["doseAndRate"] = [{"doseQuantity": _quantity(r.dose_min, r.dose_unit)}]
    elif r.dose_min is not None:
        dosage["doseAndRate"] = [{"doseRange": {"low": _quantity(r.dose_min, r.dose_unit),
                                                "high": _quantity(r.dose_max, r.dose_unit)}}]
    dosage.update(regimen_schedule(r))
    return dosage


def _activity_definition(r: Regimen, version: str, draft: bool, facts: Any, guideline: Guideline) -> dict[str, Any]:
    resource = _common("ActivityDefinition", regimen_id(r.iri), version, draft, r.label)
    resource["experimental"] = True
    resource["description"] = (f"{r.label}, as the guideline gives it." if r.dose_given else
                               f"{r.drug_label}: the guideline gives no dose. jdm-kg never fills the gap.")
    codings = drug_codings(r.drug, guideline)
    resource["kind"] = "MedicationRequest"
    resource["intent"] = "proposal"
    resource["productCodeableConcept"] = {"coding": codings, "text": r.drug_label} if codings else {"text": r.drug_label}
    if r.dose_given and r.dose_min is not None:
        resource["dosage"] = [_dosage(r)]
    related = []
    if r.statement:
        related.append(_statement_artifact(facts.provenance(r.statement), "derived-from"))
        related += _evidence_artifacts(facts.provenance(r.statement), version)
    graph = guideline.graph
    for gap in sorted(graph.objects(URIRef(r.iri), JDM.gap), key=str):  # where the guideline is silent
        related.append({"type": "documentation", "label": (_text(graph, gap, RDFS.label) or _local(str(gap)))[:60],
                        "display": _text(graph, gap, SKOS.definition) or _text(graph, gap, RDFS.label), "url": str(gap)})
    if related:
        resource["relatedArtifact"] = related
    return resource


def _applicability(option: Any, facts: Any) -> str:
    """The conditions under which the guideline offers ``option``, in words; each rule jdm-kg
    adds is named as its policy."""
    parts = ["The guideline applies after JAK inhibitor failure in juvenile dermatomyositis (an episode ended by "
             f"inadequate response, loss of response or intolerance: {facts.policy(POLICY_FAILURE).tag})."]
    named = facts.named_for.get(option.option, [])
    fors = sorted({f"{level} {feature}" for side, level, feature, _, _ in named if side == "for"})
    against = sorted({feature for side, _, feature, _, _ in named if side == "against"})
    if fors:
        parts.append("The guideline names it: " + "; ".join(fors) + ".")
    else:
        parts.append("No sentence of the guideline ties it to a manifestation.")
    if against:
        parts.append("Less suitable where the predominant feature is " + " or ".join(against) + ".")
    if option.ranked:
        parts.append(f"Ranked among the next-line bDMARDs by the patient's predominant manifestations "
                     f"({facts.policy(POLICY_BANDS).tag}).")
    not_offered = [f"when it failed before ({facts.policy(POLICY_FAILED).tag})",
                   f"when the patient is on it now ({facts.policy(POLICY_CURRENT).tag})"]
    if option.components:
        not_offered.append(f"when one of its components failed ({facts.policy(POLICY_COMPONENT).tag})")
    parts.append("Not offered as new " + ", ".join(not_offered) + ".")
    for action, screenings in facts.actions(option.option):
        if action.kind == "safety" and action.timing == "before starting":
            parts.append(f"Before starting: {action.text}" + ("" if action.text.endswith(".") else "."))
            if screenings:
                parts.append("A positive screening result blocks it until a clinician records a clearance "
                             f"({facts.policy(POLICY_SCREENING).tag}).")
    if option.derivation:
        parts.append(option.derivation if option.derivation.endswith(".") else option.derivation + ".")
    return " ".join(parts)


def _option_action(option: Any, facts: Any, version: str) -> dict[str, Any]:
    statements: list[str] = []
    for _, _, _, _, statement in facts.named_for.get(option.option, []):
        if statement not in statements:
            statements.append(statement)
    if option.role_from and option.role_from not in statements:
        statements.insert(0, option.role_from)
    documentation: list[dict[str, Any]] = []
    for statement in statements:
        p = facts.provenance(statement)
        documentation.append(_statement_artifact(p))
        documentation += [a for a in _evidence_artifacts(p, version) if a not in documentation]
    for gap in facts.gaps(option.option):
        documentation.append({"type": "documentation", "label": gap["label"][:60], "display": gap["text"],
                              "url": gap["gap"]})
    regimens = facts.regimens(option.option)
    action: dict[str, Any] = {
        "id": _fhir_id(_local(option.option)),
        "title": option.label,
        "description": _applicability(option, facts),
        "textEquivalent": f"{option.heading}: {option.label}. " + " ".join(
            f"{r.label}." if r.dose_given else f"{r.drug_label}: the guideline gives no dose." for r in regimens),
        "code": [{"coding": [{"system": GUIDELINE_CODES, "code": _local(option.option), "display": option.label}],
                  "text": option.label}],
        "documentation": documentation or None,
    }
    if len(regimens) == 1:
        action["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/action-type", "code": "create"}]}
        action["definitionCanonical"] = activity_definition_canonical(regimens[0].iri, version)
    elif regimens:
        action["groupingBehavior"] = "logical-group"
        action["selectionBehavior"] = "all"
        action["action"] = [{
            "id": f"{action['id']}-{regimen_id(r.iri)}"[:64],
            "title": r.drug_label,
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/action-type", "code": "create"}]},
            "definitionCanonical": activity_definition_canonical(r.iri, version),
        } for r in regimens]
    return {k: v for k, v in action.items() if v is not None}


def _plan_definition(guideline: Guideline, facts: Any, version: str, draft: bool) -> dict[str, Any]:
    graph = guideline.graph
    document = URIRef(f"{GUIDELINE_CODES}/guideline")
    title = _text(graph, document, DCTERMS_TITLE) or "Next line of treatment after JAK inhibitor failure in JDM"
    resource = _common("PlanDefinition", PLAN_DEFINITION_ID, version, draft, title)
    resource["name"] = "JdmKgNextLineAfterJakFailure"
    resource["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type",
                                    "code": "clinical-protocol", "display": "Clinical Protocol"}]}
    resource["experimental"] = True
    resource["description"] = (f"{title}, encoded by jdm-kg {version}: each option the guideline presents, with "
                               "the sentences that name it, the evidence they rest on and its dose regimens.")
    resource["usage"] = ("Decision support prototype, not a prescribing tool. jdm-kg applies this guideline to a "
                         "patient record (jdm-kg recommend, or the CDS Hooks service); its GuidanceResponse names "
                         "this PlanDefinition version in moduleCanonical.")
    resource["copyright"] = "CC BY 4.0 (the guideline graph)"
    related = [{"type": "derived-from", "label": "guideline", "display": title,
                "url": str(document)}]
    if facts.next_line is not None:
        related.append(_statement_artifact(facts.next_line))
    resource["relatedArtifact"] = related
    groups: list[dict[str, Any]] = []
    for candidate in facts.candidates:
        role = _local(candidate.role)
        group = next((g for g in groups if g["id"] == _fhir_id(role)), None)
        if group is None:
            behaviour, why = SELECTION.get(role, ("any", "jdm-kg sets no rule"))
            group = {"id": _fhir_id(role), "title": candidate.heading,
                     "description": f"{candidate.role_label}: {why}.",
                     "groupingBehavior": "logical-group", "selectionBehavior": behaviour, "action": []}
            if role == "NextLineBDMARD" and facts.next_line is not None:
                group["documentation"] = [_statement_artifact(facts.next_line)]
            groups.append(group)
        group["action"].append(_option_action(candidate, facts, version))
    resource["action"] = groups
    return resource


def _sources(graph: Graph, version: str, draft: bool) -> list[dict[str, Any]]:
    """An Evidence per bibliographic source and an EvidenceVariable per population studied."""
    out: list[dict[str, Any]] = []
    variables: dict[str, dict[str, Any]] = {}
    for source in sorted(graph.subjects(RDF.type, JDM.BibliographicSource), key=str):
        label = _text(graph, source, RDFS.label) or _local(str(source))
        population = graph.value(source, JDM.population)
        pop_id = _fhir_id("population-" + (_local(str(population)) if population is not None else "not-stated"))
        if pop_id not in variables:
            pop_label = (_text(graph, population, RDFS.label) if population is not None else None) or \
                "population not stated in jdm-kg's record of the source"
            variable = _common("EvidenceVariable", pop_id, version, draft, f"Population: {pop_label}")
            variable["description"] = (_text(graph, population, SKOS.definition) if population is not None else None) \
                or "jdm-kg records no study population for this source (e.g. a method reference)."
            variable["characteristic"] = [{"description": pop_label, "definitionCodeableConcept": {"text": pop_label}}]
            variables[pop_id] = variable
        evidence = _common("Evidence", _fhir_id(_local(str(source))), version, draft,
                           _text(graph, source, DCTERMS_TITLE) or label)
        evidence["description"] = _text(graph, source, SKOS.definition) or label
        identifiers = []
        doi = _text(graph, source, JDM.doi)
        pmid = _text(graph, source, JDM.pmid)
        if doi:
            identifiers.append({"system": "https://doi.org", "value": doi})
        if pmid:
            identifiers.append({"system": "https://pubmed.ncbi.nlm.nih.gov", "value": pmid.removeprefix("PMID:")})
        if identifiers:
            evidence["identifier"] = identifiers
        notes = []
        for prop, words in ((JDM.findings, "Findings"), (SKOS.editorialNote, "Note")):
            for value in sorted(str(v) for v in graph.objects(source, prop)):
                notes.append({"text": f"{words}: {value}"})
        for prop, words in ((JDM.evidenceType, "Evidence type"), (JDM.verificationStatus, "Verification")):
            node = graph.value(source, prop)
            if node is not None:
                notes.append({"text": f"{words}: {_text(graph, node, RDFS.label) or _local(str(node))}"})
        if notes:
            evidence["note"] = notes
        artifact: dict[str, Any] = {"type": "citation", "label": label[:60],
                                    "citation": _text(graph, source, DCTERMS_CITATION) or label}
        if doi:
            artifact["url"] = f"https://doi.org/{doi}"
        evidence["relatedArtifact"] = [artifact]
        evidence["exposureBackground"] = {"reference": f"EvidenceVariable/{pop_id}", "display": variables[pop_id]["title"]}
        out.append(evidence)
    return out + [variables[k] for k in sorted(variables)]


def cpg_resources(guideline: Guideline, version: str, draft: bool = False) -> list[dict[str, Any]]:
    """The package's resources, PlanDefinition first, each checked (see the module docstring)."""
    facts = guideline_facts(guideline)
    plan = _plan_definition(guideline, facts, version, draft)
    regimens: dict[str, Regimen] = {}
    for candidate in facts.candidates:
        for r in facts.regimens(candidate.option):
            regimens.setdefault(r.iri, r)
    activities = [_activity_definition(r, version, draft, facts, guideline) for _, r in sorted(regimens.items())]
    resources = [plan, *activities, *_sources(guideline.graph, version, draft)]
    return [r if r["resourceType"] == "Evidence" else checked(r) for r in resources]


def cpg_package(guideline: Guideline, version: str, draft: bool = False) -> dict[str, str]:
    """The package's files (path under ``fhir/`` -> JSON text): ``package/package.json``,
    ``package/.index.json`` and one ``package/{Type}-{id}.json`` per resource."""
    resources = cpg_resources(guideline, version, draft)
    files: dict[str, str] = {}
    index = []
    for r in resources:
        name = f"{r['resourceType']}-{r['id']}.json"
        files[f"package/{name}"] = json.dumps(r, indent=2, ensure_ascii=False) + "\n"
        index.append({"filename": name, "resourceType": r["resourceType"], "id": r["id"], "url": r["url"],
                      "version": r["version"]})
    manifest = {
        "name": PACKAGE_NAME,
        "version": package_version(version),
        "title": "jdm-kg: next line of treatment after JAK inhibitor failure in JDM (computable guideline)",
        "description": f"jdm-kg guideline {version} as FHIR R4 knowledge resources (HL7 CPG): PlanDefinition, "
                       "ActivityDefinitions, Evidence.",
        "canonical": CANONICAL_BASE,
        "url": CANONICAL_BASE,
        "fhirVersions": [FHIR_VERSION],
        "type": "fhir.ig",
        "license": "CC-BY-4.0",
        "author": "jdm-kg guideline authors",
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
    }
    files["package/package.json"] = json.dumps(manifest, indent=2) + "\n"
    files["package/.index.json"] = json.dumps({"index-version": 1, "files": index}, indent=2) + "\n"
    return dict(sorted(files.items()))
