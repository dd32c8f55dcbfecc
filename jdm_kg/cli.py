"""``jdm-kg`` command line: a thin layer over the Python API.

Exit codes (as pySHACL): 0 ok / conforms, 1 violations found, 2 unusable input or usage error;
3 internal error (a bug in jdm-kg: the message says "please report"); 141 output closed early
(e.g. piped into `head`: what was printed is incomplete); 130 interrupted; 143 terminated (SIGTERM).
An output that cannot be written (a full disk, a folder that cannot be written) is exit 2 with the reason. With many files the
code is the worst one met. Control characters from the input are shown escaped (ESC as \\u001b).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import io
import json
import os
import re
import signal
import sys
import textwrap
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rdflib import RDF, RDFS, SKOS, Graph, Literal, URIRef

from jdm_kg.batch import FileOutcome, Summary, run_batch
from jdm_kg.errors import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_VIOLATIONS,
    InputError,
    captured_messages,
    escape_controls,
    internal_error,
)
from jdm_kg.inputs.loading import load_patient_file, rdf_files
from jdm_kg.inputs.netguard import NetworkBlocked, block_network
from jdm_kg.knowledge.guideline import JDM, JDMG, load_guideline, with_guideline
from jdm_kg.knowledge.prefixes import declared_in, guideline_prefixes, namespace_manager, shortened
from jdm_kg.knowledge.queries import (
    bundled_queries,
    check_query,
    deterministic_rows,
    example_queries,
    names_its_graphs,
    parse_param,
    query_catalogue,
    query_headers,
    query_source,
    stable_blank_nodes,
)
from jdm_kg.knowledge.query_terms import unknown_terms
from jdm_kg.outputs.report import (
    MARKDOWN_TITLE,
    dumps_json,
    explain_text,
    results_graph,
    results_json,
    results_text,
    validation_json,
    validation_text,
)
from jdm_kg.reasoning.endpoint import (
    PATIENT_GRAPH_PREFIX,
    Endpoint,
    cleanup,
    existing_graphs,
    load_guideline_graph,
    loaded_graphs,
    values_block,
)
from jdm_kg.reasoning.engines import ENGINES, GUIDELINE_GRAPH, EngineChoice
from jdm_kg.reasoning.recommend import PatientResult
from jdm_kg.resources import GUIDELINE_ENV, guideline_home, installed_dir
from jdm_kg.server_load import load_patient_files
from jdm_kg.version import __version__

__all__ = ["main"]

#: Output closed before everything was written (``| head``): 128 + SIGPIPE, as a shell reports it.
EXIT_OUTPUT_CLOSED = 141
#: Stopped by SIGTERM (worker processes stopped too): 128 + SIGTERM.
EXIT_TERMINATED = 143


def _handle_sigterm() -> Any:
    """Make SIGTERM stop the run as Ctrl-C does (so ``--jobs`` workers are stopped with it); the
    handler it replaces, or None where none can be set (not the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return None

class _Escaping(io.TextIOBase):
    """A text stream that writes to ``stream`` with control characters escaped."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            self.stream.write(escape_controls(text))
        except BrokenPipeError:
            raise
        except OSError as err:  # a full disk, a device error: the output is incomplete
            raise OutputError(err) from None
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise OutputError(err) from None

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def fileno(self) -> int:
        return int(self.stream.fileno())


class OutputError(InputError):
    """Standard output could not be written (``> /dev/full``): exit 2 with the reason."""

    def __init__(self, err: OSError) -> None:
        super().__init__("standard output", f"cannot write the output ({err.strerror or err}); what was written "
                                            "is incomplete")


@contextlib.contextmanager
def _writing_into(folder: Path) -> Iterator[None]:
    """An :class:`InputError` naming ``folder`` for a folder or file that cannot be written
    (``docs -o /proc/x``, a read-only or full disk), instead of an internal error."""
    try:
        yield
    except OSError as err:
        where = err.filename or folder
        raise InputError(str(where), f"cannot write here ({err.strerror or err}); choose another output "
                                     f"folder with -o") from None


def _quiet_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that what is still buffered for a closed or full
    output is dropped at exit, not reported as an error of its own."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _say(text: str) -> None:
    """One line on stderr (an error or a note), control characters escaped."""
    print(escape_controls(text), file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with one line, as argparse does
        self.print_usage(sys.stderr)
        print(f"jdm-kg: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _expand(paths: Sequence[str]) -> list[str]:
    """Files as given; folders expand to the patient files inside them."""
    return [str(p) for p in rdf_files(list(paths))]


def _run(
    args: argparse.Namespace, mode: str, paths: Sequence[str] | None = None, stream: bool = False
) -> tuple[int, list[FileOutcome]]:
    """Process every file (in parallel with --jobs); print JSON Lines (and, with ``stream``, text
    reports) as results arrive, so memory does not grow with the number of files.

    An unusable file is reported on stderr and the others still run. Returns the worst exit
    code and the outcomes that the caller still has to print, in the order the files were given.
    """
    problems: list[InputError] = []  # a folder that is empty or unreadable: its error, and the other paths go on
    files = [str(p) for p in rdf_files(list(paths if paths is not None else args.files), problems)]
    fmt = getattr(args, "format", "text")
    summary = Summary()
    outcomes: list[FileOutcome] = []
    worst = EXIT_ERROR if problems else EXIT_OK
    for problem in problems:
        summary.add(FileOutcome(problem.source, error=str(problem)))
        _say(f"error: {problem}")
    progress = getattr(args, "progress", None)
    show = sys.stderr.isatty() and len(files) > 1 if progress is None else progress
    details = getattr(args, "details", False) and fmt in ("text", "markdown") and mode == "recommend"
    batch = run_batch(files, mode, jobs=getattr(args, "jobs", 1), keep_shacl=fmt == "turtle", progress=show,
                      engine=_engine(args), predominant=_predominant(args), assume=_assumptions(args),
                      whatif=details)
    for outcome in batch:
        for note in outcome.notes:
            _say(f"note: {outcome.path}: {note}")
        if outcome.error is None:
            try:  # rendered whole before it is printed: a failure prints nothing of this file
                text = _rendered(outcome, args, mode, fmt, stream)
            except Exception as err:  # the file's error, not the batch's
                outcome = FileOutcome(outcome.path, error=internal_error(outcome.path, "writing", err), internal=True)
            else:
                if text is None:
                    outcomes.append(outcome)
                else:
                    print(text, end="", flush=False)
        summary.add(outcome)
        if outcome.error:
            _say(f"error: {outcome.error}")
            worst = max(worst, EXIT_INTERNAL if outcome.internal else EXIT_ERROR)
            continue
        assert outcome.report is not None
        worst = max(worst, EXIT_OK if outcome.report.conforms else EXIT_VIOLATIONS)
    if getattr(args, "summary", False):
        print(summary.text(mode), file=sys.stderr if fmt in ("json", "jsonl", "turtle") else sys.stdout)
    return worst, outcomes


def _print_table(names: list[str], rows: list[list[Any]], query_prefixes: dict[str, str]) -> bool:
    """Rows as a terminal table, IRIs as prefixed names (the guideline's prefixes, then the
    query's own), kept to the terminal's width; whether a value was cut to fit."""
    from jdm_kg.outputs.table import render_table, table_width

    manager = namespace_manager(guideline_prefixes(), query_prefixes)
    shown = [["" if v is None else shortened(v, manager) for v in row] for row in rows]
    text, cut = render_table(names, shown, table_width(sys.stdout))
    print(text, end="")
    return cut


def _predominant(args: argparse.Namespace) -> tuple[str, ...]:
    """--predominant FEATURE[,FEATURE] (repeatable): the manifestations' names, checked (an
    unknown one is a usage error with the nearest names)."""
    from jdm_kg.inputs.intake import resolve_features

    names = tuple(n.strip() for value in getattr(args, "predominant", None) or [] for n in value.split(",") if n.strip())
    return tuple(str(f) for f in resolve_features(names)) if names else ()


def _assumptions(args: argparse.Namespace) -> tuple[Any, ...]:
    """--assume FACT=VALUE (repeatable), checked against the guideline's terms (exit 2 with the
    nearest names for one it does not know)."""
    specs = getattr(args, "assume", None) or []
    if not specs:
        return ()
    from jdm_kg.reasoning.whatif import parse_assumptions

    return parse_assumptions(specs)


def assume_help() -> str:
    """The names and values ``--assume`` takes, from the guideline's terms (for --help)."""
    from jdm_kg.reasoning.whatif import vocabulary

    vocab = vocabulary(load_guideline())
    names = lambda table: ", ".join(t.name for t in table.values())  # noqa: E731
    results = names(vocab.results)
    return "\n".join([
        "--assume FACT=VALUE: re-run with a hypothetical fact (repeat for several); the result is marked "
        "HYPOTHETICAL and lists what it assumes. Each is recorded on the record's date; nothing on record is erased.",
        f"  CONDITION=RESULT|cleared  CONDITION: {names(vocab.conditions)}; RESULT: {results}; cleared: a "
        "clinician's clearance of the positive results on record",
        f"  TEST=RESULT               TEST: {names(vocab.tests)}",
        f"  predominant=FEATURE[,FEATURE]  exactly these predominant (one not recorded is added); FEATURE: "
        f"{names(vocab.features)}",
        "  present=FEATURE[,FEATURE]      recorded as well, not predominant",
        f"  DRUG=OUTCOME              the ongoing course of DRUG ends so; OUTCOME: {names(vocab.outcomes)}",
        "  weight=KG, height=CM      a measurement on the record's date (current: the last one, measured again)",
        "e.g. --assume hepatitis-b=negative --assume predominant=interstitial-lung-disease",
    ])


def _names_in_help(parser: argparse.ArgumentParser) -> None:
    """List the --assume names in ``parser``'s --help (read from the guideline only when asked)."""
    plain = parser.format_help

    def format_help() -> str:
        try:
            parser.epilog = assume_help()
        except InputError:  # a broken guideline: the help still prints
            parser.epilog = "(the guideline could not be read to list the --assume names: run jdm-kg check)"
        return plain()

    parser.format_help = format_help  # type: ignore[method-assign]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # (the names list keeps its lines)


def _rendered(outcome: FileOutcome, args: argparse.Namespace, mode: str, fmt: str, stream: bool) -> str | None:
    """One file's output, printed as it arrives (JSON Lines, streamed text); None: kept for the caller."""
    assert outcome.report is not None
    if fmt == "jsonl":
        rows = (
            [dict(r.as_dict(), file=outcome.path) for r in outcome.results]
            if mode == "recommend"
            else [dict(validation_json(outcome.report), file=outcome.path)]
        )
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if fmt == "text" and mode == "validate":
        return "" if getattr(args, "summary_only", False) else validation_text(outcome.report) + "\n"
    if fmt == "text" and stream:
        return (results_text(outcome.results, detail=getattr(args, "details", False), width=_width(args)) + "\n\n"
                if outcome.results else "")
    return None if fmt != "none" else ""


def _width(args: argparse.Namespace) -> int | None:
    """Where a text report wraps: --width, else the terminal's width; a file or a pipe: no wrapping."""
    width = getattr(args, "width", None)
    if width:
        return int(width)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _engine(args: argparse.Namespace) -> EngineChoice:
    """What runs the queries: the embedded engine chosen, or the SPARQL server named."""
    if getattr(args, "endpoint", None):
        if not args.update:
            raise InputError("--endpoint", "recommending on a SPARQL server loads the patient data there for the "
                             "run: give the server's update URL too (--update URL)")
        return Endpoint(args.endpoint, args.update, timeout=args.timeout)
    return getattr(args, "engine", "rdflib")


def _cmd_validate(args: argparse.Namespace) -> int:
    code, outcomes = _run(args, "validate")
    reports = [o.report for o in outcomes if o.report is not None]
    if args.format == "json":
        print(dumps_json([validation_json(r) for r in reports]))
    elif args.format == "turtle":
        from jdm_kg.outputs.shacl_report import shacl_report_turtle

        print(shacl_report_turtle(reports))
    return code


def _recommend_all(args: argparse.Namespace, paths: Sequence[str]) -> tuple[int, list[PatientResult]]:
    code, outcomes = _run(args, "recommend", paths)
    return code, [r for o in outcomes for r in o.results]


def _cmd_recommend(args: argparse.Namespace) -> int:
    if args.assume:  # (checked before any file is read: a typo is one clear error)
        changes = _assumptions(args)
        _say("note: HYPOTHETICAL: every result below assumes " + ", ".join(c.spec for c in changes)
             + " (--assume); it is not the record as written")
    code, outcomes = _run(args, "recommend", args.files, stream=True)
    results = [r for o in outcomes for r in o.results]
    if args.format == "markdown":
        if results:
            print(results_text(results, markdown=True, detail=args.details, title=False))  # the title came first
    elif args.format == "json":
        print(dumps_json(results_json(results)))
    elif args.format == "turtle":
        from jdm_kg.outputs.whatif_report import hypothetical_lines

        for result in results:  # (the runs say so too: jdm:hypothetical, jdm:assumption)
            for line in hypothetical_lines(result):
                print(f"# {result.record.patient_id}: {line}")
        print(results_graph(results, load_guideline()).serialize(format="turtle"))
    elif args.format == "fhir":
        from jdm_kg.outputs.fhir_output import results_bundle

        issues = [i for o in outcomes if o.report is not None for i in o.report.issues]
        print(dumps_json(results_bundle(results, issues, ", ".join(o.path for o in outcomes))))
    return code


def _cmd_serve(args: argparse.Namespace) -> int:
    from jdm_kg.service.serve import serve

    return serve(args)


def _resolve_drug(name: str) -> str:
    graph = load_guideline().graph
    wanted = name.strip().lower()
    for iri in (URIRef(name), JDMG[name]):
        if (iri, None, None) in graph:
            return str(iri)
    for s, _, label in list(graph.triples((None, RDFS.label, None))) + list(graph.triples((None, SKOS.altLabel, None))):
        if str(label).lower() == wanted and str(s).startswith(str(JDMG)):
            return str(s)
    names = sorted({str(label) for s, _, label in graph.triples((None, RDFS.label, None))
                    if (s, RDF.type, JDM.TreatmentOption) in graph or (s, RDF.type, JDM.Drug) in graph})
    near = difflib.get_close_matches(wanted, [n.lower() for n in names], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else f"; the guideline's options: {', '.join(names)}"
    raise InputError("DRUG", f"{name!r} is not a drug or option in the guideline graph{hint}")


def _cmd_explain(args: argparse.Namespace) -> int:
    drug = _resolve_drug(args.drug) if args.drug else None
    code, results = _recommend_all(args, [args.patient])
    if args.patient_id:
        results = [r for r in results if r.record.patient_id == args.patient_id]
        if not results:
            raise InputError(args.patient, f"no record with patientId {args.patient_id!r}")
    for result in results:
        if drug and result.options and drug not in {o.option for o in result.options}:
            graph = load_guideline().graph
            label = graph.value(URIRef(drug), RDFS.label)
            role = graph.value(URIRef(drug), JDM.role)
            role_label = graph.value(role, RDFS.label) if role else None
            print(f"Patient {result.record.patient_id}: {label} is not a treatment option this guideline offers "
                  f"(its role in the guideline: {role_label or 'none'}).")
            continue
        whatif = _explain_whatif(args, result, drug) if drug and result.options else None
        if args.format == "json":
            options = [o for o in results_json([result])[0]["options"] if not drug or o["option"] == drug]
            for option in options:
                if whatif is not None:
                    found = whatif.option(option["option"])
                    option["whatIf"] = found.as_dict() if found else None
            print(dumps_json(options))
        else:
            print(explain_text(result, drug))
            if whatif is not None:
                print(_explain_whatif_text(whatif, drug))  # type: ignore[arg-type]
    return code


def _explain_whatif(args: argparse.Namespace, result: PatientResult, drug: str) -> Any:
    """What would change the answer for ``drug`` (``explain FILE DRUG`` ends with it)."""
    from jdm_kg.reasoning.whatif import what_if_file

    if result.blocked_by_validation:
        return None
    _, reports = what_if_file(args.patient, drug, args.depth, result.record.patient_id, _predominant(args))
    return reports[0] if reports else None


def _explain_whatif_text(report: Any, drug: str) -> str:
    from jdm_kg.outputs.whatif_report import option_lines

    found = report.option(drug)
    lines = [f"", f"What would change it (changes of at most {report.depth} facts, each checked by assessing the "
                  "changed record again; jdm-kg whatif FILE for every option):"]
    body = option_lines(found) if found else []
    lines += body or ["  nothing: " + (found.before if found else "not assessed")]
    return "\n".join(lines)


def _cmd_whatif(args: argparse.Namespace) -> int:
    from jdm_kg.outputs.whatif_report import whatif_json, whatif_text
    from jdm_kg.reasoning.whatif import what_if_file

    option = _resolve_drug(args.option) if args.option else None
    if option is not None:
        graph = load_guideline().graph
        if (URIRef(option), JDM.role, None) not in graph or option not in _presented_options():
            label = graph.value(URIRef(option), RDFS.label)
            raise InputError("OPTION", f"{label or option} is not a treatment option this guideline offers, so no change "
                                       "would offer it; name one of: " + ", ".join(sorted(_presented_options().values())))
    report, reports = what_if_file(args.patient, option, args.depth, args.patient_id, _predominant(args),
                                   assume=_assumptions(args))
    for issue in report.issues:
        _say(issue.line(report.source))
    if args.format == "json":
        print(dumps_json(whatif_json(reports)))
    else:
        print("\n\n".join(whatif_text(r, markdown=args.format == "markdown") for r in reports))
    return EXIT_OK if report.conforms else EXIT_VIOLATIONS


def _presented_options() -> dict[str, str]:
    """The options a report presents (next line, adjuncts, escalation): IRI -> label."""
    from jdm_kg.reasoning.engines import oxigraph_store
    from jdm_kg.reasoning.recommend import guideline_facts

    guideline = load_guideline()
    facts = guideline_facts(guideline, oxigraph_store(guideline).guideline_view)
    return {c.option: c.label for c in facts.candidates}


def _local_answer(data: Graph, query: Any, bindings: dict[str, Any], label: str, own: bool) -> Any:
    """rdflib's answer to ``query`` over ``data``, evaluated now, so that what the user's query
    asks for and cannot have becomes an :class:`InputError` here; so does any failure of a query
    of the user's own (``own``: a file, not a bundled query), which names it."""
    try:
        result = data.query(query, initBindings=bindings)
        if result.type == "SELECT":
            result.bindings  # noqa: B018 (rdflib evaluates lazily: evaluate now)
        return result
    except urllib.error.URLError as err:
        raise InputError(label, f"a SERVICE endpoint could not be reached ({err.reason}); check its URL") from None
    except OSError as err:
        raise InputError(label, f"a SERVICE endpoint could not be reached ({err}); check its URL") from None
    except Exception as err:
        if "requiring a dataset" in str(err):
            raise InputError(label, "the query reads named graphs (GRAPH), but --data files form one default graph: "
                                    "remove GRAPH, or load the files with jdm-kg load and query the server with "
                                    "--endpoint") from None
        if own:
            detail = " ".join(str(err).split())[:300]
            raise InputError(label, f"rdflib could not evaluate the query ({type(err).__name__}"
                                    f"{': ' + detail if detail else ''}): check it, e.g. for a function or "
                                    "aggregate given values of a type it cannot take") from None
        raise


def _what_data_holds(sources: list[tuple[str, Graph]]) -> list[str]:
    """``query --data`` queries the records as written: notes on which do not conform (their facts
    are still queried), and which patient is in several files (their facts are merged)."""
    from jdm_kg.reasoning.validation import patients_in, validate_graphs

    notes = []
    for source in sources:  # each file alone, as validate does (files naming one patient would mix)
        for report in validate_graphs([source]):
            for record in report.records:
                violations = [i for i in report.issues_for(record) if i.severity == "violation"]
                if violations:
                    notes.append(f"{report.source}: record {record.patient_id} does not conform ({len(violations)} "
                                 f"violation(s), e.g. {violations[0].field}): its facts are queried as written; "
                                 f"`jdm-kg validate {report.source}` says what is wrong")
    where: dict[str, list[str]] = {}
    for path, graph in sources:
        for record in patients_in(graph):
            where.setdefault(str(record.node), []).append(path)
    notes += [f"patient <{patient}> is in {' and '.join(paths)}: the query sees their facts merged"
              for patient, paths in sorted(where.items()) if len(paths) > 1]
    return notes


def _query_graphs(endpoint: Endpoint, query: Any, named: list[str]) -> list[str] | None:
    """The graphs a query on a server reads as its default graph: those named with --graph (each
    must be on the server); else, for a query that names no graphs itself (no FROM, FROM NAMED or
    GRAPH), the guideline graph and every patient graph jdm-kg load made, said on stderr; None:
    the query's own dataset, or the server's."""
    if named:
        there = existing_graphs(endpoint, named)
        missing = [g for g in named if g not in there]
        if missing:
            raise InputError("--graph", f"no graph <{missing[0]}> on the server (or it is empty); "
                             f"{_graphs_there(endpoint)}")
        return named
    if names_its_graphs(query):
        return None
    patients = [name for name in loaded_graphs(endpoint) if name.startswith(PATIENT_GRAPH_PREFIX)]
    graphs = sorted(existing_graphs(endpoint, [GUIDELINE_GRAPH])) + patients
    if not graphs:
        raise InputError("--endpoint", f"{endpoint.query_url} holds no graph jdm-kg load made (neither the guideline "
                         f"graph <{GUIDELINE_GRAPH}> nor a patient graph <{PATIENT_GRAPH_PREFIX}...>): load data with "
                         "jdm-kg load, or name the graphs to query with --graph IRI")
    guideline = "the guideline graph and " if GUIDELINE_GRAPH in graphs else "no guideline graph (not loaded), only "
    _say(f"note: querying {guideline}{len(patients)} patient graph(s) that jdm-kg load made on {endpoint.query_url} "
         "(--graph IRI to choose)")
    return graphs


def _graphs_there(endpoint: Endpoint) -> str:
    """The graphs jdm-kg load made on the server, in words (at most 10 patient graphs named)."""
    patients = [name for name in loaded_graphs(endpoint) if name.startswith(PATIENT_GRAPH_PREFIX)]
    guideline = (f"the guideline graph <{GUIDELINE_GRAPH}>" if existing_graphs(endpoint, [GUIDELINE_GRAPH])
                 else f"no guideline graph (<{GUIDELINE_GRAPH}>: load it with jdm-kg load)")
    listed = "".join(f" <{name}>" for name in patients[:10])
    if len(patients) > 10:
        listed += f" and {len(patients) - 10} more"
    return (f"graphs jdm-kg load made there: {guideline}, {len(patients)} patient graph(s)"
            + (f":{listed}" if patients else "") + " (without --graph, the query reads all of them)")


def _list_queries() -> int:
    """``jdm-kg query --list``: every bundled and example query with its description, parameters
    and, for one whose rows name treatment options, what it is (not a recommendation, or what it
    agrees with)."""
    wrap = textwrap.TextWrapper(width=100, initial_indent="  ", subsequent_indent="    ")
    catalogue = query_catalogue()
    sections = (
        ("Bundled queries: jdm-kg query NAME [--data FILE...] [--param name=value]",
         [q for q in catalogue if not q.name.startswith("examples/")]),
        ("Example queries, one or more for each main class of the vocabulary (shown on the vocabulary page of "
         "jdm-kg docs): jdm-kg query examples/NAME [--data FILE...]",
         [q for q in catalogue if q.name.startswith("examples/")]),
    )
    lines: list[str] = [guideline_line(), ""]  # the queries are this guideline's
    for title, queries in sections:
        lines += textwrap.wrap(title, 100) + [""]
        for q in queries:
            about = f" ({q.headers['class']})" if "class" in q.headers else ""
            lines.append(q.name + about)
            for key in ("description", "parameters", "data", "run", "not a recommendation", "agrees with"):
                if q.headers.get(key):
                    lines += wrap.wrap(f"{key.upper() if key == 'not a recommendation' else key}: {q.headers[key]}")
            lines.append("")
    print("\n".join(lines).rstrip())
    return EXIT_OK


def _param_notes(text: str, label: str, bindings: dict[str, Any]) -> list[str]:
    """A ``--param`` naming no variable of the query is an error (it would change nothing); a
    value that names no term of the guideline gets a note with the nearest terms (a misspelt
    IRI, or a bare word where a term was meant, matches nothing and gives no rows)."""
    variables = set(re.findall(r"[?$]([A-Za-z_][A-Za-z0-9_]*)", re.sub(r"(?m)#.*$", "", text)))
    for name in bindings:
        if name not in variables:
            near = difflib.get_close_matches(name, sorted(variables), n=3, cutoff=0.6)
            raise InputError("--param", f"?{name} is not a variable of {label}"
                             + (f" (did you mean {', '.join(near)}?)" if near else "")
                             + f"; its variables: {', '.join(sorted(variables)) or 'none'}")
    graph = load_guideline().graph
    prefixes = guideline_prefixes()
    terms = {str(t) for t in set(graph.subjects()) | set(graph.objects()) if isinstance(t, URIRef)}
    by_local: dict[str, str] = {}
    for iri in sorted(terms):
        for prefix, namespace in prefixes.items():
            if iri.startswith(namespace) and len(iri) > len(namespace):
                by_local.setdefault(iri[len(namespace):], f"{prefix}:{iri[len(namespace):]}")
    notes = []
    for name, value in bindings.items():
        if isinstance(value, URIRef) and str(value) not in terms and any(str(value).startswith(ns) for ns in prefixes.values()):
            near = difflib.get_close_matches(re.split(r"[#/]", str(value))[-1], sorted(by_local), n=3, cutoff=0.75)
            notes.append(f"--param {name}: <{value}> is not a term of the guideline"
                         + (f" (nearest: {', '.join(by_local[n] for n in near)})" if near else ""))
        elif isinstance(value, Literal) and str(value) in by_local:
            notes.append(f"--param {name}={value} is a plain string; for the term write {by_local[str(value)]}")
    return notes


def _cmd_query(args: argparse.Namespace) -> int:
    if args.list:
        return _list_queries()
    if not args.query:
        raise InputError("query", "name a bundled query (jdm-kg query --list) or a .rq file")
    text, label = query_source(args.query)
    own = args.query not in bundled_queries() | example_queries()
    # a query whose rows name options but are not a recommendation says so with its output
    caution = query_headers(text).get("not a recommendation")
    notice = f"NOT A RECOMMENDATION: {' '.join(caution.split())}" if caution else None
    bindings = dict(parse_param(p, {**guideline_prefixes(), **declared_in(text)}) for p in args.param)
    data_notes: list[str] = _param_notes(text, label, bindings)
    if args.endpoint:
        if args.data:
            raise InputError("--data", "with --endpoint the query runs on the server's data; load files there with "
                             "jdm-kg load")
        query = check_query(text, label, allow_service=args.allow_service, allow_dataset=True)
        endpoint = Endpoint(args.endpoint, timeout=args.timeout)
        try:
            named = [g[1:-1] if g.startswith("<") and g.endswith(">") else g for g in args.graph]  # as --param takes
            graphs = _query_graphs(endpoint, query, named)
            result = endpoint.select(text.rstrip() + "\n" + values_block(bindings), graphs)
        finally:
            endpoint.close()
    else:
        # the same answer, byte for byte, on every run: ties and unordered rows in the order of their
        # columns, blank nodes labelled from what the data says of them (not a parser's random labels)
        query = deterministic_rows(check_query(text, label, allow_service=args.allow_service), text)
        files = _expand(args.data)
        loaded = [load_patient_file(path) for path in files]
        data_notes += _what_data_holds(list(zip(files, loaded)))
        patients = stable_blank_nodes(t for graph in loaded for t in graph)
        data = Graph() if args.no_guideline else with_guideline(load_guideline())
        data += patients
        result = _local_answer(data, query, bindings, label, own)
    if own:  # a misspelt term matches nothing: said whatever the rows
        for term in unknown_terms(query, load_guideline().graph, () if args.endpoint else patients):
            data_notes.append(f"{label}: {term.note(namespace_manager(guideline_prefixes(), declared_in(text)))}")
    machine = args.format != "table" or result.type != "SELECT"  # Turtle, true/false, CSV, JSON: parseable stdout
    if args.endpoint:
        said = f"Guideline: the one on the server {args.endpoint} (graph <{GUIDELINE_GRAPH}>, put there by jdm-kg load)"
    else:
        said = "No guideline: only the --data files" if args.no_guideline else guideline_line()
    print(said, file=sys.stderr if machine else sys.stdout)
    for note in data_notes:
        _say(f"note: {note}")
    if notice and (args.format != "table" or result.type not in ("SELECT", "CONSTRUCT", "DESCRIBE")):
        print(f"note: {notice}", file=sys.stderr)  # stdout stays CSV, JSON or a bare answer
    if result.type in ("CONSTRUCT", "DESCRIBE"):
        if notice and args.format == "table":
            print(textwrap.indent(textwrap.fill(notice, 98), "# "))
        # the same Turtle on every run: blank nodes (a template's [] is a new one a row) labelled from the
        # data, triples added in order to a store that lists them in that order (rdflib's default store
        # lists them in a set's order), as the prefixes Turtle makes up are numbered in the order it meets them
        triples = stable_blank_nodes(result.graph)  # type: ignore[arg-type]
        graph = Graph(store="SimpleMemory")
        graph += sorted(triples, key=lambda triple: tuple(term.n3() for term in triple))
        print(graph.serialize(format="turtle"))
        return EXIT_OK
    if result.type == "ASK":
        print("true" if result.askAnswer else "false")
        return EXIT_OK
    names = [str(v) for v in result.vars or []]
    terms = [list(row) for row in result]  # type: ignore[union-attr]
    rows = [["" if v is None else str(v) for v in row] for row in terms]
    if args.format == "json":
        print(dumps_json([dict(zip(names, r)) for r in rows]))
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")  # not CSV's \r\n: stdout escapes control characters
        writer.writerow(names)
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
    else:
        if notice:  # above the table, and again below it: the last thing on the screen
            print(notice + "\n")
        cut = _print_table(names, terms, declared_in(text))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
        if cut:
            print("Values too wide to show end in …: --format csv or json gives them whole.")
        if notice:
            print(notice.split(":", 1)[0] + " (see the first line): `jdm-kg recommend` says which options a "
                  "patient is offered")
    return EXIT_OK


def _cmd_load(args: argparse.Namespace) -> int:
    endpoint = Endpoint(args.endpoint, args.update, timeout=args.timeout)
    try:
        return _load(args, endpoint)
    finally:
        endpoint.close()


def _load(args: argparse.Namespace, endpoint: Endpoint) -> int:
    if args.cleanup is not None:
        dropped = cleanup(endpoint, older_than=args.cleanup * 60)
        print(f"dropped {len(dropped)} temporary graph(s) left by runs started over {args.cleanup:g} minute(s) ago"
              + "".join(f"\n  <{name}>" for name in dropped))
        if not args.files and args.no_guideline:
            return EXIT_OK
    if not args.no_guideline:
        guideline = load_guideline()
        count = load_guideline_graph(endpoint, guideline)
        print(f"guideline {guideline.version}: {count} triples (compiled closure) -> graph <{GUIDELINE_GRAPH}>")
    if not args.files:
        return EXIT_OK
    return load_patient_files(endpoint, args.files, allow_invalid=args.allow_invalid, prune=args.prune, out=print,
                              err=_say)


def _choose_guideline(value: str | None) -> None:
    """``--guideline FOLDER``: this run's guideline, for this process and its workers."""
    if value is None:
        return
    path = Path(value)
    if not path.is_dir():
        raise InputError(value, "not a folder; give the folder holding the guideline's .ttl files (e.g. ontology/) "
                                "or a checkout holding ontology/")
    os.environ[GUIDELINE_ENV] = str(path.resolve())  # (main() puts the old value back when the run ends)
    folder = guideline_home().ontology  # FOLDER itself, or a checkout's ontology/: as every command reads it
    needed = sorted(p.name for p in installed_dir("ontology").glob("*.ttl"))
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise InputError(value, f"this guideline folder lacks {', '.join(missing)}: the guideline is the modules "
                                f"{', '.join(needed)} together; copy the whole ontology/ folder and edit the copy")


def guideline_line() -> str:
    """The first line of every command's output: which guideline (version, folder, why)."""
    home = guideline_home()
    try:
        version = load_guideline(home.ontology).version
    except InputError:  # a broken edit: `check` says what is wrong
        version = "(version unreadable: the files do not load)"
    return home.describe(version)


def _installed_mismatch() -> str | None:
    """A note when the checkout in use is another version of jdm-kg than the program running."""
    import tomllib

    root = guideline_home().root
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"] if root else {}
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version")
    if project.get("name") != "jdm-kg" or not version or version == __version__:
        return None
    return (f"this checkout is jdm-kg {version} but the program running is jdm-kg {__version__}: its Python may not "
            f"match the checkout's shapes and queries; run `pip install .` here")


#: Output formats read by programs: the guideline line goes to stderr so that stdout stays parseable.
_MACHINE_FORMATS = frozenset({"json", "jsonl", "turtle", "fhir", "csv", "none"})


def _announce(args: argparse.Namespace) -> None:
    if args.command in ("diff", "query"):  # diff names its two guidelines; query says it with its answer
        return
    fmt = getattr(args, "format", "text")
    if fmt == "markdown":  # a Markdown document: its title, then the guideline as its first paragraph
        title = "# jdm-kg: what would change the answer" if args.command == "whatif" else MARKDOWN_TITLE
        print(f"{title}\n\n{guideline_line()}\n")
    else:
        print(guideline_line(), file=sys.stderr if fmt in _MACHINE_FORMATS or args.command == "serve" else sys.stdout)
    note = _installed_mismatch()
    if note:
        _say(f"note: {note}")


def _cmd_check(args: argparse.Namespace) -> int:
    from jdm_kg.authoring.check import check_guideline

    problems = check_guideline(guideline_home().ontology)
    for problem in problems:
        print(problem)
    where = "the guideline"
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {where}.", file=sys.stderr)
        return EXIT_VIOLATIONS
    print(f"{where}: no problems found (syntax, OWL RL consistency, guideline shapes, quality-control queries, quotes, "
          "engine policies).")
    return EXIT_OK


def _cmd_fmt(args: argparse.Namespace) -> int:
    from jdm_kg.authoring.fmt import format_files

    paths: list[Path] = []
    home = guideline_home()
    if not args.files and home.origin == "installed":
        raise InputError("FILE", "you are not in a checkout, so there is no guideline of yours to format: give the "
                                 "Turtle files, run inside the checkout, or choose a folder with --guideline")
    for given in args.files or [str(home.ontology)]:
        path = Path(given)
        if path.is_dir():
            paths += sorted(path.glob("*.ttl"))
        elif path.is_file():
            paths.append(path)
        else:
            raise InputError(given, "no such file or folder")
    if not paths:
        raise InputError(" ".join(args.files or [str(home.ontology)]), "no .ttl files to format")
    changed = [r.path for r in format_files(paths, check=args.check) if r.changed]
    for path in changed:
        print(f"{path}: {'would be reformatted' if args.check else 'reformatted'}")
    if args.check and changed:
        print(f"{len(changed)} file(s) not in canonical layout: run `jdm-kg fmt` to fix.", file=sys.stderr)
        return EXIT_VIOLATIONS
    if not changed:
        print(f"{len(paths)} file(s) already in canonical layout.")
    return EXIT_OK


def _cmd_test(args: argparse.Namespace) -> int:
    from jdm_kg.authoring.vignettes import results_table, run_vignettes

    root = guideline_home().root
    bundled = root / "tests" / "vignettes" if root else None
    paths = args.vignettes or ([str(bundled)] if bundled and bundled.is_dir() else [])
    if not paths:
        raise InputError("VIGNETTES", "no vignette folder given and no tests/vignettes/ in a checkout here; give the "
                                      "folder or files")
    results = run_vignettes(paths, load_guideline())
    if args.format == "json":
        print(dumps_json([
            {"vignette": r.name, "description": r.label, "file": r.file, "passed": r.passed, "differences": r.differences}
            for r in results
        ]))
    else:
        print(results_table(results))
    return EXIT_OK if all(r.passed for r in results) else EXIT_VIOLATIONS


def _cmd_diff(args: argparse.Namespace) -> int:
    from jdm_kg.authoring.diff import default_patients, diff_guidelines
    from jdm_kg.authoring.vignettes import vignette_files

    examples, vignettes = default_patients()
    if args.patients is not None:
        for given in args.patients:  # a typo must not pass for "no one is affected"
            if not Path(given).exists():
                raise InputError(given, "no such file or folder (--patients takes patient files and folders of them)")
        examples = [Path(p) for p in _expand(args.patients)]
    if args.vignettes is not None:
        vignettes = vignette_files(args.vignettes)
    result = diff_guidelines(args.old, args.new, examples, vignettes)
    print(result.text())
    for error in result.errors:  # each file that could not be read (the others were compared)
        _say(f"error: {error}")
    return EXIT_ERROR if result.errors else EXIT_OK


def _cmd_docs(args: argparse.Namespace) -> int:
    from jdm_kg.outputs.docs import write_docs

    with _writing_into(Path(args.output)):
        pages = write_docs(load_guideline(), Path(args.output))
    print(f"Wrote {len(pages)} pages to {args.output}/ (open {pages[0]} in a browser).")
    return EXIT_OK


def _bump(date: str | None) -> list[Path]:
    """``--bump`` / ``jdm-kg bump``: the new version everywhere it lives; the files changed."""
    from datetime import date as today

    from jdm_kg.authoring.bump import bump
    from jdm_kg.authoring.release import release_version

    home = guideline_home()
    if home.origin == "installed":
        raise InputError("bump", "the installed copy cannot be bumped: run it in a checkout, or give --guideline")
    shapes = home.ontology.parent / "shapes"  # the shapes beside this guideline's modules, if any
    shapes = shapes if shapes.is_dir() else None
    done = bump(home.ontology, shapes, date or today.today().isoformat(), release_version(home.ontology))
    print(f"Bumped {done.old} -> {done.new} in {len(done.files)} files:")
    for path in done.files:
        print(f"  {path}")
    return list(done.files)


def _cmd_bump(args: argparse.Namespace) -> int:
    _bump(args.date)
    print("Commit the bump, then `jdm-kg release`.")
    return EXIT_OK


def _cmd_release(args: argparse.Namespace) -> int:
    from jdm_kg.authoring.release import ReleaseRefused, checkout_refusals, release_version, write_release

    home = guideline_home()
    allowed: list[Path] = []
    if args.bump is not None:
        # the checkout must be clean before the bump: the release then holds the last commit plus the bump
        folders = {"ontology": home.ontology, "shapes": home.folder("shapes"), "queries": home.folder("queries")}
        dirty = checkout_refusals(folders)
        if dirty and not args.allow_dirty:
            raise ReleaseRefused(release_version(home.ontology), dirty)
        allowed = _bump(args.bump or None)
    with _writing_into(Path(args.output)):
        release = write_release(Path(args.output), home.ontology, home.folder("shapes"), queries=home.folder("queries"),
                                allow_dirty=args.allow_dirty, allowed_changes=allowed)
    for path in release.files:
        print(path)
    if release.draft:
        print(f"Wrote a DRAFT of {release.version.removesuffix('-draft')} (not a release): {len(release.files)} files "
              f"in {release.folder}/, because:")
        for reason in release.draft_reasons:
            print(f"  - {reason}")
    else:
        print(f"Released {release.version}: {len(release.files)} files in {release.folder}/ "
              f"(content sha256:{release.digest[:12]}...).")
        if allowed:
            print(f"Commit the bump and tag the release: git commit -am 'Release {release.version}' && "
                  f"git tag {release.version}")
    return EXIT_OK


def _positive_width(value: str) -> int:
    try:
        width = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of columns") from None
    if width < 40:
        raise argparse.ArgumentTypeError(f"{width} columns is too narrow: give 40 or more")
    return width


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jdm-kg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jdm-kg {__version__}")
    guideline = argparse.ArgumentParser(add_help=False)
    guideline.add_argument(
        "--guideline", metavar="FOLDER",
        help=f"the guideline folder to use (its .ttl files, or a checkout holding ontology/); default: the "
             f"checkout you are in, else the installed copy (also ${GUIDELINE_ENV})")

    class _WithGuideline(_Parser):  # every command takes --guideline
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(parents=[*kwargs.pop("parents", []), guideline], **kwargs)

    sub = parser.add_subparsers(dest="command", required=True, parser_class=_WithGuideline)

    def predominant_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--predominant", action="append", metavar="FEATURE[,FEATURE]",
                       help="mark these manifestations predominant in every record of the run (e.g. SkinDisease or "
                            "'skin disease'); for EHR data, which cannot say which feature is predominant")

    def assume_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--assume", action="append", metavar="FACT=VALUE",
                       help="a hypothetical fact (repeatable): the result is marked HYPOTHETICAL and lists it; the "
                            "names and values are listed below")
        _names_in_help(p)

    def depth_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--depth", type=int, default=2, metavar="N",
                       help="what-if: changes of at most N facts (default 2, at most 4)")

    def batch_options(p: argparse.ArgumentParser, queries: bool = True) -> None:
        predominant_option(p)
        p.add_argument("--summary", action="store_true",
                       help="print a summary table at the end (to stderr with --format json/jsonl/turtle)")
        p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes; 0 = one per core (default 1)")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: on a terminal with several files)")
        if queries:
            engine_options(p)

    def engine_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--engine", choices=ENGINES, default="oxigraph",
                       help="what runs the SPARQL queries: oxigraph (embedded, fast; default) or rdflib; same results")
        endpoint_options(p)

    def endpoint_options(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument("--endpoint", metavar="URL", required=required,
                       help=("the SPARQL 1.1 server (query URL) to load into" if p.prog.endswith("load") else
                             "run the queries on this SPARQL 1.1 server (query URL) instead of the embedded engine"))
        p.add_argument("--update", metavar="URL", required=required and p.prog.endswith("load"),
                       help="the server's SPARQL Update URL, to load the patient data (and with load, the guideline)")
        p.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                       help="with --endpoint: how long to wait for each answer of the server (default 120)")

    p = sub.add_parser("validate", help="validate patient records against the SHACL shapes")
    p.add_argument("files", nargs="+", metavar="FILE", help="patient files (.ttl, .jsonld, .json, .nt) or folders")
    p.add_argument("--format", choices=["text", "json", "jsonl", "turtle"], default="text",
                   help="jsonl: one JSON object per file, as soon as it is done")
    p.add_argument("--summary-only", action="store_true", help="with --summary: do not print each file's report")
    batch_options(p, queries=False)  # validation runs pySHACL locally; no SPARQL engine to choose
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("recommend", help="validate, then recommend the next line of treatment")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=["text", "markdown", "json", "jsonl", "turtle", "fhir", "none"], default="text",
                   help="jsonl: one JSON object per patient, as soon as its file is done; fhir: a FHIR R4 Bundle "
                        "(GuidanceResponse, RequestGroup, MedicationRequest proposals, OperationOutcome); none: only "
                        "--summary")
    p.add_argument("--details", action="store_true",
                   help="text/markdown: every reason with its quote, source and evidence, the rationale, caveats, the "
                        "guideline's silences and the policies used, and under each option not offered or not first "
                        "its shortest what-if (without it the report fits one screen)")
    p.add_argument("--width", type=_positive_width, metavar="COLUMNS",
                   help="text: wrap at COLUMNS (default: the terminal's width; no wrapping into a file or a pipe)")
    assume_option(p)
    batch_options(p)
    p.set_defaults(func=_cmd_recommend)

    p = sub.add_parser("explain", help="why each option was or was not offered, with sources")
    p.add_argument("patient", metavar="PATIENT", help="patient file")
    p.add_argument("drug", metavar="DRUG", nargs="?", help="one drug or option (e.g. rituximab)")
    p.add_argument("--patient-id", help="the record to explain, when the file holds several")
    p.add_argument("--format", choices=["text", "json"], default="text")
    depth_option(p)
    predominant_option(p)
    engine_options(p)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser(
        "whatif", help="what would change the answer: per option, the smallest changes of the patient's facts",
        description="For each option (or the one named), the smallest sets of changes to the patient's facts that "
                    "would make it offered, rank first, ready to start (screening) or dosable; each found by assessing "
                    "the changed record again, never guessed. Only facts the guideline's conditions read are changed "
                    "(screening results, clearances, which feature predominates or is present, the outcome of an "
                    "ongoing course, current measurements); never an age or a failure that happened. A change that "
                    "needs a clinician's judgement is worded as one. Try a line with jdm-kg recommend FILE --assume "
                    "FACT=VALUE. Exit codes: 0 ok, 1 the record has violations, 2 unusable input or usage.")
    p.add_argument("patient", metavar="PATIENT", help="patient file")
    p.add_argument("option", metavar="OPTION", nargs="?", help="one option (e.g. rituximab)")
    p.add_argument("--patient-id", help="the record, when the file holds several")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    depth_option(p)
    assume_option(p)
    predominant_option(p)
    p.set_defaults(func=_cmd_whatif)

    p = sub.add_parser("query", help="run a SPARQL query (bundled name or file) with bound parameters")
    p.add_argument("query", metavar="QUERY", nargs="?",
                   help="a bundled query's name, an example's (examples/NAME) or a .rq file")
    p.add_argument("--list", action="store_true", help="list the bundled and example queries, with what each is")
    p.add_argument("--data", nargs="*", default=[], metavar="FILE", help="patient files to query with the guideline")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="bind ?NAME to VALUE")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--no-guideline", action="store_true", help="query only the --data files")
    p.add_argument("--allow-service", action="store_true", help="allow SERVICE clauses to contact remote endpoints")
    p.add_argument("--endpoint", metavar="URL", help="run the query on this SPARQL 1.1 server's data instead")
    p.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                   help="with --endpoint: how long to wait for the server's answer (default 120)")
    p.add_argument("--graph", action="append", default=[], metavar="IRI",
                   help=f"with --endpoint: a graph to query as the default graph (repeat; e.g. {GUIDELINE_GRAPH}, "
                        f"{PATIENT_GRAPH_PREFIX}<patient IRI>); each must be on the server. Default: the guideline "
                        "graph and every patient graph jdm-kg load made (said on stderr), unless the query names its "
                        "graphs itself (FROM, FROM NAMED, GRAPH)")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser(
        "load", help="load the compiled guideline and patient files into a SPARQL 1.1 server",
        description="Load the compiled guideline into graph <https://w3id.org/jdm-kg/guideline> and each patient "
                    "record into a graph of its own, urn:jdm-kg:patient:<the patient's IRI, percent-encoded except "
                    "letters, digits and -._~:/>. Loading a record again (an edited file) replaces its graph: one "
                    "copy per patient. Files are validated first, as jdm-kg validate does: a record with violations "
                    "is reported and not loaded (unless --allow-invalid). A patient needs an IRI (a blank node could "
                    "not be replaced); a patient in two files of one run is loaded from neither. Exit codes: 0 all "
                    "loaded and conforming, 1 violations found, 2 unusable input or server, 3 a bug in jdm-kg.")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="patient files or folders (each patient record into its own named graph)")
    endpoint_options(p, required=True)
    p.add_argument("--no-guideline", action="store_true", help="load only the patient files")
    p.add_argument("--allow-invalid", action="store_true",
                   help="also load records that have violations (still reported; exit code 1)")
    p.add_argument("--prune", action="store_true",
                   help="drop the graphs of patients that an earlier load took from these files and that no file of "
                        "this run holds now (without it they are kept, with a note)")
    p.add_argument("--cleanup", type=float, nargs="?", const=60, metavar="MINUTES",
                   help="first drop the temporary graphs (urn:jdm-kg:run:*, urn:jdm-kg:staging:*) that runs started "
                        "over MINUTES ago left on the server (default 60; 0: all); with --no-guideline and no files, only that")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("check", help="check the guideline graph: syntax, consistency, shapes, QC queries, quotes, policies")
    p.add_argument("folder", metavar="FOLDER", nargs="?", help="guideline folder (the same as --guideline FOLDER)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("fmt", help="rewrite Turtle files in the canonical layout (graph unchanged)")
    p.add_argument("files", nargs="*", metavar="FILE", help="Turtle files or folders (default: the guideline folder)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.set_defaults(func=_cmd_fmt)

    p = sub.add_parser("test", help="run the guideline vignettes (patients with expected outcomes)")
    p.add_argument("vignettes", nargs="*", metavar="VIGNETTE", help="vignette files or folders (default: tests/vignettes/)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser(
        "diff", help="what changed between two guideline versions, and for which patients",
        description="What changed between two guideline versions, in clinical terms, and for which patients: each "
                    "patient file and vignette is run under both, and every difference in what its report says of "
                    "an option is listed (status, section, rank and standing words, the policies behind them, the "
                    "one-line reason, doses with route and schedule, safety gates), and whether the guideline "
                    "applies. Exit 2 if a patient file could not be read (it is named; the others are compared).")
    p.add_argument("old", metavar="OLD", help="folder, replacement .ttl file, or git revision (e.g. HEAD)")
    p.add_argument("new", metavar="NEW", help="folder, replacement .ttl file, or git revision")
    p.add_argument("--patients", nargs="*", metavar="FILE",
                   help="patient files or folders, in any format recommend reads (Turtle, N-Triples, JSON-LD, FHIR "
                        "JSON); default: examples/ and examples/fhir/; a path that does not exist is an error")
    p.add_argument("--vignettes", nargs="*", metavar="FILE", help="vignettes to compare (default: tests/vignettes/)")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("serve", help="HTTP service: CDS Hooks, REST API, read-only SPARQL endpoint, web page")
    from jdm_kg.service.serve import add_arguments

    add_arguments(p)
    endpoint_options(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("docs", help="write a static HTML site of the guideline")
    p.add_argument("-o", "--output", default="site", metavar="FOLDER", help="output folder (default: site/)")
    p.set_defaults(func=_cmd_docs)

    p = sub.add_parser("release", help="write a dated release: merged OWL/Turtle, vocabulary, shapes, SSSOM, "
                                       "FHIR CPG package, notes")
    p.add_argument("-o", "--output", default="release", metavar="DIR", help="writes into DIR/vYYYY-MM-DD/ (default: release/)")
    p.add_argument("--bump", nargs="?", const="", default=None, metavar="DATE",
                   help="first set the new version vDATE (default: today) everywhere it lives, as `jdm-kg bump`")
    p.add_argument("--allow-dirty", action="store_true",
                   help="write a draft (DIR/vYYYY-MM-DD-draft/, marked as such) where a release would be refused")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("bump", help="set a new guideline version (vYYYY-MM-DD) everywhere it lives")
    p.add_argument("date", nargs="?", default=None, metavar="DATE", help="YYYY-MM-DD (default: today)")
    p.set_defaults(func=_cmd_bump)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived: stop now (worker processes included); exit 143 (128 + SIGTERM)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    block_network(allow=getattr(args, "allow_service", False))
    previous_sigterm = _handle_sigterm()
    stdout = sys.stdout
    sys.stdout = _Escaping(stdout)  # type: ignore[assignment]
    chosen = os.environ.get(GUIDELINE_ENV)
    try:
        _choose_guideline(getattr(args, "folder", None) or args.guideline)
        _announce(args)
        with captured_messages() as notes:  # what the libraries warn about outside a file's processing
            code = int(args.func(args))
        for note in notes:
            _say(f"note: {note}")
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except OutputError as err:
        _say(f"error: {err}")
        _quiet_stdout()
        return EXIT_ERROR
    except (InputError, NetworkBlocked) as err:
        _say(f"error: {err}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return EXIT_TERMINATED
    except BrokenPipeError:  # output piped into head, less...: stop quietly; the code says it was cut
        _quiet_stdout()
        return EXIT_OUTPUT_CLOSED
    except Exception as err:  # a bug: one line saying so, never a bare traceback
        _say(f"error: {internal_error('jdm-kg ' + args.command, 'running', err)}")
        return EXIT_INTERNAL
    finally:
        sys.stdout = stdout
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if chosen is None:  # --guideline holds for this run only (main() may be called again in-process)
            os.environ.pop(GUIDELINE_ENV, None)
        else:
            os.environ[GUIDELINE_ENV] = chosen


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
