"""Benchmark: what would change the answer (``jdm-kg whatif``) for every bundled example.

    python benchmarks/bench_whatif.py               # every example, 5 warm runs each, then the CLI
    python benchmarks/bench_whatif.py --runs 10 --depth 3 --no-cli

For each example file (Turtle, JSON-LD, FHIR) prints, in one process with the guideline already
compiled and cached (warm, as the service and a second call of the Python API are): the median
time of the whole answer for every option (read, validate, assess, search: ``what_if_file``),
of the search alone (``what_if``, the record already assessed), the number of candidate changes
and of variants assessed, and the time per variant. Then the wall time of ``jdm-kg whatif FILE``
as a user runs it (a new process each time: start-up, imports, the cached guideline read from
disk). Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="warm runs per example (the median is printed)")
    parser.add_argument("--depth", type=int, default=2, help="changes of at most this many facts (default 2)")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line timings")
    args = parser.parse_args()

    from jdm_kg.inputs.loading import load_patient_file
    from jdm_kg.knowledge.guideline import load_guideline
    from jdm_kg.reasoning.recommend import recommend_graph
    from jdm_kg.reasoning.validation import set_aside_ill_typed
    from jdm_kg.reasoning.whatif import Baseline, what_if, what_if_file

    guideline = load_guideline()
    files = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in (".ttl", ".jsonld", ".json")
                   and "invalid" not in p.parts)
    what_if_file(files[0], guideline=guideline)  # warm: the per-guideline caches
    print(f"what-if, depth {args.depth}, median of {args.runs} warm runs in one process")
    print(f"{'example':42} {'whole':>8} {'search':>8} {'cands':>6} {'variants':>9} {'per variant':>12}")
    worst = 0.0
    for path in files:
        whole, search = [], []
        variants = candidates = 0
        for _ in range(args.runs):
            start = time.perf_counter()
            what_if_file(path, depth=args.depth, guideline=guideline)
            whole.append(time.perf_counter() - start)
            graph = set_aside_ill_typed(load_patient_file(path))
            _, results = recommend_graph(graph, str(path), guideline, engine="oxigraph")
            start = time.perf_counter()
            reports = [what_if(Baseline(graph, r.record, r, str(path), guideline), depth=args.depth) for r in results]
            search.append(time.perf_counter() - start)
            variants = sum(r.variants for r in reports)
            candidates = sum(len(r.candidates) for r in reports)
        w, s = statistics.median(whole), statistics.median(search)
        worst = max(worst, w)
        per = f"{1000 * s / variants:.2f} ms" if variants else "-"
        print(f"{str(path.relative_to(ROOT)):42} {w * 1000:6.0f} ms {s * 1000:5.0f} ms {candidates:6d} {variants:9d} {per:>12}")
    print(f"slowest whole answer (every option of one patient): {worst * 1000:.0f} ms")
    if args.no_cli:
        return 0
    print("\njdm-kg whatif FILE (a new process each run: start-up, imports, the cached guideline)")
    for path in files:
        times = []
        for _ in range(max(1, args.runs // 2)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jdm_kg.cli", "whatif", str(path), "--depth", str(args.depth)],
                           cwd=ROOT, capture_output=True, check=False)
            times.append(time.perf_counter() - start)
        print(f"{str(path.relative_to(ROOT)):42} {statistics.median(times) * 1000:6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
