"""``jdm-kg docs``: a static HTML site of the guideline, readable in a browser with no server.

Pages: ``index.html`` (version, the main recommendation, the algorithm, each manifestation
with its options), ``drugs.html`` (each option with its regimen or gap, safety gates,
monitoring, preferences and codes), ``statements.html`` (every statement with its quote,
section, evidence and sources), ``sources.html`` and ``vocabulary.html`` (for analysts: the
namespaces and prefixes, the code systems, the model's classes with their instances, its
properties with their domain and range, the bundled queries with what each is, and the example
queries of ``queries/examples/``). Everything shown is read from the compiled guideline graph
(domains and ranges as ``vocab.ttl`` declares them), the shapes and the query files; the HTML
is in Jinja2 templates (``templates/docs/``, autoescaped), as the web page of ``jdm-kg serve``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from rdflib import OWL, RDF, RDFS, SH, SKOS, BNode, Graph, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from jdm_kg.knowledge.guideline import GUIDELINE_IRI, JDM, Guideline
from jdm_kg.knowledge.prefixes import declared_prefixes
from jdm_kg.knowledge.queries import QueryInfo, query_catalogue, select
from jdm_kg.reasoning.dosing import span
from jdm_kg.reasoning.recommend import Provenance, guideline_facts
from jdm_kg.reasoning.validation import load_shapes
from jdm_kg.resources import resource_dir
from jdm_kg.version import __version__

__all__ = ["write_docs"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#1a1a1a}
nav a{margin-right:1rem} h1{font-size:1.6rem} h2{margin-top:2rem;border-bottom:1px solid #ccc}
blockquote{border-left:4px solid #7a9;margin:.5rem 0;padding:.2rem .8rem;background:#f4f8f6;white-space:pre-line}
table{border-collapse:collapse;width:100%} td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
.tag{display:inline-block;font-size:.8rem;padding:0 .4rem;border-radius:.3rem;background:#eee;margin-right:.3rem}
.warn{background:#fde7c4} .gap{background:#f6d3d3} small{color:#555}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;font-size:.85rem}
"""
_PAGES = [("index.html", "Guideline"), ("drugs.html", "Options and drugs"), ("statements.html", "Statements"),
          ("sources.html", "Sources"), ("vocabulary.html", "Vocabulary")]


_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates" / "docs")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)


def _anchor(iri: Node) -> str:
    return str(iri).rsplit("/", 1)[-1].rsplit("#", 1)[-1]


#: What the namespaces the graph, the shapes and the queries use are for, where no header says.
_NAMESPACE_NOTES = {
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "RDF (rdf:type, lists)",
    "http://www.w3.org/2000/01/rdf-schema#": "RDF Schema: labels, subclasses, domains and ranges",
    "http://www.w3.org/2002/07/owl#": "OWL 2: classes, properties, ontology headers and versions",
    "http://www.w3.org/2001/XMLSchema#": "XML Schema datatypes (xsd:decimal, xsd:date, ...)",
    "http://www.w3.org/2004/02/skos/core#": "SKOS: definitions, alternative labels, editorial notes and the code mappings "
                                            "(skos:exactMatch, closeMatch, narrowMatch, relatedMatch, broadMatch)",
    "http://purl.org/dc/terms/": "Dublin Core terms: titles, sources, citations, creators, dates",
    "http://www.w3.org/ns/prov#": "PROV-O: what a statement, a regimen or a recommendation was derived from",
    "http://www.w3.org/ns/shacl#": "SHACL: the shapes that check patient records and the guideline",
    "https://w3id.org/jdm-kg/shapes/guideline#": "jdm-kg's shapes over the guideline graph (shapes/guideline/, jdm-kg check)",
}
#: The most instances a class lists on the vocabulary page (more: their number).
MAX_INSTANCES = 20


class _Site:
    def __init__(self, guideline: Guideline) -> None:
        self.guideline = guideline
        self.g: Graph = guideline.graph
        self.facts = guideline_facts(guideline)

    def label(self, node: Node) -> str:
        value = self.g.value(node, RDFS.label)
        return str(value) if value is not None else _anchor(node)

    def text(self, node: Node, prop: URIRef) -> str:
        value = self.g.value(node, prop)
        return str(value) if value is not None else ""

    def code(self, iri: Node) -> str:
        """``RxNorm 121191`` for a mapped code IRI, by the code systems' IRI prefixes in the graph."""
        for system in self.g.subjects(RDF.type, JDM.CodeSystem):
            prefix = self.text(system, JDM.iriPrefix)
            if prefix and str(iri).startswith(prefix):
                return f"{self.label(system)} {str(iri)[len(prefix):]}"
        return str(iri)

    def link(self, node: Node) -> Markup:
        """A link to where ``node`` is described on the site (its label alone if it has no place)."""
        types = set(self.g.objects(node, RDF.type))
        if JDM.TreatmentOption in types:
            page = "drugs.html"
        elif JDM.GuidelineStatement in types or JDM.GuidelineGap in types:
            page = "statements.html"
        elif JDM.BibliographicSource in types or JDM.CitationMarker in types or JDM.Guideline in types:
            page = "sources.html"
        else:
            return Markup("{}").format(self.label(node))
        return Markup('<a href="{}#{}">{}</a>').format(page, _anchor(node), self.label(node))

    def term(self, node: Node) -> dict[str, str]:
        return {"anchor": _anchor(node), "label": self.label(node), "definition": self.text(node, SKOS.definition)}

    def page(self, name: str, title: str, **context: Any) -> str:
        heading = self.text(GUIDELINE_IRI, URIRef("http://purl.org/dc/terms/title")) or "Guideline"
        return _TEMPLATES.get_template(name).render(
            title=title, heading=heading, css=Markup(_CSS), pages=_PAGES, current=name,
            version=self.guideline.version, jdm_kg_version=__version__, **context)

    def provenance(self, p: Provenance) -> dict[str, Any]:
        tags = [(t, "") for t in p.evidence_types]
        if p.verification and "unverified" in p.verification.lower():
            tags.append(("UNVERIFIED", " warn"))
        tags += [(f"population: {x}", "") for x in p.populations]
        sources = [self.link(URIRef(s["iri"])) for s in p.sources if "label" in s]
        sources += [self.link(URIRef(s["iri"])) + " (related, not cited by the guideline)" for s in p.related_evidence]
        return {"quote": p.quote, "tags": tags, "section": p.section, "sources": sources, "note": p.note}

    # ---------------------------------------------------------------- pages

    def index(self) -> str:
        g = self.g
        recommendations = [{**self.term(rec), "provenance": self.provenance(self.facts.provenance(str(rec)))}
                           for rec in sorted(g.subjects(RDF.type, JDM.Recommendation))]
        steps = sorted(g.subjects(RDF.type, JDM.AlgorithmStep), key=lambda s: int(self.text(s, JDM.stepNumber) or 0))
        manifestations = []
        for manifestation in sorted(g.subjects(RDF.type, JDM.Manifestation), key=self.label):
            rows = []
            for statement in sorted(g.subjects(JDM.forManifestation, manifestation)):
                if JDM.PreferenceStatement not in set(g.objects(statement, RDF.type)):
                    continue
                level = g.value(statement, JDM.preferenceLevel)
                options = sorted(self.link(o) for o in g.objects(statement, JDM.appliesToOption))
                rows.append((options, self.label(level), self.link(statement)))
            for prop, words in ((JDM.moreEffectiveFor, "works better for it than for another feature (a comparison)"),
                                (JDM.lessEffectiveFor, "works less well for it than for another feature (a comparison)")):
                for statement in sorted(g.subjects(prop, manifestation)):
                    options = sorted(self.link(o) for o in g.objects(statement, JDM.appliesToOption))
                    rows.append((options, words, self.link(statement)))
            gaps = [self.text(s, SKOS.definition) for s in g.subjects(JDM.forManifestation, manifestation)
                    if (s, RDF.type, JDM.GuidelineGap) in g]
            manifestations.append({**self.term(manifestation), "rows": rows, "gaps": gaps})
        policies = []
        for policy in sorted(g.subjects(RDF.type, JDM.Policy), key=self.label):
            bands = sorted(g.subjects(JDM.underPolicy, policy), key=lambda b: int(self.text(b, JDM.bandOrder) or 0))
            policies.append({**self.term(policy), "bands": [(self.label(b), self.text(b, SKOS.definition)) for b in bands]})
        return self.page("index.html", self.label(GUIDELINE_IRI), recommendations=recommendations,
                         modified=self.text(GUIDELINE_IRI, URIRef("http://purl.org/dc/terms/modified")),
                         steps=[self.term(s) for s in steps], manifestations=manifestations, policies=policies)

    def drugs(self) -> str:
        g = self.g
        options = []
        for option in sorted(g.subjects(RDF.type, JDM.TreatmentOption), key=self.label):
            classes = sorted(self.label(c) for c in g.objects(option, RDF.type)
                             if isinstance(c, URIRef) and str(c).startswith(str(JDM)) and c not in (JDM.TreatmentOption, JDM.Drug))
            role = g.value(option, JDM.role)
            meta = [f"Class: {', '.join(classes) or 'drug'}"]
            if role is not None:
                meta.append(f"Role in the guideline: {self.label(role)}")
            codes = sorted(self.code(c) for c in g.objects(option, SKOS.exactMatch))
            if codes:
                meta.append("Codes: " + ", ".join(codes))
            regimens = []
            for r in self.facts.regimens(str(option)):
                if r.dose_given:
                    detail = f"{span(r.dose_min, r.dose_max)} {r.dose_unit}; {r.schedule_text or ''}; route: {r.route}"
                    if r.max_dose is not None:
                        detail += f"; maximum {r.max_dose} {r.max_dose_unit}"
                else:
                    detail = "the guideline gives no dose"
                regimens.append((r.label, detail))
            actions = []
            for action, screenings in self.facts.actions(str(option)):
                gate = (" Gate: " + ", ".join(self.label(URIRef(s)) for s in screenings) + " screening.") if screenings else ""
                actions.append((action.text, action.timing or "", gate, self.link(URIRef(action.statement.statement))))
            options.append({**self.term(option), "meta": meta, "regimens": regimens, "actions": actions,
                            "gaps": [(gap["label"], gap["text"]) for gap in self.facts.gaps(str(option))],
                            "statements": [self.link(p) for p in sorted(g.subjects(JDM.appliesToOption, option), key=self.label)]})
        return self.page("drugs.html", "Options and drugs", options=options)

    def statements(self) -> str:
        by_section: dict[str, list[Node]] = defaultdict(list)
        for row in select(self.g, "statements"):
            node = row["statement"]
            if node not in by_section[str(row.get("section", ""))]:
                by_section[str(row.get("section", ""))].append(node)
        sections = []
        for section in sorted(by_section):
            statements = []
            for node in by_section[section]:
                kind = sorted(self.label(t) for t in self.g.objects(node, RDF.type)
                              if (t, RDFS.subClassOf, JDM.GuidelineStatement) in self.g and t != JDM.GuidelineStatement)
                statements.append({**self.term(node), "kind": ", ".join(kind),
                                   "provenance": self.provenance(self.facts.provenance(str(node)))})
            sections.append((section or "No section", statements))
        gaps = [self.term(gap) for gap in sorted(self.g.subjects(RDF.type, JDM.GuidelineGap), key=self.label)]
        return self.page("statements.html", "Statements", sections=sections, gaps=gaps)

    def sources(self) -> str:
        kinds = []
        for kind, title in ((JDM.Guideline, "The guideline"), (JDM.CitationMarker, "Citation markers"),
                            (JDM.BibliographicSource, "Bibliographic sources")):
            nodes = []
            for node in sorted(self.g.subjects(RDF.type, kind), key=self.label):
                info = self.facts.source(str(node))
                rows = [(k, info[k]) for k in ("citation", "doi", "pmid", "evidenceType", "population", "findings",
                                               "verification", "note") if k in info]
                nodes.append({**self.term(node), "rows": rows})
            kinds.append((title, nodes))
        return self.page("sources.html", "Sources", kinds=kinds)

    # ------------------------------------------------------------ vocabulary (for analysts)

    def namespaces(self) -> list[dict[str, str]]:
        """Every prefix the guideline files, the shapes and the queries declare, with what it is:
        a standard vocabulary, one of jdm-kg's modules (its header's label), or a code system
        (the jdm:CodeSystem whose IRI prefix starts with it)."""
        files = list(self.guideline.files) + sorted(resource_dir("shapes").rglob("*.ttl"))
        files += sorted(resource_dir("queries").rglob("*.rq"))
        prefixes = declared_prefixes(files)
        systems = sorted(self.g.subjects(RDF.type, JDM.CodeSystem), key=self.label)
        shapes = load_shapes()
        out = []
        for prefix, namespace in sorted(prefixes.items()):
            what = [_NAMESPACE_NOTES.get(namespace, "")]
            header = URIRef(namespace.rstrip("#/"))
            label = self.g.value(header, RDFS.label) or shapes.value(header, RDFS.label)
            if label is not None:
                what.append(str(label))
            for system in systems:
                iri_prefix = self.text(system, JDM.iriPrefix)
                if iri_prefix.startswith(namespace):
                    rest = iri_prefix[len(namespace):]
                    what.append(f"code system: {self.label(system)}" + (f" (codes {prefix}:{rest}...)" if rest else ""))
            out.append({"prefix": prefix, "namespace": namespace, "what": "; ".join(w for w in what if w)})
        return out

    def code_systems(self) -> list[dict[str, str]]:
        return [{"label": self.label(s), "prefix": self.text(s, JDM.iriPrefix), "fhir": self.text(s, JDM.fhirSystem),
                 "pattern": self.text(s, JDM.codePattern)}
                for s in sorted(self.g.subjects(RDF.type, JDM.CodeSystem), key=self.label)]

    def curie(self, node: Node, prefixes: dict[str, str]) -> str:
        """``xsd:decimal`` for an IRI in a declared namespace (the longest), else the IRI."""
        best = max((ns for ns in prefixes.values() if str(node).startswith(ns)), key=len, default=None)
        if best is None:
            return str(node)
        prefix = min(p for p, ns in prefixes.items() if ns == best)
        return f"{prefix}:{str(node)[len(best):]}"

    def declared(self, node: Node | None, prefixes: dict[str, str], fallback: str) -> Markup:
        """A declared domain or range: a link to a jdm: class, a CURIE, a union of datatypes
        ("xsd:decimal or xsd:double"), or ``fallback`` when there is none."""
        if node is None:
            return Markup("<em>{}</em>").format(fallback)
        if isinstance(node, BNode):
            members = self.guideline.asserted.value(node, OWL.unionOf)
            if members is None:
                return Markup("<em>{}</em>").format("a class expression")
            parts = [self.declared(m, prefixes, fallback) for m in Collection(self.guideline.asserted, members)]
            return Markup(" or ").join(parts)
        if str(node).startswith(str(JDM)):
            return Markup('<a href="#{}"><code>{}</code></a>').format(_anchor(node), self.curie(node, prefixes))
        return Markup("<code>{}</code>").format(self.curie(node, prefixes))

    def example_queries(self) -> list[QueryInfo]:
        return [q for q in query_catalogue() if q.name.startswith("examples/")]

    def vocabulary(self) -> str:
        g, asserted = self.g, self.guideline.asserted
        namespaces = self.namespaces()
        prefixes = {n["prefix"]: n["namespace"] for n in namespaces}
        examples = self.example_queries()
        by_class: dict[str, list[str]] = defaultdict(list)
        for q in examples:
            by_class[q.headers.get("class", "")].append(q.name)
        # the datatypes the patient shapes require of a property the OWL axioms give no range
        # (dates; a measurement's value), from sh:datatype and from an sh:or of sh:datatype
        shapes = load_shapes()
        shape_datatypes: dict[Node, set[str]] = defaultdict(set)
        for shape, path in shapes.subject_objects(SH.path):
            found = set(shapes.objects(shape, SH.datatype))
            for alternatives in shapes.objects(shape, SH["or"]):
                found |= {d for member in Collection(shapes, alternatives) for d in shapes.objects(member, SH.datatype)}
            shape_datatypes[path] |= {self.curie(d, prefixes) for d in found}
        classes = []
        for cls in sorted((t for t in g.subjects(RDF.type, OWL.Class) if str(t).startswith(str(JDM))), key=str):
            members = sorted(set(g.subjects(RDF.type, cls)), key=lambda n: (self.label(n), str(n)))
            parents = sorted(p for p in asserted.objects(cls, RDFS.subClassOf) if isinstance(p, URIRef))
            classes.append({
                **self.term(cls),
                "parents": [self.declared(p, prefixes, "") for p in parents],
                "count": len(members),
                "instances": [self.link(m) for m in members] if len(members) <= MAX_INSTANCES else [],
                "examples": [(q, q.removeprefix("examples/")) for q in by_class.get(self.curie(cls, prefixes), [])],
            })
        properties = []
        for kind, title in ((OWL.ObjectProperty, "Relations (object properties)"),
                            (OWL.DatatypeProperty, "Data fields (datatype properties)"),
                            (OWL.AnnotationProperty, "Annotations (annotation properties)")):
            rows = []
            for prop in sorted((t for t in asserted.subjects(RDF.type, kind) if str(t).startswith(str(JDM))), key=str):
                domain = asserted.value(prop, RDFS.domain)
                range_ = asserted.value(prop, RDFS.range)
                fallback = "not declared"
                if range_ is None and shape_datatypes.get(prop):
                    fallback = ("not declared in OWL (outside the OWL 2 datatype map); the patient shapes require "
                                + " or ".join(sorted(shape_datatypes[prop])))
                also = [f"sub-property of {self.curie(p, prefixes)}" for p in sorted(asserted.objects(prop, RDFS.subPropertyOf))]
                also += [f"inverse of {self.curie(p, prefixes)}" for p in sorted(asserted.objects(prop, OWL.inverseOf))]
                rows.append({**self.term(prop), "domain": self.declared(domain, prefixes, "not declared"),
                             "range": self.declared(range_, prefixes, fallback), "also": also})
            properties.append((title, rows))
        bundled = [q for q in query_catalogue() if not q.name.startswith("examples/")]
        return self.page("vocabulary.html", "Vocabulary", namespaces=namespaces, code_systems=self.code_systems(),
                         classes=classes, properties=properties, bundled=bundled,
                         examples=[(q, q.path.read_text(encoding="utf-8"), q.name.removeprefix("examples/"))
                                   for q in examples],
                         max_instances=MAX_INSTANCES)


def write_docs(guideline: Guideline, folder: Path) -> list[Path]:
    """Write the HTML site into ``folder``; returns the pages written."""
    site = _Site(guideline)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in (("index.html", site.index), ("drugs.html", site.drugs), ("statements.html", site.statements),
                         ("sources.html", site.sources), ("vocabulary.html", site.vocabulary)):
        path = folder / name
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    return written

