"""``jdm-kg release``: a dated release of the guideline, the way OBO ontologies are released.

Into ``OUT/vYYYY-MM-DD/`` (the version is the guideline's ``owl:versionInfo``, which every
module must share) it writes:

- ``jdm-kg.ttl`` and ``jdm-kg.owl``: the merged ontology (the import closure of
  ``ontology/jdm-kg.owl``, followed offline through ``ontology/catalog-v001.xml``), with one
  ontology header whose ``owl:versionIRI`` is ``https://w3id.org/jdm-kg/releases/vYYYY-MM-DD/jdm-kg.owl``,
  as Turtle and as RDF/XML;
- ``jdm-kg-vocab.ttl``: the vocabulary (TBox) alone;
- ``shapes/patient-shapes.ttl`` and ``shapes/guideline-shapes.ttl``: the SHACL shapes;
- ``jdm-kg.sssom.tsv``: the SKOS code mappings as an SSSOM table (YAML metadata header, then
  one row per mapping, ``semapv:ManualMappingCuration``);
- ``release-notes.md``: the CHANGELOG.md section of this version (else its "Unreleased" one).

Nothing is fetched: the imports resolve through the catalog or the release stops. A release
is made in a checkout: the release notes need the CHANGELOG.md beside ``ontology/``, which an
installed wheel does not carry (the command then says so and writes nothing).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from rdflib import OWL, RDF, RDFS, SKOS, Graph, Literal, Namespace, URIRef

from jdm_kg.errors import InputError
from jdm_kg.resources import resource_dir

__all__ = [
    "CATALOG_FILE",
    "ROOT_FILE",
    "Release",
    "import_closure",
    "merged_ontology",
    "module_versions",
    "read_catalog",
    "release_notes",
    "release_version",
    "sssom_rows",
    "sssom_tsv",
    "write_release",
]

ROOT_FILE = "jdm-kg.owl"
CATALOG_FILE = "catalog-v001.xml"
ROOT_IRI = URIRef("https://w3id.org/jdm-kg/jdm-kg.owl")
GUIDELINE_IRI = URIRef("https://w3id.org/jdm-kg/guideline")
VOCAB_IRI = URIRef("https://w3id.org/jdm-kg/vocab")
RELEASE_BASE = "https://w3id.org/jdm-kg/releases/"
DCTERMS = Namespace("http://purl.org/dc/terms/")
_CATALOG_NS = "{urn:oasis:names:tc:entity:xmlns:xml:catalog}"
_VERSION = re.compile(r"^v\d{4}-\d{2}-\d{2}$")

#: SKOS mapping predicates exported to SSSOM (SSSOM's own predicate vocabulary).
MAPPING_PREDICATES = (SKOS.exactMatch, SKOS.closeMatch, SKOS.broadMatch, SKOS.narrowMatch, SKOS.relatedMatch)

#: Prefixes for the SSSOM curie_map (longest namespace wins). Every mapped IRI must fall under one.
SSSOM_PREFIXES: dict[str, str] = {
    "jdm": "https://w3id.org/jdm-kg/vocab#",
    "jdmg": "https://w3id.org/jdm-kg/guideline/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "semapv": "https://w3id.org/semapv/vocab/",
    "LOINC": "https://loinc.org/",
    "ATC": "http://purl.bioontology.org/ontology/ATC/",
    "RXNORM": "http://purl.bioontology.org/ontology/RXNORM/",
    "ICD10CM": "http://purl.bioontology.org/ontology/ICD10CM/",
    "SCTID": "http://snomed.info/id/",
    "HP": "http://purl.obolibrary.org/obo/HP_",
    "MONDO": "http://purl.obolibrary.org/obo/MONDO_",
    "Orphanet": "http://www.orpha.net/ORDO/Orphanet_",
    "v3-ObservationInterpretation": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation#",
}

SSSOM_COLUMNS = ("subject_id", "subject_label", "predicate_id", "object_id", "mapping_justification",
                 "author_label", "comment")


@dataclass(frozen=True)
class Release:
    """What :func:`write_release` wrote."""

    version: str
    folder: Path
    files: tuple[Path, ...]


def read_catalog(folder: Path) -> dict[str, Path]:
    """The ontology IRI -> local file map of ``folder/catalog-v001.xml`` (OASIS XML catalog)."""
    path = folder / CATALOG_FILE
    if not path.is_file():
        raise InputError(str(path), "no import catalog: the modules' owl:imports cannot be followed offline")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise InputError(str(path), f"not a readable XML catalog ({err})") from None
    return {el.attrib["name"]: folder / el.attrib["uri"] for el in root.iter(f"{_CATALOG_NS}uri")}


def _parse(path: Path) -> Graph:
    graph = Graph()
    try:
        graph.parse(path, format="xml" if path.suffix in (".owl", ".rdf") else "turtle")
    except Exception as err:  # noqa: BLE001 (any parser error: say which file)
        raise InputError(str(path), f"does not parse ({err})") from None
    return graph


def import_closure(folder: Path, root: str = ROOT_FILE) -> list[tuple[URIRef, Path, Graph]]:
    """Follow ``owl:imports`` from ``folder/root`` through the catalog: (ontology IRI, file, graph)
    for every ontology reached, root first. An import the catalog does not map is an error."""
    catalog = read_catalog(folder)
    seen: dict[Path, tuple[URIRef, Path, Graph]] = {}
    todo = [folder / root]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        graph = _parse(path)
        iris = [s for s in graph.subjects(RDF.type, OWL.Ontology) if isinstance(s, URIRef)]
        if len(iris) != 1:
            raise InputError(str(path), f"has {len(iris)} owl:Ontology headers; a module has exactly one")
        seen[path] = (iris[0], path, graph)
        for imported in sorted(graph.objects(iris[0], OWL.imports), key=str):
            target = catalog.get(str(imported))
            if target is None:
                raise InputError(str(path), f"imports <{imported}>, which {CATALOG_FILE} does not map to a local file")
            todo.append(target)
    return list(seen.values())


def module_versions(folder: Path) -> dict[str, str]:
    """Each module's ``owl:versionInfo``, by file name."""
    return {path.name: str(graph.value(iri, OWL.versionInfo) or "") for iri, path, graph in import_closure(folder)}


def release_version(folder: Path) -> str:
    """The one version every module states (``vYYYY-MM-DD``); an error if they disagree."""
    versions = module_versions(folder)
    distinct = set(versions.values())
    if len(distinct) != 1:
        listed = ", ".join(f"{name}: {v or 'none'}" for name, v in sorted(versions.items()))
        raise InputError(str(folder), f"the modules state different owl:versionInfo ({listed}); give them all the same")
    version = distinct.pop()
    if not _VERSION.match(version):
        raise InputError(str(folder), f"owl:versionInfo {version!r} is not vYYYY-MM-DD")
    return version


def release_iri(version: str, name: str) -> URIRef:
    """``https://w3id.org/jdm-kg/releases/vYYYY-MM-DD/NAME``, the OBO pattern for versioned files."""
    return URIRef(f"{RELEASE_BASE}{version}/{name}")


def merged_ontology(folder: Path, version: str | None = None) -> Graph:
    """The import closure as one graph with one ontology header (the root's): the modules'
    headers and ``owl:imports`` are dropped, the guideline header's title, description,
    licence and date are kept on the root, and ``owl:versionIRI`` is the release's."""
    version = version or release_version(folder)
    closure = import_closure(folder)
    merged = Graph()
    module_iris = {iri for iri, _, _ in closure}
    for _, _, graph in closure:
        for prefix, namespace in graph.namespaces():
            merged.bind(prefix, namespace, override=False)
        for triple in graph:
            if triple[0] not in module_iris and triple[1] != OWL.imports:
                merged.add(triple)
    guideline = next((g for iri, _, g in closure if iri == GUIDELINE_IRI), Graph())
    merged.add((ROOT_IRI, RDF.type, OWL.Ontology))
    for _, _, graph in closure[:1]:
        for p, o in graph.predicate_objects(ROOT_IRI):
            if p not in (OWL.imports, OWL.versionIRI):
                merged.add((ROOT_IRI, p, o))
    for p in (DCTERMS.title, DCTERMS.description, DCTERMS.modified, DCTERMS.license):
        for o in guideline.objects(GUIDELINE_IRI, p):
            merged.add((ROOT_IRI, p, o))
    merged.set((ROOT_IRI, OWL.versionIRI, release_iri(version, ROOT_FILE)))
    merged.set((ROOT_IRI, OWL.versionInfo, Literal(version)))
    return merged


def _curie(iri: str) -> str:
    best = max((p for p, ns in SSSOM_PREFIXES.items() if iri.startswith(ns)), key=lambda p: len(SSSOM_PREFIXES[p]),
               default=None)
    if best is None:
        raise InputError(iri, "a mapped IRI under no SSSOM prefix: add its namespace to SSSOM_PREFIXES")
    return f"{best}:{iri[len(SSSOM_PREFIXES[best]):]}"


def sssom_rows(graph: Graph) -> list[dict[str, str]]:
    """One SSSOM row per SKOS mapping whose subject is a jdm-kg term, sorted."""
    rows = []
    for predicate in MAPPING_PREDICATES:
        for subject, obj in graph.subject_objects(predicate):
            if not (isinstance(subject, URIRef) and isinstance(obj, URIRef)
                    and str(subject).startswith("https://w3id.org/jdm-kg/")):
                continue
            label = graph.value(subject, RDFS.label)
            rows.append({
                "subject_id": _curie(str(subject)),
                "subject_label": str(label) if label is not None else "",
                "predicate_id": _curie(str(predicate)),
                "object_id": _curie(str(obj)),
                "mapping_justification": "semapv:ManualMappingCuration",
                "author_label": "jdm-kg guideline authors",
                "comment": "codes checked against docs/reference-sheet.md",
            })
    rows.sort(key=lambda r: (r["subject_id"], r["predicate_id"], r["object_id"]))
    return rows


def _yaml_scalar(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sssom_tsv(graph: Graph, version: str) -> str:
    """The SSSOM/TSV file: ``#``-commented YAML metadata (curie_map, mapping_set_id with the
    version, license...), then the table."""
    rows = sssom_rows(graph)
    used = {value.split(":", 1)[0] for row in rows for key, value in row.items() if key.endswith("_id")
            or key == "mapping_justification"}
    meta = [
        "curie_map:",
        *(f"  {prefix}: {_yaml_scalar(SSSOM_PREFIXES[prefix])}" for prefix in sorted(used)),
        f"mapping_set_id: {_yaml_scalar(str(release_iri(version, 'jdm-kg.sssom.tsv')))}",
        f"mapping_set_version: {_yaml_scalar(version)}",
        f"mapping_set_title: {_yaml_scalar('jdm-kg guideline terms mapped to standard codes (' + version + ')')}",
        f"mapping_set_description: {_yaml_scalar('The skos mappings of the jdm-kg guideline graph ' + version + ', from ontology/terms.ttl and ontology/vocab.ttl.')}",
        f"license: {_yaml_scalar('https://creativecommons.org/licenses/by/4.0/')}",
        f"publication_date: {_yaml_scalar(version[1:])}",
    ]
    out = io.StringIO()
    for line in meta:
        out.write(f"#{line}\n")
    writer = csv.DictWriter(out, fieldnames=SSSOM_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def release_notes(changelog: Path, version: str) -> str:
    """The CHANGELOG.md section headed ``## VERSION``, else the ``## Unreleased`` one, as Markdown."""
    try:
        text = changelog.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(str(changelog), f"cannot read the changelog for the release notes ({err.strerror})") from None
    sections: dict[str, str] = {}
    for match in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL):
        sections[match.group(1).strip()] = match.group(2).strip()
    body = sections.get(version)
    if body is None:
        body = sections.get("Unreleased")
    if body is None:
        raise InputError(str(changelog), f"has no '## {version}' or '## Unreleased' section for the release notes")
    return f"# jdm-kg release {version}\n\nFrom CHANGELOG.md.\n\n{body}\n"


def _turtle_with_header(graph: Graph, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + "\n" + graph.serialize(format="longturtle")


def write_release(out: Path, folder: Path | None = None, shapes: Path | None = None,
                  changelog: Path | None = None) -> Release:
    """Write the release of the guideline in ``folder`` (default: the bundled ``ontology/``) into
    ``out/VERSION/``; ``changelog`` defaults to the CHANGELOG.md beside the guideline folder."""
    folder = folder or resource_dir("ontology")
    shapes = shapes or (folder.parent / "shapes" if (folder.parent / "shapes").is_dir() else resource_dir("shapes"))
    changelog = changelog or folder.parent / "CHANGELOG.md"
    version = release_version(folder)
    merged = merged_ontology(folder, version)
    about = (f"jdm-kg release {version} ({release_iri(version, ROOT_FILE)}). Licence: CC BY 4.0. "
             "Generated by `jdm-kg release`; do not edit.")
    vocab = next((g for iri, _, g in import_closure(folder) if iri == VOCAB_IRI), None)
    if vocab is None:
        raise InputError(str(folder), f"the import closure of {ROOT_FILE} has no <{VOCAB_IRI}>")
    # everything is worked out before anything is written: a failed release leaves no partial folder
    texts = {
        "jdm-kg.ttl": _turtle_with_header(merged, "jdm-kg merged ontology: vocabulary, terms, sources, guideline.\n" + about),
        ROOT_FILE: merged.serialize(format="pretty-xml"),
        "jdm-kg-vocab.ttl": _turtle_with_header(vocab, "jdm-kg vocabulary (TBox) alone.\n" + about),
    }
    for name, source in (("patient-shapes.ttl", shapes / "patient-shapes.ttl"),
                         ("guideline-shapes.ttl", shapes / "guideline" / "guideline-shapes.ttl")):
        try:
            texts[f"shapes/{name}"] = f"# SHACL shapes of {about}\n" + source.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(str(source), f"cannot read the shapes ({err.strerror})") from None
    texts["jdm-kg.sssom.tsv"] = sssom_tsv(merged, version)
    texts["release-notes.md"] = release_notes(changelog, version)
    target = out / version
    (target / "shapes").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in texts.items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return Release(version, target, tuple(written))
