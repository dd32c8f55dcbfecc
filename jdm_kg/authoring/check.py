"""``jdm-kg check``: is the guideline graph well-formed, complete and consistent?

Five kinds of check, all driven by data an author can read:

1. every Turtle file parses (the parser's line number is reported);
2. the OWL RL closure is consistent (owlrl's error messages);
3. the SHACL shapes in ``shapes/guideline/`` hold (statements have quotes, sources and
   evidence; regimens have amounts or an explicit gap, UCUM units, basis, route, interval;
   drugs have a class and codes; sources have a citation);
4. the quality-control queries in ``queries/qc/`` return no rows (dangling IRIs, duplicate
   labels, contradictions, unused sources, malformed codes, missing labels); and every
   statement's quote is found verbatim in the guideline text;
5. every jdm-kg policy and setting ``recommend`` needs is there (the engine's own list:
   ``POLICY_IRIS`` and ``POLICY_SETTINGS`` in ``jdm_kg/reasoning/recommend.py``), and every
   whole-number policy setting is a positive whole number.

Each problem is one line: ``file:line: rule: term: what is wrong. Fix: what to do.``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyshacl import validate as shacl_validate
from rdflib import RDF, RDFS, SH, XSD, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.loading import load_rdf_file
from jdm_kg.knowledge.guideline import JDM, Guideline, cached_compile, guideline_files
from jdm_kg.knowledge.queries import check_query, query_headers
from jdm_kg.reasoning.recommend import POLICY_BANDS, POLICY_IRIS, POLICY_SETTINGS
from jdm_kg.resources import resource_dir

__all__ = ["Problem", "QcRule", "qc_rules", "check_guideline", "SourceIndex"]


@dataclass(frozen=True)
class Problem:
    """One problem found in the guideline, located where possible."""

    rule: str
    message: str
    fix: str = ""
    entity: str = ""
    file: str = ""
    line: int | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "guideline")
        what = f"{self.entity}: " if self.entity else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}: {self.severity} [{self.rule}] {what}{self.message}.{fix}"


@dataclass(frozen=True)
class QcRule:
    """A quality-control query: ``queries/qc/NAME.rq``, which must return no rows."""

    name: str
    path: Path
    description: str
    fix: str
    graph: str  # "asserted" (as written) or "compiled" (after OWL RL and the rules)


def qc_rules() -> tuple[QcRule, ...]:
    """The quality-control queries (``queries/qc/`` of this run's checkout or installed copy), in name order."""
    return _qc_rules(resource_dir("queries") / "qc")


@cache
def _qc_rules(folder: Path) -> tuple[QcRule, ...]:
    rules = []
    for path in sorted(folder.glob("*.rq")):
        headers = query_headers(path.read_text(encoding="utf-8"))
        rules.append(QcRule(path.stem, path, headers.get("description", ""), headers.get("fix", ""),
                            headers.get("graph") or "asserted"))
    return tuple(rules)


class SourceIndex:
    """Find the file and line where a term is defined (or first used) in the Turtle sources."""

    _PREFIX = re.compile(r"^\s*(?:@prefix|PREFIX)\s+([A-Za-z][\w.-]*)?:\s*<([^>]*)>", re.IGNORECASE)

    def __init__(self, files: list[Path]) -> None:
        self._files: list[tuple[Path, list[str], dict[str, str]]] = []
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            prefixes = {m.group(2): m.group(1) or "" for m in map(self._PREFIX.match, lines) if m}
            self._files.append((path, lines, prefixes))

    def _names(self, iri: str, prefixes: dict[str, str]) -> list[str]:
        names = [f"<{iri}>"]
        for namespace, prefix in prefixes.items():
            local = iri[len(namespace) :]
            if iri.startswith(namespace) and local and re.fullmatch(r"[\w.-]+", local):
                names.append(f"{prefix}:{local}")
        return names

    def locate(self, iri: str) -> tuple[str, int] | tuple[str, None]:
        """(file, line) of the term's definition, else of its first use, else ('', None)."""
        first_use: tuple[str, int] | None = None
        for path, lines, prefixes in self._files:
            patterns = [re.compile(rf"(?<![\w:]){re.escape(n)}(?![\w:-])") for n in self._names(iri, prefixes)]
            statement_start = True  # the next token is a subject (start of file, or after a '.')
            for number, line in enumerate(lines, 1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                for pattern in patterns:
                    found = pattern.search(line)
                    if found and statement_start and not line[: found.start()].strip():
                        return str(path), number
                    if found and first_use is None:
                        first_use = (str(path), number)
                statement_start = text.endswith(".") and not text.endswith('."""')
        return first_use or ("", None)

    def short(self, iri: str) -> str:
        for _, _, prefixes in self._files:
            names = self._names(iri, prefixes)
            if len(names) > 1:
                return names[-1]
        return f"<{iri}>"


def _display_path(path: str) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


class _Checker:
    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.index = SourceIndex(files)
        self.problems: list[Problem] = []
        self.asserted = Graph()  # every file, parsed once by syntax()

    def add(self, rule: str, node: Node | None, message: str, fix: str = "", where: Node | None = None) -> None:
        entity, file, line = "", "", None
        if isinstance(node, URIRef):
            entity = self.index.short(str(node))
        target = where if isinstance(where, URIRef) else node
        if isinstance(target, URIRef):
            file, line = self.index.locate(str(target))
        self.problems.append(Problem(rule, message.rstrip("."), fix.rstrip("."), entity, _display_path(file), line))

    def syntax(self) -> bool:
        for path in self.files:
            try:
                self.asserted += load_rdf_file(path)
            except InputError as err:
                self.problems.append(
                    Problem(
                        "syntax", err.problem.rstrip("."), "correct the Turtle at that line", "", _display_path(str(path)), err.line
                    )
                )
        return not self.problems

    def consistency(self, guideline: Guideline) -> None:
        for message in guideline.inconsistencies:
            named = re.findall(r"https://w3id\.org/jdm-kg/guideline/[\w.-]+", message)
            where = URIRef(named[-1]) if named else None  # the individual owlrl names, usually last
            self.add("consistency", where, " ".join(message.split()), "read the axioms named and remove the contradiction")

    def shapes(self, guideline: Guideline) -> None:
        shapes = Graph()
        for path in sorted(resource_dir("shapes").joinpath("guideline").glob("*.ttl")):
            shapes += load_rdf_file(path)
        _, results, _ = shacl_validate(guideline.graph, shacl_graph=shapes, inference="none", advanced=True)
        rows = set()
        for result in results.subjects(RDF.type, SH.ValidationResult):
            focus = results.value(result, SH.focusNode)
            message = str(results.value(result, SH.resultMessage) or "does not conform to its shape")
            rows.add((focus, message))
        for focus, message in sorted(rows, key=lambda r: (str(r[0]), r[1])):
            text, _, fix = message.partition(": ")
            if str(focus) in message:  # SPARQL constraint messages start with the focus node itself
                text, _, fix = message.split(": ", 1)[1].partition(": ")
            self.add("shape", focus, text, fix)

    def qc(self, guideline: Guideline) -> None:
        for rule in qc_rules():
            query = check_query(rule.path.read_text(encoding="utf-8"), str(rule.path))
            graph = guideline.graph if rule.graph == "compiled" else guideline.asserted
            for row in graph.query(query):
                values = row.asdict()  # type: ignore[union-attr]
                self.add(f"qc:{rule.name}", values.get("entity"), str(values.get("detail", rule.description)), rule.fix,
                         values.get("where"))

    def quotes(self, guideline: Guideline) -> None:
        """Every quote is whole words of the guideline text, word for word (any run of spaces and
        line breaks counts as one space), and at least QUOTE_MIN_WORDS words long."""
        texts = sorted(self.files[0].parent.glob("*.txt")) if self.files else []
        if not texts:
            return
        source = "\n".join(p.read_text(encoding="utf-8") for p in texts)
        flat = " ".join(source.split())
        for statement, quote in sorted(guideline.asserted.subject_objects(JDM.quote)):
            words = str(quote).split()
            if not words or not _whole_words(words).search(source):
                inside = bool(words) and " ".join(words) in flat  # found, but cut inside a word
                self.add(
                    "quote", statement,
                    "the jdm:quote starts or ends inside a word of the guideline text" if inside
                    else "the jdm:quote is not found verbatim in the guideline text",
                    f"copy the sentence exactly, in whole words, from {texts[0].name}",
                )
            elif len(words) < QUOTE_MIN_WORDS:
                self.add(
                    "quote", statement,
                    f"the jdm:quote is {len(words)} word{'s' if len(words) != 1 else ''}: too short to show which "
                    "sentence of the guideline the statement comes from",
                    f"quote the whole sentence or list item (at least {QUOTE_MIN_WORDS} words) from {texts[0].name}",
                )

    def policies(self, guideline: Guideline) -> None:
        """What ``recommend`` needs from the jdm:Policy nodes: each policy it applies and each setting
        it reads (its own lists), and whole-number settings above 0."""
        graph = guideline.graph
        policies = set(graph.subjects(RDF.type, JDM.Policy))
        anchor = min(policies, key=str) if policies else None  # where the other policies are written
        for iri in POLICY_IRIS:
            # (a policy without its label or definition is the policy shape's to report)
            if iri in policies and (iri, None, None) in guideline.asserted:
                continue
            if (iri, None, None) in guideline.asserted:
                self.add("policy", iri, "is not typed jdm:Policy, and recommend needs this policy (it stops with an "
                         "error without it)", "add 'a jdm:Policy' to it")
            else:
                used = self.index.locate(str(iri))[1] is not None
                self.add("policy", iri, "the jdm:Policy that recommend needs is missing (recommend stops with an "
                         "error without it)", "restore the node in ontology/guideline.ttl: a jdm:Policy with its "
                         "rdfs:label, skos:definition and settings (git diff shows what was deleted)",
                         where=iri if used else anchor)
        for key, owner in POLICY_SETTINGS.items():
            values = sorted({value for policy in policies for value in graph.objects(policy, JDM[key])}, key=str)
            if not values and owner in policies:
                self.add("policy", owner, f"has no jdm:{key}, which recommend needs (it stops with an error without it)",
                         f"add jdm:{key} and a whole number above 0 (git diff shows the value that was deleted)")
            elif len(values) > 1:
                self.add("policy", owner, f"jdm:{key} is given {len(values)} times ("
                         + ", ".join(_n3(v) for v in values) + "): recommend would use one of them, unpredictably",
                         f"keep one jdm:{key} on one jdm:Policy")
        # whole-number settings: those recommend reads, and every jdm:Policy property with range xsd:integer
        integers = {JDM[key] for key in POLICY_SETTINGS}
        integers |= {p for p in graph.subjects(RDFS.range, XSD.integer) if (p, RDFS.domain, JDM.Policy) in graph}
        for prop in sorted(integers, key=str):
            for policy in sorted(policies, key=str):
                for value in graph.objects(policy, prop):
                    if not _positive_integer(value):
                        self.add("policy", policy, f"{self.index.short(str(prop))} {_n3(value)} is not a positive "
                                 "whole number", "write a whole number above 0, with no quotes and no decimal point")
        if not any((band, JDM.bandIsDefault, Literal(True)) in graph for band in graph.subjects(RDF.type, JDM.RankingBand)):
            self.add("policy", POLICY_BANDS, "no jdm:RankingBand is the default (jdm:bandIsDefault true): recommend "
                     "stops with an error without one", "give the band for options no sentence ties to a feature "
                     "jdm:bandIsDefault true")


#: The fewest words a jdm:quote may have (the shortest quote of the bundled guideline has 4:
#: "Monitor for infusion reactions").
QUOTE_MIN_WORDS = 3


def _whole_words(words: list[str]) -> re.Pattern[str]:
    """The words in order, any whitespace between them, not starting or ending inside a word."""
    pattern = r"\s+".join(map(re.escape, words))
    if re.match(r"\w", words[0]):
        pattern = r"(?<!\w)" + pattern
    if re.search(r"\w$", words[-1]):
        pattern += r"(?!\w)"
    return re.compile(pattern)


_INTEGER_TYPES = {XSD.integer, XSD.int, XSD.long, XSD.short, XSD.byte, XSD.positiveInteger, XSD.nonNegativeInteger,
                  XSD.unsignedInt, XSD.unsignedLong, XSD.unsignedShort, XSD.unsignedByte}


def _positive_integer(value: Node) -> bool:
    return (isinstance(value, Literal) and value.datatype in _INTEGER_TYPES and isinstance(value.value, int)
            and not isinstance(value.value, bool) and value.value > 0)


def _n3(value: Node) -> str:
    """A value as written in Turtle: 365, "365", -1, 365.0."""
    if isinstance(value, Literal) and value.datatype in _INTEGER_TYPES | {XSD.decimal} and value.value is not None:
        return str(value)
    return f'"{value}"' if isinstance(value, Literal) else str(value)


def check_guideline(directory: Path | None = None) -> list[Problem]:
    """Run every check on the guideline in ``directory`` (default: the bundled ``ontology/``)."""
    checker = _Checker(guideline_files(directory))
    if not checker.syntax():
        return checker.problems
    # through the on-disk cache: the command's first line (its version) has just compiled it
    guideline = cached_compile(checker.files, checker.asserted)
    checker.consistency(guideline)
    checker.shapes(guideline)
    checker.qc(guideline)
    checker.quotes(guideline)
    checker.policies(guideline)
    return checker.problems
