"""A read-only SPARQL 1.1 Protocol endpoint over the compiled guideline (and the patient files
given with ``--data``), answered by an embedded Oxigraph store built at start-up.

SPARQL 1.1 Protocol, section 2.1 (query operation): ``GET ?query=``, ``POST`` with
``application/x-www-form-urlencoded`` (``query=``) or ``application/sparql-query``. Results by
``Accept`` (SPARQL 1.1 Query Results JSON, XML, CSV, TSV; Turtle or N-Triples for CONSTRUCT and
DESCRIBE), written by rdflib's result serializers.

Refused (403 problem, the query never runs): updates (``update=``, ``application/sparql-update``,
or an update text: INSERT, DELETE, LOAD, CLEAR, ...), ``SERVICE`` and ``FROM`` / ``FROM NAMED``
(the same check as ``jdm-kg query``: :func:`jdm_kg.knowledge.queries.check_query`), ``default-graph-uri``
and ``named-graph-uri`` parameters. Each query has a time limit (checked between result rows,
and as a limit on the whole request) and a row limit (the answer is cut there, and the
``X-JDM-KG-Truncated`` header says so). A query that computes for long before its first row
(an ORDER BY over a large join) is answered 503 at the time limit but finishes in its worker
thread; it does not hold the lock recommendations take.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from rdflib import Graph, Variable
from rdflib.query import Result

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import document_blank_nodes, from_oxigraph, load_patient_file, rdf_files
from jdm_kg.knowledge.guideline import Guideline
from jdm_kg.knowledge.queries import check_query
from jdm_kg.service.problems import Problem

__all__ = ["GRAPH_TYPES", "RESULT_TYPES", "SparqlStore"]

#: SELECT / ASK result media types -> rdflib result serializer.
RESULT_TYPES = {
    "application/sparql-results+json": "json",
    "application/sparql-results+xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
}
#: CONSTRUCT / DESCRIBE media types -> rdflib graph serializer.
GRAPH_TYPES = {"text/turtle": "turtle", "application/n-triples": "nt", "application/ld+json": "json-ld"}


def _refuse_update(text: str) -> None:
    """403 when ``text`` is a SPARQL update rather than a query."""
    from rdflib.plugins.sparql.parser import parseUpdate

    try:
        parseUpdate(text)
    except Exception:  # noqa: BLE001 (not an update: the query check reports what is wrong with it)
        return
    raise Problem("refused-query", "this endpoint is read-only: SPARQL updates (INSERT, DELETE, LOAD, CLEAR, "
                                   "CREATE, DROP, ...) are refused")


class SparqlStore:
    """The guideline (and ``--data`` patient files) in one in-memory Oxigraph store, queried
    with the union of its graphs as the default graph."""

    def __init__(self, guideline: Guideline, data: list[str], max_rows: int, timeout: float) -> None:
        from jdm_kg.reasoning.engines import OxigraphStore

        self._store = OxigraphStore(guideline)
        self.max_rows = max_rows
        self.timeout = timeout
        self.files: list[str] = []
        for path in rdf_files(list(data)) if data else []:
            self._store.add(load_patient_file(path))
            self.files.append(str(path))

    def check(self, text: str) -> None:
        """Refuse an update or a query that would reach the network, before it runs."""
        if not text.strip():
            raise Problem("bad-request", "no query: give it as ?query=, a form field, or an application/sparql-query body")
        try:
            check_query(text, "query")
        except InputError as err:
            _refuse_update(text)
            kind = "refused-query" if ("SERVICE" in err.problem or "FROM" in err.problem) else "bad-request"
            problem = err.problem.replace("pass --allow-service if you mean it", "this endpoint never does that")
            problem = problem.replace("give the data with --data instead", "this endpoint answers from its own data")
            raise Problem(kind, f"{err.source}: {problem}") from None

    def run(self, text: str) -> tuple[str, Any, bool]:
        """("SELECT"|"ASK"|"CONSTRUCT", an rdflib Result or Graph, truncated?) for a checked query."""
        import pyoxigraph as ox

        deadline = time.monotonic() + self.timeout
        try:
            answer = self._store.store.query(text, use_default_graph_as_union=True)
        except (SyntaxError, ValueError, OSError) as err:
            raise Problem("bad-request", f"query: {err}") from None
        blank = document_blank_nodes()
        if isinstance(answer, (bool, ox.QueryBoolean)):
            result = Result("ASK")
            result.askAnswer = bool(answer)
            return "ASK", result, False
        failed: tuple[str, str] | None = None
        try:
            taken = list(itertools.islice(self._within(answer, deadline), self.max_rows + 1))
        except Problem as err:  # (a timeout): raised afresh below, once nothing holds the answer
            failed = (err.kind, err.detail)
        if failed is not None:
            # Oxigraph's answer may only be dropped in the thread that made it: drop it here (the
            # first exception's frames held it), not where the problem is handled
            del answer
            raise Problem(*failed)
        truncated = len(taken) > self.max_rows
        taken = taken[: self.max_rows]
        if isinstance(answer, ox.QueryTriples):
            graph = Graph()
            for triple in taken:
                graph.add((from_oxigraph(triple.subject, blank), from_oxigraph(triple.predicate, blank),
                           from_oxigraph(triple.object, blank)))
            return "CONSTRUCT", graph, truncated
        variables = [Variable(v.value) for v in answer.variables]
        rows = [{var: from_oxigraph(value, blank) for var, value in zip(variables, solution) if value is not None}
                for solution in taken]
        result = Result("SELECT")
        result.vars = variables
        result.bindings = rows  # type: ignore[assignment]
        return "SELECT", result, truncated

    def _within(self, answer: Any, deadline: float) -> Any:
        """The answer's triples or solutions, a 'timeout' problem once the deadline passes
        (looked at every 256 items)."""
        for i, item in enumerate(answer):
            if i % 256 == 0 and time.monotonic() > deadline:
                raise Problem("timeout", f"the query took longer than {self.timeout:g} s")
            yield item

    def answer(self, text: str, accept: str | None) -> tuple[str, bytes, bool]:
        """(media type, body, truncated?) for query ``text`` and the request's ``Accept``: checked,
        run and written in one go (in a worker process that is killed at the time limit)."""
        from jdm_kg.service.http import negotiate

        self.check(text)
        kind, answer, truncated = self.run(text)
        offered = GRAPH_TYPES if kind == "CONSTRUCT" else RESULT_TYPES
        chosen = negotiate(accept, list(offered))
        if chosen is None:
            raise Problem("not-acceptable", f"Accept {accept!r}: this query's answer is given as " + ", ".join(offered))
        return chosen, self.serialize(kind, answer, offered[chosen]), truncated

    @staticmethod
    def serialize(kind: str, answer: Any, fmt: str) -> bytes:
        """The answer in ``fmt``: rdflib's serializers for graphs and SELECT (JSON, XML, CSV);
        TSV and the boolean of ASK as the SPARQL 1.1 result formats define them."""
        if kind == "CONSTRUCT":
            return answer.serialize(format=fmt, encoding="utf-8")  # type: ignore[no-any-return]
        if kind == "ASK":
            value = "true" if answer.askAnswer else "false"
            if fmt == "json":
                return json.dumps({"head": {}, "boolean": answer.askAnswer}).encode()
            if fmt == "xml":
                return (f'<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">'
                        f"<head/><boolean>{value}</boolean></sparql>\n").encode()
            return f"_askResult\n{value}\n".encode()
        if fmt == "tsv":
            lines = ["\t".join(f"?{v}" for v in answer.vars)]
            for row in answer.bindings:
                lines.append("\t".join(row[v].n3() if v in row else "" for v in answer.vars))
            return ("\n".join(lines) + "\n").encode()
        return answer.serialize(format=fmt, encoding="utf-8")  # type: ignore[no-any-return]
