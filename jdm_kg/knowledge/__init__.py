"""Knowledge: the compiled guideline (with its cache) and the bundled SPARQL queries. Imports
only ``jdm_kg.inputs`` (and the bottom modules ``errors``, ``resources``, ``namespaces``)."""
