"""Benchmark: large single files. Peak memory and time of ``jdm-kg recommend`` on one Turtle file
holding N patients (default 10,000), against the same patients in N separate files; and of
``jdm-kg validate`` on one file of about ``--size-mb`` megabytes (default 60, just under the
64 MiB limit on one file, ``MAX_FILE_BYTES``).

    python benchmarks/bench_large.py                          # all three runs
    python benchmarks/bench_large.py --patients 2000 --size-mb 20 --skip-separate

The patients are bench_recommend.py's seeded synthetic registry (about 5% invalid or malformed;
the malformed ones are left out here, as one would make the whole file unusable). Each run is
the CLI as a user runs it, in a subprocess, output to /dev/null; peak memory is the child's
maximum resident set size (GNU time). Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recommend import _patient, to_turtle  # noqa: E402  (the same seeded registry)

ROOT = Path(__file__).resolve().parent.parent
HEADER_END = "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"


def patients(n: int, seed: int = 7) -> list[str]:
    """Turtle for ``n`` well-formed synthetic patients: the prefix header once, then each record's triples."""
    rng = random.Random(seed)
    out, i = [], 0
    while len(out) < n:
        p = _patient(i, rng)
        i += 1
        if p["flaw"] == "malformed":
            continue
        text = to_turtle(p)
        out.append(text)
    return out


def one_file(records: list[str], path: Path) -> Path:
    header, _, _ = records[0].partition(HEADER_END)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(header + HEADER_END)
        for text in records:
            fh.write(text.partition(HEADER_END)[2])
    return path


CODE = [ROOT]  # the checkout whose code runs (--code)


def run(*args: str) -> tuple[float, float, int]:
    """Wall seconds, peak resident MiB (GNU time's %M) and exit code of ``jdm-kg ARGS``."""
    env = dict(os.environ, JDM_KG_CACHE=os.environ.get("JDM_KG_CACHE", str(Path(tempfile.gettempdir()) / "jdmkg-bench")),
               PYTHONPATH=str(CODE[0]))
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "jdm_kg.cli", *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=CODE[0], env=env)
    wall = time.perf_counter() - start
    *messages, peak_kib = proc.stderr.rstrip().splitlines()
    if proc.returncode not in (0, 1):
        print("\n".join(messages[-20:]))
    return wall, int(peak_kib) / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--size-mb", type=float, default=60)
    parser.add_argument("--skip-separate", action="store_true", help="do not run the N-separate-files comparison")
    parser.add_argument("--skip-size", action="store_true", help="do not run the --size-mb file")
    parser.add_argument("--code", metavar="DIR", help="run the code of the checkout DIR (default: this one)")
    args = parser.parse_args()
    if args.code:
        CODE[0] = Path(args.code).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = patients(args.patients)
        big = one_file(records, folder / "registry.ttl")
        print(f"one file, {args.patients} patients ({big.stat().st_size / 2**20:.1f} MiB): "
              f"recommend --format none --summary")
        wall, peak, code = run("recommend", str(big), "--format", "none", "--summary")
        print(f"  {wall:.1f} s, peak {peak:.0f} MiB, exit {code}, {args.patients / wall:.0f} patients/s")
        if not args.skip_separate:
            separate = folder / "separate"
            separate.mkdir()
            for i, text in enumerate(records):
                (separate / f"p{i:05d}.ttl").write_text(text, encoding="utf-8")
            print(f"the same {args.patients} patients in separate files: recommend --format none --summary --jobs 1")
            one_file_wall = wall
            wall, peak, code = run("recommend", str(separate), "--format", "none", "--summary", "--jobs", "1")
            print(f"  {wall:.1f} s, peak {peak:.0f} MiB, exit {code}, {args.patients / wall:.0f} patients/s")
            print(f"one file / separate files: {one_file_wall / wall:.2f}x (target: at most 1.5x)")
        if not args.skip_size:
            per_record = len(records[1].partition(HEADER_END)[2].encode("utf-8"))
            n = int(args.size_mb * 2**20 / per_record)
            sized = one_file(patients(n, seed=8), folder / "sized.ttl")
            print(f"one file of {sized.stat().st_size / 2**20:.1f} MiB ({n} patients): validate --summary --summary-only")
            wall, peak, code = run("validate", str(sized), "--summary", "--summary-only")
            print(f"  {wall:.1f} s, peak {peak:.0f} MiB, exit {code}")


if __name__ == "__main__":
    main()
