"""What the routes share: the compiled guideline, the limits on work, the result cache and the
report links.

Evaluations and SPARQL queries run in worker processes (:mod:`jdm_kg.service.workers`; default
one per core): each request's work can be stopped for real, and a slow request holds up only
its own worker. At most ``max_concurrent`` requests may be worked on or wait for a worker at
once; more are refused with 503 at once. A request whose work passes its time limit
(``request_timeout``, SPARQL ``sparql_timeout``) gets 503 and the process doing it is killed;
so is the process working for a client that went away. Reading the result cache and rendering
an answer happen in this process, so a repeated request does not wait for a worker.

With ``workers=0`` (the tests' in-process apps, an embedding) the work runs in this process's
threads instead, one evaluation at a time, and is not stopped at its time limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any, TypeVar

from rdflib import Graph

from jdm_kg.knowledge.guideline import Guideline
from jdm_kg.reasoning.recommend import PatientResult
from jdm_kg.reasoning.validation import ValidationReport
from jdm_kg.service.config import ServiceConfig
from jdm_kg.service.evaluator import INPUT_TYPES, Evaluator
from jdm_kg.service.problems import Problem

__all__ = ["INPUT_TYPES", "Core"]

T = TypeVar("T")


class Core:
    """The compiled guideline and the limits around using it."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.evaluator = Evaluator(config)  # (in this process: the guideline for the routes; the work with workers=0)
        self.guideline: Guideline = self.evaluator.guideline
        self.pool: Any = None
        self._lock = threading.Lock()
        self._admitted = 0
        self._threads = self._new_threads()
        self._reports: OrderedDict[str, tuple[float, list[PatientResult]]] = OrderedDict()
        self._results: OrderedDict[bytes, tuple[ValidationReport, list[PatientResult]]] = OrderedDict()
        self._reports_lock = threading.Lock()  # reports are kept from worker threads outside the evaluation lock
        self.cache_hits = 0

    def warm(self) -> None:
        """Start the worker processes (they build and warm their own copy of everything), or,
        with ``workers=0``, compute here what every request shares before the first one."""
        from jdm_kg.outputs.fhir_output import drug_codings

        drug_codings("", self.guideline)  # (answers are rendered in this process)
        if self.config.workers > 0:
            from jdm_kg.service.workers import WorkerPool

            self.pool = WorkerPool(self.config, self.config.workers)
        else:
            self.evaluator.warm()

    def close(self) -> None:
        """Stop the worker processes and the threads. The app may still be called (a test client
        outside any lifespan) or served again: a fresh thread pool takes over (its threads start
        only when used), and :meth:`reopen` starts the worker processes again."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        old, self._threads = self._threads, self._new_threads()
        old.shutdown(wait=False, cancel_futures=True)

    def reopen(self) -> None:
        """At a lifespan's start: the worker processes again, if a previous lifespan stopped them."""
        if self.config.workers > 0 and self.pool is None:
            self.warm()

    def _new_threads(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.config.max_concurrent + 4, thread_name_prefix="jdm-kg")

    # ------------------------------------------------------------------ limits
    def _admit(self) -> None:
        if self._admitted >= self.config.max_concurrent:
            raise Problem("busy", f"{self._admitted} requests are already being worked on (limit "
                                  f"{self.config.max_concurrent}); try again shortly")
        self._admitted += 1

    async def run(self, work: Callable[[], T], exclusive: bool = True) -> T:
        """``work()`` in a thread of this process within the concurrency cap and time limit; one at
        a time when ``exclusive`` (an evaluation with ``workers=0``). For light work (rendering an
        answer); evaluations and queries go to :meth:`do`."""
        self._admit()
        try:
            def locked() -> T:
                with self._lock:
                    return work()

            loop = asyncio.get_running_loop()
            try:
                return await asyncio.wait_for(loop.run_in_executor(self._threads, locked if exclusive else work),
                                              timeout=self.config.request_timeout)
            except TimeoutError:
                raise Problem("timeout", f"the work took longer than {self.config.request_timeout:g} s") from None
        finally:
            self._admitted -= 1

    async def do(self, job: tuple[Any, ...], request: Any = None) -> Any:
        """``job`` (see :meth:`Evaluator.do`) done in a worker process within the concurrency cap and
        the time limit (a SPARQL query: a process of its own and ``sparql_timeout``). The process is
        killed when the time is up or when ``request``'s client goes away."""
        if self.pool is None:
            return await self.run(lambda: self.evaluator.do(job), exclusive=job[0] != "sparql")
        self._admit()
        try:
            once = job[0] == "sparql"
            limit = self.config.sparql_timeout if once else self.config.request_timeout
            cancelled = threading.Event()
            loop = asyncio.get_running_loop()
            call = self.pool.call_once if once else self.pool.call
            work = loop.run_in_executor(self._threads, call, job, time.monotonic() + limit, cancelled)
            watcher = asyncio.ensure_future(_client_gone(request)) if request is not None else None
            try:
                if watcher is not None:
                    await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if not work.done():
                        cancelled.set()
                return await work
            except Problem as problem:
                if problem.kind == "timeout":
                    raise Problem("timeout", f"the work took longer than {limit:g} s and was stopped") from None
                raise
            finally:
                cancelled.set()  # (a no-op once the answer is in; stops the work if this task is cancelled)
                if watcher is not None:
                    watcher.cancel()
        finally:
            self._admitted -= 1

    # ------------------------------------------------------------------ requests
    async def evaluate(self, body: bytes, media_type: str, source: str, request: Any = None,
                       lines: bool = True, whatif: bool = False) -> tuple[ValidationReport, list[PatientResult]]:
        """Parse and recommend (``lines``: give messages the body's line numbers; ``whatif``: each
        option not offered or not first carries its shortest what-if), remembering the answer for the same bytes read the same way on the
        same day (results are deterministic: a chart opened again gets the same cards without a
        second evaluation). At most ``result_cache`` answers are kept, least recently used first out."""
        key = hashlib.sha256(b"\0".join([media_type.encode(), source.encode(), body, b"%d%d" % (lines, whatif),
                                          (self.config.today or date.today()).isoformat().encode()])).digest()
        with self._reports_lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                self.cache_hits += 1
                return hit
        answer: tuple[ValidationReport, list[PatientResult]] = await self.do(
            ("recommend", body, media_type, source, lines, whatif), request)
        if self.config.result_cache > 0:
            with self._reports_lock:
                self._results[key] = answer
                while len(self._results) > self.config.result_cache:
                    self._results.popitem(last=False)
        return answer

    async def evaluate_graph(self, graph: Graph, source: str, request: Any = None,
                             whatif: bool = False) -> tuple[ValidationReport, list[PatientResult]]:
        """:meth:`evaluate` for a graph built here (the web form's record), sent as N-Triples (whose
        line numbers mean nothing to the person who filled in the form, so messages carry none)."""
        body = graph.serialize(format="nt", encoding="utf-8")
        return await self.evaluate(body, "application/n-triples", source, request, lines=False, whatif=whatif)

    async def whatif(self, body: bytes, media_type: str, source: str, option: str | None, depth: int,
                     markdown: bool, request: Any = None) -> tuple[ValidationReport, Any]:
        """What would change the answer (see :meth:`Evaluator.whatif`), within the same limits as
        :meth:`evaluate`."""
        answer: tuple[ValidationReport, Any] = await self.do(
            ("whatif", body, media_type, source, option, depth, markdown), request)
        return answer

    async def validate(self, body: bytes, media_type: str, source: str, request: Any = None) -> ValidationReport:
        report: ValidationReport = await self.do(("validate", body, media_type, source, True), request)
        return report

    async def sparql(self, text: str, accept: str | None, request: Any = None) -> tuple[str, bytes, bool]:
        """(media type, body, truncated?): the query checked, run and written in a process of its own."""
        answer: tuple[str, bytes, bool] = await self.do(("sparql", text, accept), request)
        return answer

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


async def _client_gone(request: Any) -> None:
    """Return when ``request``'s client has gone (its connection closed)."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # (more of a body already read: keep listening)
