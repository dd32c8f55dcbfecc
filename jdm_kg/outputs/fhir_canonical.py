"""Where jdm-kg's FHIR knowledge resources live: the canonical URLs of the guideline's
PlanDefinition and of each dose regimen's ActivityDefinition (the package ``jdm-kg release``
writes, :mod:`jdm_kg.outputs.fhir_cpg`), and how a report section's options may be chosen
together. The recommendation output (:mod:`jdm_kg.outputs.fhir_output`) points at them.

>>> plan_definition_canonical("v2026-11-24")
'https://w3id.org/jdm-kg/fhir/PlanDefinition/jdm-kg-next-line-after-jak-failure|v2026-11-24'
>>> section_selection("https://w3id.org/jdm-kg/vocab#NextLineBDMARD")
'at-most-one'
"""

from __future__ import annotations

import re

__all__ = [
    "CANONICAL_BASE",
    "PLAN_DEFINITION_ID",
    "SELECTION",
    "activity_definition_canonical",
    "fhir_id",
    "local_name",
    "plan_definition_canonical",
    "regimen_id",
    "section_selection",
]

#: Where jdm-kg's FHIR conformance and knowledge resources live (``{base}/{type}/{id}``).
CANONICAL_BASE = "https://w3id.org/jdm-kg/fhir"
PLAN_DEFINITION_ID = "jdm-kg-next-line-after-jak-failure"
#: How a report section's options may be chosen together (jdm-kg's reading, said in the action).
SELECTION = {
    "NextLineBDMARD": ("at-most-one", "one next-line bDMARD at a time (jdm-kg's reading of 'the next line is a bDMARD')"),
    "AdjunctiveTherapy": ("any", "an adjunct is considered alongside"),
    "RefractoryCombination": ("at-most-one", "the escalation is one combination"),
}


def local_name(iri: str) -> str:
    return iri.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def fhir_id(text: str) -> str:
    """An id FHIR accepts (``[A-Za-z0-9-.]{1,64}``) from an IRI's local name."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def regimen_id(regimen_iri: str) -> str:
    return fhir_id(local_name(regimen_iri))


def plan_definition_canonical(version: str) -> str:
    """The guideline's PlanDefinition, as a versioned canonical (``url|version``)."""
    return f"{CANONICAL_BASE}/PlanDefinition/{PLAN_DEFINITION_ID}|{version}"


def activity_definition_canonical(regimen_iri: str, version: str) -> str:
    """A dose regimen's ActivityDefinition, as a versioned canonical."""
    return f"{CANONICAL_BASE}/ActivityDefinition/{regimen_id(regimen_iri)}|{version}"


def section_selection(role_iri: str) -> str:
    """How the options of a report section may be chosen together (``selectionBehavior``), for
    the PlanDefinition and the RequestGroups that follow it."""
    return SELECTION.get(local_name(role_iri), ("any", ""))[0]
