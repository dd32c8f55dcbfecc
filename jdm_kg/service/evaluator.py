"""The work behind the service's routes, without HTTP: read a patient body, validate, recommend,
answer a SPARQL query. One :class:`Evaluator` is built per worker process (see
:mod:`jdm_kg.service.workers`; or once in the service's own process with ``workers=0``), with the
compiled guideline, the shapes and the SPARQL store built once and shared read-only by every
request; each request's patient is a small graph of its own beside them.
"""

from __future__ import annotations

from typing import Any

from rdflib import Graph

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import check_values, is_fhir, load_json, parse_rdf_text
from jdm_kg.knowledge.guideline import Guideline, load_guideline
from jdm_kg.reasoning.engines import EngineChoice
from jdm_kg.reasoning.recommend import PatientResult, recommend_graphs
from jdm_kg.reasoning.validation import ValidationReport, validate_graph
from jdm_kg.service.config import ServiceConfig
from jdm_kg.service.problems import Problem

__all__ = ["INPUT_TYPES", "Evaluator"]

#: Media type -> how the body is read ("turtle", "json-ld", "fhir", or "json": FHIR or JSON-LD by content).
INPUT_TYPES = {
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
    "application/n-triples": "nt",
    "application/ld+json": "json-ld",
    "application/fhir+json": "fhir",
    "application/json": "json",
}


class Evaluator:
    """The compiled guideline, the query engine and the SPARQL store, and what is done with them."""

    def __init__(self, config: ServiceConfig, guideline: Guideline | None = None) -> None:
        self.config = config
        self.guideline: Guideline = guideline or load_guideline()
        self.engine: EngineChoice = config.engine
        if config.endpoint:
            from jdm_kg.reasoning.endpoint import Endpoint

            self.engine = Endpoint(config.endpoint, config.update or config.endpoint)
        self._sparql: Any = None

    @property
    def sparql(self) -> Any:
        """The SPARQL store (the guideline and the ``--data`` files), built on first use."""
        if self._sparql is None:
            from jdm_kg.service.sparql import SparqlStore

            self._sparql = SparqlStore(self.guideline, self.config.data, self.config.sparql_max_rows,
                                       self.config.sparql_timeout)
        return self._sparql

    def warm(self) -> None:
        """Compute what every request shares (guideline facts, code maps, the shapes, the query
        texts) before the first request."""
        from jdm_kg.outputs.fhir_output import drug_codings

        drug_codings("", self.guideline)
        if isinstance(self.engine, str):  # a first evaluation fills the per-guideline caches
            self.recommend(_warm_up_patient(), "warm-up")
        for body, kind in _WARM_UP_BODIES:  # the readers' imports and tables (FHIR models: a second)
            self.parse(body, kind, "warm-up")
        _ = self.sparql

    # ------------------------------------------------------------------ input
    def parse(self, body: bytes, media_type: str, source: str = "request body") -> Graph:
        """The patient graph in ``body``, read as ``media_type`` says (415 for another type)."""
        kind = INPUT_TYPES.get(media_type)
        if kind is None:
            raise Problem("unsupported-media-type",
                          f"Content-Type {media_type or '(none)'!r} is not read; send one of: "
                          + ", ".join(INPUT_TYPES))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Problem("invalid-input", f"{source}: not UTF-8 text (byte {err.start})") from None
        if not text.strip():
            raise Problem("invalid-input", f"{source}: the body is empty; send a patient record")
        try:  # the same limits as the command line's (depth, list length, values, literal size)
            if kind == "fhir" or (kind == "json" and is_fhir(text)):
                from jdm_kg.inputs.fhir import fhir_to_graph

                load_json(text, source)
                graph = fhir_to_graph(text, source, self.guideline)
            else:
                graph = parse_rdf_text(text, "json-ld" if kind == "json" else kind, source)
            check_values(graph, source)
            return graph
        except InputError as err:
            raise Problem("invalid-input", str(err)) from None
        except RecursionError:
            raise Problem("invalid-input", f"{source}: nested too deeply to read") from None

    # ------------------------------------------------------------------ work
    def recommend(self, graph: Graph, source: str, text: str = "") -> tuple[ValidationReport, list[PatientResult]]:
        try:  # (``text``: the body, for the lines of validation messages; never a file named by ``source``)
            # without pySHACL's report graph: no answer of /recommend shows it (/validate does), and a
            # worker would copy it to send it back
            return recommend_graphs([(source, graph)], self.guideline, self.config.today, self.engine,
                                    keep_shacl=False, texts={source: text})[0]
        except InputError as err:
            raise Problem("unprocessable", str(err)) from None

    def validate(self, graph: Graph, source: str, text: str = "") -> ValidationReport:
        try:  # (``text``: the body, for the lines of the messages; never a file named by ``source``)
            return validate_graph(graph, source, self.guideline, text=text)
        except InputError as err:
            raise Problem("unprocessable", str(err)) from None

    def whatif(self, body: bytes, media_type: str, source: str, option: str | None, depth: int,
               markdown: bool) -> tuple[ValidationReport, Any]:
        """(validation report, the what-if answer as Markdown text or as JSON-ready data)."""
        from jdm_kg.outputs.whatif_report import whatif_json, whatif_text
        from jdm_kg.reasoning.whatif import Baseline, what_if

        graph = self.parse(body, media_type, source)
        report, results = self.recommend(graph, source, body.decode("utf-8"))
        found = [what_if(Baseline(graph, r.record, r, source, self.guideline, self.config.today), option, depth)
                 for r in results]
        if markdown:
            return report, "\n\n".join(whatif_text(r, markdown=True) for r in found) if found else None
        return report, whatif_json(found)

    def do(self, job: tuple[Any, ...]) -> Any:
        """One job, as the service sends it to a worker:

        - ``("recommend", body, media_type, source, lines, whatif)`` -> (validation report, results;
          ``whatif``: each result carries the shortest what-if of its options not offered or not first);
        - ``("whatif", body, media_type, source, option, depth, markdown)`` -> see :meth:`whatif`;
        - ``("validate", body, media_type, source, lines)`` -> validation report
          (``lines``: messages carry the body's line numbers);
        - ``("sparql", query_text, accept)`` -> (media type, answer bytes, truncated?).

        A request the service refuses raises :class:`Problem`.
        """
        kind = job[0]
        if kind == "recommend":
            graph = self.parse(job[1], job[2], job[3])  # (refuses a body that is not UTF-8)
            answer = self.recommend(graph, job[3], job[1].decode("utf-8") if job[4] else "")
            if job[5]:
                from jdm_kg.reasoning.whatif import shortest_lines

                shortest_lines(graph, answer[1], self.guideline, job[3], self.config.today)
            return answer
        if kind == "validate":
            graph = self.parse(job[1], job[2], job[3])
            return self.validate(graph, job[3], job[1].decode("utf-8") if job[4] else "")
        if kind == "whatif":
            return self.whatif(*job[1:])
        if kind == "sparql":
            return self.sparql.answer(job[1], job[2])
        raise ValueError(f"unknown job {kind!r}")


_WARM_UP_BODIES = [
    (b'{"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:warm-up", "resource": '
     b'{"resourceType": "Patient", "id": "warm-up", "birthDate": "2015-01-01"}}]}', "application/fhir+json"),
    (b'{"@context": "https://w3id.org/jdm-kg/context.jsonld", "@id": "urn:jdm-kg:warm-up", "@type": "Patient", '
     b'"patientId": "warm-up"}', "application/ld+json"),
    (b"<urn:jdm-kg:warm-up> <https://w3id.org/jdm-kg/vocab#patientId> \"warm-up\" .", "text/turtle"),
]


def _warm_up_patient() -> Graph:
    """A synthetic record (JDM, a JAK-inhibitor failure) used once at start-up, never shown."""
    from rdflib import RDF, XSD, BNode, Literal, URIRef

    from jdm_kg.knowledge.guideline import JDM, JDMG

    g = Graph()
    patient = URIRef("urn:jdm-kg:warm-up")
    episode = BNode()
    g.add((patient, RDF.type, JDM.Patient))
    g.add((patient, JDM.patientId, Literal("warm-up")))
    g.add((patient, JDM.ageYears, Literal(10)))
    g.add((patient, JDM.diagnosis, JDMG.JuvenileDermatomyositis))
    g.add((patient, JDM.treatmentEpisode, episode))
    g.add((episode, JDM.drug, JDMG.baricitinib))
    g.add((episode, JDM.startDate, Literal("2020-01-01", datatype=XSD.date)))
    g.add((episode, JDM.endDate, Literal("2020-06-01", datatype=XSD.date)))
    g.add((episode, JDM.outcome, JDM.LossOfResponse))
    return g
