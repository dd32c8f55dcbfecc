"""Patient-specific doses from the guideline's structured regimens, with exact decimals.

Body surface area by the Mosteller formula, BSA (m²) = sqrt(height cm × weight kg / 3600)
(Mosteller RD, N Engl J Med 1987;317:1098). Doses are computed from the unrounded BSA and
weight and rounded half-up to 0.1 of the dose unit; BSA is shown to 2 decimals. Practical
rounding to vial or tablet sizes is left to the prescriber and said so.

>>> mosteller_bsa(Decimal("140"), Decimal("35")).quantize(Decimal("0.01"))
Decimal('1.17')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, getcontext
from typing import Any

__all__ = ["BodyMeasures", "ComputedDose", "Regimen", "mosteller_bsa", "compute_dose", "reading", "span", "ROUNDING_NOTE"]

getcontext().prec = 28

ROUNDING_NOTE = (
    "Doses are calculated from unrounded weight and BSA and rounded half-up to 0.1 of the unit; "
    "BSA is shown to 2 decimals. Rounding to available vial or tablet sizes is the prescriber's decision."
)
BSA_FORMULA = "BSA (m²) = sqrt(height cm × weight kg / 3600) (Mosteller 1987)"
_TENTH = Decimal("0.1")


def mosteller_bsa(height_cm: Decimal, weight_kg: Decimal) -> Decimal:
    """Body surface area in m² by the Mosteller formula, unrounded."""
    return (height_cm * weight_kg / Decimal(3600)).sqrt()


def _round(value: Decimal) -> Decimal:
    return value.quantize(_TENTH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BodyMeasures:
    """Weight and height usable for dosing, or the reason each is not usable."""

    weight_kg: Decimal | None
    height_cm: Decimal | None
    weight_problem: str | None = None
    height_problem: str | None = None
    weight_date: date | None = None
    height_date: date | None = None
    weight_node: Any = None
    height_node: Any = None

    @property
    def bsa(self) -> Decimal | None:
        if self.weight_kg is None or self.height_cm is None:
            return None
        return mosteller_bsa(self.height_cm, self.weight_kg)


@dataclass(frozen=True)
class Regimen:
    """A structured regimen from the graph (see ``queries/regimen.rq``)."""

    iri: str
    drug: str
    drug_label: str
    label: str
    dose_given: bool
    dose_min: Decimal | None = None
    dose_max: Decimal | None = None
    dose_unit: str | None = None  # UCUM, e.g. "mg/m2"
    basis: str | None = None  # "kg" or "m2"
    route: str | None = None
    interval_min: Decimal | None = None
    interval_max: Decimal | None = None
    interval_unit: str | None = None
    number_of_doses: int | None = None
    administration_days: int | None = None
    schedule_text: str | None = None
    max_dose: Decimal | None = None
    max_dose_unit: str | None = None
    max_dose_source: str | None = None
    statement: str | None = None

    def schedule(self) -> str | None:
        """How often, in words: the interval when the dose is split over days (the split is said
        with the amount), else the guideline's own schedule text."""
        if self.administration_days and self.administration_days > 1 and self.interval_min is not None:
            words = {"d": "days", "wk": "weeks", "mo": "months"}.get(self.interval_unit or "", self.interval_unit)
            return f"every {span(self.interval_min, self.interval_max)} {words}"
        return self.schedule_text

    @property
    def amount_unit(self) -> str | None:
        return self.dose_unit.split("/", 1)[0] if self.dose_unit else None


@dataclass(frozen=True)
class ComputedDose:
    """The dose a regimen works out to for one patient, or why it could not be worked out."""

    regimen: Regimen
    status: str  # "computed", "missing-data", "not-given", "not-computed" (the regimen's unit and basis disagree)
    low: Decimal | None = None
    high: Decimal | None = None
    unit: str | None = None
    per_day_low: Decimal | None = None
    per_day_high: Decimal | None = None
    basis_value: Decimal | None = None
    basis_text: str | None = None
    formula: str | None = None
    notes: list[str] = field(default_factory=list)
    measures_used: tuple[str, ...] = ()
    uncapped_low: Decimal | None = None  # set when the worked-out range passed the regimen's maximum
    uncapped_high: Decimal | None = None
    split_policy: str | None = None  # "jdm-kg policy: ..." behind the amount a day of a dose given over several days

    @property
    def per(self) -> str:
        """'per course' for a dose split over several days (IVIG's 2 g/kg), else 'per dose'."""
        days = self.regimen.administration_days
        return "per course" if days and days > 1 else "per dose"

    def amount(self) -> str:
        """The amount in words: a capped range is the cap, with the uncapped range said."""
        r = self.regimen
        if self.uncapped_low is not None:
            source = f" from {r.max_dose_source}, not from the guideline" if r.max_dose_source else ""
            worked = f"{r.dose_min}-{r.dose_max} {r.dose_unit} works out to {self.uncapped_low}-{self.uncapped_high} {self.unit}"
            if self.low == self.high:  # the whole range is above the maximum: the cap
                return f"{self.high} {self.unit} {self.per} (the maximum{source}; {worked})"
            return (f"{self.low}-{self.high} {self.unit} {self.per} (top end capped at the maximum{source}; "
                    f"{worked})")
        text = f"{span(self.low, self.high)} {self.unit} {self.per}"
        if self.per_day_low is not None:
            text += f", given as {span(self.per_day_low, self.per_day_high)} {self.unit} a day over {r.administration_days} days"
            if self.split_policy:  # the guideline gives the course "over 2 days": the split is arithmetic
                text += f" ({self.split_policy})"
        return text

    def summary(self) -> str:
        r = self.regimen
        if self.status == "not-given":
            return f"{r.drug_label}: the guideline gives no dose."
        if self.status == "missing-data":
            return f"{r.drug_label}: {r.label}; dose not worked out: " + "; ".join(self.notes)
        text = f"{r.drug_label}: {self.amount()} ({r.label}; {self.basis_text})"
        if r.number_of_doses:
            text += f", {r.number_of_doses} doses"
        return text


def compute_dose(regimen: Regimen, body: BodyMeasures) -> ComputedDose:
    """Work out ``regimen`` for ``body``; never guesses a missing or stale measure."""
    if not regimen.dose_given or regimen.dose_min is None or regimen.dose_max is None:
        return ComputedDose(regimen, "not-given", notes=["The guideline gives no dose for this drug."])
    per = regimen.dose_unit.rsplit("/", 1)[1] if regimen.dose_unit and "/" in regimen.dose_unit else None
    if regimen.basis in ("kg", "m2") and per != regimen.basis:  # a slip in the guideline graph: never multiply it out
        return ComputedDose(regimen, "not-computed", notes=[
            f"the guideline graph's dose unit {regimen.dose_unit!r} does not match its basis (per {regimen.basis}); "
            "jdm-kg check reports it: correct the regimen"])
    if regimen.basis == "kg":
        if body.weight_kg is None:
            return ComputedDose(regimen, "missing-data", notes=[body.weight_problem or "no usable body weight"])
        factor = body.weight_kg
        basis_text = f"weight {reading(body.weight_kg)} kg"
        formula = f"{regimen.dose_unit} × weight (kg)"
        used: tuple[str, ...] = ("weight",)
    elif regimen.basis == "m2":
        problems = [p for p in (body.weight_problem, body.height_problem) if p]
        if body.bsa is None:
            return ComputedDose(regimen, "missing-data", notes=problems or ["no usable weight and height for BSA"])
        factor = body.bsa
        basis_text = f"BSA {_bsa_text(body)} m² from {reading(body.height_cm)} cm and {reading(body.weight_kg)} kg"
        formula = f"{regimen.dose_unit} × BSA; {BSA_FORMULA}"
        used = ("weight", "height")
    else:
        return ComputedDose(regimen, "missing-data", notes=[f"unknown dose basis {regimen.basis!r}"])
    low, high = _round(regimen.dose_min * factor), _round(regimen.dose_max * factor)
    notes = []
    uncapped_low = uncapped_high = None
    if regimen.max_dose is not None and regimen.max_dose_unit == regimen.amount_unit:
        if high > regimen.max_dose:
            notes.append(
                f"capped at the maximum of {regimen.max_dose} {regimen.max_dose_unit} per dose "
                f"(uncapped {low}-{high} {regimen.amount_unit})"
            )
            uncapped_low, uncapped_high = low, high
            cap = _round(regimen.max_dose)
            low, high = min(low, cap), cap
    per_day_low = per_day_high = None
    if regimen.administration_days and regimen.administration_days > 1:
        days = Decimal(regimen.administration_days)
        per_day_low, per_day_high = _round(low / days), _round(high / days)
    return ComputedDose(
        regimen,
        "computed",
        low=low,
        high=high,
        unit=regimen.amount_unit,
        per_day_low=per_day_low,
        per_day_high=per_day_high,
        basis_value=factor,
        basis_text=basis_text,
        formula=formula,
        notes=notes,
        measures_used=used,
        uncapped_low=uncapped_low,
        uncapped_high=uncapped_high,
    )


def span(low: object, high: object) -> str:
    """``low-high``, or one number when they are equal.

    >>> span(Decimal("3"), Decimal("5")), span(Decimal("375"), Decimal("375"))
    ('3-5', '375')
    """
    return str(low) if low == high else f"{low}-{high}"


def reading(value: Decimal) -> str:
    """A measure rounded to 0.1 for reading (the dose is worked out from the exact value).

    >>> reading(Decimal("31.978262085")), reading(Decimal("35"))
    ('32.0', '35')
    """
    rounded = value.quantize(_TENTH, rounding=ROUND_HALF_UP)
    return str(value) if rounded == value else str(rounded)


def _bsa_text(body: BodyMeasures) -> str:
    bsa = body.bsa
    return str(bsa.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) if bsa is not None else "?"
