"""Benchmark: a registry of N synthetic patients (seeded; mixed Turtle and FHIR, some invalid)
through ``jdm-kg recommend --summary``, against the naive pipeline on a subset.

    python benchmarks/bench_recommend.py                  # 10,000 patients, every core
    python benchmarks/bench_recommend.py --patients 2000 --naive 10
    python benchmarks/bench_recommend.py --compare /tmp/base --naive 0   # and the code of another checkout

Prints, for ``jdm-kg recommend DIR --summary --jobs N`` (the CLI as a user runs it, in a
subprocess; output to /dev/null, ``--format`` to change it): wall time, patients per
second, peak memory of the whole process tree (sampled from /proc), and the same at a quarter
of the size to show how cost grows; then ``jdm-kg validate`` alone on the whole registry. Then the naive pipeline on ``--naive`` patients, one at a
time, the way a first implementation would do it: the OWL RL closure of guideline plus patient
(owlrl), pySHACL with RDFS inference, rdflib's SPARQL over the merged graph (and rdflib parsing
every SPARQL text it is given); and the ratio of the two rates. Tests never assert on these
numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MANIFESTATIONS = ["SkinDisease", "MuscleWeakness", "InterstitialLungDisease", "Calcinosis", "MajorOrganInvolvement",
                  "RefractoryMultiSystemDisease"]
JAKI = ["tofacitinib", "baricitinib", "upadacitinib", "ruxolitinib"]
OTHER = ["methotrexate", "infliximab", "rituximab", "ivig"]
OUTCOMES = ["InadequateResponse", "LossOfResponse", "Intolerance"]
SCREENED = ["Tuberculosis", "HepatitisB", "HepatitisC"]
JDMG = "https://w3id.org/jdm-kg/guideline/"
JDM = "https://w3id.org/jdm-kg/vocab#"


def _patient(i: int, rng: random.Random) -> dict:
    """The facts of one synthetic patient; ``flaw`` makes about 5% of records invalid."""
    ms = rng.sample(MANIFESTATIONS, rng.randint(1, 3))
    episodes = [(rng.choice(JAKI), "2025-01-01", "2026-06-01", rng.choice(OUTCOMES))]
    if rng.random() < 0.3:
        episodes.append((rng.choice(OTHER), "2024-01-01", "2025-06-01", rng.choice(OUTCOMES)))
    if rng.random() < 0.6:
        episodes.append(("methotrexate", "2023-01-01", None, "Ongoing"))
    return {
        "id": f"B{i:05d}", "birth": f"{rng.randint(2009, 2022)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "sex": rng.choice(["female", "male"]), "weight": rng.randint(15, 70), "height": rng.randint(100, 180),
        "manifestations": ms, "episodes": episodes,
        "screening": [(c, "Positive" if rng.random() < 0.05 else "Negative") for c in SCREENED if rng.random() < 0.8],
        "flaw": rng.choice(["grams", "unknown-drug", "malformed"]) if rng.random() < 0.05 else None,
    }


def to_turtle(p: dict) -> str:
    weight = p["weight"] * 1000 if p["flaw"] == "grams" else p["weight"]
    drug = lambda d: f"<{JDMG}aspirinX>" if p["flaw"] == "unknown-drug" and d == "methotrexate" else f"jdmg:{d}"  # noqa: E731
    findings = " , ".join(f"[ jdm:manifestation jdmg:{m} ; jdm:predominant {'true' if k == 0 else 'false'} ]"
                          for k, m in enumerate(p["manifestations"]))
    episodes = " , ".join(
        f"[ jdm:drug {drug(d)} ; jdm:startDate \"{s}\"^^xsd:date ; "
        + (f"jdm:endDate \"{e}\"^^xsd:date ; " if e else "") + f"jdm:outcome jdm:{o} ]"
        for d, s, e, o in p["episodes"])
    screening = "".join(f' ;\n  jdm:screening [ jdm:screenedFor jdmg:{c} ; jdm:result jdm:{r} ; jdm:date "2026-09-01"^^xsd:date ]'
                        for c, r in p["screening"])
    text = f"""@prefix jdm: <{JDM}> . @prefix jdmg: <{JDMG}> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:bench:{p['id']}> a jdm:Patient ; jdm:patientId "{p['id']}" ; jdm:birthDate "{p['birth']}"^^xsd:date ;
  jdm:recordDate "2026-11-01"^^xsd:date ; jdm:sex "{p['sex']}" ; jdm:diagnosis jdmg:JuvenileDermatomyositis ;
  jdm:bodyWeight [ jdm:value {weight} ; jdm:unit "kg" ; jdm:date "2026-10-01"^^xsd:date ] ;
  jdm:bodyHeight [ jdm:value {p['height']} ; jdm:unit "cm" ; jdm:date "2026-10-01"^^xsd:date ] ;
  jdm:hasManifestation {findings} ;
  jdm:treatmentEpisode {episodes}{screening} .
"""
    return text.replace("jdm:Patient ;", "jdm:Patient ; jdm:patientId", 1) if p["flaw"] == "malformed" else text


def _codes() -> dict[str, tuple[str, str]]:
    """concept IRI -> (FHIR system, code), read from the guideline graph's mappings."""
    from jdm_kg import load_guideline
    from jdm_kg.knowledge.queries import select

    out: dict[str, tuple[str, str]] = {}
    for row in select(load_guideline().graph, "fhir-codes"):
        if row["usable"].toPython():
            out.setdefault(str(row["concept"]), (str(row["system"]), str(row["code"])))
    return out


def to_fhir(p: dict, codes: dict[str, tuple[str, str]]) -> str:
    def cc(iri: str) -> dict:
        system, code = codes.get(iri, ("urn:bench:unknown", "X"))
        return {"coding": [{"system": system, "code": code}]}

    ref = {"reference": f"Patient/{p['id']}"}
    entries: list[dict] = [{"fullUrl": f"urn:bench:{p['id']}", "resource": {
        "resourceType": "Patient", "id": p["id"], "birthDate": p["birth"], "gender": p["sex"]}}]

    def add(resource: dict) -> None:
        resource.update(id=f"r{len(entries)}", subject=ref)
        entries.append({"resource": resource})

    add({"resourceType": "Condition", "code": cc(JDMG + "JuvenileDermatomyositis")})
    for k, m in enumerate(p["manifestations"]):
        add({"resourceType": "Condition", "code": cc(JDMG + m), "extension": [
            {"url": "https://w3id.org/jdm-kg/fhir/StructureDefinition/predominant", "valueBoolean": k == 0}]})
    unit = "g" if p["flaw"] == "grams" else "kg"  # converted by the importer: a valid record
    for concept, value, u in (("BodyWeight", p["weight"] * (1000 if unit == "g" else 1), unit), ("BodyHeight", p["height"], "cm")):
        add({"resourceType": "Observation", "status": "final", "code": cc(JDMG + concept), "effectiveDateTime": "2026-10-01",
             "valueQuantity": {"value": value, "unit": u, "system": "http://unitsofmeasure.org", "code": u}})
    for d, s, e, o in p["episodes"]:
        drug = cc(JDMG + d) if p["flaw"] != "unknown-drug" or d != "methotrexate" else {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "0"}]}
        resource = {"resourceType": "MedicationStatement", "status": "active" if o == "Ongoing" else "stopped",
                    "medicationCodeableConcept": drug, "effectivePeriod": {"start": s, **({"end": e} if e else {})}}
        if o != "Ongoing":
            resource["statusReason"] = [cc(JDM + o)]
        add(resource)
    for c, r in p["screening"]:
        loinc = codes[JDMG + c]
        add({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": loinc[0], "code": loinc[1]}]},
             "effectiveDateTime": "2026-09-01", "interpretation": [cc(JDM + r)]})
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": "2026-11-01T08:00:00Z", "entry": entries}
    text = json.dumps(bundle)
    return text[:-40] if p["flaw"] == "malformed" else text


def generate(folder: Path, n: int, seed: int, fhir_share: float) -> tuple[int, int]:
    rng = random.Random(seed)
    codes = _codes()
    fhir = 0
    for i in range(n):
        p = _patient(i, rng)
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        if rng.random() < fhir_share:
            (sub / f"{p['id']}.json").write_text(to_fhir(p, codes), encoding="utf-8")
            fhir += 1
        else:
            (sub / f"{p['id']}.ttl").write_text(to_turtle(p), encoding="utf-8")
    return n - fhir, fhir


def _tree_rss(pid: int) -> int:
    """Resident memory (bytes) of ``pid`` and its descendants, from /proc (0 where unreadable)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_cli(args: list[str], code: Path = ROOT) -> tuple[float, int, str]:
    """Run jdm-kg (the code of the checkout ``code``); return wall seconds, peak tree RSS (bytes)
    and stderr's summary."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jdm_kg.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=code, env=dict(os.environ, PYTHONPATH=str(code)))
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    return time.perf_counter() - start, peak, err


def naive(files: list[Path]) -> float:
    """Seconds per patient for the naive pipeline over ``files`` (run in a fresh process)."""
    code = f"""
import sys, time
from datetime import date
from pyshacl import validate
from jdm_kg.knowledge.guideline import compile_guideline, guideline_files
from jdm_kg.inputs.loading import load_patient_file
from jdm_kg.reasoning.validation import load_shapes, patients_in
from jdm_kg.reasoning.recommend import assess_patient
from rdflib import Graph, plugin
from rdflib.query import Processor
plugin.register("sparql", Processor, "rdflib.plugins.sparql.processor", "SPARQLProcessor")  # rdflib's own
files = {[str(f) for f in files]!r}
guideline = compile_guideline(guideline_files())
shapes = load_shapes()
start = time.perf_counter()
for path in files:
    patient = load_patient_file(path)
    merged = Graph()
    merged += guideline.asserted
    merged += patient
    data = compile_guideline(list(guideline.files), merged).graph  # OWL RL closure + rules, with the patient
    validate(data, shacl_graph=shapes, inference="rdfs", advanced=True, allow_warnings=True)
    for record in patients_in(patient):
        assess_patient(data, record, path, [], guideline, date(2026, 11, 24))
print((time.perf_counter() - start) / len(files))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"naive pipeline failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per core)")
    parser.add_argument("--fhir-share", type=float, default=0.3, help="share of patients written as FHIR bundles")
    parser.add_argument("--naive", type=int, default=20, help="patients run through the naive pipeline")
    parser.add_argument("--engine", default="oxigraph")
    parser.add_argument("--format", default="text", help="recommend output format (text: the report a user reads; "
                        "jsonl: a JSON object per patient, ~50 kB each)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the quarter-size run")
    parser.add_argument("--compare", metavar="DIR", help="also run recommend and validate on the whole registry with "
                        "the code of the checkout DIR (e.g. git worktree add /tmp/base <commit>), in the same run")
    args = parser.parse_args()
    jobs = args.jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="jdm-kg-bench-") as tmp:
        folder = Path(tmp) / "registry"
        folder.mkdir()
        t0 = time.perf_counter()
        turtle, fhir = generate(folder, args.patients, args.seed, args.fhir_share)
        print(f"generated {args.patients} patients ({turtle} Turtle, {fhir} FHIR; ~5% invalid or malformed) "
              f"in {time.perf_counter() - t0:.1f} s; {jobs} jobs on {os.cpu_count()} cores; engine {args.engine}; "
              f"output {args.format}")
        sizes = [args.patients] if args.no_scaling else [max(1, args.patients // 4), args.patients]
        rate = 0.0
        for n in sizes:
            subset = folder if n == args.patients else _subset(folder, n, Path(tmp))
            wall, peak, err = run_cli(["recommend", str(subset), "--summary", "--format", args.format, "--jobs", str(jobs),
                                       "--engine", args.engine, "--no-progress"])
            rate = n / wall
            print(f"recommend     {n:6d} patients: {wall:6.1f} s  {rate:7.1f} patients/s  peak memory {peak / 2**20:6.0f} MiB")
        wall, peak, _ = run_cli(["validate", str(folder), "--summary", "--summary-only", "--jobs", str(jobs), "--no-progress"])
        print(f"validate only {args.patients:6d} patients: {wall:6.1f} s  {args.patients / wall:7.1f} patients/s  "
              f"peak memory {peak / 2**20:6.0f} MiB")
        if args.compare:
            code = Path(args.compare).resolve()
            for command in (["recommend", str(folder), "--summary", "--format", args.format, "--jobs", str(jobs),
                             "--engine", args.engine, "--no-progress"],
                            ["validate", str(folder), "--summary", "--summary-only", "--jobs", str(jobs), "--no-progress"]):
                wall, peak, _ = run_cli(command, code)
                print(f"{command[0]:<13} {args.patients:6d} patients, the code of {code}: {wall:6.1f} s  "
                      f"{args.patients / wall:7.1f} patients/s  peak memory {peak / 2**20:6.0f} MiB")
        print("summary of the full recommend run (from jdm-kg --summary):")
        summary = err[err.find("Summary"):].strip().splitlines()
        print("\n".join("  " + line for line in summary[:30]))
        if args.naive < 1:
            return
        sample = sorted(p for p in folder.rglob("*") if p.is_file())[: args.naive]
        per_patient = naive(sample)
        print(f"naive         {len(sample):6d} patients: {per_patient * 1000:6.0f} ms/patient, {1 / per_patient:7.2f} patients/s "
              f"(one process)")
        print(f"ratio: batch is {rate * per_patient:.0f}x the naive pipeline's throughput "
              f"({rate * per_patient / jobs:.0f}x per process)")


def _subset(folder: Path, n: int, tmp: Path) -> Path:
    subset = tmp / f"subset-{n}"
    subset.mkdir()
    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:n]:
        (subset / path.name).symlink_to(path)
    return subset


if __name__ == "__main__":
    main()
