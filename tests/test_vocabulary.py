"""The vocabulary as analysts read it (issue 14, item 6): the declared domains and ranges agree
with how the graph actually uses every property (the compiled guideline, every example and
vignette patient record, and what ``recommend`` writes as PROV-O); the vocabulary page of
``jdm-kg docs`` shows the namespaces, every property's domain and range, the instances of the
small classes and the queries, the same bytes on every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import OWL, RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from jdm_kg import load_patient_file, recommend_graph
from jdm_kg.knowledge.guideline import JDM, JDMG
from jdm_kg.outputs.report import results_graph

ROOT = Path(__file__).resolve().parent.parent
PATIENT_FILES = sorted(
    [p for p in (ROOT / "examples").glob("*.*")] + list((ROOT / "examples" / "fhir").glob("*.json"))
    + list((ROOT / "tests" / "vignettes").glob("*.*")))

#: xsd:decimal and the datatypes derived from it (an xsd:integer is an xsd:decimal).
_DECIMALS = {XSD.decimal, XSD.integer, XSD.long, XSD.int, XSD.short, XSD.byte, XSD.nonNegativeInteger,
             XSD.positiveInteger, XSD.nonPositiveInteger, XSD.negativeInteger, XSD.unsignedLong, XSD.unsignedInt,
             XSD.unsignedShort, XSD.unsignedByte}


def _datatypes(vocab: Graph, declared: Node) -> set[Node]:
    """A declared range's datatypes: itself, or the members of an ``owl:unionOf``."""
    members = vocab.value(declared, OWL.unionOf)
    return set(Collection(vocab, members)) if members is not None else {declared}


def _fits(value: Literal, allowed: set[Node]) -> bool:
    datatype = value.datatype or (RDF.langString if value.language else XSD.string)
    return any(a in (RDFS.Literal, datatype) or (a == XSD.decimal and datatype in _DECIMALS) for a in allowed)


def disagreements(vocab: Graph, hierarchy: Graph, known_types: dict[Node, set[Node]],
                  graphs: list[tuple[str, Graph, set[Node]]]) -> list[str]:
    """Every use of a jdm: property in ``graphs`` that its declared domain or range (in ``vocab``,
    as written) does not allow.

    A node typed with a jdm: class (in its graph, or in ``known_types``: the guideline's asserted
    types), with the superclasses ``hierarchy`` gives, must be an instance of the domain or range.
    A node with no jdm: class (the blank-node entries of a patient record, the measurements of
    recommend's PROV-O output) is typed by the domains and ranges themselves: those must agree
    (one class, or one under the other), or the node would be two different things. A literal
    must be of the range's datatype (an xsd:integer is an xsd:decimal). Each graph comes with
    the nodes to skip (a vignette's expectation nodes)."""
    supers: dict[Node, set[Node]] = {}

    def up(cls: Node) -> set[Node]:
        if cls not in supers:
            seen, todo = {cls}, [cls]
            while todo:
                for parent in hierarchy.objects(todo.pop(), RDFS.subClassOf):
                    if isinstance(parent, URIRef) and parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            supers[cls] = seen
        return supers[cls]

    props = {p: (kind, set(vocab.objects(p, RDFS.domain)), set(vocab.objects(p, RDFS.range)))
             for kind in (OWL.ObjectProperty, OWL.DatatypeProperty)
             for p in vocab.subjects(RDF.type, kind) if str(p).startswith(str(JDM))}
    problems: list[str] = []
    for name, graph, skip in graphs:
        implied: dict[Node, dict[Node, str]] = {}  # node with no jdm: class -> the classes its uses give it
        for s, p, o in graph:
            if p not in props or s in skip:
                continue
            kind, domains, ranges = props[p]
            needs = [(s, domain, f"domain of {p}") for domain in domains]
            if kind == OWL.DatatypeProperty:
                if not isinstance(o, Literal):
                    problems.append(f"{name}: {p} is a data field but takes {o}")
                elif ranges and not _fits(o, set().union(*(_datatypes(vocab, r) for r in ranges))):
                    problems.append(f"{name}: {p} {o!r} is not of its range")
            elif isinstance(o, Literal):
                problems.append(f"{name}: {p} is a relation but takes the literal {o!r}")
            else:
                needs += [(o, rng, f"range of {p}") for rng in ranges]
            for node, cls, why in needs:
                types = set().union(*(up(t) for t in set(graph.objects(node, RDF.type)) | known_types.get(node, set())))
                if not any(str(t).startswith(str(JDM)) for t in types):
                    implied.setdefault(node, {}).setdefault(cls, why)
                elif cls not in types:
                    problems.append(f"{name}: {node} is not a {cls} ({why})")
        for node, classes in implied.items():
            listed = sorted(classes)
            for i, a in enumerate(listed):
                for b in listed[i + 1:]:
                    if a not in up(b) and b not in up(a):
                        problems.append(f"{name}: {node} would be both a {a} ({classes[a]}) and a {b} ({classes[b]})")
    return problems


def _expectation_nodes(graph: Graph) -> set[Node]:
    """A vignette's expectation nodes (``jdm:expectGate [ jdm:assessedOption ...; jdm:screenedFor
    ...; jdm:status ... ]``, RDF lists): they borrow the properties of what they expect and are
    not records of it, so the agreement check skips them."""
    out: set[Node] = set()
    for vignette in graph.subjects(RDF.type, JDM.Vignette):
        todo = [o for p, o in graph.predicate_objects(vignette) if str(p).startswith(str(JDM.expect))]
        while todo:
            node = todo.pop()
            if isinstance(node, BNode) and node not in out:
                out.add(node)
                todo += list(graph.objects(node, None))
    return out


@pytest.fixture(scope="module")
def uses(guideline):
    """(name, graph, nodes to skip) for the compiled guideline, every example and vignette
    patient file, and recommend's PROV-O output for each."""
    graphs: list[tuple[str, Graph, set[Node]]] = [("compiled guideline", guideline.graph, set())]
    for path in PATIENT_FILES:
        graph = load_patient_file(path)
        graphs.append((path.name, graph, _expectation_nodes(graph)))
        _, results = recommend_graph(graph, str(path), guideline)
        graphs.append((f"recommend {path.name}", results_graph(results, guideline), set()))
    return graphs


def _asserted_types(guideline) -> dict[Node, set[Node]]:
    types: dict[Node, set[Node]] = {}
    for node, cls in guideline.asserted.subject_objects(RDF.type):
        types.setdefault(node, set()).add(cls)
    return types


def test_declared_domains_and_ranges_agree_with_how_the_graph_uses_them(guideline, uses):
    assert len(uses) == 1 + 2 * len(PATIENT_FILES) and len(PATIENT_FILES) >= 35
    # the compiled guideline's rule and inverse triples are checked against the types as written,
    # not against the types the closure inferred from the domains themselves
    problems = disagreements(guideline.asserted, guideline.graph, _asserted_types(guideline), uses)
    assert not problems, "\n".join(problems[:20])


def test_most_properties_declare_a_domain_and_a_range(guideline):
    vocab = guideline.asserted
    props = [p for kind in (OWL.ObjectProperty, OWL.DatatypeProperty) for p in vocab.subjects(RDF.type, kind)
             if str(p).startswith(str(JDM))]
    with_domain = [p for p in props if (p, RDFS.domain, None) in vocab]
    with_range = [p for p in props if (p, RDFS.range, None) in vocab]
    assert len(with_domain) >= 0.75 * len(props) and len(with_range) >= 0.75 * len(props)
    # what is used on several kinds of thing declares none (it would make one thing two)
    for p in (JDM.aboutOption, JDM.forManifestation, JDM.evidenceType, JDM.screenedFor, JDM.date, JDM.status):
        assert (p, RDFS.domain, None) not in vocab, p


def test_the_agreement_check_finds_a_misuse(guideline):
    bad = Graph()
    finding, clearance = BNode(), BNode()
    bad.add((JDMG.rituximab, JDM.doseMin, Literal(375)))  # a dose on a drug, not on its regimen
    bad.add((JDMG["regimen-ivig"], JDM.doseMax, Literal("two")))  # a word for a number
    bad.add((JDMG.rituximab, JDM.role, Literal("next line")))  # a literal for a relation
    bad.add((finding, JDM.manifestation, JDMG.SkinDisease))
    bad.add((finding, JDM.value, Literal(3)))  # a finding that would also be a measurement
    bad.add((clearance, JDM.clearedBy, Literal("Dr A")))
    bad.add((clearance, JDM.screenedFor, JDMG.HepatitisB))  # fine: screenedFor declares no domain
    problems = disagreements(guideline.asserted, guideline.graph, _asserted_types(guideline), [("bad", bad, set())])
    assert len(problems) == 4, problems
    assert any("rituximab is not a https://w3id.org/jdm-kg/vocab#DoseRegimen" in p for p in problems)
    assert any("doseMax" in p and "'two'" in p for p in problems)
    assert any("is a relation but takes the literal" in p for p in problems)
    assert any("would be both a" in p and "ManifestationFinding" in p and "Measurement" in p for p in problems)


def test_a_json_ld_number_with_a_fraction_is_why_value_declares_no_range(guideline):
    graph = load_patient_file(ROOT / "examples" / "muscle-predominant.jsonld")
    assert {o.datatype for o in graph.objects(None, JDM.value)} == {XSD.double, XSD.integer}  # 42.5 and 152
    assert guideline.asserted.value(JDM.value, RDFS.range) is None  # xsd:decimal would be false of 42.5


def test_the_compiled_guideline_has_no_blank_nodes(guideline):
    """A SPARQL server renames blank nodes, so the guideline it holds could not be recognised by
    its digest (jdm_kg.reasoning.endpoint.check_guideline_loaded): no OWL union ranges or other
    anonymous class expressions in the modules."""
    assert not [t for t in guideline.graph if any(isinstance(x, BNode) for x in t)]


# ---------------------------------------------------------------- the vocabulary page of jdm-kg docs


@pytest.fixture(scope="module")
def page(guideline, tmp_path_factory) -> str:
    from jdm_kg.outputs.docs import write_docs

    folder = tmp_path_factory.mktemp("site")
    write_docs(guideline, folder)
    return (folder / "vocabulary.html").read_text(encoding="utf-8")


def _row(page: str, anchor: str) -> str:
    match = re.search(rf'<tr id="{re.escape(anchor)}">(.*?)</tr>', page, re.DOTALL)
    assert match, anchor
    return match.group(1)


def test_vocabulary_page_shows_the_namespaces_and_code_systems(page):
    for prefix, namespace in {"jdm": "https://w3id.org/jdm-kg/vocab#", "jdmg": "https://w3id.org/jdm-kg/guideline/",
                              "skos": "http://www.w3.org/2004/02/skos/core#", "dcterms": "http://purl.org/dc/terms/",
                              "prov": "http://www.w3.org/ns/prov#", "sh": "http://www.w3.org/ns/shacl#",
                              "xsd": "http://www.w3.org/2001/XMLSchema#", "rxnorm": "http://purl.bioontology.org/ontology/RXNORM/",
                              "atc": "http://purl.bioontology.org/ontology/ATC/", "loinc": "https://loinc.org/",
                              "sct": "http://snomed.info/id/", "icd10cm": "http://purl.bioontology.org/ontology/ICD10CM/",
                              "obo": "http://purl.obolibrary.org/obo/"}.items():
        row = _row(page, f"prefix-{prefix}")
        assert f"<code>{namespace}</code>" in row and re.search(r"<td>[^<]+</td>$", row.strip()), prefix
    assert "code system: RxNorm" in _row(page, "prefix-rxnorm")
    assert "Human Phenotype Ontology (codes obo:HP_...)" in _row(page, "prefix-obo")
    assert "<td>LOINC</td><td><code>https://loinc.org/</code></td><td><code>http://loinc.org</code></td>" in page


def test_vocabulary_page_gives_every_property_a_domain_and_a_range(guideline, page):
    vocab = guideline.asserted
    props = [p for kind in (OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty)
             for p in vocab.subjects(RDF.type, kind) if str(p).startswith(str(JDM))]
    assert len(props) > 130
    for prop in props:
        cells = re.findall(r"<td>(.*?)</td>", _row(page, str(prop).rsplit("#", 1)[-1]), re.DOTALL)
        domain, range_ = cells[-2], cells[-1]
        for declared, cell in ((vocab.value(prop, RDFS.domain), domain), (vocab.value(prop, RDFS.range), range_)):
            if declared is None:
                assert "not declared" in cell, (prop, cell)
            else:
                assert "not declared" not in cell and "<code>" in cell, (prop, cell)
    row = _row(page, "doseMin")
    assert '<a href="#DoseRegimen"><code>jdm:DoseRegimen</code></a>' in row and "<code>xsd:decimal</code>" in row
    assert "the patient shapes require xsd:decimal or xsd:double or xsd:integer" in _row(page, "value")
    assert "the patient shapes require xsd:date" in _row(page, "birthDate")
    assert "sub-property of prov:wasDerivedFrom" in _row(page, "inGuideline")
    assert "inverse of jdm:hasRegimen" in _row(page, "regimenOf")


def test_vocabulary_page_lists_the_instances_of_small_classes(guideline, page):
    bands = _row(page, "RankingBand")
    for band in ("preferred for the predominant feature", "suitable", "no feature-specific guidance",
                 "less suitable for the predominant feature"):
        assert band in bands
    assert "4: " in bands
    assert "14: " in _row(page, "TreatmentOption") and 'href="drugs.html#rituximab"' in _row(page, "TreatmentOption")
    assert "26 (over 20: not listed)" in _row(page, "GuidelineStatement")
    assert "<em>none</em>" in _row(page, "Patient")
    for cls in guideline.asserted.subjects(RDF.type, OWL.Class):
        if str(cls).startswith(str(JDM)):
            _row(page, str(cls).rsplit("#", 1)[-1])


def test_vocabulary_page_shows_the_queries(page):
    from jdm_kg.knowledge.queries import query_catalogue

    for q in query_catalogue():
        if q.name.startswith("examples/"):
            short = q.name.removeprefix("examples/")
            assert f'<h3 id="example-{short}">{q.name}</h3>' in page
            assert f'href="#example-{short}"' in _row(page, q.headers["class"].split(":", 1)[1])  # from its class
            body = page.split(f'<h3 id="example-{short}">', 1)[1].split("<h3", 1)[0]
            assert q.headers["run"].split("; ")[-1] in body and "SELECT" in body
            assert ("NOT A RECOMMENDATION" in body) == (q.not_a_recommendation is not None)
        else:
            row = _row(page, f"query-{q.name}")
            assert ("NOT A RECOMMENDATION" in row) == (q.not_a_recommendation is not None), q.name
            assert ("agrees with" in row) == (q.agrees_with is not None), q.name
    assert "&lt;https://w3id.org/jdm-kg/vocab#&gt;" in page  # query text escaped


def test_docs_are_the_same_bytes_on_every_run(tmp_path):
    sites = []
    for seed in ("1", "2"):
        folder = tmp_path / seed
        proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "docs", "-o", str(folder)], check=False,
                              capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        sites.append({p.name: p.read_bytes() for p in sorted(folder.glob("*.html"))})
    assert sites[0] == sites[1] and "vocabulary.html" in sites[0]
