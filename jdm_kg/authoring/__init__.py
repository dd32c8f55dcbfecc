"""Authoring: the commands for guideline authors (check, test with vignettes, diff, fmt, release).
Imports outputs, reasoning, knowledge and inputs; only the entry points (``cli``, ``batch``,
``service``) import it."""
