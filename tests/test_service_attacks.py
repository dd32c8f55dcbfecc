"""Nothing a client sends can stop the service (issue 22): each attack of the fault and security
run against a real ``jdm-kg serve`` on 127.0.0.1 (a subprocess), showing that ``ASK {}`` is still
answered within a second while the attack runs, and that the work is really stopped afterwards.

The server runs with short limits so the tests are quick: SPARQL 3 s, requests 5 s, read timeout
2 s, 400 MiB of memory per request's work. Long: marked slow (CI runs them)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ROOT
from service_support import jwks_file, prefetch, token

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]

PV = "/cds-services/jdm-kg-patient-view"
RUNAWAY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
HUNGRY = "SELECT * WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i } ORDER BY ?a ?i ?f"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tree(self) -> dict[int, int]:
        """pid -> parent pid of the server's process and all its descendants."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
        tree = {self.process.pid: 0}
        grew = True
        while grew:
            grew = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree[pid] = parent
                    grew = True
        return tree

    def memory_mb(self) -> float:
        """Resident memory of the server and its worker processes, in MiB."""
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jdm_kg.cli", "serve", "--port", str(port), "--jwks", str(jwks_file(folder)),
             "--audience", url, "--sparql-timeout", "3", "--request-timeout", "5", "--read-timeout", "2",
             "--worker-memory-mb", "400", "--workers", "2", "--today", "2026-11-01"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    running = Server(url, process, log)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the server did not start: " + log.read_text()[-2000:])
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]


def _ask(server: Server) -> float:
    """Seconds ``ASK {}`` takes (answered 200, true)."""
    start = time.monotonic()
    response = httpx.get(f"{server.url}/sparql", params={"query": "ASK {}"},
                         headers={"accept": "application/sparql-results+json"}, timeout=10)
    took = time.monotonic() - start
    assert response.status_code == 200 and response.json()["boolean"] is True, response.text
    return took


def _answered_fast(server: Server) -> None:
    """``ASK {}`` answered within a second (the best of three tries: the machine is shared)."""
    best = min(_ask(server) for _ in range(3))
    assert best < 1.0, f"ASK {{}} took {best:.2f} s during the attack"


def _in_background(calls: list[Any]) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * len(calls)

    def one(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as err:  # noqa: BLE001 (kept for the test to look at)
            results[index] = err

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, results


def _children_settle(server: Server, baseline: int, within: float) -> int:
    """The number of the server's processes once it is back to ``baseline`` (or after ``within`` s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        count = len(server.tree())
        if count <= baseline:
            return count
        time.sleep(0.1)
    return len(server.tree())


def test_runaway_sparql_queries_are_killed_at_their_limit(server: Server) -> None:
    """Seven COUNTs over a four-way cross join (503 at 30 s but running on, the worker pool full,
    every later request timing out until a restart): each gets 503 at the SPARQL limit, its
    process is killed, and ASK {} is answered within a second meanwhile."""
    baseline = len(server.tree())
    threads, results = _in_background([
        lambda: httpx.get(f"{server.url}/sparql", params={"query": RUNAWAY}, timeout=60) for _ in range(7)])
    most = baseline
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and most < baseline + 7:
        most = max(most, len(server.tree()))
        time.sleep(0.05)
    assert most > baseline  # each query runs in a process of its own
    _answered_fast(server)
    for thread in threads:
        thread.join(60)
    for response in results:
        assert isinstance(response, httpx.Response) and response.status_code == 503, response
        assert response.json()["type"].endswith("/timeout") and "stopped" in response.json()["detail"]
    assert _children_settle(server, baseline, 5) == baseline  # every query's process is gone
    _answered_fast(server)


def test_a_query_that_eats_memory_is_stopped_at_its_cap(server: Server) -> None:
    """ORDER BY over a three-way cross join grew by 100 MB/s to 10.5 GB: now its process stops at
    its memory cap (422, or 503 if the time limit comes first) and the service stays small."""
    baseline = len(server.tree())
    threads, results = _in_background([
        lambda: httpx.get(f"{server.url}/sparql", params={"query": HUNGRY}, timeout=60) for _ in range(2)])
    peak = 0.0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        peak = max(peak, server.memory_mb())
        time.sleep(0.1)
    _answered_fast(server)
    for thread in threads:
        while thread.is_alive():
            peak = max(peak, server.memory_mb())
            thread.join(0.1)
    for response in results:
        assert isinstance(response, httpx.Response) and response.status_code in (422, 503), response
        assert response.json()["type"].rsplit("/", 1)[1] in ("too-costly", "timeout")
    assert peak < 3 * 1024, f"the service and its workers reached {peak:.0f} MiB"
    assert _children_settle(server, baseline, 5) == baseline


def _slow_body() -> bytes:
    """About 1.9 MB of Turtle (1,000 patients or more): seconds of validation, under the body
    limit (as many copies of the skin example as fit, whatever that example holds)."""
    from jdm_kg.service import ServiceConfig

    text = (ROOT / "examples" / "skin-predominant.ttl").read_text()
    prefixes = "".join(line + "\n" for line in text.splitlines() if line.startswith("@prefix"))
    body = "\n".join(line for line in text.splitlines() if not line.startswith(("@prefix", "#")))
    count = int(ServiceConfig().max_body_bytes * 0.95 - len(prefixes)) // (len(body.encode()) + 8)
    assert count >= 1_000  # (enough work to outlast the time limit)
    return (prefixes + "".join(body.replace("P-SKIN", f"P-{i}") for i in range(count))).encode()


def _workers(server: Server) -> set[int]:
    """The evaluation workers: the zygote's children (the zygote is the server's child)."""
    tree = server.tree()
    zygotes = [pid for pid, parent in tree.items() if parent == server.process.pid]
    return {pid for pid, parent in tree.items() if parent in zygotes}


def test_nested_turtle_is_refused_at_once_and_slow_work_is_stopped_at_its_limit(server: Server) -> None:
    """A 400 KB nested-list Turtle POST used 42 s of CPU: refused from the text (400). Work that is
    really long (1,500 patients in one body) gets 503 at the request limit and its worker is
    killed and replaced, not left running; ASK {} is answered within a second meanwhile."""
    nested = b"<urn:a> <urn:b> " + b"(" * 200_000 + b")" * 200_000 + b" ."
    refused = httpx.post(f"{server.url}/validate", content=nested, headers={"content-type": "text/turtle"}, timeout=30)
    assert refused.status_code == 400 and "nested more than 32 deep" in refused.json()["detail"], refused.text
    before = _workers(server)
    threads, results = _in_background([lambda: httpx.post(
        f"{server.url}/recommend", content=_slow_body(), headers={"content-type": "text/turtle"}, timeout=60)])
    time.sleep(1.5)
    _answered_fast(server)
    threads[0].join(60)
    response = results[0]
    assert isinstance(response, httpx.Response) and response.status_code == 503, response
    assert response.json()["type"].endswith("/timeout")
    time.sleep(0.5)
    after = _workers(server)
    assert len(after) == 2 and before - after, (before, after)  # one worker killed and replaced
    assert not any(Path(f"/proc/{pid}").exists() for pid in before - after)


def test_work_for_a_client_that_went_away_is_stopped(server: Server) -> None:
    """A client that sends long work and hangs up: its worker is killed at once, not at the
    request's time limit."""
    before = _workers(server)
    body = _slow_body()
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: text/turtle\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)  # the work has begun
    deadline = time.monotonic() + 3  # well before the 5 s request limit
    while time.monotonic() < deadline and not (before - _workers(server)):
        time.sleep(0.1)
    assert before - _workers(server), "the worker of the client that went away was not stopped"
    _answered_fast(server)


def test_slow_clients_are_disconnected_at_the_read_timeout(server: Server) -> None:
    """1,000 half-sent requests stayed open 90 s: ASK {} is answered meanwhile, and the server
    closes them at its read timeout (2 s here)."""
    port = int(server.url.rsplit(":", 1)[1])
    sockets = []
    try:
        for _ in range(1_000):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: text/turtle\r\nContent-Length: 1000\r\n\r\n<urn:a>")
            sockets.append(sock)
        _answered_fast(server)
        time.sleep(4)
        closed = 0
        for sock in sockets:
            sock.settimeout(5)
            try:
                closed += sock.recv(1024) == b""
            except (ConnectionResetError, TimeoutError):
                closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        assert closed == len(sockets)
    finally:
        for sock in sockets:
            sock.close()
    _answered_fast(server)


def test_the_jwt_audience_is_the_configured_url_never_the_host_header(server: Server) -> None:
    """A token the EHR signed for another CDS service, sent with that service's Host, is refused;
    a token for this service with a forged Host is accepted, and the card's link is built from the
    configured URL, not from the Host header."""
    patient_id, data = prefetch("skin-predominant.json")
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": patient_id}, "prefetch": data}
    other = httpx.post(f"{server.url}{PV}", json=body, timeout=30, headers={
        "host": "other-cds.example.org", "authorization": "Bearer " + token(f"https://other-cds.example.org{PV}")})
    assert other.status_code == 401 and "audience" in other.json()["detail"]
    ours = httpx.post(f"{server.url}{PV}", json=body, timeout=30, headers={
        "host": "evil.example.org", "authorization": "Bearer " + token(f"{server.url}{PV}")})
    assert ours.status_code == 200, ours.text
    links = [link["url"] for card in ours.json()["cards"] for link in card.get("links", [])]
    assert links and all(link.startswith(server.url + "/") for link in links)
    assert "evil.example.org" not in ours.text


def test_security_headers_on_every_response(server: Server) -> None:
    """/docs and /static had no CSP, nosniff or frame-ancestors though the README said every response did."""
    static = next(p.name for p in (ROOT / "jdm_kg" / "service" / "static").iterdir() if p.is_file())
    for path in ("/docs/index.html", f"/static/{static}", "/health", "/no-such-page", "/"):
        response = httpx.get(server.url + path, timeout=30)
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers.get("x-content-type-options") == "nosniff", path
        assert response.headers.get("x-frame-options") == "DENY", path
