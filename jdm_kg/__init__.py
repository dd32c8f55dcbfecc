"""jdm-kg: the guideline "Next line of treatment after JAK inhibitor failure in JDM" as a
knowledge graph, with SHACL validation of patient records and explained recommendations.

>>> from jdm_kg import load_guideline
>>> load_guideline().version
'v2026-11-24'
"""

from __future__ import annotations

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import load_patient_file, load_rdf_file
from jdm_kg.knowledge.guideline import Guideline, load_guideline
from jdm_kg.reasoning.engines import EngineChoice
from jdm_kg.reasoning.recommend import OptionAssessment, PatientResult, recommend_graph
from jdm_kg.reasoning.validation import ValidationReport, set_aside_ill_typed, validate_file, validate_graph
from jdm_kg.version import __version__


def recommend_file(path: str, engine: EngineChoice = "rdflib",
                   predominant: tuple[str, ...] | list[str] = ()) -> tuple[ValidationReport, list[PatientResult]]:
    """Validate and assess every patient record in the file at ``path`` (Turtle, JSON-LD or FHIR JSON);
    ``predominant``: manifestations (names such as ``"SkinDisease"`` or ``"skin disease"``) to mark
    predominant in every record."""
    return recommend_graph(set_aside_ill_typed(load_patient_file(path, predominant)), str(path), engine=engine)


__all__ = [
    "__version__",
    "InputError",
    "Guideline",
    "load_guideline",
    "load_rdf_file",
    "load_patient_file",
    "validate_file",
    "validate_graph",
    "ValidationReport",
    "recommend_file",
    "recommend_graph",
    "PatientResult",
    "OptionAssessment",
]
