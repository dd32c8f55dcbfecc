"""Benchmark: validate + recommend N synthetic patients (seeded) and print the figures.

    python benchmarks/bench_recommend.py --patients 50

Prints the one-off guideline compile time, patients per second and peak memory. Tests never
assert on these numbers; they are measured here.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from rdflib import Graph

from jdm_kg import load_guideline, recommend_graph
from jdm_kg.loading import parse_rdf_text

MANIFESTATIONS = ["SkinDisease", "MuscleWeakness", "InterstitialLungDisease", "Calcinosis", "MajorOrganInvolvement", "RefractoryMultiSystemDisease"]
JAKI = ["tofacitinib", "baricitinib", "upadacitinib", "ruxolitinib"]
OUTCOMES = ["InadequateResponse", "LossOfResponse", "Intolerance"]


def synthetic_patient(i: int, rng: random.Random) -> str:
    ms = rng.sample(MANIFESTATIONS, rng.randint(1, 3))
    findings = " , ".join(
        f"[ jdm:manifestation jdmg:{m} ; jdm:predominant {'true' if k == 0 else 'false'} ]" for k, m in enumerate(ms)
    )
    return f"""
@prefix jdm: <https://w3id.org/jdm-kg/vocab#> . @prefix jdmg: <https://w3id.org/jdm-kg/guideline/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<urn:bench:p{i}> a jdm:Patient ; jdm:patientId "B{i}" ; jdm:ageYears {rng.randint(3, 17)} ;
  jdm:recordDate "2026-11-01"^^xsd:date ; jdm:sex "female" ; jdm:diagnosis jdmg:JuvenileDermatomyositis ;
  jdm:bodyWeight [ jdm:value {rng.randint(15, 70)} ; jdm:unit "kg" ; jdm:date "2026-10-01"^^xsd:date ] ;
  jdm:bodyHeight [ jdm:value {rng.randint(100, 180)} ; jdm:unit "cm" ; jdm:date "2026-10-01"^^xsd:date ] ;
  jdm:hasManifestation {findings} ;
  jdm:treatmentEpisode [ jdm:drug jdmg:{rng.choice(JAKI)} ; jdm:startDate "2025-01-01"^^xsd:date ;
     jdm:endDate "2026-06-01"^^xsd:date ; jdm:outcome jdm:{rng.choice(OUTCOMES)} ] ;
  jdm:screening [ jdm:screenedFor jdmg:Tuberculosis ; jdm:result jdm:Negative ; jdm:date "2026-09-01"^^xsd:date ] .
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    guideline = load_guideline()
    compile_s = time.perf_counter() - t0
    graphs: list[Graph] = [parse_rdf_text(synthetic_patient(i, rng), "turtle", f"p{i}") for i in range(args.patients)]
    t1 = time.perf_counter()
    for i, g in enumerate(graphs):
        recommend_graph(g, f"p{i}", guideline)
    elapsed = time.perf_counter() - t1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"guideline compile: {compile_s:.2f} s (once per process)")
    print(f"patients: {args.patients}; validate+recommend: {elapsed:.2f} s; {args.patients / elapsed:.2f} patients/s")
    print(f"per patient: {1000 * elapsed / args.patients:.0f} ms; peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
