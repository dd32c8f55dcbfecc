"""What the input readers need from the guideline, handed down to them by the layers above.

The readers map a record's words and FHIR codes to the guideline's terms (its labels, its SKOS
code mappings): tables of rows worked out from the compiled guideline. The readers never import
the knowledge or reasoning layers for them; those layers register, when they are imported, the
guideline to use when a caller gives none (:mod:`jdm_kg.knowledge.guideline`) and how to read a
named bundled query's rows off a guideline (:mod:`jdm_kg.reasoning.engines`, Oxigraph: ms, where
rdflib takes seconds). ``import jdm_kg`` registers both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: no import of the layer above at run time
    from jdm_kg.knowledge.guideline import Guideline

__all__ = ["provide", "default_guideline", "guideline_rows"]

_provided: dict[str, Callable[..., Any]] = {}


def provide(*, default_guideline: Callable[[], Guideline] | None = None,
            guideline_rows: Callable[[Guideline, str], list[Any]] | None = None) -> None:
    """Register the guideline to use when none is given, or the reader of a query's rows."""
    if default_guideline is not None:
        _provided["default_guideline"] = default_guideline
    if guideline_rows is not None:
        _provided["guideline_rows"] = guideline_rows


def _get(name: str) -> Callable[..., Any]:
    try:
        return _provided[name]
    except KeyError:
        raise RuntimeError(f"jdm-kg: no {name} registered; import jdm_kg first") from None


def default_guideline() -> Guideline:
    """The bundled guideline, compiled (:func:`jdm_kg.knowledge.guideline.load_guideline`)."""
    return _get("default_guideline")()  # type: ignore[no-any-return]


def guideline_rows(guideline: Guideline, query: str) -> list[Any]:
    """The rows of the bundled query named ``query`` (``"term-labels"``, ``"fhir-codes"``) over ``guideline``."""
    return _get("guideline_rows")(guideline, query)  # type: ignore[no-any-return]
