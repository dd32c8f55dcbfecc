"""The bundled queries on a real SPARQL server (Oxigraph server from the ``oxigraph`` package,
started on loopback): the same recommendations as embedded."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from rdflib import Graph

from jdm_kg import InputError, load_guideline, load_patient_file
from jdm_kg.endpoint import Endpoint, load_guideline_graph
from jdm_kg.loading import rdf_files
from jdm_kg.recommend import recommend_graphs

from helpers import ROOT, run

TODAY = date(2026, 11, 24)


def _oxigraph_binary() -> str | None:
    beside = Path(sys.executable).with_name("oxigraph")
    return str(beside) if beside.exists() else shutil.which("oxigraph")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server():
    binary = _oxigraph_binary()
    if binary is None:
        pytest.skip("the oxigraph server is not installed (pip install 'jdm-kg[test]')")
    port = _free_port()
    proc = subprocess.Popen([binary, "serve", "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/query?query=ASK%7B%7D", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"oxigraph server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
    yield {"query": f"{base}/query", "update": f"{base}/update"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def loaded(server):
    proc = run("load", "--endpoint", server["query"], "--update", server["update"], str(ROOT / "examples" / "fhir"))
    assert proc.returncode == 0, proc.stderr
    assert "guideline v" in proc.stdout and "-> graph <https://w3id.org/jdm-kg/guideline>" in proc.stdout
    assert proc.stdout.count("-> graph <urn:jdm-kg:file:") == len(list((ROOT / "examples" / "fhir").glob("*.json")))
    return server


def _two_patient_file(tmp_path: Path) -> Path:
    merged = Graph()
    for name in ("skin-predominant.ttl", "ild-predominant.ttl"):
        merged += load_patient_file(ROOT / "examples" / name)
    path = tmp_path / "two-patients.ttl"
    path.write_text(merged.serialize(format="turtle"), encoding="utf-8")
    return path


def test_recommend_on_the_server_is_identical_to_embedded(loaded, tmp_path):
    files = [str(p) for p in rdf_files([ROOT / "examples"]) if "invalid" not in p.parts]
    files.append(str(_two_patient_file(tmp_path)))
    embedded = run("recommend", *files, "--format", "json")
    remote = run("recommend", *files, "--format", "json", "--endpoint", loaded["query"], "--update", loaded["update"])
    assert remote.returncode == embedded.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(embedded.stdout)
    assert len(json.loads(remote.stdout)) == len(files) + 1  # the merged file holds two records


def test_vignettes_on_the_server_through_the_api(loaded):
    guideline = load_guideline()
    endpoint = Endpoint(loaded["query"], loaded["update"])
    sources = [(str(p), load_patient_file(p)) for p in rdf_files([ROOT / "tests" / "vignettes"])]
    remote = recommend_graphs(sources, guideline, TODAY, engine=endpoint)
    local = recommend_graphs(sources, guideline, TODAY, engine="oxigraph")
    for (report_r, results_r), (report_l, results_l) in zip(remote, local):
        assert report_r.issues == report_l.issues
        assert [r.as_dict() for r in results_r] == [r.as_dict() for r in results_l]
    # nothing is left behind on the server: only the guideline and the loaded files
    graphs = endpoint.select("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")
    assert not [row for row in graphs if str(row[0]).startswith("urn:jdm-kg:run:")]  # type: ignore[index]


def test_analyst_query_on_loaded_data(loaded):
    skin = ROOT / "examples" / "fhir" / "skin-predominant.json"
    load_out = run("load", "--endpoint", loaded["query"], "--update", loaded["update"], "--no-guideline", str(skin))
    graph = load_out.stdout.split("-> graph <")[1].split(">")[0]
    proc = run("query", "option-matches", "--endpoint", loaded["query"], "--graph", "https://w3id.org/jdm-kg/guideline",
               "--graph", graph, "--param", "patient=https://w3id.org/jdm-kg/example/patient/P-SKIN", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    skin_for = {r["option"].rsplit("/", 1)[-1] for r in rows if r["side"] == "for" and r["manifestation"].endswith("SkinDisease")}
    assert skin_for == {"adalimumab", "infliximab", "ivig"}


def test_server_without_the_guideline_is_refused(server):
    endpoint = Endpoint(server["query"], server["update"])
    endpoint.drop("https://w3id.org/jdm-kg/guideline")
    try:
        proc = run("recommend", str(ROOT / "examples" / "skin-predominant.ttl"),
                   "--endpoint", server["query"], "--update", server["update"])
        assert proc.returncode == 2 and "no guideline in graph" in proc.stderr and "jdm-kg load" in proc.stderr
    finally:
        load_guideline_graph(endpoint, load_guideline())


def test_unreachable_server_and_missing_update_url_are_clear_errors():
    port = _free_port()  # nothing listens there
    proc = run("recommend", str(ROOT / "examples" / "skin-predominant.ttl"),
               "--endpoint", f"http://127.0.0.1:{port}/query", "--update", f"http://127.0.0.1:{port}/update")
    assert proc.returncode == 2 and "cannot reach the SPARQL server" in proc.stderr
    proc = run("recommend", str(ROOT / "examples" / "skin-predominant.ttl"), "--endpoint", f"http://127.0.0.1:{port}/q")
    assert proc.returncode == 2 and "--update URL" in proc.stderr
    with pytest.raises(InputError, match="not an http"):
        Endpoint("file:///etc/passwd")
