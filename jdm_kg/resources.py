"""Locate the bundled Turtle, SPARQL and JSON-LD files.

One locator for both layouts: in an installed wheel the files live in ``jdm_kg/_data/``
(hatch ``force-include``); in a checkout or editable install they are the top-level
``ontology/``, ``shapes/`` and ``queries/`` folders.

>>> resource_dir("queries").name
'queries'
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

__all__ = ["resource_dir", "resource_path", "cache_dir", "CONTEXT_IRI"]

#: The IRI patient JSON-LD files use for the bundled context; never fetched.
CONTEXT_IRI = "https://w3id.org/jdm-kg/context.jsonld"

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def resource_dir(kind: str) -> Path:
    """Return the folder holding bundled resources of ``kind`` (ontology, shapes, queries, context)."""
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"jdm-kg resource folder {kind!r} not found; is the package installed completely?")


def resource_path(kind: str, name: str) -> Path:
    """Return the path of one bundled file, e.g. ``resource_path("queries", "ranked-options.rq")``."""
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
