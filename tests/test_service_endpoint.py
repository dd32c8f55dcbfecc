"""``jdm-kg serve --endpoint``: the service's recommendations computed on a shared SPARQL 1.1
server (Oxigraph server on loopback) are the embedded ones."""

from __future__ import annotations

from service_support import AS_OF, client, hook_request
from test_endpoint import server  # noqa: F401 (the Oxigraph server fixture)

from jdm_kg import load_guideline
from jdm_kg.reasoning.endpoint import Endpoint, load_guideline_graph


def test_cards_from_a_sparql_server_are_the_embedded_ones(server):  # noqa: F811
    load_guideline_graph(Endpoint(server["query"], server["update"]), load_guideline())
    shared = client(endpoint=server["query"], update=server["update"], today=AS_OF, result_cache=0)
    embedded = client()
    request = hook_request("patient-view", "muscle-predominant.json")
    answers = [c.post("/cds-services/jdm-kg-patient-view", json=request) for c in (shared, embedded)]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    on_server, local = (a.json()["cards"] for a in answers)
    def said(card):  # (the detail's last line links to the report page kept by each service: its token differs)
        return card["summary"], card["indicator"], card["detail"].splitlines()[:-1]

    assert [said(c) for c in on_server] == [said(c) for c in local]
    assert "rituximab first (#1)" in on_server[0]["summary"]
