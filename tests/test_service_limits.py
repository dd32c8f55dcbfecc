"""The service's hardening that an in-process app shows quickly (issue 22); the attacks on a real
server with worker processes are in test_service_attacks.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_support import BASE, ROOT, check_problem, client, hook_request, jwks_file, token

PV = "/cds-services/jdm-kg-patient-view"


@pytest.mark.parametrize("path", ["/docs/index.html", "/static/style.css", "/health", "/"])
def test_every_response_carries_the_security_headers(path: str) -> None:
    """/docs and /static had none (the README said every response did)."""
    response = client().get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
    assert ("cache-control" in response.headers) == (not path.startswith(("/docs", "/static")))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> object:
    return client(jwks=str(jwks_file(tmp_path_factory.mktemp("jwks"))))


def test_the_jwt_audience_never_comes_from_the_host_header(secured: object) -> None:
    """A token signed for another CDS service, sent with that service's Host: refused (it was
    accepted: the audience was taken from Host). Our own token with a forged Host: accepted, and
    the card's link comes from the configured URL."""
    body = hook_request("patient-view", "skin-predominant.json")
    other = secured.post(PV, json=body, headers={  # type: ignore[attr-defined]
        "host": "other-cds.example.org", "authorization": "Bearer " + token(f"https://other-cds.example.org{PV}")})
    check_problem(other, 401)
    ours = secured.post(PV, json=body, headers={  # type: ignore[attr-defined]
        "host": "evil.example.org", "authorization": "Bearer " + token(f"{BASE}{PV}")})
    assert ours.status_code == 200, ours.text
    links = [link["url"] for card in ours.json()["cards"] for link in card.get("links", [])]
    assert links and all(link.startswith(BASE + "/") for link in links) and "evil.example.org" not in ours.text


def test_a_jwks_without_the_service_url_is_refused(tmp_path: Path) -> None:
    from jdm_kg.service import ServiceConfig, create_app

    with pytest.raises(ValueError, match="--audience"):
        create_app(ServiceConfig(jwks=str(jwks_file(tmp_path)), workers=0))


def test_the_command_lines_limits_hold_for_validate_and_recommend() -> None:
    """/validate and /recommend read a body with the command line's limits: each a 400 naming it."""
    http = client()
    nested = "<urn:a> <urn:b> " + "[ <urn:c> " * 40 + '"x"' + " ]" * 40 + " ."
    response = http.post("/validate", content=nested, headers={"content-type": "text/turtle"})
    assert "nested more than 32 deep" in check_problem(response, 400)["detail"]
    document = json.loads((ROOT / "examples" / "muscle-predominant.jsonld").read_text())
    document["treatments"] = document["treatments"] * 1_001
    response = http.post("/recommend", content=json.dumps(document), headers={"content-type": "application/ld+json"})
    assert "the JSON list 'treatments' has 2002 items; jdm-kg reads at most 1000" in check_problem(response, 400)["detail"]
    fhir = json.loads((ROOT / "examples" / "fhir" / "skin-predominant.json").read_text())
    fhir["entry"][0]["resource"]["name"] = [{"text": "x" * 100_001}]
    response = http.post("/recommend", content=json.dumps(fhir), headers={"content-type": "application/fhir+json"})
    assert "100000 characters" in check_problem(response, 400)["detail"]
