"""Validation results as a SHACL validation report in Turtle (``jdm-kg validate --format
turtle``, ``POST /validate`` with ``Accept: text/turtle``): pySHACL's report graph, made for a
reader.

- **Prefixes**: the guideline's (``jdm:``, ``jdmg:``, ``sct:``, ...) and the shapes' (``sh:``,
  ``jdmsh:``), as their files declare them; not ``ns1:``.
- **Shapes named**: a result's ``sh:sourceShape`` is a named shape (``jdmsh:FutureDateShape``,
  with its ``rdfs:label`` where the shapes give one), or a property shape written inside one,
  which the report links from its named shape (``jdmsh:TreatmentEpisodeShape sh:property [...]``)
  and names (``sh:name "jdm:startDate of jdmsh:TreatmentEpisodeShape"``); a SPARQL constraint is
  linked from its shape the same way (``sh:sparql``).
- **Each result linked to its patient** (``dcterms:subject``, the record's ``jdm:patientId`` and
  the triples from the record to the entry the result is about: added by validation,
  :func:`jdm_kg.reasoning.messages.finish_issues`).
- **The same bytes every run**: blank nodes labelled from what the report says of them, triples
  in a fixed order.
"""

from __future__ import annotations

from rdflib import RDFS, SH, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.knowledge.prefixes import declared_prefixes, guideline_prefixes, namespace_manager, shortened
from jdm_kg.knowledge.queries import stable_blank_nodes
from jdm_kg.reasoning.validation import ValidationReport, load_shapes
from jdm_kg.resources import resource_dir

__all__ = ["shacl_report_graph", "shacl_report_turtle"]

_STANDARD = {"sh": str(SH), "dcterms": "http://purl.org/dc/terms/", "rdfs": str(RDFS),
             "xsd": "http://www.w3.org/2001/XMLSchema#"}


def _prefixes() -> dict[str, str]:
    return {**guideline_prefixes(), **declared_prefixes(sorted(resource_dir("shapes").rglob("*.ttl"))), **_STANDARD}


def shacl_report_graph(reports: list[ValidationReport]) -> Graph:
    """The SHACL report graphs of ``reports`` in one graph (module text)."""
    merged = Graph(bind_namespaces="none")
    for report in reports:
        if report.shacl_report is not None:
            merged += report.shacl_report
    shapes = load_shapes()
    manager = namespace_manager(_prefixes())
    for shape in set(merged.objects(None, SH.sourceShape)):
        _name(merged, shapes, shape, manager)
    for constraint in set(merged.objects(None, SH.sourceConstraint)):
        for parent in shapes.subjects(SH.sparql, constraint):
            merged.add((parent, SH.sparql, constraint))
            _label(merged, shapes, parent)
    return merged


def _label(report: Graph, shapes: Graph, shape: Node) -> None:
    for label in shapes.objects(shape, RDFS.label):
        report.add((shape, RDFS.label, label))


def _name(report: Graph, shapes: Graph, shape: Node, manager: object) -> None:
    """A named shape keeps its name (and label); a property shape inside a named one is linked
    from it and given an ``sh:name``."""
    if isinstance(shape, URIRef):
        _label(report, shapes, shape)
        return
    for parent in shapes.subjects(SH.property, shape):
        report.add((parent, SH.property, shape))
        _label(report, shapes, parent)
        path = shapes.value(shape, SH.path)
        if isinstance(parent, URIRef) and path is not None and (shape, SH.name, None) not in shapes:
            report.add((shape, SH.name, Literal(f"{shortened(path, manager)} of {shortened(parent, manager)}")))  # type: ignore[arg-type]


def shacl_report_turtle(reports: list[ValidationReport]) -> str:
    """:func:`shacl_report_graph` as Turtle, the same bytes for the same input on every run."""
    graph = shacl_report_graph(reports)
    out = Graph(store="SimpleMemory", bind_namespaces="none")  # lists triples in the order they were added
    out.namespace_manager = namespace_manager(_prefixes())
    out += sorted(stable_blank_nodes(graph), key=lambda triple: tuple(term.n3() for term in triple))
    return out.serialize(format="turtle")
