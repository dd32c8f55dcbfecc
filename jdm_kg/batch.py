"""Run validation or recommendation over many files: in parallel, with progress and a summary.

Each file is handled on its own (a worker process per core with ``jobs``): an unusable file is
reported and the others go on. Results come back in the order the files were given, so the
output is the same whatever the number of jobs.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jdm_kg.errors import InputError
from jdm_kg.loading import load_rdf_file
from jdm_kg.recommend import PatientResult, recommend_graph
from jdm_kg.validation import ValidationReport, validate_graph

__all__ = ["FileOutcome", "run_batch", "Summary"]


@dataclass
class FileOutcome:
    """What one file gave: its validation report and results, or the error that made it unusable."""

    path: str
    report: ValidationReport | None = None
    results: list[PatientResult] = field(default_factory=list)
    error: str | None = None


def _no_patient(path: str) -> InputError:
    return InputError(path, "no patient record found (expected a node of type jdm:Patient)")


def process_file(path: str, mode: str, keep_shacl: bool = False) -> FileOutcome:
    """Validate (``mode="validate"``) or validate and recommend (``"recommend"``) one file."""
    try:
        graph = load_rdf_file(path)
        if mode == "validate":
            report, results = validate_graph(graph, path), []
        else:
            report, results = recommend_graph(graph, path)
        if not report.records:
            raise _no_patient(path)
    except InputError as err:
        return FileOutcome(path, error=str(err))
    if not keep_shacl:
        report.shacl_report = None  # a large graph; only the Turtle output needs it
    return FileOutcome(path, report, results)


def _work(args: tuple[str, str, bool]) -> FileOutcome:
    return process_file(*args)


def run_batch(paths: Sequence[str], mode: str, jobs: int = 1, keep_shacl: bool = False,
              progress: bool = False) -> Iterator[FileOutcome]:
    """Yield one :class:`FileOutcome` per file, in the order given."""
    jobs = (os.cpu_count() or 1) if jobs <= 0 else jobs
    tasks = [(p, mode, keep_shacl) for p in paths]
    total = len(tasks)

    def report(done: int, path: str) -> None:
        if progress:
            width = 30
            filled = width * done // max(total, 1)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {os.path.basename(path)[:40]:<40}",
                  end="" if done < total else "\n", file=sys.stderr, flush=True)

    if jobs == 1 or total < 2:
        for done, task in enumerate(tasks, 1):
            outcome = _work(task)
            report(done, task[0])
            yield outcome
        return
    with ProcessPoolExecutor(max_workers=min(jobs, total)) as pool:
        for done, outcome in enumerate(pool.map(_work, tasks, chunksize=max(1, total // (jobs * 8))), 1):
            report(done, outcome.path)
            yield outcome


@dataclass
class Summary:
    """Counts for the end of a batch run."""

    files: int = 0
    unusable: list[str] = field(default_factory=list)
    records: int = 0
    valid: int = 0
    invalid: int = 0
    invalid_reasons: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    not_applicable: int = 0
    first_options: Counter[str] = field(default_factory=Counter)
    blocked_options: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: FileOutcome) -> None:
        self.files += 1
        if outcome.error:
            self.unusable.append(outcome.error)
            return
        assert outcome.report is not None
        for record in outcome.report.records:
            self.records += 1
            issues = outcome.report.issues_for(record)
            violations = {f"{i.field}: {i.message}" for i in issues if i.severity == "violation"}
            for warning in {f"{i.field}: {i.message}" for i in issues if i.severity == "warning"}:
                self.warnings[warning] += 1
            if violations:
                self.invalid += 1
                for reason in violations:
                    self.invalid_reasons[reason] += 1
            else:
                self.valid += 1
        for result in outcome.results:
            if result.blocked_by_validation:
                continue
            if not result.applicable:
                self.not_applicable += 1
            for option in result.options:
                if option.rank == 1 and option.status == "offered":
                    self.first_options[option.label] += 1
                if option.status == "blocked":
                    self.blocked_options[option.label] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "unusableFiles": len(self.unusable), "records": self.records,
            "valid": self.valid, "invalid": self.invalid, "invalidByReason": dict(self.invalid_reasons.most_common()),
            "warnings": dict(self.warnings.most_common()), "notApplicable": self.not_applicable,
            "rankedFirst": dict(self.first_options.most_common()), "blocked": dict(self.blocked_options.most_common()),
        }

    def text(self, mode: str) -> str:
        lines = ["", "Summary", "-------",
                 f"files: {self.files} ({len(self.unusable)} unusable)",
                 f"patient records: {self.records}: {self.valid} valid, {self.invalid} invalid"]
        for title, counter in (("invalid, by reason", self.invalid_reasons), ("warnings", self.warnings)):
            if counter:
                lines.append(f"{title}:")
                lines += [f"  {n:6d}  {reason}" for reason, n in counter.most_common(15)]
        if mode == "recommend":
            lines.append(f"guideline does not apply: {self.not_applicable}")
            if self.first_options:
                lines.append("ranked first and offered (records):")
                lines += [f"  {n:6d}  {label}" for label, n in self.first_options.most_common()]
            if self.blocked_options:
                lines.append("blocked by a positive screening (records):")
                lines += [f"  {n:6d}  {label}" for label, n in self.blocked_options.most_common()]
        if self.unusable:
            lines.append("unusable files:")
            lines += [f"  {e}" for e in self.unusable[:20]]
            if len(self.unusable) > 20:
                lines.append(f"  ... and {len(self.unusable) - 20} more")
        return "\n".join(lines)
