"""Benchmark: a bounded load against ``jdm-kg serve`` on loopback.

    python benchmarks/bench_service.py                          # 3,000 requests, 10 clients
    python benchmarks/bench_service.py --requests 1000 --clients 20 --pool 200 --result-cache 0

Starts ``jdm-kg serve --insecure-dev`` in a subprocess on a free 127.0.0.1 port (nothing else is
contacted), then ``--clients`` concurrent clients (httpx, one connection each) send
``--requests`` requests in a seeded mix: 40% CDS Hooks patient-view, 20% order-select,
30% ``POST /recommend`` (FHIR in, JSON or Markdown out), 10% malformed (broken Turtle, missing
prefetch, not JSON). The patients are drawn from a pool of ``--pool`` records made from the
bundled FHIR examples with seeded body weights (so a pool larger than the request count
measures evaluation with no cache hits; a small pool shows a clinic's charts opened again).

Prints requests per second, latency p50/p95/p99 overall and per kind, the server's peak memory
(VmHWM from /proc), the result-cache hits and the errors: a valid request that did not get 200,
or a malformed one that did not get a 4xx. Stops by itself; tests never assert on these numbers.
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
    """``size`` FHIR Bundles: the bundled examples with seeded body weights."""
    bases = [json.loads(p.read_text()) for p in EXAMPLES]
    out = []
    for i in range(size):
        bundle = copy.deepcopy(bases[i % len(bases)])
        for entry in bundle["entry"]:
            resource = entry["resource"]
            codes = [c.get("code") for c in resource.get("code", {}).get("coding", [])]
            if resource["resourceType"] == "Observation" and "29463-7" in codes:
                resource["valueQuantity"]["value"] = round(rng.uniform(18, 70), 1)
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


def _plan(count: int, pool: list[dict[str, Any]], rng: random.Random) -> list[tuple[str, str, str, dict[str, str], bytes, bool]]:
    """(kind, method, path, headers, body, valid) for each request, seeded."""
    plan = []
    for _ in range(count):
        roll = rng.random()
        bundle = rng.choice(pool)
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


async def _load(base: str, plan: list[Any], clients: int) -> list[tuple[str, float, bool]]:
    import httpx

    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    results: list[tuple[str, float, bool]] = []

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
                results.append((kind, elapsed, ok))

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return f"p50 {q[49] * 1000:7.1f} ms  p95 {q[94] * 1000:7.1f} ms  p99 {q[98] * 1000:7.1f} ms"


def _peak_memory_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--pool", type=int, default=60, help="distinct patient records (default 60)")
    parser.add_argument("--result-cache", type=int, default=256, help="the server's --result-cache (0: off)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if not (1 <= args.requests <= 100_000 and 1 <= args.clients <= 200):
        parser.error("--requests 1..100000, --clients 1..200 (a bounded load)")
    rng = random.Random(args.seed)
    plan = _plan(args.requests, _pool(args.pool, rng), rng)
    port = _free_port()
    env = dict(os.environ)
    env.setdefault("JDM_KG_CACHE", "/tmp/jdm-kg-bench-cache")
    server = subprocess.Popen(
        [sys.executable, "-m", "jdm_kg.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--insecure-dev",
         "--today", "2026-11-01", "--max-concurrent", str(max(8, args.clients * 2)),
         "--result-cache", str(args.result_cache)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        started = time.monotonic()
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 120 or server.poll() is not None:
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        startup = time.monotonic() - started
        t0 = time.perf_counter()
        results = asyncio.run(_load(base, plan, args.clients))
        wall = time.perf_counter() - t0
        health = httpx.get(base + "/health", timeout=5).json()
        peak = _peak_memory_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    valid = [r for r in results if r[0] != "malformed"]
    print(f"jdm-kg serve on loopback: {len(results)} requests, {args.clients} concurrent clients, pool of "
          f"{args.pool} patients, result cache {args.result_cache} (start-up {startup:.1f} s)")
    print(f"  throughput        {len(results) / wall:8.1f} requests/s  ({wall:.1f} s)")
    print(f"  all               {_percentiles([r[1] for r in results])}")
    for kind in ("patient-view", "order-select", "recommend", "malformed"):
        times = [r[1] for r in results if r[0] == kind]
        print(f"  {kind:<17} {_percentiles(times)}  (n={len(times)})")
    print(f"  cache hits        {health.get('cacheHits')}")
    print(f"  peak memory       {peak:.0f} MB (server VmHWM)" if peak else "  peak memory       unknown")
    errors_valid = sum(1 for r in valid if not r[2])
    errors_malformed = sum(1 for r in results if r[0] == "malformed" and not r[2])
    print(f"  errors            {errors_valid} of {len(valid)} valid requests; {errors_malformed} malformed requests "
          "not answered with a 4xx")
    return 0 if errors_valid == 0 and errors_malformed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
