"""Reasoning: SHACL validation of patient records, the query engines (embedded Oxigraph or rdflib,
or a SPARQL server), the recommendation and the dosing. Imports ``jdm_kg.knowledge`` and
``jdm_kg.inputs``, never the outputs, authoring or entry points above it."""
