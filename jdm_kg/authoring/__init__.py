"""Tools for guideline authors and maintainers: releases, ontology checks."""
