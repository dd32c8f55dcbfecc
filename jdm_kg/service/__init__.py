"""``jdm-kg serve``: the guideline inside the clinical workflow, over HTTP.

CDS Hooks 2.0 services for the EHR, a REST API with an OpenAPI document, a read-only SPARQL 1.1
endpoint, and a web page for clinicians; FHIR output from :mod:`jdm_kg.outputs.fhir_output`. Everything
runs on loopback by default and never calls out.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``ServiceConfig``, imported when first asked for: the command line
    builds its ``serve`` options from this package and must not load Starlette for every command."""
    if name == "create_app":
        from jdm_kg.service.app import create_app

        return create_app
    if name == "ServiceConfig":
        from jdm_kg.service.config import ServiceConfig

        return ServiceConfig
    raise AttributeError(name)
