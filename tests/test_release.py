"""``jdm-kg release`` (issue 14): dated release folder, every artefact parses, the SSSOM table
validates, and the version is in every artefact."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import OWL, RDF, SKOS, Graph, URIRef

from jdm_kg.authoring.release import (
    ROOT_IRI,
    merged_ontology,
    release_notes,
    release_version,
    sssom_rows,
    write_release,
)
from jdm_kg.errors import InputError

REPO = Path(__file__).resolve().parent.parent
ONTOLOGY = REPO / "ontology"

#: SSSOM/TSV: required mapping columns and required mapping-set metadata (SSSOM specification).
SSSOM_REQUIRED_COLUMNS = {"subject_id", "predicate_id", "object_id", "mapping_justification"}
SSSOM_REQUIRED_METADATA = {"curie_map", "mapping_set_id", "license"}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release")
    proc = subprocess.run([sys.executable, "-m", "jdm_kg.cli", "release", "-o", str(out), "--guideline", str(ONTOLOGY)],
                          check=False, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = release_version(ONTOLOGY)
    assert f"Released {version}" in proc.stdout
    return out / version


def _metadata_and_rows(path: Path) -> tuple[str, list[dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    meta = "\n".join(line[1:] for line in lines if line.startswith("#"))
    rows = list(csv.DictReader((line for line in lines if not line.startswith("#")), delimiter="\t"))
    return meta, rows


def test_release_folder_is_named_by_the_version(release: Path) -> None:
    assert release.name == release_version(ONTOLOGY)
    names = {str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()}
    assert names == {"jdm-kg.ttl", "jdm-kg.owl", "jdm-kg-vocab.ttl", "shapes/patient-shapes.ttl",
                     "shapes/guideline-shapes.ttl", "jdm-kg.sssom.tsv", "release-notes.md"}


def test_every_artefact_parses_and_names_the_version(release: Path) -> None:
    version = release.name
    for path in release.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert version in text, f"{path.name} does not name {version}"
            if path.suffix in (".ttl", ".owl"):
                graph = Graph().parse(path, format="xml" if path.suffix == ".owl" else "turtle")
                assert len(graph) > 10, path.name


def test_merged_owl_and_turtle_are_the_same_graph_with_the_versioned_release_iri(release: Path) -> None:
    from rdflib.compare import isomorphic

    owl = Graph().parse(release / "jdm-kg.owl", format="xml")
    ttl = Graph().parse(release / "jdm-kg.ttl", format="turtle")
    assert isomorphic(owl, ttl)
    assert list(owl.subjects(RDF.type, OWL.Ontology)) == [ROOT_IRI]
    assert str(owl.value(ROOT_IRI, OWL.versionIRI)) == f"https://w3id.org/jdm-kg/releases/{release.name}/jdm-kg.owl"
    assert str(owl.value(ROOT_IRI, OWL.versionInfo)) == release.name
    assert not list(owl.triples((None, OWL.imports, None)))
    # everything the modules say, minus their headers
    modules = Graph()
    for path in ONTOLOGY.glob("*.ttl"):
        modules.parse(path)
    headers = set(modules.subjects(RDF.type, OWL.Ontology))
    assert {t for t in modules if t[0] not in headers} <= set(owl)


def test_vocabulary_alone_is_the_tbox(release: Path) -> None:
    vocab = Graph().parse(release / "jdm-kg-vocab.ttl")
    assert (URIRef("https://w3id.org/jdm-kg/vocab"), RDF.type, OWL.Ontology) in vocab
    assert not list(vocab.subjects(RDF.type, URIRef("https://w3id.org/jdm-kg/vocab#DoseRegimen")))


def test_shapes_are_shacl(release: Path) -> None:
    sh = URIRef("http://www.w3.org/ns/shacl#NodeShape")
    for name in ("patient-shapes.ttl", "guideline-shapes.ttl"):
        assert list(Graph().parse(release / "shapes" / name).subjects(RDF.type, sh)), name


def test_sssom_table_has_the_spec_metadata_and_columns_and_every_mapping(release: Path) -> None:
    meta, rows = _metadata_and_rows(release / "jdm-kg.sssom.tsv")
    keys = {line.split(":", 1)[0] for line in meta.splitlines() if not line.startswith(" ")}
    assert SSSOM_REQUIRED_METADATA <= keys
    assert f"mapping_set_id: \"https://w3id.org/jdm-kg/releases/{release.name}/jdm-kg.sssom.tsv\"" in meta
    assert SSSOM_REQUIRED_COLUMNS <= set(rows[0])
    assert {r["mapping_justification"] for r in rows} == {"semapv:ManualMappingCuration"}
    prefixes = {line.strip().split(":", 1)[0] for line in meta.splitlines() if line.startswith("  ")}
    for row in rows:
        for column in ("subject_id", "predicate_id", "object_id"):
            assert row[column].split(":", 1)[0] in prefixes, row
    merged = merged_ontology(ONTOLOGY)
    mapped = sum(1 for p in (SKOS.exactMatch, SKOS.closeMatch, SKOS.broadMatch, SKOS.narrowMatch, SKOS.relatedMatch)
                 for s, _ in merged.subject_objects(p) if str(s).startswith("https://w3id.org/jdm-kg/"))
    assert len(rows) == mapped == len(sssom_rows(merged))
    rituximab = [r for r in rows if r["subject_id"] == "jdmg:rituximab"]
    assert {r["object_id"] for r in rituximab} >= {"RXNORM:121191", "ATC:L01FA01"}
    assert rituximab[0]["subject_label"]


def test_sssom_table_validates_with_the_sssom_library(release: Path) -> None:
    pytest.importorskip("sssom", reason="the sssom library is not installed (pip install '.[test]')")
    from sssom.parsers import parse_sssom_table
    from sssom.validators import validate

    msdf = parse_sssom_table(release / "jdm-kg.sssom.tsv")
    assert len(msdf.df) == len(_metadata_and_rows(release / "jdm-kg.sssom.tsv")[1])
    assert msdf.metadata["mapping_set_version"] == release.name
    reports = validate(msdf, fail_on_error=False)
    problems = [r for report in reports.values() for r in report.results]
    assert problems == []


def test_sssom_validation_can_fail(tmp_path: Path, release: Path) -> None:
    """The library check is not a formality: an unknown justification or an undeclared prefix is refused."""
    pytest.importorskip("sssom", reason="the sssom library is not installed")
    from sssom.parsers import parse_sssom_table
    from sssom.validators import validate

    good = (release / "jdm-kg.sssom.tsv").read_text(encoding="utf-8")
    for old, new in (("semapv:ManualMappingCuration", "semapv:NoSuchJustification"), ("\tRXNORM:121191", "\tNOPE:121191")):
        broken = tmp_path / "broken.sssom.tsv"
        broken.write_text(good.replace(old, new, 1), encoding="utf-8")
        reports = validate(parse_sssom_table(broken), fail_on_error=False)
        assert [r for report in reports.values() for r in report.results], new


def test_release_notes_come_from_the_changelog(release: Path) -> None:
    notes = (release / "release-notes.md").read_text(encoding="utf-8")
    assert notes.startswith(f"# jdm-kg release {release.name}")
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    body = notes.split("From CHANGELOG.md.\n\n", 1)[1].strip()
    assert body and body in changelog


def test_release_notes_prefer_the_versions_own_section(tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## Unreleased\n\n- next\n\n## v2026-01-01\n\n- first\n", encoding="utf-8")
    assert "- first" in release_notes(changelog, "v2026-01-01") and "- next" not in release_notes(changelog, "v2026-01-01")
    assert "- next" in release_notes(changelog, "v2027-01-01")


def test_modules_with_different_versions_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ONTOLOGY, folder)
    path = folder / "terms.ttl"
    path.write_text(path.read_text(encoding="utf-8").replace('owl:versionInfo "v', 'owl:versionInfo "v1'), encoding="utf-8")
    with pytest.raises(InputError, match="different owl:versionInfo"):
        write_release(tmp_path / "out", folder, REPO / "shapes", REPO / "CHANGELOG.md")
    assert not (tmp_path / "out").exists()


def test_without_a_changelog_nothing_is_written(tmp_path: Path) -> None:
    """As from an installed wheel: no CHANGELOG.md beside the guideline folder."""
    with pytest.raises(InputError, match="changelog"):
        write_release(tmp_path / "out", ONTOLOGY, REPO / "shapes", tmp_path / "no-CHANGELOG.md")
    assert not (tmp_path / "out").exists()
