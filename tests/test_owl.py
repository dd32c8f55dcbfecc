"""The guideline is valid OWL 2 DL (issue 14): declarations, datatypes, module headers and an
import structure a tool follows offline; a real OWL 2 DL reasoner (HermiT, through owlready2
and the machine's Java) loads the merged ontology, finds it consistent and no class
unsatisfiable. Also: nothing sends a reader to a file outside the repository."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rdflib import OWL, RDF, RDFS, XSD, Graph, Literal, URIRef

from jdm_kg.authoring.release import CATALOG_FILE, ROOT_FILE, import_closure, merged_ontology, read_catalog

REPO = Path(__file__).resolve().parent.parent
ONTOLOGY = REPO / "ontology"
DCTERMS_SOURCE = URIRef("http://purl.org/dc/terms/source")

#: The OWL 2 datatype map (OWL 2 Structural Specification, section 4), plus rdf:PlainLiteral.
OWL2_DATATYPES = {URIRef(str(XSD) + n) for n in (
    "decimal", "integer", "nonNegativeInteger", "nonPositiveInteger", "positiveInteger", "negativeInteger", "long",
    "int", "short", "byte", "unsignedLong", "unsignedInt", "unsignedShort", "unsignedByte", "double", "float",
    "string", "normalizedString", "token", "language", "Name", "NCName", "NMTOKEN", "boolean", "hexBinary",
    "base64Binary", "anyURI", "dateTime", "dateTimeStamp")} | {
    RDFS.Literal, URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#PlainLiteral"),
    URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#XMLLiteral"), OWL.real, OWL.rational}

#: Built-in vocabulary that needs no declaration.
BUILT_IN = (str(RDF), str(RDFS), str(OWL))


def _modules() -> dict[str, Graph]:
    return {path.name: graph for _, path, graph in import_closure(ONTOLOGY)}


@pytest.fixture(scope="module")
def merged() -> Graph:
    return merged_ontology(ONTOLOGY)


def test_import_closure_reaches_every_module_offline_through_the_catalog() -> None:
    closure = import_closure(ONTOLOGY)
    assert next(p.name for _, p, _ in closure) == ROOT_FILE
    assert {p.name for _, p, _ in closure} == {ROOT_FILE} | {p.name for p in ONTOLOGY.glob("*.ttl")}
    catalog = read_catalog(ONTOLOGY)
    for iri, path, graph in closure:
        if path.suffix == ".ttl":
            assert catalog[str(iri)] == path
            version_iri = graph.value(iri, OWL.versionIRI)
            assert catalog[str(version_iri)] == path, f"{path.name}: version IRI not in {CATALOG_FILE}"


def test_every_module_has_one_header_with_a_version_iri_naming_its_version() -> None:
    versions = set()
    for name, graph in _modules().items():
        headers = list(graph.subjects(RDF.type, OWL.Ontology))
        assert len(headers) == 1, name
        version = str(graph.value(headers[0], OWL.versionInfo))
        assert re.fullmatch(r"v\d{4}-\d{2}-\d{2}", version), name
        assert version in str(graph.value(headers[0], OWL.versionIRI)), name
        assert graph.value(headers[0], RDFS.label) is not None, name
        versions.add(version)
    assert len(versions) == 1, versions


def test_an_import_the_catalog_does_not_map_is_refused(tmp_path: Path) -> None:
    for path in ONTOLOGY.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    catalog = (tmp_path / CATALOG_FILE).read_text(encoding="utf-8")
    (tmp_path / CATALOG_FILE).write_text(catalog.replace('name="https://w3id.org/jdm-kg/sources"', 'name="x:y"'))
    with pytest.raises(Exception, match="does not map"):
        import_closure(tmp_path)


def test_every_property_and_class_used_is_declared(merged: Graph) -> None:
    declared = {kind: set(merged.subjects(RDF.type, kind)) for kind in
                (OWL.AnnotationProperty, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.Class)}
    props = declared[OWL.AnnotationProperty] | declared[OWL.ObjectProperty] | declared[OWL.DatatypeProperty]
    undeclared = {p for p in merged.predicates() if not str(p).startswith(BUILT_IN) and p not in props}
    assert not undeclared, f"properties used without a declaration: {sorted(undeclared)}"
    classes = {o for o in merged.objects(None, RDF.type) if not str(o).startswith(BUILT_IN)}
    assert not classes - declared[OWL.Class], f"classes used without a declaration: {sorted(classes - declared[OWL.Class])}"
    # one kind per property (no annotation/object/datatype mix, which OWL 2 DL forbids)
    kinds = list(declared.values())[:3]
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert not a & b, sorted(a & b)
    # object properties take IRIs, datatype properties literals
    for p in declared[OWL.ObjectProperty]:
        assert not [o for o in merged.objects(None, p) if isinstance(o, Literal)], p
    for p in declared[OWL.DatatypeProperty]:
        assert not [o for o in merged.objects(None, p) if not isinstance(o, Literal)], p


def test_dcterms_source_always_takes_an_iri(merged: Graph) -> None:
    literals = [(s, o) for s, o in merged.subject_objects(DCTERMS_SOURCE) if isinstance(o, Literal)]
    assert not literals, f"dcterms:source with free text (use jdm:sourceNote): {literals[:5]}"


def test_owl_ranges_use_only_the_owl2_datatype_map(merged: Graph) -> None:
    datatypes = {o for p in merged.subjects(RDF.type, OWL.DatatypeProperty) for o in merged.objects(p, RDFS.range)}
    assert datatypes <= OWL2_DATATYPES, sorted(datatypes - OWL2_DATATYPES)


# ------------------------------------------------------------------ the reasoner


def _hermit(graph: Graph, tmp_path: Path) -> list[str]:
    """Load ``graph`` into owlready2 (as RDF/XML) and run HermiT; the unsatisfiable classes.
    Raises what owlready2 raises when HermiT refuses the ontology or finds it inconsistent."""
    owlready2 = pytest.importorskip("owlready2", reason="owlready2 is not installed (pip install '.[test]')")
    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH: HermiT needs a Java runtime (apt-get install -y default-jre-headless)")
    owlready2.JAVA_EXE = java
    path = tmp_path / "merged.owl"
    graph.serialize(path, format="xml")
    world = owlready2.World()
    ontology = world.get_ontology(path.as_uri()).load()
    with ontology:
        owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
    return sorted(str(c.iri) for c in world.inconsistent_classes() if str(c.iri) != str(OWL.Nothing))


def test_merged_ontology_loads_in_hermit_consistent_and_without_unsatisfiable_classes(
        merged: Graph, tmp_path: Path) -> None:
    assert _hermit(merged, tmp_path) == []


def test_hermit_check_finds_an_unsatisfiable_class(merged: Graph, tmp_path: Path) -> None:
    """The reasoner test can fail: a class under two disjoint classes is reported."""
    broken = Graph()
    broken += merged
    disjoint = next(iter(merged.subject_objects(OWL.disjointWith)))
    bad = URIRef("https://w3id.org/jdm-kg/vocab#BrokenBoth")
    broken.add((bad, RDF.type, OWL.Class))
    broken.add((bad, RDFS.subClassOf, disjoint[0]))
    broken.add((bad, RDFS.subClassOf, disjoint[1]))
    assert _hermit(broken, tmp_path) == [str(bad)]


def test_hermit_refuses_a_datatype_outside_the_owl2_map(merged: Graph, tmp_path: Path) -> None:
    broken = Graph()
    broken += merged
    broken.add((URIRef("https://w3id.org/jdm-kg/vocab#birthDate"), RDFS.range, XSD.date))
    with pytest.raises(Exception):  # noqa: B017 (owlready2 re-raises HermiT's Java error as a plain Exception)
        _hermit(broken, tmp_path)


# ------------------------------------------------------------------ pointers inside the repository


def _pointing_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "AUTHORING.md"]
    for folder in ("ontology", "shapes", "queries", "jdm_kg"):
        files += [p for p in (REPO / folder).rglob("*") if p.is_file() and p.suffix in
                  (".ttl", ".rq", ".py", ".md", ".owl", ".xml", ".html", ".txt", ".jsonld", ".json")]
    return files


def test_nothing_points_to_a_file_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    offending = [str(p.relative_to(REPO)) for p in _pointing_files() if p.resolve() != this
                 and re.search(r"\.\./shared|clinical-facts\.md", p.read_text(encoding="utf-8", errors="replace"))]
    assert not offending, f"point to ../shared or clinical-facts.md (use docs/reference-sheet.md): {offending}"


def test_the_reference_sheet_is_in_the_repository_and_cited_as_a_node(merged: Graph) -> None:
    sheet = REPO / "docs" / "reference-sheet.md"
    assert "checked reference sheet" in sheet.read_text(encoding="utf-8")
    node = URIRef("https://w3id.org/jdm-kg/guideline/reference-sheet")
    assert "docs/reference-sheet.md" in str(merged.value(node, URIRef("http://purl.org/dc/terms/bibliographicCitation")))
    assert len(set(merged.subjects(DCTERMS_SOURCE, node))) > 10


def test_catalog_is_an_oasis_catalog_protege_reads() -> None:
    root = ET.parse(ONTOLOGY / CATALOG_FILE).getroot()
    assert root.tag == "{urn:oasis:names:tc:entity:xmlns:xml:catalog}catalog"
    for uri in root.iter("{urn:oasis:names:tc:entity:xmlns:xml:catalog}uri"):
        assert (ONTOLOGY / uri.attrib["uri"]).is_file()
