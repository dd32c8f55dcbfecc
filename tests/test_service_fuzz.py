"""A bounded schema-driven fuzz of the service's OpenAPI document (Schemathesis strategies run by
Hypothesis, through the ASGI app): every generated request gets an answer below 500, and every
refusal is a problem document. Bounded: a few cases per operation, derandomised."""

from __future__ import annotations

import pytest
from service_support import app

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (test extra) is not installed")

CASES_PER_OPERATION = 6


def test_no_server_errors():
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", app(request_timeout=10.0))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    calls: list[tuple[str, str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=CASES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            calls.append((case.method, case.path, response.status_code))
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
            if response.status_code >= 400:
                kind = response.headers["content-type"]
                kind = kind[0] if isinstance(kind, list) else kind  # schemathesis' response keeps header lists
                assert kind.startswith("application/problem+json"), response.text[:300]

        check()
    assert len(calls) >= 2 * len(operations)
