"""``jdm-kg release`` (issues 14 and 23): dated release folder, every artefact parses, the SSSOM
table validates, the version is in every artefact; a release never lies (refused from an edited
or unbumped checkout, drafts marked as such); ``jdm-kg bump`` moves the version everywhere it lives;
the OWL release lists its individuals in OWL tools."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli
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
RELEASED = "v2031-01-02"  # the version the fixture's checkout is bumped to

#: SSSOM/TSV: required mapping columns and required mapping-set metadata (SSSOM specification).
SSSOM_REQUIRED_COLUMNS = {"subject_id", "predicate_id", "object_id", "mapping_justification"}
SSSOM_REQUIRED_METADATA = {"curie_map", "mapping_set_id", "license"}
_GIT = ["git", "-c", "user.email=tests@jdm-kg.invalid", "-c", "user.name=jdm-kg tests", "-c", "commit.gpgsign=false",
        "-c", "tag.gpgsign=false"]


def checkout(folder: Path, git: bool = True) -> Path:
    """A copy of the repository's guideline (ontology/, shapes/, queries/), committed in a fresh
    git repository unless ``git`` is false."""
    for kind in ("ontology", "shapes", "queries"):
        shutil.copytree(REPO / kind, folder / kind, ignore=shutil.ignore_patterns("*~", "__pycache__"))
    changelog = folder / "ontology" / "CHANGELOG.md"  # something to release, whatever the repository's state
    changelog.write_text(changelog.read_text(encoding="utf-8").replace(
        "## Unreleased\n", "## Unreleased\n\n- A change made by the tests (tests/test_release.py).\n", 1),
        encoding="utf-8")
    if git:
        git_run(folder, "init", "-q")
        git_run(folder, "add", "-A")
        git_run(folder, "commit", "-qm", "guideline")
    return folder


def git_run(folder: Path, *args: str) -> str:
    proc = subprocess.run([*_GIT, "-C", str(folder), *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def jdm(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``jdm-kg ARGS`` as a user runs it, in the checkout ``cwd`` (its working tree is the guideline)."""
    return subprocess.run([sys.executable, "-m", "jdm_kg.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, check=False)


def in_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`jdm` in this process (:func:`helpers.cli`): the same main(), no interpreter to start."""
    return cli(*args, cwd=cwd)


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout released with ``jdm-kg release --bump`` (as an author does), committed and tagged."""
    root = checkout(tmp_path_factory.mktemp("checkout"))
    proc = jdm(root, "release", "-o", "out", "--bump", RELEASED[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Released {RELEASED}" in proc.stdout and f"git tag {RELEASED}" in proc.stdout
    git_run(root, "commit", "-qam", f"Release {RELEASED}")
    git_run(root, "tag", RELEASED)
    return root


@pytest.fixture(scope="module")
def release(released: Path) -> Path:
    return released / "out" / RELEASED


def _metadata_and_rows(path: Path) -> tuple[str, list[dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    meta = "\n".join(line[1:] for line in lines if line.startswith("#"))
    rows = list(csv.DictReader((line for line in lines if not line.startswith("#")), delimiter="\t"))
    return meta, rows


def test_release_folder_is_named_by_the_version(release: Path, released: Path) -> None:
    assert release.name == release_version(released / "ontology") == RELEASED
    names = {str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()}
    assert {n for n in names if not n.startswith("fhir/")} == {
        "jdm-kg.ttl", "jdm-kg.owl", "jdm-kg-vocab.ttl", "shapes/patient-shapes.ttl", "shapes/guideline-shapes.ttl",
        "jdm-kg.sssom.tsv", "release-notes.md", "manifest.json"}
    assert {"fhir/package/package.json", "fhir/package/.index.json",
            "fhir/package/PlanDefinition-jdm-kg-next-line-after-jak-failure.json"} <= names


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


def test_release_notes_come_from_the_content_changelog(release: Path, released: Path) -> None:
    """The notes are the version's section of ontology/CHANGELOG.md (what the bump named from
    the Unreleased section), with the digest of the content released; nothing from the software
    changelog."""
    notes = (release / "release-notes.md").read_text(encoding="utf-8")
    assert notes.startswith(f"# jdm-kg release {RELEASED}\n\nFrom ontology/CHANGELOG.md.\n")
    changelog = (released / "ontology" / "CHANGELOG.md").read_text(encoding="utf-8")
    body = notes.split("From ontology/CHANGELOG.md.\n\n", 1)[1].split("\nContent: sha256:")[0].strip()
    assert body and f"## {RELEASED}\n\n{body}" in changelog
    digest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))["contentDigest"]
    assert f"Content: sha256:{digest}" in notes
    software = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "### Issue 23" not in notes and "### Issue 23" in software


def test_release_notes_cite_files_that_exist() -> None:
    """Every file the content changelog (so every release's notes) names is in the repository:
    the notes once cited reference/clinical-facts.md, which is not."""
    text = (ONTOLOGY / "CHANGELOG.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`([\w./-]+\.(?:md|ttl|rq|txt|owl|xml|py|json|jsonld))`", text))
    cited |= set(re.findall(r"\b((?:docs|ontology|shapes|queries|reference|examples)/[\w./-]+\.\w+)", text))
    assert "docs/reference-sheet.md" in cited
    missing = sorted(c for c in cited if not (REPO / c).exists() and not list(REPO.glob(f"**/{c}")))
    assert missing == [], missing
    assert "clinical-facts.md" not in text


def test_release_notes_are_the_versions_own_section(tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## Unreleased\n\n- next\n\n## v2026-01-01\n\n- first\n", encoding="utf-8")
    assert "- first" in release_notes(changelog, "v2026-01-01") and "- next" not in release_notes(changelog, "v2026-01-01")
    with pytest.raises(InputError, match="no '## v2027-01-01' section"):
        release_notes(changelog, "v2027-01-01")
    draft = release_notes(changelog, "v2026-01-01", draft_reasons=["uncommitted changes"])
    assert draft.startswith("# jdm-kg v2026-01-01-draft: DRAFT, not a release")
    assert "- uncommitted changes" in draft and "- next" in draft and "- first" in draft


def test_modules_with_different_versions_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ontology"
    shutil.copytree(ONTOLOGY, folder)
    path = folder / "terms.ttl"
    path.write_text(path.read_text(encoding="utf-8").replace('owl:versionInfo "v', 'owl:versionInfo "v1'), encoding="utf-8")
    with pytest.raises(InputError, match="different owl:versionInfo"):
        write_release(tmp_path / "out", folder, REPO / "shapes", allow_dirty=True)
    assert not (tmp_path / "out").exists()


def test_without_a_changelog_nothing_is_written(tmp_path: Path) -> None:
    """No content changelog beside the guideline modules: no notes, so no release, not even a draft."""
    with pytest.raises(InputError, match="changelog"):
        write_release(tmp_path / "out", ONTOLOGY, REPO / "shapes", tmp_path / "no-CHANGELOG.md", allow_dirty=True)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- a release never lies (issue 23)

RITUXIMAB_375 = "    jdm:doseMax 375.0 ;\n    jdm:doseMin 375.0 ;\n"
RITUXIMAB_500 = "    jdm:doseMax 500.0 ;\n    jdm:doseMin 500.0 ;\n"


def _edit_rituximab(root: Path) -> None:
    path = root / "ontology" / "guideline.ttl"
    text = path.read_text(encoding="utf-8")
    assert text.count(RITUXIMAB_375) == 1
    path.write_text(text.replace(RITUXIMAB_375, RITUXIMAB_500), encoding="utf-8")


def test_an_edited_guideline_is_not_released_under_the_same_version(released: Path, tmp_path: Path) -> None:
    """The issue's case: rituximab edited from 375 to 500 mg/m², released again as the same
    version. Refused (exit 2) while uncommitted, and once committed too (the tag and the earlier
    release folder hold other content); --allow-dirty writes a marked draft; --bump releases it."""
    root = tmp_path / "checkout"
    shutil.copytree(released, root)
    before = {p: p.read_bytes() for p in (root / "out" / RELEASED).rglob("*") if p.is_file()}
    again = in_process(root, "release", "-o", "out")  # the same content: the same release, written again
    assert again.returncode == 0, again.stderr
    assert {p: p.read_bytes() for p in (root / "out" / RELEASED).rglob("*") if p.is_file()} == before

    _edit_rituximab(root)
    proc = in_process(root, "release", "-o", "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"error: release {RELEASED}: refused" in proc.stderr
    assert "uncommitted changes in ontology/: ontology/guideline.ttl" in proc.stderr
    assert f"the git tag {RELEASED} holds other content in ontology/ (ontology/guideline.ttl)" in proc.stderr
    assert f"out/{RELEASED}/ holds a release of {RELEASED} made from other content" in proc.stderr
    assert {p: p.read_bytes() for p in (root / "out" / RELEASED).rglob("*") if p.is_file()} == before

    git_run(root, "commit", "-qam", "rituximab 500 mg/m2")
    proc = in_process(root, "release", "-o", "fresh")  # committed, into an empty folder: the tag still knows
    assert proc.returncode == 2 and "uncommitted" not in proc.stderr
    assert f"the git tag {RELEASED} holds other content" in proc.stderr
    assert not (root / "fresh").exists()

    draft = in_process(root, "release", "-o", "out", "--allow-dirty")
    assert draft.returncode == 0, draft.stderr
    assert f"Wrote a DRAFT of {RELEASED} (not a release)" in draft.stdout
    folder = root / "out" / f"{RELEASED}-draft"
    assert (folder / "jdm-kg.ttl").read_text(encoding="utf-8").splitlines()[2].startswith("# DRAFT, not a release")
    assert (folder / "release-notes.md").read_text(encoding="utf-8").startswith(
        f"# jdm-kg {RELEASED}-draft: DRAFT, not a release")
    owl = Graph().parse(folder / "jdm-kg.owl", format="xml")
    assert str(owl.value(ROOT_IRI, OWL.versionInfo)) == f"{RELEASED}-draft"
    plan = json.loads((folder / "fhir" / "package" / "PlanDefinition-jdm-kg-next-line-after-jak-failure.json")
                      .read_text(encoding="utf-8"))
    assert plan["status"] == "draft" and plan["version"] == f"{RELEASED}-draft"
    assert json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["draft"] is True
    assert {p: p.read_bytes() for p in (root / "out" / RELEASED).rglob("*") if p.is_file()} == before

    bump_without_notes = in_process(root, "release", "-o", "out", "--bump", "2031-02-01")
    assert bump_without_notes.returncode == 2 and "says nothing under '## Unreleased'" in bump_without_notes.stderr
    changelog = root / "ontology" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text(encoding="utf-8").replace(
        "## Unreleased\n", "## Unreleased\n\n- Rituximab 500 mg/m² weekly x4 (was 375).\n", 1), encoding="utf-8")
    git_run(root, "commit", "-qam", "changelog")
    bumped = in_process(root, "release", "-o", "out", "--bump", "2031-02-01")
    assert bumped.returncode == 0, bumped.stderr
    notes = (root / "out" / "v2031-02-01" / "release-notes.md").read_text(encoding="utf-8")
    assert "- Rituximab 500 mg/m² weekly x4 (was 375)." in notes
    regimen = json.loads((root / "out" / "v2031-02-01" / "fhir" / "package" / "ActivityDefinition-regimen-rituximab.json")
                         .read_text(encoding="utf-8"))
    assert regimen["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 500


def test_a_release_needs_a_bumped_version_and_a_git_checkout(tmp_path: Path) -> None:
    """Unreleased content changes, or a folder nobody can tell the state of, are refused."""
    plain = checkout(tmp_path / "plain", git=False)
    proc = in_process(plain, "release", "-o", "out")
    assert proc.returncode == 2, proc.stdout
    assert "ontology/ (ontology) is not in a git checkout" in proc.stderr
    assert not (plain / "out").exists()
    versioned = checkout(tmp_path / "versioned")  # its changelog lists a change under Unreleased
    proc = in_process(versioned, "release", "-o", "out")
    assert proc.returncode == 2
    assert "lists changes under '## Unreleased' that no version holds yet" in proc.stderr


def test_bump_sets_the_version_in_every_place(tmp_path: Path) -> None:
    """`jdm-kg bump DATE` moves every place the version lives, and leaves the old one nowhere
    but in the content changelog's history."""
    root = checkout(tmp_path / "checkout")
    old = release_version(root / "ontology")
    proc = jdm(root, "bump", "2031-03-04")
    assert proc.returncode == 0, proc.stderr
    new = "v2031-03-04"
    assert f"Bumped {old} -> {new}" in proc.stdout
    ontology = root / "ontology"
    assert release_version(ontology) == new
    catalog = (ontology / "catalog-v001.xml").read_text(encoding="utf-8")
    for path in sorted(ontology.glob("*.ttl")):
        graph = Graph().parse(path)
        (header,) = graph.subjects(RDF.type, OWL.Ontology)
        assert str(graph.value(header, OWL.versionInfo)) == new, path.name
        version_iri = str(graph.value(header, OWL.versionIRI))
        assert version_iri.endswith(new) and f'name="{version_iri}" uri="{path.name}"' in catalog, path.name
        assert str(graph.value(header, URIRef("http://purl.org/dc/terms/modified"))) == new[1:], path.name
        assert f"# Version: {new[1:]}. Licence: CC BY 4.0. Modified: {new[1:]}." in path.read_text(encoding="utf-8")
    root_owl = Graph().parse(ontology / "jdm-kg.owl", format="xml")
    assert str(root_owl.value(ROOT_IRI, OWL.versionInfo)) == new
    assert str(root_owl.value(ROOT_IRI, OWL.versionIRI)) == f"https://w3id.org/jdm-kg/releases/{new}/jdm-kg.owl"
    shapes = Graph().parse(root / "shapes" / "patient-shapes.ttl")
    header = URIRef("https://w3id.org/jdm-kg/shapes")
    assert str(shapes.value(header, OWL.versionInfo)) == new
    assert str(shapes.value(header, URIRef("http://purl.org/dc/terms/modified"))) == new[1:]
    changelog = (ontology / "CHANGELOG.md").read_text(encoding="utf-8")
    before = git_run(root, "show", "HEAD:ontology/CHANGELOG.md")
    unreleased = before.split("## Unreleased\n", 1)[1].split(f"\n## {old}", 1)[0]
    assert "A change made by the tests" in unreleased
    assert f"## Unreleased\n\n## {new}\n{unreleased}\n## {old}" in changelog
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "CHANGELOG.md" and ".git" not in p.parts):
        text = path.read_text(encoding="utf-8")
        assert old not in text and f"Modified: {old[1:]}" not in text and f'"{old[1:]}"^^xsd:date' not in text, path

    for date, why in (("2031-03-04", "is not after the current one, v2031-03-04"), ("2030-01-01", "not after the current"),
                      ("2031-02-30", "not a date of the calendar"), ("soon", "not a release date")):
        proc = in_process(root, "bump", date)
        assert proc.returncode == 2 and why in proc.stderr, (date, proc.stderr)


def test_the_owl_release_lists_its_individuals_in_owl_tools(release: Path) -> None:
    """owlready2 (Python) and py-horned-owl (Rust horned-owl) open the RDF/XML release and list
    the same classes and individuals as its declarations; without the owl:NamedIndividual
    declarations owlready2 lists none (the bug)."""
    owlready2 = pytest.importorskip("owlready2", reason="owlready2 is not installed (pip install '.[test]')")
    pyhornedowl = pytest.importorskip("pyhornedowl", reason="py-horned-owl is not installed (pip install '.[test]')")
    path = release / "jdm-kg.owl"
    graph = Graph().parse(path, format="xml")
    individuals = {str(s) for s in graph.subjects(RDF.type, OWL.NamedIndividual)}
    classes = {str(s) for s in graph.subjects(RDF.type, OWL.Class) if isinstance(s, URIRef)}
    assert len(individuals) > 100 and len(classes) > 40
    for iri in ("https://w3id.org/jdm-kg/guideline/rituximab", "https://w3id.org/jdm-kg/guideline/regimen-rituximab",
                "https://w3id.org/jdm-kg/guideline/src-rim-2013", "https://w3id.org/jdm-kg/guideline/pref-tnfi-skin"):
        assert iri in individuals, iri

    world = owlready2.World()
    onto = world.get_ontology(path.as_uri()).load()
    assert {i.iri for i in onto.individuals()} == individuals
    assert {c.iri for c in onto.classes()} == classes

    horned = pyhornedowl.open_ontology(str(path), "rdf")
    assert set(horned.get_named_individuals()) == individuals
    assert set(horned.get_classes()) == classes
    assert str(horned.get_version_iri()) == f"https://w3id.org/jdm-kg/releases/{RELEASED}/jdm-kg.owl"
    axioms = horned.get_axioms()
    assert len(axioms) > len(graph) // 2  # every triple but those of multi-triple axioms is one axiom

    undeclared = merged_ontology(ONTOLOGY)  # the modules merged, without the declarations
    bare = release.parent / "undeclared.owl"
    bare.write_text(undeclared.serialize(format="pretty-xml"), encoding="utf-8")
    assert list(owlready2.World().get_ontology(bare.as_uri()).load().individuals()) == []
