"""The work behind every route: the guideline compiled once, patient data read by media type,
recommendations computed under the service's limits.

Recommendation is CPU-bound Python: one evaluation runs at a time (a lock; the interpreter
would serialise it anyway), in a worker thread so the event loop keeps answering. At most
``max_concurrent`` requests may wait for it; more are refused with 503 at once. A request
whose work passes ``request_timeout`` gets 503; its evaluation finishes in the background and
is dropped. Reading the body into a graph of its own, looking up the result cache and
rendering an answer run outside the lock, so a malformed request or a repeated one does not
wait behind an evaluation.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from rdflib import Graph

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import is_fhir, parse_rdf_text
from jdm_kg.knowledge.guideline import Guideline, load_guideline
from jdm_kg.reasoning.engines import EngineChoice
from jdm_kg.reasoning.recommend import PatientResult, recommend_graph
from jdm_kg.reasoning.validation import ValidationReport, validate_graph
from jdm_kg.service.config import ServiceConfig
from jdm_kg.service.problems import Problem

__all__ = ["INPUT_TYPES", "Core"]

T = TypeVar("T")

#: Media type -> how the body is read ("turtle", "json-ld", "fhir", or "json": FHIR or JSON-LD by content).
INPUT_TYPES = {
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
    "application/n-triples": "nt",
    "application/ld+json": "json-ld",
    "application/fhir+json": "fhir",
    "application/json": "json",
}


class Core:
    """The compiled guideline and the limits around using it."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.guideline: Guideline = load_guideline()
        self.engine: EngineChoice = config.engine
        if config.endpoint:
            from jdm_kg.reasoning.endpoint import Endpoint

            self.engine = Endpoint(config.endpoint, config.update or config.endpoint)
        self._lock = threading.Lock()
        self._admitted = 0
        self._reports: OrderedDict[str, tuple[float, list[PatientResult]]] = OrderedDict()
        self._results: OrderedDict[bytes, tuple[ValidationReport, list[PatientResult]]] = OrderedDict()
        self._reports_lock = threading.Lock()  # reports are kept from worker threads outside the evaluation lock
        self.cache_hits = 0

    def warm(self) -> None:
        """Compute what every request shares (guideline facts, code maps) before the first one."""
        from jdm_kg.outputs.fhir_output import drug_codings

        drug_codings("", self.guideline)
        if isinstance(self.engine, str):  # a first evaluation fills the per-guideline caches
            self.recommend(_warm_up_patient(), "warm-up")

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
        try:
            if kind == "fhir" or (kind == "json" and is_fhir(text)):
                from jdm_kg.inputs.fhir import fhir_to_graph

                return fhir_to_graph(text, source, self.guideline)
            return parse_rdf_text(text, "json-ld" if kind == "json" else kind, source)
        except InputError as err:
            raise Problem("invalid-input", str(err)) from None
        except RecursionError:
            raise Problem("invalid-input", f"{source}: nested too deeply to read") from None

    # ------------------------------------------------------------------ work
    async def run(self, work: Callable[[], T], exclusive: bool = True) -> T:
        """``work()`` in a worker thread within the concurrency cap and time limit; one at a time
        when ``exclusive`` (work that only renders cached results need not wait for the lock:
        :meth:`evaluate` takes it itself when it has to evaluate)."""
        if self._admitted >= self.config.max_concurrent:
            raise Problem("busy", f"{self._admitted} requests are already being worked on (limit "
                                  f"{self.config.max_concurrent}); try again shortly")
        self._admitted += 1
        try:
            def locked() -> T:
                with self._lock:
                    return work()

            try:
                return await asyncio.wait_for(asyncio.to_thread(locked if exclusive else work),
                                              timeout=self.config.request_timeout)
            except TimeoutError:
                raise Problem("timeout", f"the work took longer than {self.config.request_timeout:g} s") from None
        finally:
            self._admitted -= 1

    def recommend(self, graph: Graph, source: str,
                  text: str | None = None) -> tuple[ValidationReport, list[PatientResult]]:
        try:  # (``text``: the body, for the lines of validation messages; never a file named by ``source``)
            return recommend_graph(graph, source, self.guideline, self.config.today, self.engine, text=text or "")
        except InputError as err:
            raise Problem("unprocessable", str(err)) from None

    def evaluate(self, body: bytes, media_type: str, source: str) -> tuple[ValidationReport, list[PatientResult]]:
        """Parse and recommend, remembering the answer for the same bytes read the same way on the
        same day (results are deterministic: a chart opened again gets the same cards without a
        second evaluation). At most ``result_cache`` answers are kept, least recently used first out."""
        key = hashlib.sha256(b"\0".join([media_type.encode(), source.encode(), body,
                                          (self.config.today or date.today()).isoformat().encode()])).digest()
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                self.cache_hits += 1
                return hit
        graph = self.parse(body, media_type, source)  # a new graph of its own: unusable input is refused at once
        with self._lock:
            answer = self.recommend(graph, source, body.decode("utf-8"))
            if self.config.result_cache > 0:
                self._results[key] = answer
                while len(self._results) > self.config.result_cache:
                    self._results.popitem(last=False)
            return answer

    def validate(self, graph: Graph, source: str, text: str | None = None) -> ValidationReport:
        try:  # (``text``: the body, for the lines of the messages; never a file named by ``source``)
            return validate_graph(graph, source, self.guideline, text=text or "")
        except InputError as err:
            raise Problem("unprocessable", str(err)) from None

    # ------------------------------------------------------------------ report links
    def keep_report(self, results: list[PatientResult]) -> str:
        """Keep ``results`` in memory for ``report_ttl`` seconds; the token that names them."""
        now = time.monotonic()
        token = secrets.token_urlsafe(16)
        with self._reports_lock:
            while self._reports and (next(iter(self._reports.values()))[0] < now or len(self._reports) >= 1000):
                self._reports.popitem(last=False)
            self._reports[token] = (now + self.config.report_ttl, results)
        return token

    def report(self, token: str) -> list[PatientResult] | None:
        with self._reports_lock:
            entry = self._reports.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]


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
