"""Inputs: reading patient files (Turtle, JSON-LD with the bundled context, FHIR R4 bundles) into
graphs, the review every record goes through whatever its format, and the network guard. The
bottom layer: imports nothing of jdm_kg above ``errors``, ``resources`` and ``namespaces``."""
