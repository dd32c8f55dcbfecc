"""The bundled queries on a real SPARQL server (Oxigraph server from the ``oxigraph`` package,
started on loopback): the same recommendations as embedded."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from helpers import ROOT, cli, run  # run: a subprocess, as a user runs it; cli: in-process
from rdflib import Graph

from jdm_kg import InputError, load_guideline, load_patient_file
from jdm_kg.inputs.loading import rdf_files
from jdm_kg.reasoning.endpoint import Endpoint, load_guideline_graph
from jdm_kg.reasoning.recommend import recommend_graphs

TODAY = date(2026, 11, 24)


def _oxigraph_binary() -> str | None:
    beside = Path(sys.executable).with_name("oxigraph")
    return str(beside) if beside.exists() else shutil.which("oxigraph")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(args: list[str] | None = None):
    """A new, empty Oxigraph server on loopback: its URLs, then stopped. ``args``: the server's
    arguments as a user gives them (``serve --bind 127.0.0.1:PORT``), by default on a free port."""
    binary = _oxigraph_binary()
    if binary is None:
        pytest.skip("the oxigraph server is not installed (pip install 'jdm-kg[test]')")
    args = args or ["serve", "--bind", f"127.0.0.1:{_free_port()}"]
    port = int(args[args.index("--bind") + 1].rsplit(":", 1)[1])
    proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    from jdm_kg.inputs.netguard import allow_hosts

    allow_hosts({"127.0.0.1"})  # the server a user names: allowed even after an in-process main() blocked the network
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
def server():
    yield from _serve()


@pytest.fixture()
def empty_server():
    """A server of its own, for tests that need to know everything on it."""
    yield from _serve()


@pytest.fixture(scope="module")
def loaded(server):
    proc = run("load", "--endpoint", server["query"], "--update", server["update"], str(ROOT / "examples" / "fhir"))
    assert proc.returncode == 0, proc.stderr
    assert "guideline v" in proc.stdout and "-> graph <https://w3id.org/jdm-kg/guideline>" in proc.stdout
    assert proc.stdout.count("-> graph <urn:jdm-kg:patient:https://w3id.org/jdm-kg/example/fhir/Patient/") == len(
        list((ROOT / "examples" / "fhir").glob("*.json")))
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
    load_out = cli("load", "--endpoint", loaded["query"], "--update", loaded["update"], "--no-guideline", str(skin))
    graph = load_out.stdout.split("-> graph <")[1].split(">")[0]
    assert graph == "urn:jdm-kg:patient:https://w3id.org/jdm-kg/example/fhir/Patient/P-SKIN"  # by the patient, not the file
    proc = cli("query", "option-matches", "--endpoint", loaded["query"], "--graph", "https://w3id.org/jdm-kg/guideline",
               "--graph", graph, "--param", "patient=https://w3id.org/jdm-kg/example/fhir/Patient/P-SKIN", "--format", "json")
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


# --------------------------------------------------------------------------------------
# Server faults: a tiny proxy on loopback in front of the real server that fails on purpose.

import threading  # noqa: E402
import urllib.parse  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from jdm_kg.reasoning.engines import GUIDELINE_GRAPH  # noqa: E402


class _Faulty(BaseHTTPRequestHandler):
    """Forwards to the real server, except what ``server.mode`` says to break. "Patient" requests
    are those reading or writing a run's temporary graph (so the run has loaded data by then)."""

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        text = urllib.parse.unquote_plus(body.decode("utf-8"))
        mode, upstream = self.server.mode, self.server.upstream
        patient_query = self.path == "/query" and "urn:jdm-kg:run:" in text
        if mode == "500" or (mode == "fail-drop" and "DROP SILENT GRAPH <urn:jdm-kg:run:" in text) or (
                mode == "fail-move" and text.startswith("update=MOVE")) or (mode == "500-later" and patient_query):
            return self._answer(500, b"simulated failure")
        if mode == "hang" and patient_query:
            time.sleep(3)  # longer than the client's --timeout 1; bounded
            return self._answer(500, b"too late")
        if mode == "close" and patient_query:
            self.close_connection = True
            return None
        request = urllib.request.Request(upstream + self.path, data=body, method="POST", headers={
            "Content-Type": self.headers["Content-Type"], "Accept": self.headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, answer = err.code, err.read()
        if mode == "truncate" and patient_query:
            answer = answer[: len(answer) // 2]
        if mode == "empty" and patient_query:
            answer = b""
        return self._answer(status, answer)

    def _answer(self, status, body):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/sparql-results+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (the "hang" case)
            pass


@pytest.fixture()
def proxy(loaded):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    server.daemon_threads = True
    server.upstream = loaded["query"].rsplit("/", 1)[0]
    server.mode = "none"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)  # quick to stop
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server, {"query": f"{base}/query", "update": f"{base}/update"}
    server.shutdown()
    server.server_close()


def _run_graphs(urls):
    return Endpoint(urls["query"]).graph_names("urn:jdm-kg:")


def _left_behind(urls):
    return [g for g in _run_graphs(urls) if g.startswith(("urn:jdm-kg:run:", "urn:jdm-kg:staging:"))]


SKIN = str(ROOT / "examples" / "skin-predominant.ttl")
ILD = str(ROOT / "examples" / "ild-predominant.ttl")


@pytest.mark.parametrize("mode, message", [
    ("500-later", "the SPARQL server answered 500"),
    ("hang", "cannot reach the SPARQL server"),
    ("close", "cannot reach the SPARQL server"),
    ("truncate", "the answer is not SPARQL JSON results"),
    ("empty", "the answer is not SPARQL JSON results"),
])
def test_a_failing_server_leaves_no_temporary_graph(loaded, proxy, mode, message):
    server, urls = proxy
    server.mode = mode
    proc = cli("recommend", SKIN, ILD, "--endpoint", urls["query"], "--update", urls["update"], "--timeout", "1")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1  # the run's error, once
    assert _left_behind(loaded) == []


def test_a_server_that_refuses_everything_is_one_clear_error(proxy):
    server, urls = proxy
    server.mode = "500"
    proc = cli("recommend", SKIN, ILD, "--endpoint", urls["query"], "--update", urls["update"])
    assert proc.returncode == 2 and proc.stderr.count("the SPARQL server answered 500") == 1


def test_an_undroppable_temporary_graph_is_reported_and_cleaned_up(loaded, proxy):
    server, urls = proxy
    server.mode = "fail-drop"
    proc = cli("recommend", SKIN, "--format", "json", "--endpoint", urls["query"], "--update", urls["update"])
    assert proc.returncode == 2 and "could not drop 1 temporary graph(s) holding patient data" in proc.stderr
    assert "jdm-kg load --cleanup" in proc.stderr
    left = _left_behind(loaded)
    assert len(left) == 1
    recent = cli("load", "--cleanup", "--no-guideline", "--endpoint", loaded["query"], "--update", loaded["update"])
    assert recent.returncode == 0 and "dropped 0 temporary graph(s)" in recent.stdout  # a run of now may be running
    assert _left_behind(loaded) == left
    proc = cli("load", "--cleanup", "0", "--no-guideline", "--endpoint", loaded["query"], "--update", loaded["update"])
    assert proc.returncode == 0 and "dropped 1 temporary graph(s)" in proc.stdout and left[0] in proc.stdout
    assert _left_behind(loaded) == []


def test_a_failed_load_leaves_the_guideline_as_it_was(loaded, proxy):
    server, urls = proxy
    server.mode = "fail-move"
    proc = cli("load", "--endpoint", urls["query"], "--update", urls["update"])
    assert proc.returncode == 2 and "the SPARQL server answered 500" in proc.stderr
    assert _left_behind(loaded) == []
    ok = cli("recommend", SKIN, "--endpoint", loaded["query"], "--update", loaded["update"])
    assert ok.returncode == 0, ok.stderr  # the guideline there is still whole


@pytest.mark.parametrize("damage", [
    "DELETE WHERE { GRAPH <%s> { ?s <https://w3id.org/jdm-kg/vocab#doseMax> ?o } }",
    "DELETE { GRAPH <%(g)s> { ?s <https://w3id.org/jdm-kg/vocab#doseMin> ?o } } "
    "INSERT { GRAPH <%(g)s> { ?s <https://w3id.org/jdm-kg/vocab#doseMin> 4375.0 } } "
    "WHERE { GRAPH <%(g)s> { ?s <https://w3id.org/jdm-kg/vocab#doseMin> ?o } }",
], ids=["triples-missing", "value-edited"])
def test_a_damaged_guideline_on_the_server_is_refused(loaded, damage):
    endpoint = Endpoint(loaded["query"], loaded["update"])
    endpoint.update(damage % ({"g": GUIDELINE_GRAPH} if "%(g)s" in damage else GUIDELINE_GRAPH))
    try:
        proc = run("recommend", SKIN, "--endpoint", loaded["query"], "--update", loaded["update"])
        assert proc.returncode == 2
        assert "is not this jdm-kg's compiled guideline" in proc.stderr and "reload it with jdm-kg load" in proc.stderr
    finally:
        load_guideline_graph(endpoint, load_guideline())


def test_graphs_left_by_an_old_run_are_dropped_at_the_start_of_a_run(loaded):
    endpoint = Endpoint(loaded["query"], loaded["update"])
    old = "urn:jdm-kg:run:1000000000-0123456789abcdef:0"  # started in 2001
    endpoint.update(f"INSERT DATA {{ GRAPH <{old}> {{ <urn:p> <urn:q> 1 }} }}")
    assert _left_behind(loaded) == [old]
    proc = run("recommend", SKIN, "--endpoint", loaded["query"], "--update", loaded["update"])
    assert proc.returncode == 0 and "dropped 1 temporary graph(s) that earlier runs left" in proc.stderr
    assert _left_behind(loaded) == []


def test_an_endpoint_with_open_connections_still_goes_to_worker_processes():
    """--jobs N sends the Endpoint to each worker (pickled); its HTTP client (httpx, open
    connections) stays behind and the worker opens its own."""
    import pickle

    endpoint = Endpoint("http://127.0.0.1:9/query", "http://127.0.0.1:9/update", timeout=7)
    client = endpoint._http()
    copy = pickle.loads(pickle.dumps(endpoint))
    assert (copy.query_url, copy.update_url, copy.timeout) == (endpoint.query_url, endpoint.update_url, 7)
    assert copy._http() is not client and endpoint._http() is client


# --------------------------------------------------------------------------------------
# jdm-kg load: one graph per patient, replaced on reload; invalid records reported and skipped.

SKIN_TEXT = (ROOT / "examples" / "skin-predominant.ttl").read_text(encoding="utf-8")
WEIGHTS = """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
SELECT ?patient ?weight WHERE { ?patient jdm:bodyWeight/jdm:value ?weight } ORDER BY ?patient ?weight
"""


def _patient(folder: Path, name: str, pid: str, weight: str = "35.0", subject: str | None = None) -> Path:
    """The skin example as patient ``pid`` (IRI ``https://example.org/load-test/<pid>``) with
    ``weight`` kg, in ``folder/name``; ``subject``: another subject instead of the IRI (``_:p``)."""
    text = SKIN_TEXT.replace("jdm:value 35.0 ;", f"jdm:value {weight} ;").replace('"P-SKIN"', f'"{pid}"')
    text = text.replace("ex:P-SKIN a", f"{subject or f'<https://example.org/load-test/{pid}>'} a")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _load(urls, *args):
    return cli("load", "--endpoint", urls["query"], "--update", urls["update"], "--no-guideline", *map(str, args))


def _graphs_holding(urls, pid: str) -> list[str]:
    """The named graphs on the server with a node of type jdm:Patient for ``pid``."""
    rows = Endpoint(urls["query"]).select(
        "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?p a <https://w3id.org/jdm-kg/vocab#Patient> } "
        f"FILTER(?p = <https://example.org/load-test/{pid}>) }}")
    return sorted(str(row[0]) for row in rows)  # type: ignore[index]


def _weights(urls, pid: str) -> list[str]:
    rows = Endpoint(urls["query"]).select(
        "SELECT ?w WHERE { GRAPH ?g { ?p <https://w3id.org/jdm-kg/vocab#bodyWeight> ?b . "
        f"?b <https://w3id.org/jdm-kg/vocab#value> ?w }} FILTER(?p = <https://example.org/load-test/{pid}>) }}")
    return sorted(str(row[0]) for row in rows)  # type: ignore[index]


def test_loading_an_edited_file_again_leaves_one_copy_of_the_patient(loaded, tmp_path):
    path = _patient(tmp_path, "reload.ttl", "P-RELOAD")
    first = _load(loaded, path)
    assert first.returncode == 0, first.stderr
    graph = "urn:jdm-kg:patient:https://example.org/load-test/P-RELOAD"
    assert f"{path}: record P-RELOAD: 47 triples -> graph <{graph}>\n" in first.stdout
    assert first.stdout.endswith("1 of 1 patient record(s) loaded from 1 file(s)\n")
    _patient(tmp_path, "reload.ttl", "P-RELOAD", weight="36.5")  # the weight corrected in the same file
    second = _load(loaded, path)
    assert second.returncode == 0 and "(replaced the copy loaded before)" in second.stdout, second.stderr
    assert _graphs_holding(loaded, "P-RELOAD") == [graph]
    assert _weights(loaded, "P-RELOAD") == ["36.5"]  # one weight: the new one
    third = _load(loaded, path)  # the same input: the same output, byte for byte
    assert (third.returncode, third.stdout, third.stderr) == (second.returncode, second.stdout, second.stderr)
    # an analyst's query without --graph reads the guideline and the patient graphs: one row
    (tmp_path / "weights.rq").write_text(WEIGHTS, encoding="utf-8")
    proc = cli("query", str(tmp_path / "weights.rq"), "--endpoint", loaded["query"], "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert [row for row in json.loads(proc.stdout) if "P-RELOAD" in row["patient"]] == [
        {"patient": "https://example.org/load-test/P-RELOAD", "weight": "36.5"}]


def test_the_same_patient_loaded_from_another_file_replaces_it_with_a_note(loaded, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = _patient(tmp_path / "a", "p.ttl", "P-MOVED")
    assert _load(loaded, old).returncode == 0
    new = _patient(tmp_path / "b", "p.ttl", "P-MOVED", weight="37")
    proc = _load(loaded, new)
    assert proc.returncode == 0
    assert f"note: {new}: record P-MOVED: replaces the copy loaded from {old.resolve()}" in proc.stderr
    assert _weights(loaded, "P-MOVED") == ["37"]


def test_an_invalid_record_is_reported_and_not_loaded_unless_allowed(loaded, tmp_path):
    good = _patient(tmp_path, "good.ttl", "P-GOOD")
    bad = _patient(tmp_path, "bad.ttl", "P-GRAMS", weight="35000")  # grams, not kg
    broken = tmp_path / "broken.ttl"
    broken.write_text("@prefix jdm: <https://w3id.org/jdm-kg/vocab#> .\n<urn:x> a jdm:Patient", encoding="utf-8")
    proc = _load(loaded, good, bad)
    assert proc.returncode == 1, proc.stderr  # violations found
    assert (f"{bad}: violation: record P-GRAMS: line 14: bodyWeight.value: Body weight is outside 1-250 kg: was it "
            "entered in grams or pounds? Record weight in kg. (value: 35000)") in proc.stderr
    assert (f"note: {bad}: record P-GRAMS: not loaded: 1 violation(s) above; the server holds no copy of it; correct them "
            "and load the file again, or load the record as it is with --allow-invalid") in proc.stderr
    assert "Traceback" not in proc.stderr and f"{good}: record P-GOOD: 47 triples -> graph" in proc.stdout
    assert "1 of 2 patient record(s) loaded from 2 file(s); 1 not loaded (see above)" in proc.stdout
    assert _weights(loaded, "P-GRAMS") == [] and _weights(loaded, "P-GOOD") == ["35"]

    allowed = _load(loaded, bad, "--allow-invalid")
    assert allowed.returncode == 1, allowed.stderr
    assert "record P-GRAMS: 47 triples -> graph <urn:jdm-kg:patient:https://example.org/load-test/P-GRAMS>; " \
           "loaded with 1 violation(s) (--allow-invalid)" in allowed.stdout
    assert "violation: record P-GRAMS" in allowed.stderr and _weights(loaded, "P-GRAMS") == ["35000"]

    # the record corrected, then made invalid again: not loaded, and the valid copy stays, said so
    _patient(tmp_path, "bad.ttl", "P-GRAMS", weight="35")
    assert _load(loaded, bad).returncode == 0 and _weights(loaded, "P-GRAMS") == ["35"]
    _patient(tmp_path, "bad.ttl", "P-GRAMS", weight="-2")
    again = _load(loaded, bad)
    assert again.returncode == 1
    assert (f"the server keeps the copy loaded before from {bad.resolve()}, in graph "
            "<urn:jdm-kg:patient:https://example.org/load-test/P-GRAMS>") in again.stderr
    assert _weights(loaded, "P-GRAMS") == ["35"]

    # an unusable file is exit 2, and the others are still loaded
    mixed = _load(loaded, broken, good)
    assert mixed.returncode == 2
    assert f"error: {broken}:" in mixed.stderr and f"{good}: record P-GOOD:" in mixed.stdout


def test_two_files_with_the_same_patient_load_neither(loaded, tmp_path):
    one = _patient(tmp_path, "one.ttl", "P-TWICE")
    two = _patient(tmp_path, "two.ttl", "P-TWICE", weight="40")
    other = _patient(tmp_path, "other.ttl", "P-OTHER")
    proc = _load(loaded, one, two, other)
    assert proc.returncode == 2
    for here, there in ((one, two), (two, one)):
        assert (f"error: {here}: record P-TWICE: patient <https://example.org/load-test/P-TWICE> is also in {there}: "
                "not loaded from either file (a patient has one graph); the server holds no copy of it; keep the "
                "record in one file and load again") in proc.stderr
    assert _graphs_holding(loaded, "P-TWICE") == [] and _weights(loaded, "P-OTHER") == ["35"]
    # the same file named twice (here: through a link) is one file, loaded once
    link = tmp_path / "link.ttl"
    link.symlink_to(other)
    same = _load(loaded, other, link)
    assert same.returncode == 0 and f"note: {link}: the same file as {other}: loaded once" in same.stderr
    assert "1 of 1 patient record(s) loaded from 1 file(s)" in same.stdout


def test_a_patient_without_an_iri_is_not_loaded(loaded, tmp_path):
    path = _patient(tmp_path, "blank.ttl", "P-BLANK", subject="_:p")
    proc = _load(loaded, path)
    assert proc.returncode == 2
    assert (f"error: {path}: record P-BLANK: the patient has no IRI (a blank node), so its graph could not be found "
            "again to be replaced: not loaded; give the patient an IRI") in proc.stderr
    assert "0 of 1 patient record(s) loaded from 1 file(s); 1 not loaded" in proc.stdout


def test_a_record_removed_from_a_file_keeps_its_graph_unless_pruned(loaded, tmp_path):
    both = _patient(tmp_path, "a.ttl", "P-STAY").read_text() + _patient(tmp_path, "b.ttl", "P-GONE").read_text()
    path = tmp_path / "registry.ttl"
    path.write_text(both, encoding="utf-8")
    first = _load(loaded, path)
    assert first.returncode == 0 and "2 of 2 patient record(s)" in first.stdout, first.stderr
    assert _graphs_holding(loaded, "P-GONE") == ["urn:jdm-kg:patient:https://example.org/load-test/P-GONE"]
    _patient(tmp_path, "registry.ttl", "P-STAY")  # P-GONE taken out of the file
    kept = _load(loaded, path)
    assert kept.returncode == 0
    assert (f"note: {path}: patient <https://example.org/load-test/P-GONE> was loaded from this file before and is "
            "not in it now: its graph <urn:jdm-kg:patient:https://example.org/load-test/P-GONE> is kept "
            "(--prune drops it)") in kept.stderr
    assert _graphs_holding(loaded, "P-GONE") != []
    pruned = _load(loaded, path, "--prune")
    assert pruned.returncode == 0
    assert f"{path}: patient <https://example.org/load-test/P-GONE> is no longer in this file: graph " in pruned.stdout
    assert _graphs_holding(loaded, "P-GONE") == [] and _graphs_holding(loaded, "P-STAY") != []


def test_graphs_of_the_old_per_file_naming_are_dropped_once_duplicated(loaded, tmp_path):
    endpoint = Endpoint(loaded["query"], loaded["update"])
    legacy = "urn:jdm-kg:file:0123456789abcdef"  # an earlier jdm-kg load: the file's graph, named by its content
    endpoint.update(f"INSERT DATA {{ GRAPH <{legacy}> {{ <https://example.org/load-test/P-LEGACY> a "
                    "<https://w3id.org/jdm-kg/vocab#Patient> ; <https://w3id.org/jdm-kg/vocab#bodyWeight> "
                    "[ <https://w3id.org/jdm-kg/vocab#value> 30 ] } }")
    proc = _load(loaded, _patient(tmp_path, "legacy.ttl", "P-LEGACY"))
    assert proc.returncode == 0
    assert f"graph <{legacy}> dropped: made by an earlier jdm-kg load" in proc.stdout
    assert _weights(loaded, "P-LEGACY") == ["35"]  # one copy, not two


def test_a_failed_reload_leaves_the_patient_as_it_was(loaded, proxy, tmp_path):
    path = _patient(tmp_path, "p.ttl", "P-ATOMIC")
    assert _load(loaded, path).returncode == 0
    server, urls = proxy
    server.mode = "fail-move"
    _patient(tmp_path, "p.ttl", "P-ATOMIC", weight="50")
    proc = _load(urls, path)
    assert proc.returncode == 2 and "the SPARQL server answered 500" in proc.stderr
    assert _weights(loaded, "P-ATOMIC") == ["35"] and _left_behind(loaded) == []


def test_query_on_a_server_without_graph_names_what_it_reads(empty_server, tmp_path):
    urls = empty_server
    nothing = cli("query", "patients", "--endpoint", urls["query"])
    assert nothing.returncode == 2 and nothing.stdout == ""
    assert "holds no graph jdm-kg load made (neither the guideline graph <https://w3id.org/jdm-kg/guideline> nor a " \
           "patient graph <urn:jdm-kg:patient:...>): load data with jdm-kg load" in nothing.stderr
    load = cli("load", "--endpoint", urls["query"], "--update", urls["update"],
               str(_patient(tmp_path, "a.ttl", "P-Q1")), str(_patient(tmp_path, "b.ttl", "P-Q2")))
    assert load.returncode == 0, load.stderr
    proc = cli("query", "patients", "--endpoint", urls["query"], "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == [{"patient": "https://example.org/load-test/P-Q1", "patientId": "P-Q1"},
                                       {"patient": "https://example.org/load-test/P-Q2", "patientId": "P-Q2"}]
    assert f"note: querying the guideline graph and 2 patient graph(s) that jdm-kg load made on {urls['query']}" \
           in proc.stderr
    # the guideline is read too: a patient's option matches need no --graph
    matches = cli("query", "option-matches", "--endpoint", urls["query"], "--format", "json",
                  "--param", "patient=https://example.org/load-test/P-Q1")
    assert matches.returncode == 0 and json.loads(matches.stdout), matches.stderr
    # a graph that is not there is an error naming those that are, never 0 rows
    missing = cli("query", "patients", "--endpoint", urls["query"], "--graph", "urn:jdm-kg:patient:P-Q3")
    assert missing.returncode == 2 and missing.stdout == ""
    assert ("error: --graph: no graph <urn:jdm-kg:patient:P-Q3> on the server (or it is empty); graphs jdm-kg load "
            "made there: the guideline graph <https://w3id.org/jdm-kg/guideline>, 2 patient graph(s): "
            "<urn:jdm-kg:patient:https://example.org/load-test/P-Q1> "
            "<urn:jdm-kg:patient:https://example.org/load-test/P-Q2>") in missing.stderr
    # a query that names its graphs itself runs on the server's dataset as written
    (tmp_path / "graphs.rq").write_text("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g")
    graphs = cli("query", str(tmp_path / "graphs.rq"), "--endpoint", urls["query"], "--format", "json")
    assert graphs.returncode == 0 and "note:" not in graphs.stderr
    assert [row["g"] for row in json.loads(graphs.stdout)] == [
        "https://w3id.org/jdm-kg/guideline", "urn:jdm-kg:patient:https://example.org/load-test/P-Q1",
        "urn:jdm-kg:patient:https://example.org/load-test/P-Q2"]


def _readme_load_example() -> tuple[list[str], list[str], str]:
    """The README's "Try it locally" block: the server's arguments, ``jdm-kg load``'s arguments,
    and the text after the block (what it says the run prints)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.partition("Try it locally on the examples")[2]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    serve = next(line for line in block.splitlines() if "oxigraph serve" in line)
    load = next(line for line in block.splitlines() if line.strip().startswith("jdm-kg load"))
    server_args = shlex.split(serve.split("&", 1)[0])[1:]  # after "oxigraph", before "&" (in the background)
    return server_args, shlex.split(load)[1:], after.split("```", 2)[2].split("\n- ", 1)[0]


def test_the_readme_load_example_loads_every_valid_example_and_notes_the_invalid_ones():
    """`jdm-kg load ... examples/` as the README writes it, on the server it starts: before, the
    FHIR twins shared their Turtle twins' patients and 1 of 17 records was loaded. The port is the
    README's unless another process holds it (tests run in parallel): then a free one, in both."""
    server_args, load_args, said = _readme_load_example()
    port = server_args[server_args.index("--bind") + 1].rsplit(":", 1)[1]
    with socket.socket() as sock:
        free = str(_free_port()) if sock.connect_ex(("127.0.0.1", int(port))) == 0 else port

    def here(args: list[str]) -> list[str]:
        return [a.replace(f":{port}", f":{free}") for a in args]

    server = _serve(here(server_args))
    urls = next(server)
    try:
        assert here(load_args)[load_args.index("--endpoint") + 1] == urls["query"]
        proc = run(*here(load_args))
        query = next(line for line in said.splitlines() if "jdm-kg query patients" in line)
        listed = run(*here(shlex.split(query.split("`jdm-kg ", 1)[1].split("`", 1)[0])), "--format", "json")
    finally:
        next(server, None)  # stopped
    # every valid example, and the one in examples/invalid/ whose problems are only warnings (issue 20)
    valid = [p for p in rdf_files([ROOT / "examples"]) if "invalid" not in p.parts]
    valid.append(ROOT / "examples" / "invalid" / "unknown-drug-and-missing-outcome.ttl")
    assert len(valid) == 14
    for path in valid:  # each into a graph of its own
        assert f"{path.relative_to(ROOT)}: record " in proc.stdout
    assert proc.stdout.count(" -> graph <urn:jdm-kg:patient:") == 14, proc.stdout
    for name, record in (("future-dates-and-adult.ttl", "P-BAD-DATES"), ("height-in-metres.ttl", "P-BAD-UNITS"),
                         ("typo-and-grams.jsonld", "P-BAD-JSON")):
        assert f"note: examples/invalid/{name}: record {record}: not loaded: " in proc.stderr
    for name in ("malformed.ttl", "remote-context.jsonld"):
        assert f"error: examples/invalid/{name}" in proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last == ("14 of 17 patient record(s) loaded from 19 file(s); 3 not loaded (see above); 2 file(s) or "
                    "folder(s) could not be read (see above)")
    assert f"`{last}`" in " ".join(said.split()) and "with exit code 2" in said  # what the README says it prints
    assert proc.returncode == 2
    # the query the README names next lists the 14 patients loaded
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 14
