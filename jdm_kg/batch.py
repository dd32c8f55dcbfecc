"""Run validation or recommendation over many files: in parallel, with progress and a summary.

Files are read one by one (an unusable file is reported and the others go on), then handled
in groups (:data:`GROUP_SIZE`): one pySHACL run over the group, one Oxigraph store for its
queries, each per-patient query run once for the whole group. With ``jobs`` > 1 each group
runs in a worker process. Results come back in the order the files were given, and are the
same whatever the grouping and the number of jobs (tested).

One file never costs another its result: any exception while reading or processing a file
becomes that file's error (naming the file, the stage and the exception in one line); a group
that fails is split in halves and run again, down to single files, so that only the file at
fault fails. An exception that is not an :class:`~jdm_kg.errors.InputError` is a bug, and says
so (``internal``: exit 3). A SPARQL server that fails (:class:`~jdm_kg.errors.ServerError`)
stops the run: that is no file's fault. A file of many patient records is cut into one graph
per record (:func:`patient_slices`) and processed like that many files.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pyshacl.errors import ReportableRuntimeError, ValidationFailure
from rdflib import Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError, ServerError, captured_messages, escape_controls, internal_error, one_line
from jdm_kg.inputs.loading import load_patient_file
from jdm_kg.knowledge.guideline import Guideline, load_guideline
from jdm_kg.reasoning.engines import EngineChoice
from jdm_kg.reasoning.recommend import PatientResult, recommend_graphs
from jdm_kg.reasoning.whatif import Change, apply_assumptions, shortest_lines
from jdm_kg.reasoning.validation import (
    RecordRef,
    ValidationReport,
    patients_in,
    set_aside_ill_typed,
    summary_key,
    validate_graphs,
)

__all__ = ["FileOutcome", "run_batch", "process_files", "disjoint_groups", "patient_slices", "Summary"]


@dataclass
class FileOutcome:
    """What one file gave: its validation report and results, or the error that made it unusable
    (``internal``: the error is a bug in jdm-kg, not a problem with the file); ``notes``: what
    rdflib or pySHACL warned about while reading the file, one line each."""

    path: str
    report: ValidationReport | None = None
    results: list[PatientResult] = field(default_factory=list)
    error: str | None = None
    internal: bool = False
    notes: list[str] = field(default_factory=list)


def _failed(path: str, stage: str, err: Exception) -> FileOutcome:
    if isinstance(err, InputError):
        return FileOutcome(path, error=str(err))
    return FileOutcome(path, error=internal_error(path, stage, err), internal=True)


def _no_patient(path: str) -> InputError:
    return InputError(path, "no patient record found (expected a node of type jdm:Patient)")


#: Files validated in one SHACL run and queried in one store (in one worker process).
GROUP_SIZE = 200


def disjoint_groups(loaded: list[tuple[str, Graph]], guideline: Guideline, size: int = GROUP_SIZE) -> list[list[int]]:
    """Indexes of ``loaded`` in groups of at most ``size`` whose graphs can be processed together.

    Two files go in the same group only if neither says anything about a node the other
    uses (shared IRIs would merge their records). A file that adds triples about a guideline
    term is processed alone, so what it asserts reaches no other file.
    """
    guideline_subjects = _guideline_subjects(guideline)
    groups: list[list[int]] = []
    current: list[int] = []
    subjects: set[URIRef] = set()
    nodes: set[URIRef] = set()
    for index, (_, graph) in enumerate(loaded):
        own_subjects = {s for s in graph.subjects() if isinstance(s, URIRef)}
        own_nodes = own_subjects | {o for o in graph.objects() if isinstance(o, URIRef)}
        alone = not own_subjects.isdisjoint(guideline_subjects)
        clash = not own_subjects.isdisjoint(nodes) or not own_nodes.isdisjoint(subjects)
        if current and (alone or clash or len(current) >= size):
            groups.append(current)
            current, subjects, nodes = [], set(), set()
        current.append(index)
        subjects |= own_subjects
        nodes |= own_nodes
        if alone:
            groups.append(current)
            current, subjects, nodes = [], set(), set()
    if current:
        groups.append(current)
    return groups


@cache
def _guideline_subjects(guideline: Guideline) -> frozenset[Node]:
    return frozenset(guideline.graph.subjects())


def process_files(
    paths: Sequence[str], mode: str, keep_shacl: bool = False, engine: EngineChoice = "rdflib",
    predominant: tuple[str, ...] = (), assume: tuple[Change, ...] = (), whatif: bool = False,
) -> list[FileOutcome]:
    """Validate (``mode="validate"``) or validate and recommend (``"recommend"``) ``paths``.

    Files are read one by one (an unusable one gives an outcome with its error), then
    processed in groups (:func:`disjoint_groups`); with ``keep_shacl`` each file on its own,
    so its SHACL report graph is its own. ``predominant``: manifestations marked predominant in
    every record (``--predominant``). ``assume``: hypothetical facts added to every record before
    it is validated (``--assume``; each result lists them). ``whatif``: each result gets the
    shortest what-if of each option not offered or not first (``--details``).
    """
    guideline = load_guideline()
    outcomes: dict[str, list[FileOutcome]] = {}
    loaded: list[tuple[str, Graph]] = []
    notes: dict[str, list[str]] = {}
    assumed: dict[str, dict[Node, list[Any]]] = {}
    for path in paths:
        try:
            with captured_messages() as notes[path]:
                graph = load_patient_file(path, predominant)
            if assume:
                assumed[path] = apply_assumptions(graph, assume, path, guideline)
            records = patients_in(graph)
            if not records:
                raise _no_patient(path)
            slices = None if keep_shacl or len(records) == 1 else _slices(graph, records)
            if slices is None:
                loaded.append((path, set_aside_ill_typed(graph)))
                continue
            del graph  # its triples are in the slices; each group of them becomes graphs only when its turn comes
            for start in range(0, len(slices), GROUP_SIZE):
                chunk = [(path, set_aside_ill_typed(_graph(triples))) for triples in slices[start:start + GROUP_SIZE]]
                slices[start:start + GROUP_SIZE] = [[] for _ in chunk]
                for group in disjoint_groups(chunk, guideline):
                    for outcome in _process_group([chunk[i] for i in group], guideline, mode, keep_shacl, engine,
                                                  whatif):
                        outcomes.setdefault(path, []).append(outcome)
        except Exception as err:  # one file's failure is its own (InputError: exit 2; anything else: a bug)
            outcomes[path] = [_failed(path, "reading", err)]
    groups = [[i] for i in range(len(loaded))] if keep_shacl else disjoint_groups(loaded, guideline)
    for group in groups:
        for outcome in _process_group([loaded[i] for i in group], guideline, mode, keep_shacl, engine, whatif):
            outcomes.setdefault(outcome.path, []).append(outcome)
    merged = {path: _merged(parts) for path, parts in outcomes.items()}
    for path, outcome in merged.items():
        outcome.notes = list(dict.fromkeys(notes.get(path, []) + outcome.notes))
        for result in outcome.results:  # a hypothetical result says what it assumed
            result.assumptions = [a.as_dict() for a in assumed.get(path, {}).get(result.record.node, [])]
    return [merged[p] for p in paths]


Triple = tuple[Node, Node, Node]


def patient_slices(graph: Graph, records: list[RecordRef]) -> list[Graph]:
    """``graph`` cut into one graph per patient record (its triples: those reached from the
    record through nodes no other record reaches), so that the records of a large file are
    validated and queried in groups of :data:`GROUP_SIZE`, as separate files are, with the same
    results. ``[graph]`` if the records do not separate cleanly: a triple reached from two records
    or from none, or a record that points at another."""
    slices = _slices(graph, records)
    return [graph] if slices is None else [_graph(triples) for triples in slices]


def _graph(triples: list[Triple]) -> Graph:
    graph = Graph(bind_namespaces="core")
    graph.addN((s, p, o, graph) for s, p, o in triples)
    return graph


def _slices(graph: Graph, records: list[RecordRef]) -> list[list[Triple]] | None:
    """The triples of each record (:func:`patient_slices`), or None."""
    patients = {r.node for r in records}
    owner: dict[Triple, int] = {}
    slices: list[list[Triple]] = []
    for index, record in enumerate(records):
        triples: list[Triple] = []
        seen = {record.node}
        stack = [record.node]
        while stack:
            node = stack.pop()
            for p, o in graph.predicate_objects(node):
                triple = (node, p, o)
                if owner.setdefault(triple, index) != index or o in patients:
                    return None
                triples.append(triple)
                if o not in seen and not isinstance(o, Literal) and (o, None, None) in graph:
                    seen.add(o)
                    stack.append(o)
        slices.append(triples)
    return slices if len(owner) == len(graph) else None


def _merged(parts: list[FileOutcome]) -> FileOutcome:
    """One file's outcome from the outcomes of its slices (:func:`patient_slices`), as if it had
    been processed whole: records and results in record order, issues in report order."""
    if len(parts) == 1:
        return parts[0]
    failed = [p for p in parts if p.error]
    if failed:
        return failed[0]
    first = parts[0]
    assert first.report is not None
    report = ValidationReport(first.report.source, sorted((r for p in parts for r in p.report.records),  # type: ignore[union-attr]
                                                          key=lambda r: r.patient_id))
    report.issues = sorted((i for p in parts for i in p.report.issues),  # type: ignore[union-attr]
                           key=lambda i: (i.record, i.severity != "violation", i.field, i.message))
    order = {r.node: n for n, r in enumerate(report.records)}
    results = sorted((r for p in parts for r in p.results), key=lambda r: order[r.record.node])
    return FileOutcome(first.path, report, results, notes=[n for p in parts for n in p.notes])


def _process_group(sources: list[tuple[str, Graph]], guideline: Guideline, mode: str, keep_shacl: bool,
                   engine: EngineChoice, whatif: bool = False) -> list[FileOutcome]:
    """Validate (and recommend) the files of one group together; if that fails, each half of the
    group again (and so on down to single files), so that only the file at fault gets the error;
    the others' results are the same in any grouping."""
    def halves() -> list[FileOutcome]:
        middle = len(sources) // 2
        return [outcome for half in (sources[:middle], sources[middle:])
                for outcome in _process_group(half, guideline, mode, keep_shacl, engine, whatif)]

    try:
        with captured_messages() as notes:
            if mode == "validate":
                done = [(report, []) for report in validate_graphs(sources, guideline, keep_shacl=keep_shacl)]
            else:
                done = recommend_graphs(sources, guideline, engine=engine, keep_shacl=keep_shacl)  # type: ignore[misc]
                if whatif:
                    for (path, graph), (_, results) in zip(sources, done):
                        shortest_lines(graph, results, guideline, path)
    except ServerError:
        raise  # not about a file (a SPARQL server that fails): the run stops with that error
    except Exception as err:
        if len(sources) > 1:
            return halves()
        path = sources[0][0]
        if type(err) in (ReportableRuntimeError, ValidationFailure):  # pySHACL refusing the data, not the shapes
            err = InputError(path, f"the SHACL validator cannot check this file ({one_line(str(err.message))}): a field "
                                   "holds a value of the wrong kind (e.g. an object where a date is expected); correct it")
        return [_failed(path, "validation" if mode == "validate" else "validation and recommendation", err)]
    if notes and len(sources) > 1:  # a library warned about one of the files: halving tells which
        return halves()
    return [FileOutcome(path, report, results, notes=list(notes)) for (path, _), (report, results) in zip(sources, done)]


def process_file(path: str, mode: str, keep_shacl: bool = False, engine: EngineChoice = "rdflib",
                 predominant: tuple[str, ...] = (), assume: tuple[Change, ...] = (), whatif: bool = False) -> FileOutcome:
    """:func:`process_files` for one file."""
    return process_files([path], mode, keep_shacl, engine, predominant, assume, whatif)[0]


def _work(args: tuple[Any, ...]) -> list[FileOutcome]:
    return process_files(*args)


def _worker_started() -> None:
    """In each worker process: SIGTERM ends it at once, Ctrl-C is left to the main process (which
    stops the workers), and on Linux it ends when the main process does, however that ends."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s worker processes (their work is abandoned) and reap them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(5)


def run_batch(paths: Sequence[str], mode: str, jobs: int = 1, keep_shacl: bool = False,
              progress: bool = False, engine: EngineChoice = "rdflib",
              predominant: tuple[str, ...] = (), assume: tuple[Change, ...] = (),
              whatif: bool = False) -> Iterator[FileOutcome]:
    """Yield one :class:`FileOutcome` per file, in the order given.

    Files go to the workers in groups of :data:`GROUP_SIZE` (one SHACL run and one store load
    per group); with ``jobs`` > 1 each group runs in a worker process.
    """
    jobs = (os.cpu_count() or 1) if jobs <= 0 else jobs
    total = len(paths)
    tasks = [(list(paths[i:i + GROUP_SIZE]), mode, keep_shacl, engine, predominant, assume, whatif)
             for i in range(0, total, GROUP_SIZE)]
    bar = _ProgressBar(total) if progress else None
    try:
        if jobs == 1 or len(tasks) < 2:
            results: Iterator[list[FileOutcome]] = map(_work, tasks)
            for outcomes in results:
                for outcome in outcomes:
                    if bar:
                        bar.advance(outcome.path)
                    yield outcome
            return
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_worker_started)
        try:
            for outcomes in pool.map(_work, tasks):
                for outcome in outcomes:
                    if bar:
                        bar.advance(outcome.path)
                    yield outcome
        except BaseException:  # stopped (SIGTERM, Ctrl-C, output closed, an error): the workers stop too
            _stop_workers(pool)
            raise
        pool.shutdown()
    finally:
        if bar:
            bar.stop()


class _ProgressBar:
    """``rich``'s progress bar on stderr: files done of all, the last file's name (control
    characters escaped, never read as markup), time left."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(BarColumn(bar_width=30), MofNCompleteColumn(), TimeRemainingColumn(),
                                  TextColumn("{task.fields[file]}", markup=False),
                                  console=Console(stderr=True), transient=False, redirect_stdout=False)
        self._task = self._progress.add_task("files", total=total, file="")
        self._progress.start()

    def advance(self, path: str) -> None:
        self._progress.update(self._task, advance=1, file=escape_controls(os.path.basename(path))[:40])

    def stop(self) -> None:
        self._progress.stop()


def _ranked(counter: Counter[str], most: int | None = None) -> list[tuple[str, int]]:
    """``counter.most_common(most)`` with ties in alphabetical order (not in the order they were
    first counted, which follows set iteration and so changes from run to run).

    >>> _ranked(Counter({"b": 2, "a": 2, "c": 3}))
    [('c', 3), ('a', 2), ('b', 2)]
    """
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:most]


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
    cannot_tell: int = 0
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
            violations = {summary_key(i) for i in issues if i.severity == "violation"}
            for warning in {summary_key(i) for i in issues if i.severity == "warning"}:
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
            if result.cannot_tell:
                self.cannot_tell += 1
            elif not result.applicable:
                self.not_applicable += 1
            for option in result.options:
                if option.rank == 1 and option.status == "offered":
                    self.first_options[option.label] += 1
                if option.status == "blocked":
                    self.blocked_options[option.label] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "unusableFiles": len(self.unusable), "records": self.records,
            "valid": self.valid, "invalid": self.invalid, "invalidByReason": dict(_ranked(self.invalid_reasons)),
            "warnings": dict(_ranked(self.warnings)), "notApplicable": self.not_applicable,
            "cannotTell": self.cannot_tell,
            "rankedFirst": dict(_ranked(self.first_options)), "blocked": dict(_ranked(self.blocked_options)),
        }

    def text(self, mode: str) -> str:
        lines = ["", "Summary", "-------",
                 f"files: {self.files} ({len(self.unusable)} unusable)",
                 f"patient records: {self.records}: {self.valid} valid, {self.invalid} invalid"]
        for title, counter in (("invalid, by reason", self.invalid_reasons), ("warnings", self.warnings)):
            if counter:
                lines.append(f"{title}:")
                lines += [f"  {n:6d}  {reason}" for reason, n in _ranked(counter, 15)]
        if mode == "recommend":
            lines.append(f"guideline does not apply: {self.not_applicable}")
            lines.append(f"cannot tell (data needed): {self.cannot_tell}")
            if self.first_options:
                lines.append("ranked first and offered (records):")
                lines += [f"  {n:6d}  {label}" for label, n in _ranked(self.first_options)]
            if self.blocked_options:
                lines.append("blocked by a positive screening (records):")
                lines += [f"  {n:6d}  {label}" for label, n in _ranked(self.blocked_options)]
        if self.unusable:
            lines.append("unusable files:")
            lines += [f"  {e}" for e in self.unusable[:20]]
            if len(self.unusable) > 20:
                lines.append(f"  ... and {len(self.unusable) - 20} more")
        return "\n".join(lines)
