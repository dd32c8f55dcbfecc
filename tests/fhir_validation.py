"""Offline FHIR R4 validation for the tests: the official R4 JSON schema
(``tests/fhir-r4-schema/fhir.schema.json.gz``, see its README) with the ``jsonschema`` package,
and a check that every reference in a Bundle or a package resolves inside it."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent / "fhir-r4-schema" / "fhir.schema.json.gz"


@cache
def _validator(resource_type: str) -> Any:
    import jsonschema

    schema = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    assert resource_type in schema["definitions"], f"{resource_type} is not an R4 resource type"
    root = dict(schema, oneOf=[{"$ref": f"#/definitions/{resource_type}"}])
    root.pop("discriminator", None)
    return jsonschema.Draft6Validator(root)


def r4_schema_errors(resource: dict[str, Any]) -> list[str]:
    """Every way ``resource`` breaks the FHIR R4 JSON schema (its path and the message)."""
    validator = _validator(resource["resourceType"])
    out = []
    for error in validator.iter_errors(resource):
        causes = error.context or [error]
        for cause in causes:
            out.append(f"{resource['resourceType']}/{resource.get('id')}: /{'/'.join(map(str, cause.absolute_path))}: "
                       f"{cause.message[:300]}")
    return out


def _values(node: Any, key: str, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield f"{path}/{k}", v
            yield from _values(v, key, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _values(v, key, f"{path}/{i}")


def references(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, value) of every ``Reference.reference`` in ``resource``."""
    return [(p, v) for p, v in _values(resource, "reference") if isinstance(v, str)]


def unresolved_in_bundle(bundle: dict[str, Any]) -> list[str]:
    """Each reference of a Bundle's resources that names no entry of the Bundle (by fullUrl, or
    ``Type/id`` of an entry's resource)."""
    known = set()
    for entry in bundle.get("entry", []):
        if entry.get("fullUrl"):
            known.add(entry["fullUrl"])
        resource = entry.get("resource", {})
        known.add(f"{resource.get('resourceType')}/{resource.get('id')}")
    return [f"{entry['resource']['resourceType']}{path}: {value}"
            for entry in bundle.get("entry", []) for path, value in references(entry["resource"])
            if value not in known and not value.startswith("#")]
