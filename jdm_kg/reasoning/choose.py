"""The one place that chooses the query engine: the embedded ones (:mod:`jdm_kg.reasoning.engines`,
rdflib or Oxigraph) or a SPARQL server (:mod:`jdm_kg.reasoning.endpoint`), all implementations of
:class:`~jdm_kg.reasoning.engines.QueryEngine`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rdflib import Graph

from jdm_kg.errors import InputError
from jdm_kg.knowledge.guideline import Guideline, with_guideline
from jdm_kg.reasoning.endpoint import endpoint_engines
from jdm_kg.reasoning.engines import (
    ENGINES,
    EngineChoice,
    GroupQueries,
    OxigraphAnswered,
    QueryEngine,
    RdflibEngine,
    oxigraph_answered,
)

__all__ = ["query_engines"]


@contextmanager
def query_engines(
    kind: EngineChoice, guideline: Guideline, data: Graph | None, graphs: list[Graph]
) -> Iterator[list[QueryEngine]]:
    """One engine of ``kind`` ("rdflib", "oxigraph" or a :class:`jdm_kg.reasoning.endpoint.Endpoint`) per
    graph of ``graphs``, over the guideline and that graph (``data``: the guideline merged with
    all ``graphs``, which the rdflib engine queries as is, and whose Oxigraph store, if it has
    one (:func:`oxigraph_answered`), the Oxigraph engine reuses). What was loaded is dropped on exit."""
    if kind == "rdflib":
        shared: QueryEngine = GroupQueries(RdflibEngine(data if data is not None else with_guideline(guideline, *graphs)))
        yield [shared] * len(graphs)
    elif kind == "oxigraph":
        if data is None or not isinstance(data.store, OxigraphAnswered):
            data = oxigraph_answered(guideline, graphs)
        assert isinstance(data.store, OxigraphAnswered)
        shared = GroupQueries(data.store.engine)
        yield [shared] * len(graphs)
    elif not isinstance(kind, str):  # an Endpoint: a SPARQL server the user named
        with endpoint_engines(kind, guideline, graphs) as engines:
            yield engines
    else:
        raise InputError("--engine", f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
