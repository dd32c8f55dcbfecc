"""``jdm-kg bump [DATE]`` (and ``jdm-kg release --bump``): set a new guideline version everywhere
it lives, in one step, the way OBO ontologies date their releases (``vYYYY-MM-DD``).

The places (all must move together, or the release is refused):

- every module of ``ontology/`` with an ``owl:Ontology`` header: ``owl:versionInfo``,
  ``owl:versionIRI``, ``dcterms:modified`` and the ``# Version: ... Modified: ...`` comment line;
- ``ontology/jdm-kg.owl`` (the file Protégé opens): its release ``owl:versionIRI`` and ``owl:versionInfo``;
- ``ontology/catalog-v001.xml``: the version IRI of each module;
- the shapes' headers (``shapes/patient-shapes.ttl``: ``owl:versionInfo``, ``dcterms:modified``,
  the comment line);
- the content changelog, ``ontology/CHANGELOG.md``: its ``## Unreleased`` section becomes
  ``## vYYYY-MM-DD`` under a new, empty ``## Unreleased``.

The edits are made on the text (the files keep the layout of ``jdm-kg fmt``); every new text is
worked out and checked before any file is written. A bump is refused when the content changelog
says nothing under ``## Unreleased`` (the release notes would be empty), and when the new date is
not after the current version's.

>>> version_of("2027-01-05"), version_of("v2027-01-05")
('v2027-01-05', 'v2027-01-05')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jdm_kg.errors import InputError

__all__ = ["CHANGELOG_FILE", "Bump", "bump", "changelog_sections", "version_of", "version_places"]

#: The content changelog: what changed in the guideline (statements, doses, codes, shapes, queries).
CHANGELOG_FILE = "CHANGELOG.md"
_VERSION = re.compile(r"^v?(\d{4}-\d{2}-\d{2})$")
_SECTION = re.compile(r"^## (.+?)[ \t]*\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Bump:
    """What :func:`bump` changed."""

    old: str
    new: str
    files: tuple[Path, ...]


def version_of(text: str) -> str:
    """``vYYYY-MM-DD`` from ``YYYY-MM-DD`` or ``vYYYY-MM-DD``; a date that does not exist is an error."""
    match = _VERSION.match(text.strip())
    if not match:
        raise InputError(text, "not a release date: give YYYY-MM-DD (e.g. 2027-01-05)")
    try:
        date.fromisoformat(match.group(1))
    except ValueError:
        raise InputError(text, "not a date of the calendar: give YYYY-MM-DD") from None
    return f"v{match.group(1)}"


def changelog_sections(text: str) -> dict[str, str]:
    """The ``## HEADING`` sections of a Markdown changelog: heading -> body (stripped)."""
    return {m.group(1).strip(): m.group(2).strip() for m in _SECTION.finditer(text)}


def _sub(pattern: str, replacement: str, text: str, where: Path, what: str, moved: list[str]) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count:
        moved.append(f"{where.name}: {what}")
    return new


def _module_text(path: Path, text: str, old: str, new: str, moved: list[str]) -> str:
    """A Turtle module or shapes file with its header moved from ``old`` to ``new``."""
    o, n = re.escape(old), new
    od, nd = re.escape(old[1:]), new[1:]
    text = _sub(rf'(owl:versionInfo\s+"){o}(")', rf"\g<1>{n}\g<2>", text, path, "owl:versionInfo", moved)
    text = _sub(rf"(owl:versionIRI\s+\S*?){o}(\b)", rf"\g<1>{n}\g<2>", text, path, "owl:versionIRI", moved)
    text = _sub(rf'(dcterms:modified\s+"){od}("\^\^xsd:date)', rf"\g<1>{nd}\g<2>", text, path, "dcterms:modified", moved)
    text = _sub(rf"^(#.*\bVersion: ){od}(\b)", rf"\g<1>{nd}\g<2>", text, path, "header comment Version", moved)
    text = _sub(rf"^(#.*\bModified: ){od}(\b)", rf"\g<1>{nd}\g<2>", text, path, "header comment Modified", moved)
    return text


def version_places(ontology: Path, shapes: Path | None) -> list[Path]:
    """Every file :func:`bump` edits (those that exist)."""
    places = sorted(ontology.glob("*.ttl")) + [ontology / "jdm-kg.owl", ontology / "catalog-v001.xml"]
    if shapes is not None:
        places += sorted(shapes.rglob("*.ttl"))
    places.append(ontology / CHANGELOG_FILE)
    return [p for p in places if p.is_file()]


def _changelog_text(path: Path, text: str, new: str, moved: list[str]) -> str:
    sections = changelog_sections(text)
    if new in sections:
        raise InputError(str(path), f"already has a '## {new}' section: a version is released once; give a later date")
    if "Unreleased" not in sections:
        raise InputError(str(path), "has no '## Unreleased' section: add one listing what changed in the guideline")
    if not sections["Unreleased"]:
        raise InputError(str(path), "says nothing under '## Unreleased': list what changed in the guideline content "
                                    "(statements, doses, codes, shapes, queries) before bumping the version")
    moved.append(f"{path.name}: '## Unreleased' -> '## {new}'")
    return re.sub(r"^## Unreleased[ \t]*$", f"## Unreleased\n\n## {new}", text, count=1, flags=re.MULTILINE)


def bump(ontology: Path, shapes: Path | None, new_version: str, current: str) -> Bump:
    """Move the guideline in ``ontology`` (and the shapes in ``shapes``) from version ``current``
    to ``new_version`` (``vYYYY-MM-DD``); returns the files written."""
    new = version_of(new_version)
    if new <= current:
        raise InputError(new_version, f"the new version {new} is not after the current one, {current}: "
                                      "a release date only moves forward")
    texts: dict[Path, str] = {}
    moved: list[str] = []
    for path in version_places(ontology, shapes):
        text = path.read_text(encoding="utf-8")
        if path.name == CHANGELOG_FILE:
            updated = _changelog_text(path, text, new, moved)
        elif path.suffix == ".ttl":
            updated = _module_text(path, text, current, new, moved)
        else:  # jdm-kg.owl and the catalog: the version only appears in IRIs and versionInfo
            updated = _sub(rf"(?<=[/>\"]){re.escape(current)}(?=[/<\"])", new, text, path, "version IRIs", moved)
        if updated != text:
            texts[path] = updated
    if ontology / CHANGELOG_FILE not in texts:
        raise InputError(str(ontology / CHANGELOG_FILE), "the content changelog is missing: it holds the release "
                                                        "notes (see AUTHORING.md, Release)")
    stale = re.compile(rf"{re.escape(current)}|(?:Version|Modified|modified).*{re.escape(current[1:])}")
    left = [f"{p.name}:{n}" for p in version_places(ontology, shapes) if p.name != CHANGELOG_FILE
            for n, line in enumerate(texts.get(p, p.read_text(encoding="utf-8")).splitlines(), 1) if stale.search(line)]
    if left:  # a place the patterns above do not know: better to stop than to release half-bumped
        raise InputError(str(ontology), f"the old version {current} is still written at {', '.join(left)} after "
                                        "the bump: set it there by hand, or teach jdm_kg/authoring/bump.py the place")
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    return Bump(current, new, tuple(texts))
