"""Benchmark: a bounded load against ``jdm-kg serve`` on loopback, beside the issue-22 targets.

    python benchmarks/bench_service.py                          # 1,500 requests, 10 clients, default settings
    python benchmarks/bench_service.py --compare /tmp/base      # the same, and the code in /tmp/base, in one run
    python benchmarks/bench_service.py --requests 600 --clients 20

Starts ``jdm-kg serve --insecure-dev`` with its default settings in a subprocess on a free
127.0.0.1 port (nothing else is contacted), then ``--clients`` concurrent clients (httpx, one
connection each) send ``--requests`` requests in a seeded mix: 40% CDS Hooks patient-view, 20%
order-select, 30% ``POST /recommend`` (FHIR in, JSON, Markdown or FHIR out), 10% malformed
(broken Turtle, missing prefetch, not JSON). Two cases, each on a fresh server:

- **distinct** (the default case, what an EHR sends): a different patient for every request
  (the bundled FHIR examples with seeded body weights), so no answer comes from the result cache;
- **cached**: the same load drawn from 20 patients, so nearly every answer is a cache hit.

Prints requests per second, latency p50/p95/p99 overall and per kind, 503s, the peak memory of
the server and its worker processes (VmHWM summed: shared pages count once per process), the
result-cache hits and the errors (a valid request that did not get 200, a malformed one that did
not get a 4xx), then one uncached evaluation (parse and recommend, in one process: the median of
``--evaluations`` distinct patients) and the targets met or not. ``--compare DIR`` runs all of
it also with the code of the checkout DIR (e.g. ``git worktree add /tmp/base <commit>``), one
after the other in the same run. Stops by itself; tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "fhir").glob("*.json"))
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ORDERABLE = [("121191", "rituximab"), ("614391", "abatacept"), ("191831", "infliximab"), ("612865", "tocilizumab")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pool(size: int, rng: random.Random) -> list[dict[str, Any]]:
    """``size`` distinct FHIR Bundles: the bundled examples, each with a body weight of its own."""
    bases = [json.loads(p.read_text()) for p in EXAMPLES]
    out = []
    for i in range(size):
        bundle = copy.deepcopy(bases[i % len(bases)])
        for entry in bundle["entry"]:
            resource = entry["resource"]
            codes = [c.get("code") for c in resource.get("code", {}).get("coding", [])]
            if resource["resourceType"] == "Observation" and "29463-7" in codes:  # a weight no other record has
                resource["valueQuantity"]["value"] = round(18 + i * 0.01 + rng.random() * 0.001, 3)
        out.append(bundle)
    return out


def _prefetch(bundle: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")

    def search(kind: str) -> dict[str, Any]:
        entries = [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    return patient["id"], {"patient": patient, "conditions": search("Condition"), "observations": search("Observation"),
                           "medicationStatements": search("MedicationStatement"),
                           "medicationRequests": search("MedicationRequest")}


def _hook(hook: str, bundle: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    patient_id, prefetch = _prefetch(bundle)
    context: dict[str, Any] = {"userId": "Practitioner/1", "patientId": patient_id}
    if hook == "order-select":
        code, name = rng.choice(ORDERABLE)
        order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
                 "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": name}]},
                 "subject": {"reference": f"Patient/{patient_id}"}}
        context.update(selections=["MedicationRequest/draft-1"],
                       draftOrders={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]})
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}


def _plan(count: int, pool: list[dict[str, Any]], rng: random.Random,
          distinct: bool = False) -> list[tuple[str, str, str, dict[str, str], bytes, bool]]:
    """(kind, method, path, headers, body, valid) for each request, seeded; ``distinct``: the
    i-th request's patient is the pool's i-th (no two requests share one)."""
    plan = []
    for index in range(count):
        roll = rng.random()
        bundle = pool[index] if distinct else rng.choice(pool)
        if roll < 0.4:
            body = json.dumps(_hook("patient-view", bundle, rng)).encode()
            plan.append(("patient-view", "POST", "/cds-services/jdm-kg-patient-view",
                         {"content-type": "application/json"}, body, True))
        elif roll < 0.6:
            body = json.dumps(_hook("order-select", bundle, rng)).encode()
            plan.append(("order-select", "POST", "/cds-services/jdm-kg-order-select",
                         {"content-type": "application/json"}, body, True))
        elif roll < 0.9:
            accept = rng.choice(["application/json", "text/markdown", "application/fhir+json"])
            plan.append(("recommend", "POST", "/recommend", {"content-type": "application/fhir+json", "accept": accept},
                         json.dumps(bundle).encode(), True))
        else:
            which = rng.randrange(3)
            if which == 0:
                plan.append(("malformed", "POST", "/recommend", {"content-type": "text/turtle"}, b"@prefix broken", False))
            elif which == 1:
                request = _hook("patient-view", bundle, rng)
                del request["prefetch"]["observations"]
                plan.append(("malformed", "POST", "/cds-services/jdm-kg-patient-view",
                             {"content-type": "application/json"}, json.dumps(request).encode(), False))
            else:
                plan.append(("malformed", "POST", "/cds-services/jdm-kg-order-select",
                             {"content-type": "application/json"}, b"{not json", False))
    return plan


async def _load(base: str, plan: list[Any], clients: int) -> list[tuple[str, float, bool, int]]:
    import httpx

    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    results: list[tuple[str, float, bool, int]] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=httpx.Limits(max_connections=1)) as http:
            while not queue.empty():
                kind, method, path, headers, body, valid = queue.get_nowait()
                start = time.perf_counter()
                try:
                    response = await http.request(method, path, headers=headers, content=body)
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = time.perf_counter() - start
                ok = status == 200 if valid else 400 <= status < 500
                results.append((kind, elapsed, ok, status))

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return f"p50 {q[49] * 1000:7.1f} ms  p95 {q[94] * 1000:7.1f} ms  p99 {q[98] * 1000:7.1f} ms"


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found = [pid]
    for candidate in sorted(parents):
        if parents[candidate] in found:
            found.append(candidate)
    return found


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, with reaped children's) of the server and its worker processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for process in _tree(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    return total / ticks


def _peak_memory_mb(pid: int) -> float | None:
    """VmHWM of the server and its worker processes, summed (MiB)."""
    total = 0
    for process in _tree(pid):
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024 if total else None


#: Issue 22's targets (2 cores, 10 clients, distinct patients, default settings).
TARGET_P99_MS = 100.0
TARGET_RPS = 100.0
TARGET_EVALUATION_MS = 15.0


def _serve(code: Path, args: argparse.Namespace, result_cache: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ)
    env.setdefault("JDM_KG_CACHE", "/tmp/jdm-kg-bench-cache")
    env["PYTHONPATH"] = str(code)  # the code under test (this checkout, or --compare's)
    command = [sys.executable, "-m", "jdm_kg.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--insecure-dev",
               "--today", "2026-11-01"]
    if not result_cache:
        command += ["--result-cache", "0"]
    server = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, f"http://127.0.0.1:{port}"


def _case(code: Path, args: argparse.Namespace, label: str, pool_size: int, cache: bool) -> dict[str, Any]:
    """One load on a fresh server of ``code``: the figures."""
    import httpx

    rng = random.Random(args.seed)
    pool = _pool(pool_size, rng)
    plan = _plan(args.requests, pool, rng, distinct=pool_size >= args.requests)
    server, base = _serve(code, args, cache)
    try:
        started = time.monotonic()
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 300 or server.poll() is not None:
                raise SystemExit(f"the server of {code} did not start")
            time.sleep(0.2)
        startup = time.monotonic() - started
        cpu0 = _cpu_seconds(server.pid)
        t0 = time.perf_counter()
        results = asyncio.run(_load(base, plan, args.clients))
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds(server.pid) - cpu0
        health = httpx.get(base + "/health", timeout=5).json()
        peak = _peak_memory_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    valid = [r for r in results if r[0] != "malformed"]
    return {"label": label, "startup": startup, "wall": wall, "rps": len(results) / wall, "results": results,
            "cpu_ms": cpu * 1000 / len(results),
            "cache_hits": health.get("cacheHits"), "peak": peak,
            "errors_valid": sum(1 for r in valid if not r[2]), "valid": len(valid),
            "errors_malformed": sum(1 for r in results if r[0] == "malformed" and not r[2]),
            "refused": sum(1 for r in results if r[3] == 503)}


def _evaluation_ms(code: Path, count: int) -> float:
    """The median of one uncached evaluation (parse and recommend a FHIR bundle) in one process
    of ``code``, over ``count`` distinct patients after a warm-up."""
    script = f"""
import json, random, statistics, sys, time
sys.path.insert(0, {str(code)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_service import _pool
from jdm_kg.service.config import ServiceConfig
bodies = [json.dumps(b).encode() for b in _pool({count} + 5, random.Random(7))]
try:
    from jdm_kg.service.evaluator import Evaluator
    evaluator = Evaluator(ServiceConfig(workers=0)); evaluator.warm()
    run = lambda body, i: evaluator.do(("recommend", body, "application/fhir+json", f"p{{i}}"))
except ImportError:  # the code before issue 22
    from jdm_kg.service.core import Core
    core = Core(ServiceConfig(result_cache=0)); core.warm()
    run = lambda body, i: core.recommend(core.parse(body, "application/fhir+json", f"p{{i}}"), f"p{{i}}")
for i, body in enumerate(bodies[:5]):
    run(body, i)
times = []
for i, body in enumerate(bodies[5:]):
    start = time.perf_counter(); run(body, i); times.append(time.perf_counter() - start)
print(statistics.median(times) * 1000)
"""
    env = dict(os.environ)
    env.setdefault("JDM_KG_CACHE", "/tmp/jdm-kg-bench-cache")
    env["PYTHONPATH"] = str(code)
    out = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"the evaluation timing of {code} failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _report(code_label: str, case: dict[str, Any]) -> None:
    results = case["results"]
    print(f"  [{code_label}] {case['label']}: start-up {case['startup']:.1f} s, {len(results)} requests in "
          f"{case['wall']:.1f} s")
    print(f"    throughput        {case['rps']:8.1f} requests/s")
    print(f"    all               {_percentiles([r[1] for r in results])}")
    for kind in ("patient-view", "order-select", "recommend", "malformed"):
        times = [r[1] for r in results if r[0] == kind]
        print(f"    {kind:<17} {_percentiles(times)}  (n={len(times)})")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"    server CPU        {case['cpu_ms']:8.1f} ms a request (all its processes): at most "
          f"{cores * 1000 / case['cpu_ms']:.0f} requests/s on {cores} otherwise idle cores")
    print(f"    cache hits        {case['cache_hits']}")
    print(f"    peak memory       {case['peak']:.0f} MiB (VmHWM, server and workers summed)" if case["peak"]
          else "    peak memory       unknown")
    print(f"    refused (503)     {case['refused']}")
    print(f"    errors            {case['errors_valid']} of {case['valid']} valid requests; {case['errors_malformed']} "
          "malformed requests not answered with a 4xx")


def _p99(case: dict[str, Any]) -> float:
    values = [r[1] for r in case["results"]]
    return statistics.quantiles(values, n=100, method="inclusive")[98] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--evaluations", type=int, default=60, help="distinct patients timed in one process (default 60)")
    parser.add_argument("--compare", metavar="DIR", help="also run everything with the code of the checkout DIR")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if not (1 <= args.requests <= 100_000 and 1 <= args.clients <= 200 and 1 <= args.evaluations <= 10_000):
        parser.error("--requests 1..100000, --clients 1..200, --evaluations 1..10000 (a bounded load)")
    codes = [("this code", ROOT)] + ([("compared", Path(args.compare).resolve())] if args.compare else [])
    print(f"jdm-kg serve on loopback, default settings: {args.requests} requests a case, {args.clients} concurrent "
          f"clients, {os.cpu_count()} cores; the machine's other load is not controlled (figures are noisy on a "
          "shared machine)")
    summary = []
    for label, code in codes:
        distinct = _case(code, args, "distinct patients (uncached)", args.requests, cache=True)
        _report(label, distinct)
        cached = _case(code, args, "20 patients (cached)", 20, cache=True)
        _report(label, cached)
        evaluation = _evaluation_ms(code, args.evaluations)
        print(f"  [{label}] one uncached evaluation (parse + recommend, one process): median {evaluation:.1f} ms")
        summary.append((label, code, distinct, cached, evaluation))
    print("\ntargets (distinct patients, 10 clients, 2 cores, default settings):")
    for label, code, distinct, cached, evaluation in summary:
        p99, rps = _p99(distinct), distinct["rps"]
        clean = distinct["refused"] == 0 and distinct["errors_valid"] == 0
        print(f"  [{label}] {code}")
        print(f"    p99 {p99:7.1f} ms (target <= {TARGET_P99_MS:g})      {'met' if p99 <= TARGET_P99_MS else 'NOT met'}"
              f"   [cached: {_p99(cached):.1f} ms]")
        print(f"    {rps:7.1f} req/s (target >= {TARGET_RPS:g})     {'met' if rps >= TARGET_RPS else 'NOT met'}"
              f"   [cached: {cached['rps']:.1f} req/s]")
        print(f"    refused {distinct['refused']}, errors {distinct['errors_valid']} (target 0)   "
              f"{'met' if clean else 'NOT met'}")
        print(f"    evaluation median {evaluation:.1f} ms (target <= {TARGET_EVALUATION_MS:g})   "
              f"{'met' if evaluation <= TARGET_EVALUATION_MS else 'NOT met'}")
    return 0 if all(d["errors_valid"] == 0 and d["errors_malformed"] == 0 for _, _, d, _, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
