"""The clinicians' web page: enter a patient (or upload a file), see the one-screen
recommendation, expand any option for its reasons with quotes and sources, print it.

Jinja2 templates (autoescaped) and one stylesheet ship in the package (``templates/``,
``static/``): no CDN, no external font, no script needed to use it. Every field has a label;
options expand with ``<details>``, which a keyboard opens with Enter or Space.

The form becomes a patient graph with rdflib terms (never text pasted into Turtle or SPARQL):
each coded choice must be one the guideline graph lists.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from jdm_kg.knowledge.guideline import JDM, JDMG
from jdm_kg.outputs.report import dose_evidence
from jdm_kg.reasoning.dosing import reading
from jdm_kg.reasoning.recommend import PatientResult
from jdm_kg.service.core import Core
from jdm_kg.service.problems import Problem

__all__ = ["TREATMENT_ROWS", "form_graph", "web_routes"]

_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
TREATMENT_ROWS = 4
_UPLOAD_TYPES = {".ttl": "text/turtle", ".nt": "application/n-triples", ".jsonld": "application/ld+json",
                 ".json": "application/json"}


def _choices(core: Core) -> dict[str, list[tuple[str, str]]]:
    graph = core.guideline.graph
    out = {}
    for kind in ("Manifestation", "Drug", "TreatmentOutcome", "ScreenedCondition", "ScreeningOutcome"):
        out[kind] = sorted(((str(s), str(graph.value(s, RDFS.label) or s)) for s in graph.subjects(RDF.type, JDM[kind])),
                           key=lambda item: item[1])
    return out


def _number(form: FormData, name: str, label: str, errors: list[str]) -> Decimal | None:
    raw = str(form.get(name) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors.append(f"{label}: {raw!r} is not a number")
        return None
    if not value.is_finite() or value <= 0:
        errors.append(f"{label}: must be a positive number")
        return None
    return value


def _day(form: FormData, name: str, label: str, errors: list[str]) -> date | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}: {raw!r} is not a date (YYYY-MM-DD)")
        return None


def _coded(form: FormData, name: str, allowed: list[tuple[str, str]], label: str, errors: list[str]) -> URIRef | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    if raw not in {iri for iri, _ in allowed}:
        errors.append(f"{label}: {raw!r} is not one of the guideline's choices")
        return None
    return URIRef(raw)


def form_graph(form: FormData, choices: dict[str, list[tuple[str, str]]], today: date) -> tuple[Graph, list[str]]:
    """The patient graph the form describes, and the problems found in the form."""
    errors: list[str] = []
    g = Graph()
    patient = URIRef(f"urn:uuid:{uuid.uuid4()}")
    g.add((patient, RDF.type, JDM.Patient))
    g.add((patient, JDM.patientId, Literal(str(form.get("patientId") or "").strip()[:64] or "web-form")))
    g.add((patient, JDM.diagnosis, JDMG.JuvenileDermatomyositis))
    record_date = _day(form, "recordDate", "Record date", errors) or today
    g.add((patient, JDM.recordDate, Literal(record_date, datatype=XSD.date)))
    birth = _day(form, "birthDate", "Birth date", errors)
    age = _number(form, "ageYears", "Age", errors)
    if birth:
        g.add((patient, JDM.birthDate, Literal(birth, datatype=XSD.date)))
    elif age is not None:
        g.add((patient, JDM.ageYears, Literal(age, datatype=XSD.decimal)))
    else:
        errors.append("Age or birth date: give one")
    sex = str(form.get("sex") or "").strip()
    if sex in ("female", "male", "other", "unknown"):
        g.add((patient, JDM.sex, Literal(sex)))
    measured = _day(form, "measuredOn", "Measured on", errors) or record_date
    for name, prop, unit, label in (("weightKg", JDM.bodyWeight, "kg", "Weight"),
                                    ("heightCm", JDM.bodyHeight, "cm", "Height")):
        value = _number(form, name, label, errors)
        if value is not None:
            node = BNode()
            g.add((patient, prop, node))
            g.add((node, JDM.value, Literal(value, datatype=XSD.decimal)))
            g.add((node, JDM.unit, Literal(unit)))
            g.add((node, JDM.date, Literal(measured, datatype=XSD.date)))
    predominant = set(form.getlist("predominant"))
    for iri in form.getlist("manifestation"):
        if iri not in {i for i, _ in choices["Manifestation"]}:
            errors.append(f"Manifestation: {iri!r} is not one of the guideline's choices")
            continue
        node = BNode()
        g.add((patient, JDM.hasManifestation, node))
        g.add((node, JDM.manifestation, URIRef(iri)))
        g.add((node, JDM.predominant, Literal(iri in predominant)))
    for row in range(TREATMENT_ROWS):
        drug = _coded(form, f"drug{row}", choices["Drug"], f"Treatment {row + 1} drug", errors)
        if drug is None:
            continue
        node = BNode()
        g.add((patient, JDM.treatmentEpisode, node))
        g.add((node, JDM.drug, drug))
        for field, prop, label in ((f"start{row}", JDM.startDate, "start"), (f"end{row}", JDM.endDate, "end")):
            day = _day(form, field, f"Treatment {row + 1} {label}", errors)
            if day:
                g.add((node, prop, Literal(day, datatype=XSD.date)))
        outcome = _coded(form, f"outcome{row}", choices["TreatmentOutcome"], f"Treatment {row + 1} outcome", errors)
        if outcome is not None:
            g.add((node, JDM.outcome, outcome))
    for iri, label in choices["ScreenedCondition"]:
        key = iri.rsplit("/", 1)[-1]
        result = _coded(form, f"screen-{key}", choices["ScreeningOutcome"], f"{label} screening result", errors)
        if result is None:
            continue
        node = BNode()
        g.add((patient, JDM.screening, node))
        g.add((node, JDM.screenedFor, URIRef(iri)))
        g.add((node, JDM.result, result))
        day = _day(form, f"screenDate-{key}", f"{label} screening date", errors)
        g.add((node, JDM.date, Literal(day or record_date, datatype=XSD.date)))
    return g, errors


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_TEMPLATES.get_template(name).render(**context), status_code=status)


def _tied(result: PatientResult, option: Any) -> bool:
    """Whether another ranked option in play shares this option's rank."""
    return option.rank is not None and any(
        o is not option and o.ranked and o.rank == option.rank and o.status in ("offered", "blocked") for o in result.options)


def _sections(result: PatientResult) -> list[tuple[str, list[Any]]]:
    sections: dict[str, list[Any]] = {}
    for option in result.options:
        sections.setdefault(option.section_heading, []).append(option)
    return list(sections.items())


def _whatif_line(result: PatientResult, option: Any) -> str | None:
    """The page's line under an option: its shortest what-if (none for a drug that failed or is
    being given: no record change would offer it)."""
    from jdm_kg.outputs.whatif_report import shortest_line

    return None if option.status in ("excluded", "current") else shortest_line(result, option.option)


def web_routes(core: Core) -> list[Route]:
    choices = _choices(core)

    def form_page(status: int = 200, errors: list[str] | None = None, values: dict[str, Any] | None = None) -> Response:
        return _page("form.html", status, choices=choices, rows=range(TREATMENT_ROWS), errors=errors or [],
                     values=values or {}, version=core.guideline.version,
                     today=(core.config.today or date.today()).isoformat())

    def results_page(results: list[PatientResult], source: str, issues: list[Any]) -> Response:
        return _page("results.html", results=results, sections=_sections, source=source, issues=issues,
                     version=core.guideline.version, reading=reading, dose_evidence=dose_evidence, tied=_tied,
                     whatif=_whatif_line)

    async def index(request: Request) -> Response:
        if request.method == "GET":
            return form_page()
        form = await request.form(max_files=1, max_fields=200)
        try:
            upload = form.get("file")
            if isinstance(upload, UploadFile) and upload.filename:
                suffix = Path(upload.filename).suffix.lower()
                if suffix not in _UPLOAD_TYPES:
                    return form_page(422, [f"{upload.filename}: use a .ttl, .nt, .jsonld or .json (FHIR) file"])
                body = await upload.read()
                name = Path(upload.filename).name[:100]
                source = name
                report, results = await core.evaluate(body, _UPLOAD_TYPES[suffix], source, request, whatif=True)
            else:
                graph, errors = form_graph(form, choices, core.config.today or date.today())
                if errors:
                    return form_page(422, errors, {k: form.getlist(k) for k in form})
                source = "web form"
                report, results = await core.evaluate_graph(graph, source, request, whatif=True)
        except Problem as problem:
            return form_page(400 if problem.kind == "invalid-input" else 422, [problem.detail])
        finally:
            await form.close()
        if not results:
            return form_page(422, [i.line(source) for i in report.issues] or [f"{source}: no patient record found"])
        return results_page(results, source, report.issues)

    async def stored_report(request: Request) -> Response:
        results = core.report(request.path_params["token"])
        if results is None:
            return _page("gone.html", 404)
        return results_page(results, "CDS Hooks request", [i for r in results for i in r.issues])

    return [Route("/", index, methods=["GET", "POST"]), Route("/report/{token}", stored_report, methods=["GET"])]
