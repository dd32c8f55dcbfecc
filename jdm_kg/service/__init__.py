"""``jdm-kg serve``: the guideline inside the clinical workflow, over HTTP.

CDS Hooks 2.0 services for the EHR, a REST API with an OpenAPI document, a read-only SPARQL 1.1
endpoint, and a web page for clinicians; FHIR output from :mod:`jdm_kg.outputs.fhir_output`. Everything
runs on loopback by default and never calls out.
"""

from __future__ import annotations

from jdm_kg.service.app import create_app
from jdm_kg.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
