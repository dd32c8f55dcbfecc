"""Outputs: what a run writes, as text, Markdown, JSON, PROV-O Turtle or FHIR, and the static
HTML docs of the guideline. Imports ``jdm_kg.reasoning`` and below, never authoring or the entry points."""
