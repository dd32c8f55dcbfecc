"""``jdm-kg load``: patient files into a SPARQL server, each patient record in a graph of its own.

A record goes to the graph named from its patient's IRI
(:func:`~jdm_kg.reasoning.endpoint.patient_graph_name`: ``urn:jdm-kg:patient:<IRI>``), replacing
what that graph held (:func:`~jdm_kg.reasoning.endpoint.replace_graphs`: staging graphs, then
``MOVE``), so loading an edited file again leaves one copy of each patient. A file of several
records is cut into one graph per record as batches cut it (:func:`jdm_kg.batch.patient_slices`).

Files are validated first, exactly as ``jdm-kg validate`` validates them
(:func:`jdm_kg.batch.run_batch`), and each violation is printed as ``validate`` prints it. What
is not loaded, and why (one file never costs another its records):

- a record with violations: not loaded unless ``allow_invalid`` (exit 1 either way); the
  server keeps the copy loaded before, if there is one, and the message says which;
- a patient without an IRI (a blank node): its graph could not be found again to be replaced;
  an error saying how to give it one (exit 2);
- a patient IRI in two files of one run: loaded from neither, an error naming both (exit 2);
- a file of several records that cannot be cut apart (they share nodes): an error (exit 2);
- an unusable file: its error (exit 2); a bug: exit 3.

Each patient graph also says which file it came from (``<graph> prov:wasDerivedFrom
<file:///...>``). A patient loaded from a file before and no longer in it keeps its graph, with
a note (``prune``: the graph is dropped); a patient loaded from another file before is replaced,
with a note. The per-file graphs of jdm-kg before issue 14 (``urn:jdm-kg:file:<content hash>``),
which duplicated patients, are dropped once each of their patients has a graph of its own;
until then a note names them.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import Graph, URIRef

from jdm_kg.batch import FileOutcome, patient_slices, run_batch
from jdm_kg.errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, EXIT_VIOLATIONS, InputError, ServerError
from jdm_kg.inputs.loading import load_patient_file, rdf_files
from jdm_kg.reasoning.endpoint import (
    WAS_DERIVED_FROM,
    Endpoint,
    LoadedGraph,
    loaded_graphs,
    patient_graph_name,
    patient_of_graph,
    replace_graphs,
    skolemize,
)
from jdm_kg.reasoning.validation import Issue, RecordRef, patients_in

__all__ = ["load_patient_files"]

Say = Callable[[str], None]


def source_iri(path: str) -> str:
    """The ``file:`` IRI a patient graph names as its source: the file's absolute path."""
    return Path(path).resolve().as_uri()


def _shown(iri: str | None) -> str:
    """A source IRI as a path, for messages."""
    if iri is None:
        return "a file jdm-kg did not record"
    parsed = urllib.parse.urlparse(iri)
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else iri


@dataclass
class _Run:
    """What one ``load`` knows and has done so far."""

    endpoint: Endpoint
    allow_invalid: bool
    prune: bool
    out: Say
    err: Say
    before: dict[str, LoadedGraph]  # the graphs jdm-kg made on the server when the run started
    claims: dict[str, list[str]]  # patient IRI -> the files of this run that hold it
    loaded: set[str] = field(default_factory=set)  # patient graphs written by this run
    dropped: set[str] = field(default_factory=set)
    records_loaded: int = 0
    records_not_loaded: int = 0

    def kept_copy(self, name: str) -> str:
        """What the server holds of a record that is not loaded now."""
        if name in self.before:
            return f"the server keeps the copy loaded before from {_shown(self.before[name].source)}, in graph <{name}>"
        return "the server holds no copy of it"


def load_patient_files(endpoint: Endpoint, paths: Sequence[str], *, allow_invalid: bool = False,
                       prune: bool = False, out: Say = print, err: Say = print) -> int:
    """Validate the patient files ``paths`` (folders expand) and load their records into
    ``endpoint``, one graph per patient (module docstring). ``out`` gets a line per record loaded
    and graph dropped, and the closing count; ``err`` the errors, violations and notes. Returns the
    exit code: 0 all loaded and conforming, 1 violations found, 2 something unusable, 3 a bug
    (the worst met). A server that fails raises :class:`~jdm_kg.errors.ServerError`."""
    problems: list[InputError] = []
    files = _distinct([str(p) for p in rdf_files(list(paths), problems)], err)
    code = EXIT_ERROR if problems else EXIT_OK
    for problem in problems:
        err(f"error: {problem}")
    outcomes = list(run_batch(files, "validate"))
    claims: dict[str, list[str]] = {}
    for outcome in outcomes:
        for record in outcome.report.records if outcome.report is not None else []:
            if isinstance(record.node, URIRef) and outcome.path not in claims.get(str(record.node), []):
                claims.setdefault(str(record.node), []).append(outcome.path)
    run = _Run(endpoint, allow_invalid, prune, out, err, loaded_graphs(endpoint), claims)
    for outcome in outcomes:
        code = max(code, _load_file(run, outcome))
    _drop_legacy(run)
    total = run.records_loaded + run.records_not_loaded
    unread = len(problems) + sum(o.error is not None for o in outcomes)
    out(f"{run.records_loaded} of {total} patient record(s) loaded from {len(files)} file(s)"
        + (f"; {run.records_not_loaded} not loaded (see above)" if run.records_not_loaded else "")
        + (f"; {unread} file(s) or folder(s) could not be read (see above)" if unread else ""))
    return code


def _distinct(files: list[str], err: Say) -> list[str]:
    """``files`` with a file named twice (also through a folder or a link) kept once."""
    first: dict[str, str] = {}
    kept = []
    for path in files:
        real = os.path.realpath(path)
        if real in first:
            err(f"note: {path}: the same file as {first[real]}: loaded once")
            continue
        first[real] = path
        kept.append(path)
    return kept


def _load_file(run: _Run, outcome: FileOutcome) -> int:
    """Load the records of one validated file; return its exit code."""
    path = outcome.path
    for note in outcome.notes:
        run.err(f"note: {path}: {note}")
    if outcome.error is not None:
        run.err(f"error: {outcome.error}")
        return EXIT_INTERNAL if outcome.internal else EXIT_ERROR
    report = outcome.report
    assert report is not None
    for issue in report.issues:
        if issue.severity == "violation":
            run.err(issue.line(path))
    try:  # read again: the triples as they are in the file (validation set ill-typed values aside)
        graph = load_patient_file(path)
    except InputError as error:
        run.err(f"error: {error}")
        return EXIT_ERROR
    records = patients_in(graph)
    if _keys(records) != _keys(report.records):
        run.err(f"error: {path}: the file changed while it was being loaded: nothing loaded from it; load it again")
        return EXIT_ERROR
    pieces = patient_slices(graph, records) if len(records) > 1 else [graph]
    if len(pieces) != len(records):
        run.err(f"error: {path}: its {len(records)} patient records share nodes (or hold triples that belong to "
                "none of them), so they cannot be put in a graph each: nothing loaded from it; give each record "
                "nodes of its own, or put each record in a file of its own")
        run.records_not_loaded += len(records)
        return EXIT_ERROR
    source = source_iri(path)
    own_patients = {str(r.patient_id) for r in records}
    code = EXIT_VIOLATIONS if any(i.severity == "violation" and i.record not in own_patients
                                  for i in report.issues) else EXIT_OK
    chosen: list[tuple[RecordRef, Graph, list[Issue]]] = []
    for record, piece in zip(records, pieces):
        issues = report.issues_for(record)
        verdict = _refusal(run, path, record, issues)
        if verdict is not None:
            code = max(code, verdict)
            run.records_not_loaded += 1
            continue
        if any(i.severity == "violation" for i in issues):
            code = max(code, EXIT_VIOLATIONS)
        chosen.append((record, piece, issues))
    named = []
    for record, piece, _ in chosen:
        name = patient_graph_name(record.node)  # type: ignore[arg-type]
        data, _ = skolemize(piece, f"urn:jdm-kg:bnode:{uuid.uuid4().hex}:")
        data.add((URIRef(name), WAS_DERIVED_FROM, URIRef(source)))
        named.append((name, data))
    if named:
        replace_graphs(run.endpoint, named)
    for (record, piece, issues), (name, _) in zip(chosen, named):
        run.loaded.add(name)
        run.records_loaded += 1
        earlier = run.before.get(name)
        if earlier is not None and earlier.source != source:
            run.err(f"note: {path}: record {record.patient_id}: replaces the copy loaded from {_shown(earlier.source)}")
        violations = sum(i.severity == "violation" for i in issues)
        warnings = sum(i.severity == "warning" for i in issues)
        run.out(f"{path}: record {record.patient_id}: {len(piece)} triples -> graph <{name}>"
                + (" (replaced the copy loaded before)" if earlier is not None else "")
                + (f"; loaded with {violations} violation(s) (--allow-invalid)" if violations else "")
                + (f"; {warnings} warning(s) (jdm-kg validate lists them)" if warnings else ""))
    _gone(run, path, source)
    return code


def _keys(records: list[RecordRef]) -> list[tuple[str, str | None]]:
    return [(r.patient_id, str(r.node) if isinstance(r.node, URIRef) else None) for r in records]


def _refusal(run: _Run, path: str, record: RecordRef, issues: list[Issue]) -> int | None:
    """Why ``record`` is not loaded (said on ``run.err``), as an exit code; None: it is loaded."""
    where = f"{path}: record {record.patient_id}"
    if not isinstance(record.node, URIRef):
        run.err(f"error: {where}: the patient has no IRI (a blank node), so its graph could not be found again to be "
                "replaced: not loaded; give the patient an IRI (Turtle: <https://...> instead of [] or _:; JSON-LD: "
                "\"@id\"; FHIR: the Patient entry's fullUrl, an http(s): or urn: IRI) and load again")
        return EXIT_ERROR
    name = patient_graph_name(record.node)
    others = [p for p in run.claims.get(str(record.node), []) if p != path]
    if others:
        run.err(f"error: {where}: patient <{record.node}> is also in {', '.join(others)}: not loaded from either file "
                f"(a patient has one graph); {run.kept_copy(name)}; keep the record in one file and load again")
        return EXIT_ERROR
    violations = sum(i.severity == "violation" for i in issues)
    if violations and not run.allow_invalid:
        run.err(f"note: {where}: not loaded: {violations} violation(s) above; {run.kept_copy(name)}; correct them and "
                "load the file again, or load the record as it is with --allow-invalid")
        return EXIT_VIOLATIONS
    return None


def _gone(run: _Run, path: str, source: str) -> None:
    """The patients loaded from ``path`` before that no file of this run holds now: noted, or
    with ``run.prune`` dropped."""
    gone = [g for g in run.before.values()
            if g.source == source and not g.legacy and str(patient_of_graph(g.name)) not in run.claims]
    if not gone:
        return
    if not run.prune:
        for g in gone:
            run.err(f"note: {path}: patient <{patient_of_graph(g.name)}> was loaded from this file before and is not in "
                    f"it now: its graph <{g.name}> is kept (--prune drops it)")
        return
    _drop(run, [g.name for g in gone])
    for g in gone:
        run.out(f"{path}: patient <{patient_of_graph(g.name)}> is no longer in this file: graph <{g.name}> dropped "
                "(--prune)")


def _drop_legacy(run: _Run) -> None:
    """Drop the per-file graphs of jdm-kg before issue 14 whose patients all have a graph of
    their own now; name the others."""
    present = (set(run.before) | run.loaded) - run.dropped
    for g in run.before.values():
        if not g.legacy:
            continue
        missing = [p for p in g.patients if patient_graph_name(URIRef(p)) not in present]
        what = "made by an earlier jdm-kg load (one graph per file, named by its content)"
        if missing:
            run.err(f"note: graph <{g.name}>, {what}, holds {len(missing)} patient record(s) with no graph of their "
                    f"own (e.g. <{missing[0]}>): it is dropped once they have (load their files again; a patient "
                    "needs an IRI)")
            continue
        _drop(run, [g.name])
        run.out(f"graph <{g.name}> dropped: {what}; each of its {len(g.patients)} patient record(s) has a graph of "
                "its own now")


def _drop(run: _Run, names: list[str]) -> None:
    left = run.endpoint.drop_all(names)
    if left:
        raise ServerError(run.endpoint.update_url or run.endpoint.query_url,
                          f"could not drop {len(left)} graph(s), e.g. <{left[0]}>")
    run.dropped.update(names)
