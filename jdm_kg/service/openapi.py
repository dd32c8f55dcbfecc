"""The OpenAPI 3.1 document of the service (``GET /openapi.json``), written by hand: the routes
are few, and the document is what Schemathesis fuzzes in the tests."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "problem details (RFC 9457)",
                     "content": {"application/problem+json": {"schema": _PROBLEM}}} for c in codes}


_PATIENT_BODY = {
    "required": True,
    "description": "A patient record: Turtle, N-Triples, JSON-LD (the bundled context) or FHIR R4 JSON.",
    "content": {
        "text/turtle": {"schema": {"type": "string"}},
        "application/ld+json": {"schema": {"type": "object"}},
        "application/fhir+json": {"schema": {"type": "object"}},
    },
}


def openapi_document(guideline_version: str) -> dict[str, Any]:
    cds_request = {"$ref": "#/components/schemas/CdsRequest"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "jdm-kg service", "version": guideline_version,
                 "description": "Next line of treatment after JAK-inhibitor failure in juvenile dermatomyositis: "
                                "CDS Hooks 2.0 services, REST, a read-only SPARQL endpoint."},
        "paths": {
            "/health": {"get": {"summary": "Service health", "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/guideline": {"get": {"summary": "Guideline version, statements, options", "responses": {
                "200": {"description": "summary", "content": {"application/json": {"schema": {"type": "object"}},
                                                              "text/turtle": {"schema": {"type": "string"}}}},
                **_problems(406)}}},
            "/validate": {"post": {"summary": "Validate a patient record", "requestBody": _PATIENT_BODY, "responses": {
                "200": {"description": "validation report", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/fhir+json": {"schema": {"type": "object"}},
                    "text/markdown": {"schema": {"type": "string"}},
                    "text/turtle": {"schema": {"type": "string"}}}},
                **_problems(400, 406, 413, 415, 422, 503)}}},
            "/recommend": {"post": {
                "summary": "Validate and recommend",
                "parameters": [{"name": "details", "in": "query", "required": False, "schema": {"type": "boolean"}}],
                "requestBody": _PATIENT_BODY, "responses": {
                    "200": {"description": "recommendations", "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/fhir+json": {"schema": {"type": "object"}},
                        "text/markdown": {"schema": {"type": "string"}},
                        "text/turtle": {"schema": {"type": "string"}}}},
                    **_problems(400, 406, 413, 415, 422, 503)}}},
            "/whatif": {"post": {
                "summary": "What would change the answer: per option, the smallest changes of the patient's facts",
                "description": "For each option (or the one named), the smallest sets of at most `depth` changed facts "
                               "(screening results, a clinician's clearance, which feature predominates or is present, "
                               "the outcome of an ongoing course, current measurements) that would make it offered, "
                               "rank first, ready to start or dosable; each found by assessing the changed record "
                               "again (jdm-kg whatif). Same limits as /recommend; depth at most 3.",
                "parameters": [
                    {"name": "option", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "one option: its name (rituximab) or IRI"},
                    {"name": "depth", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2},
                     "description": "changes of at most this many facts"}],
                "requestBody": _PATIENT_BODY, "responses": {
                    "200": {"description": "what-if lines per patient and option", "content": {
                        "application/json": {"schema": {"type": "object", "required": ["validation", "whatIf"]}},
                        "text/markdown": {"schema": {"type": "string"}}}},
                    **_problems(400, 406, 413, 415, 422, 503)}}},
            "/cds-services": {"get": {"summary": "CDS Hooks discovery", "responses": {
                "200": {"description": "services", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/cds-services/{service_id}": {"post": {
                "summary": "Call a CDS service (patient-view or order-select)",
                "parameters": [{"name": "service_id", "in": "path", "required": True, "schema": {
                    "type": "string", "enum": ["jdm-kg-patient-view", "jdm-kg-order-select"]}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": cds_request}}},
                "responses": {"200": {"description": "cards", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["cards"]}}}}, **_problems(400, 401, 404, 412, 413, 415, 422, 503)}}},
            "/cds-services/{service_id}/feedback": {"post": {
                "summary": "Feedback on cards",
                "parameters": [{"name": "service_id", "in": "path", "required": True, "schema": {
                    "type": "string", "enum": ["jdm-kg-patient-view", "jdm-kg-order-select"]}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "accepted"}, **_problems(400, 401, 404, 415)}}},
            "/sparql": {
                "get": {"summary": "SPARQL 1.1 query (read-only)",
                        "parameters": [{"name": "query", "in": "query", "required": True, "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "results"}, **_problems(400, 403, 406, 503)}},
                "post": {"summary": "SPARQL 1.1 query (read-only)",
                         "requestBody": {"required": True, "content": {
                             "application/sparql-query": {"schema": {"type": "string"}},
                             "application/x-www-form-urlencoded": {"schema": {
                                 "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}},
                         "responses": {"200": {"description": "results"}, **_problems(400, 403, 406, 415, 503)}},
            },
        },
        "components": {"schemas": {
            "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"}}},
            "CdsRequest": {"type": "object", "required": ["hook", "hookInstance", "context"], "properties": {
                "hook": {"type": "string"}, "hookInstance": {"type": "string"}, "fhirServer": {"type": "string"},
                "fhirAuthorization": {"type": "object"}, "context": {"type": "object"},
                "prefetch": {"type": "object"}}},
        }},
    }
