"""Locate the guideline and the bundled Turtle, SPARQL and JSON-LD files.

**One rule for which guideline a run uses** (every command and the Python API):

1. ``$JDM_KG_GUIDELINE`` (set by ``--guideline FOLDER``), a folder of guideline ``.ttl`` files
   or a checkout holding ``ontology/``;
2. else, inside a checkout (an ``ontology/`` folder beside ``shapes/`` and ``queries/``, in the
   current folder or one above it), that checkout's working tree;
3. else the installed copy: ``jdm_kg/_data/`` in a wheel (hatch ``force-include``), or the
   top-level folders beside the package in an editable install.

Shapes, queries and the JSON-LD context come from the checkout when there is one (rule 2, or
rule 1 given a checkout), else from the installed copy. :func:`guideline_home` says which
folder was chosen and why; every command prints it first.

>>> resource_dir("queries").name
'queries'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "resource_dir", "resource_path", "cache_dir", "CONTEXT_IRI", "GUIDELINE_ENV", "GuidelineHome",
    "guideline_home", "find_checkout", "installed_dir",
]

#: The IRI patient JSON-LD files use for the bundled context; never fetched.
CONTEXT_IRI = "https://w3id.org/jdm-kg/context.jsonld"

#: The environment variable that names the guideline folder (``--guideline`` sets it, so that
#: worker processes use the same guideline).
GUIDELINE_ENV = "JDM_KG_GUIDELINE"

_PACKAGE_DIR = Path(__file__).resolve().parent
_KINDS = ("ontology", "shapes", "queries", "context")
_CHECKOUT_MARKS = ("ontology", "shapes", "queries")


def installed_dir(kind: str) -> Path:
    """The installed copy's folder of ``kind`` (whatever guideline this run uses)."""
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"jdm-kg resource folder {kind!r} not found; is the package installed completely?")


def find_checkout(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` with ``ontology/``, ``shapes/`` and ``queries/`` side by side."""
    for folder in (start, *start.parents):
        if all((folder / mark).is_dir() for mark in _CHECKOUT_MARKS):
            return folder
    return None


@dataclass(frozen=True)
class GuidelineHome:
    """Where this run's guideline (``ontology``) and its shapes and queries (``root``) come from."""

    ontology: Path
    #: the checkout the shapes, queries and context come from; None: the installed copy's
    root: Path | None
    #: why this folder: "--guideline", "checkout" or "installed"
    origin: str

    def folder(self, kind: str) -> Path:
        if kind == "ontology":
            return self.ontology
        if self.root is not None and (self.root / kind).is_dir():
            return self.root / kind
        return installed_dir(kind)

    def describe(self, version: str) -> str:
        """One line naming the guideline: version, folder and why that folder."""
        why = {
            "--guideline": f"chosen with --guideline ({GUIDELINE_ENV})",
            "checkout": "the working tree of the checkout you are in",
            "installed": "the installed copy (no checkout here; --guideline FOLDER chooses another)",
        }[self.origin]
        return f"Guideline {version} from {_shown(self.ontology)}: {why}"


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, else absolute."""
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return f"{path}/"
    return f"{relative}/" if str(relative) != "." else "./"


@cache
def _home(chosen: str, cwd: str) -> GuidelineHome:
    if chosen:
        path = Path(chosen).expanduser().resolve()
        if (path / "ontology").is_dir():  # a checkout (or a release) given whole
            return GuidelineHome(path / "ontology", find_checkout(path) or find_checkout(Path(cwd)), "--guideline")
        return GuidelineHome(path, find_checkout(Path(cwd)), "--guideline")
    root = find_checkout(Path(cwd))
    if root is not None:
        return GuidelineHome(root / "ontology", root, "checkout")
    return GuidelineHome(installed_dir("ontology"), None, "installed")


def guideline_home() -> GuidelineHome:
    """The guideline this run uses, by the rule in this module's docstring."""
    try:
        cwd = os.getcwd()
    except OSError:  # the current folder was deleted: no checkout to be inside
        cwd = "/"
    return _home(os.environ.get(GUIDELINE_ENV, ""), cwd)


def resource_dir(kind: str) -> Path:
    """Return the folder holding resources of ``kind`` (ontology, shapes, queries, context) for this run."""
    if kind not in _KINDS:
        raise ValueError(f"unknown resource kind {kind!r}")
    return guideline_home().folder(kind)


def resource_path(kind: str, name: str) -> Path:
    """Return the path of one bundled file, e.g. ``resource_path("queries", "patients.rq")``."""
    return resource_dir(kind) / name


def cache_dir() -> Path | None:
    """Where jdm-kg keeps what it worked out and can reuse (the compiled guideline, which query
    texts passed the network check): ``$JDM_KG_CACHE``, else ``$XDG_CACHE_HOME/jdm-kg``, else
    ``~/.cache/jdm-kg``; None when ``JDM_KG_CACHE`` is 0/off/no/false."""
    setting = os.environ.get("JDM_KG_CACHE", "")
    if setting.lower() in ("0", "off", "no", "false"):
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jdm-kg"
