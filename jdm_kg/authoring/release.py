"""``jdm-kg release``: a dated release of the guideline, the way OBO ontologies are released.

Into ``OUT/vYYYY-MM-DD/`` (the version is the guideline's ``owl:versionInfo``, which every
module must share) it writes:

- ``jdm-kg.ttl`` and ``jdm-kg.owl``: the merged ontology (the import closure of
  ``ontology/jdm-kg.owl``, followed offline through ``ontology/catalog-v001.xml``), with one
  ontology header whose ``owl:versionIRI`` is ``https://w3id.org/jdm-kg/releases/vYYYY-MM-DD/jdm-kg.owl``,
  as Turtle and as RDF/XML; every individual is declared ``owl:NamedIndividual``, so OWL tools
  (owlready2, the OWL API, horned-owl) list them;
- ``jdm-kg-vocab.ttl``: the vocabulary (TBox) alone;
- ``shapes/patient-shapes.ttl`` and ``shapes/guideline-shapes.ttl``: the SHACL shapes;
- ``jdm-kg.sssom.tsv``: the SKOS code mappings as an SSSOM table (YAML metadata header, then
  one row per mapping, ``semapv:ManualMappingCuration``);
- ``fhir/``: the guideline as a FHIR R4 Clinical Practice Guidelines package
  (:mod:`jdm_kg.outputs.fhir_cpg`);
- ``release-notes.md``: this version's section of the content changelog, ``ontology/CHANGELOG.md``;
- ``manifest.json``: the version, the digest of the content it was made from, and each file's SHA-256.

**A release never lies.** The same version always has the same content. A release is refused
(:class:`ReleaseRefused`, exit 2, each reason said) when ``ontology/``, ``shapes/`` or
``queries/`` has uncommitted changes (or is not in a git checkout, so nobody can tell), when the
content changelog lists changes under ``## Unreleased`` or has no section for the version (bump
it: ``jdm-kg release --bump``), when a git tag of the version holds other content, and when the
output folder already holds a release of the version made from other content. ``allow_dirty``
writes a draft instead, into ``OUT/vYYYY-MM-DD-draft/``, marked as a draft (and why) in every
file's header, in the ontology header and in the notes.

Nothing is fetched: the imports resolve through the catalog or the release stops. Everything is
worked out before anything is written: a failed release leaves no partial folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import OWL, RDF, RDFS, SKOS, Graph, Literal, Namespace, URIRef
from rdflib.term import Node

from jdm_kg.authoring.bump import CHANGELOG_FILE, changelog_sections
from jdm_kg.errors import InputError
from jdm_kg.resources import resource_dir

__all__ = [
    "CATALOG_FILE",
    "ROOT_FILE",
    "Release",
    "ReleaseRefused",
    "checkout_refusals",
    "content_digest",
    "content_files",
    "declare_individuals",
    "refusals",
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
    digest: str = ""
    #: why this is a draft (empty: a release)
    draft_reasons: tuple[str, ...] = field(default=())

    @property
    def draft(self) -> bool:
        return bool(self.draft_reasons)


class ReleaseRefused(InputError):
    """A release that would lie: the reasons, each with what to do (the CLI exits 2)."""

    def __init__(self, version: str, reasons: list[str]) -> None:
        self.reasons = tuple(reasons)
        listed = "".join(f"\n  - {r}" for r in reasons)
        super().__init__(f"release {version}", "refused: a version must always name the same content; "
                         f"--allow-dirty writes a draft instead{listed}")


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


def _read_changelog(changelog: Path) -> str:
    try:
        return changelog.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(str(changelog), f"cannot read the content changelog for the release notes ({err.strerror}); "
                                         f"it is {CHANGELOG_FILE} beside the guideline modules") from None


def release_notes(changelog: Path, version: str, digest: str = "", draft_reasons: Collection[str] = ()) -> str:
    """The release notes: this version's section of the content changelog (``## VERSION``), and
    for a draft also its ``## Unreleased`` one, which no release holds yet."""
    name = changelog.name if changelog.parent.name != "ontology" else f"ontology/{changelog.name}"
    sections = changelog_sections(_read_changelog(changelog))
    body = sections.get(version)
    unreleased = sections.get("Unreleased", "")
    if draft_reasons:
        parts = [f"# jdm-kg {version}-draft: DRAFT, not a release\n",
                 f"This draft was made although a release of {version} would have been refused:\n",
                 *(f"- {reason}" for reason in draft_reasons), ""]
        if unreleased:
            parts += ["## Changes in no release yet", "", f"From the '## Unreleased' section of {name}.", "",
                      unreleased, ""]
        if body:
            parts += [f"## {version}", "", body, ""]
    else:
        if body is None:
            raise InputError(str(changelog), f"has no '## {version}' section for the release notes")
        parts = [f"# jdm-kg release {version}\n", f"From {name}.\n", body, ""]
    if digest:
        parts += [f"Content: sha256:{digest} (every file of ontology/, shapes/ and queries/ it was made from).", ""]
    return "\n".join(parts)


def _rdf_xml(graph: Graph) -> str:
    """``graph`` as RDF/XML, the triples sorted: the same graph gives the same bytes on every
    run, whatever Python's hash seed (rdflib's writers order subjects and namespaces by sets)."""
    import pyoxigraph as ox

    def term(node: Node) -> ox.NamedNode | ox.BlankNode | ox.Literal:
        if isinstance(node, URIRef):
            return ox.NamedNode(str(node))
        if isinstance(node, Literal):
            if node.language:
                return ox.Literal(str(node), language=node.language)
            return ox.Literal(str(node), datatype=ox.NamedNode(str(node.datatype))) if node.datatype else ox.Literal(str(node))
        return ox.BlankNode(str(node))

    triples = [ox.Triple(term(s), term(p), term(o)) for s, p, o in sorted(graph)]  # type: ignore[arg-type]
    used = {str(x) for triple in graph for x in triple if isinstance(x, URIRef)}
    prefixes = {prefix: str(ns) for prefix, ns in sorted(graph.namespaces())
                if prefix and any(iri.startswith(str(ns)) for iri in used)}
    return ox.serialize(triples, format=ox.RdfFormat.RDF_XML, prefixes=prefixes).decode("utf-8") + "\n"


def _turtle_with_header(graph: Graph, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + "\n" + graph.serialize(format="longturtle")


#: Classes of OWL, RDFS and RDF (and their vocabulary): what is typed with one is not an individual.
_META_NAMESPACES = (str(OWL), str(RDFS), str(RDF))


def declare_individuals(graph: Graph) -> int:
    """Declare ``owl:NamedIndividual`` every IRI typed with a class that is not one of OWL's,
    RDFS's or RDF's own (``owl:Class``, ``owl:ObjectProperty``, ``owl:Ontology``...), as OWL 2
    asks: a tool that reads declarations (owlready2, horned-owl) lists no individual without it.
    Returns the number of individuals."""
    individuals = sorted({s for s, o in graph.subject_objects(RDF.type)
                          if isinstance(s, URIRef) and isinstance(o, URIRef) and not str(o).startswith(_META_NAMESPACES)})
    for s in individuals:
        graph.add((s, RDF.type, OWL.NamedIndividual))
    return len(individuals)


# --------------------------------------------------------------------------------------
# What a release is made from, and whether it may carry the version it states

_JUNK = ("~", ".swp", ".pyc", ".orig", ".rej")


def content_files(folders: dict[str, Path]) -> list[tuple[str, Path]]:
    """(name, path) of every file a release is made from: all of ``ontology/``, ``shapes/`` and
    ``queries/`` (``folders``: kind -> folder), but editor backups and hidden files, sorted."""
    out = []
    for kind, folder in sorted(folders.items()):
        for path in sorted(folder.rglob("*")):
            parts = path.relative_to(folder).parts
            if path.is_file() and not path.name.endswith(_JUNK) and not any(p.startswith((".", "__")) for p in parts):
                out.append((f"{kind}/{'/'.join(parts)}", path))
    return out


def content_digest(folders: dict[str, Path]) -> str:
    """SHA-256 over the names and bytes of :func:`content_files` (line ends read as LF, so a
    Windows checkout gives the same digest)."""
    digest = hashlib.sha256()
    for name, path in content_files(folders):
        digest.update(name.encode() + b"\0" + path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def uncommitted(folder: Path) -> list[Path] | None:
    """The files under ``folder`` that differ from the last commit (changed, added, deleted,
    untracked; ignored ones aside), or None when ``folder`` is in no git checkout (or git is missing)."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    status = _git(folder, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    if top is None or status is None or top.returncode or status.returncode:
        return None
    root = Path(top.stdout.strip())
    fields = status.stdout.split("\0")
    out, i = [], 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        out.append((root / entry[3:]).resolve())
        if entry[0] in "RC":  # a rename or copy: the next field is where it came from
            i += 1
    return out


def changed_since_tag(folder: Path, tag: str) -> list[str] | None:
    """The files under ``folder`` whose content differs from the git tag ``tag`` (None: no such tag)."""
    known = _git(folder, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}")
    if known is None or known.returncode:
        return None
    diff = _git(folder, "diff", "--name-only", tag, "--", ".")
    if diff is None or diff.returncode:
        return None
    return [line for line in diff.stdout.splitlines() if line]


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def checkout_refusals(folders: dict[str, Path], allowed: Collection[Path] = ()) -> list[str]:
    """Uncommitted changes in ``folders`` (kind -> folder), or folders in no git checkout; the
    changes to ``allowed`` files (those a bump just made) are expected."""
    reasons: list[str] = []
    allowed = {p.resolve() for p in allowed}
    for kind, folder in sorted(folders.items()):
        changed = uncommitted(folder)
        if changed is None:
            reasons.append(f"{kind}/ ({_shown(folder)}) is not in a git checkout (or git is not installed), so "
                           "nobody can tell what it holds: release from a clean checkout")
            continue
        changed = [p for p in changed if p not in allowed]
        if changed:
            names = ", ".join(_shown(p) for p in changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
            reasons.append(f"uncommitted changes in {kind}/: {names}: commit them (and list them in "
                           f"ontology/{CHANGELOG_FILE}), then bump the version")
    return reasons


def refusals(folders: dict[str, Path], version: str, changelog: Path, out: Path, digest: str,
             allowed: Collection[Path] = ()) -> list[str]:
    """Why a release of ``version`` from ``folders`` into ``out`` would lie (empty: it may be
    made). ``allowed``: files whose uncommitted changes are expected (those a bump just made)."""
    reasons = checkout_refusals(folders, allowed)
    for kind, folder in sorted(folders.items()):
        since = changed_since_tag(folder, version)
        if since:
            reasons.append(f"the git tag {version} holds other content in {kind}/ ({', '.join(since[:6])}): "
                           "that release is out already; bump the version (jdm-kg release --bump [DATE])")
    sections = changelog_sections(_read_changelog(changelog))
    if sections.get("Unreleased"):
        reasons.append(f"{_shown(changelog)} lists changes under '## Unreleased' that no version holds yet: "
                       "bump the version (jdm-kg release --bump [DATE], or jdm-kg bump [DATE])")
    if version not in sections:
        reasons.append(f"{_shown(changelog)} has no '## {version}' section, so the release would have no notes: "
                       "bump the version (jdm-kg release --bump [DATE]), which names the Unreleased section")
    previous = _manifest(out / version)
    if previous is not None and previous.get("contentDigest") != digest:
        reasons.append(f"{_shown(out / version)}/ holds a release of {version} made from other content "
                       f"(sha256:{str(previous.get('contentDigest'))[:12]}..., now sha256:{digest[:12]}...): "
                       "a version is released once; bump the version")
    return reasons


def _manifest(folder: Path) -> dict[str, object] | None:
    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_release(out: Path, folder: Path | None = None, shapes: Path | None = None,
                  changelog: Path | None = None, *, queries: Path | None = None, allow_dirty: bool = False,
                  allowed_changes: Collection[Path] = ()) -> Release:
    """Write the release of the guideline in ``folder`` (default: this run's ``ontology/``) into
    ``out/VERSION/``, or with ``allow_dirty`` a draft into ``out/VERSION-draft/`` when a release
    would be refused (:func:`refusals`; raises :class:`ReleaseRefused` without ``allow_dirty``).
    ``changelog`` defaults to the content changelog beside the guideline modules."""
    folder = folder or resource_dir("ontology")
    shapes = shapes or (folder.parent / "shapes" if (folder.parent / "shapes").is_dir() else resource_dir("shapes"))
    queries = queries or (folder.parent / "queries" if (folder.parent / "queries").is_dir() else resource_dir("queries"))
    changelog = changelog or folder / CHANGELOG_FILE
    version = release_version(folder)
    folders = {"ontology": folder, "shapes": shapes, "queries": queries}
    digest = content_digest(folders)
    reasons = refusals(folders, version, changelog, out, digest, allowed_changes)
    if reasons and not allow_dirty:
        raise ReleaseRefused(version, reasons)
    stated = f"{version}-draft" if reasons else version
    merged = merged_ontology(folder, version)
    if reasons:
        merged.set((ROOT_IRI, OWL.versionIRI, release_iri(stated, ROOT_FILE)))
        merged.set((ROOT_IRI, OWL.versionInfo, Literal(stated)))
        merged.add((ROOT_IRI, RDFS.comment, Literal(
            f"DRAFT, not a release of {version}: " + "; ".join(reasons), lang="en")))
    individuals = declare_individuals(merged)
    draft = ("DRAFT, not a release: " + " / ".join(reasons) + "\n") if reasons else ""
    about = (f"{draft}jdm-kg {'draft ' if reasons else 'release '}{stated} ({release_iri(stated, ROOT_FILE)}). "
             "Licence: CC BY 4.0. Generated by `jdm-kg release`; do not edit.")
    vocab = next((g for iri, _, g in import_closure(folder) if iri == VOCAB_IRI), None)
    if vocab is None:
        raise InputError(str(folder), f"the import closure of {ROOT_FILE} has no <{VOCAB_IRI}>")
    texts = {
        "jdm-kg.ttl": _turtle_with_header(merged, "jdm-kg merged ontology: vocabulary, terms, sources, guideline.\n"
                                          f"{individuals} individuals declared owl:NamedIndividual.\n" + about),
        ROOT_FILE: _rdf_xml(merged),
        "jdm-kg-vocab.ttl": _turtle_with_header(vocab, "jdm-kg vocabulary (TBox) alone.\n" + about),
    }
    for name, source in (("patient-shapes.ttl", shapes / "patient-shapes.ttl"),
                         ("guideline-shapes.ttl", shapes / "guideline" / "guideline-shapes.ttl")):
        try:
            texts[f"shapes/{name}"] = "".join(f"# {line}\n" for line in f"SHACL shapes of {about}".splitlines()) \
                + source.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(str(source), f"cannot read the shapes ({err.strerror})") from None
    texts["jdm-kg.sssom.tsv"] = sssom_tsv(merged, stated)
    texts["release-notes.md"] = release_notes(changelog, version, digest, reasons)
    from jdm_kg.knowledge.guideline import cached_compile, guideline_files
    from jdm_kg.outputs.fhir_cpg import cpg_package

    compiled = cached_compile(guideline_files(folder))  # as the files are now (a bump may just have changed them)
    for name, text in cpg_package(compiled, stated, draft=bool(reasons)).items():
        texts[f"fhir/{name}"] = text
    manifest = {
        "version": stated,
        "draft": bool(reasons),
        "draftReasons": reasons,
        "contentDigest": digest,
        "contentFiles": [name for name, _ in content_files(folders)],
        "files": {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in sorted(texts.items())},
    }
    texts["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    target = out / stated
    written: list[Path] = []
    for name, text in texts.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return Release(stated, target, tuple(written), digest, tuple(reasons))
