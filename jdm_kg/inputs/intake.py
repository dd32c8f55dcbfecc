"""What every patient file goes through after it is parsed, whatever its format (Turtle,
JSON-LD, FHIR): names read against the guideline graph's labels, drugs outside the guideline
kept as other medications, misspellings caught, the predominant feature settled, and nothing
dropped without a message.

- :class:`TermIndex`: the names of the guideline's terms (``queries/term-labels.rq``: labels,
  preferred and alternative labels, from the graph), matched case, spacing and punctuation
  insensitively, with "did you mean" suggestions (:mod:`difflib`).
- :func:`review_patient_graph`: for each record, a treatment of a drug the graph does not know
  keeps its name (``jdm:drugText``; validation warns, never blocks), a near-miss of a known
  drug ("tofacitnib") is a violation with "did you mean tofacitinib?", the only manifestation
  recorded is taken as predominant (said in a note), and the run's ``--predominant`` features
  are marked.
- :func:`review_jsonld_document`: before rdflib reads a JSON-LD record that uses the bundled
  context, every key and every term value is checked against the context and the graph: names
  become terms ("inadequate response" -> InadequateResponse), an unknown drug name becomes
  ``drugText``, and anything else that maps to nothing is a violation naming the key, the value
  and the nearest known term (JSON-LD would otherwise drop it without a word).

Problems found here are written into the record itself (``jdm:inputIssue`` on the entry, a
violation; ``jdm:importNote`` on the patient, a warning), so that validation reports them with
the record, the field and the entry, in every output format.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from rdflib import OWL, RDF, RDFS, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.guideline_source import default_guideline, guideline_rows
from jdm_kg.namespaces import JDM, JDMG

if TYPE_CHECKING:
    from jdm_kg.knowledge.guideline import Guideline

#: The label of jdmg:policy-sole-manifestation-predominant (ontology/guideline.ttl; a test
#: checks that they agree).
SOLE_MANIFESTATION_POLICY = "a sole manifestation is the predominant one"
SOLE_MANIFESTATION_POLICY_IRI = JDMG["policy-sole-manifestation-predominant"]

__all__ = ["TermIndex", "term_index", "review_patient_graph", "review_jsonld_document", "normalise",
           "resolve_features", "describe_episode", "describe_screening", "add_issue"]


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalise(text: str) -> str:
    """Lower case, punctuation and spacing folded: ``"Interstitial-Lung  Disease"`` ->
    ``"interstitial lung disease"``; a term name is split at its capitals
    (``InadequateResponse`` -> ``"inadequate response"``)."""
    text = _CAMEL.sub(" ", str(text)) if " " not in str(text) else str(text)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _local(iri: str) -> str:
    return re.split(r"[#/]", iri)[-1]


@dataclass(frozen=True)
class Term:
    iri: str
    label: str
    kind: str
    local: str


class TermIndex:
    """The guideline's terms by kind and by normalised name (labels, alternative labels, and
    the term's own name), from the graph."""

    def __init__(self, guideline: Guideline) -> None:
        self.terms: dict[str, Term] = {}
        self.names: dict[tuple[str, str], set[str]] = {}  # (kind, normalised name) -> term IRIs
        self.kinds: dict[str, set[str]] = {}  # term IRI -> its kinds
        self.hidden: set[tuple[str, str]] = set()  # (kind, normalised name) only ever a hidden label
        shown: set[tuple[str, str]] = set()
        self.property_iris = frozenset(  # the model's properties: what a record's fields may be
            p for kind in (OWL.ObjectProperty, OWL.DatatypeProperty, OWL.AnnotationProperty, RDF.Property)
            for p in guideline.graph.subjects(RDF.type, kind) if str(p).startswith(str(JDM)))
        self.code_systems = sorted(  # (IRI prefix, label) of the standard code systems, longest prefix first
            ((str(prefix), str(guideline.graph.value(system, RDFS.label) or prefix))
             for system, prefix in guideline.graph.subject_objects(JDM.iriPrefix)
             if str(prefix) not in (str(JDM), str(JDMG))), key=lambda s: -len(s[0]))
        for row in guideline_rows(guideline, "term-labels"):
            iri, kind = str(row["concept"]), str(row["kind"])
            term = self.terms.setdefault(iri, Term(iri, str(row["conceptLabel"]), kind, _local(iri)))
            self.kinds.setdefault(iri, set()).add(kind)
            for name in (str(row["name"]), term.local):
                # a name with capitals inside a word (a brand: MabThera, RoActemra) is indexed split at
                # them and whole, for it is written both ways ("MabThera", "MABTHERA 500 MG")
                for key in {normalise(name), " ".join(re.sub(r"[^0-9a-z]+", " ", name.lower()).split())}:
                    if key:
                        self.names.setdefault((kind, key), set()).add(iri)
            hidden = row.get("hidden")
            key = (kind, normalise(str(row["name"])))
            if hidden is not None and bool(hidden.toPython()):
                self.hidden.add(key)
            else:
                shown.add((kind, normalise(str(row["name"]))))
                shown.add((kind, normalise(term.local)))
        self.hidden -= shown
        # the guideline's classes (a drug IRI naming one names no drug), with the drugs of each
        graph = guideline.graph
        self.classes: dict[str, str] = {
            str(c): str(graph.value(c, RDFS.label) or _local(str(c)))
            for kind in (OWL.Class, RDFS.Class) for c in graph.subjects(RDF.type, kind) if isinstance(c, URIRef)}
        self.members: dict[str, list[str]] = {}
        for iri, term in sorted(self.terms.items(), key=lambda item: item[1].label):
            if DRUG[0] in self.kinds[iri]:
                for cls in graph.objects(URIRef(iri), RDF.type):
                    self.members.setdefault(str(cls), []).append(term.local)

    def code_name(self, iri: str) -> str | None:
        """``SNOMED CT 999999999`` for an IRI under a standard code system's IRI prefix, else None."""
        for prefix, label in self.code_systems:
            if iri.startswith(prefix) and len(iri) > len(prefix):
                return f"{label} {iri[len(prefix):]}"
        return None

    def name_of(self, iri: str) -> str:
        """A term's name as a record's reader knows it: a code with its system (``RxNorm 999999``,
        ``SNOMED CT 999999999``), else the IRI's last part (``anakinra``)."""
        return self.code_name(iri) or _local(iri)

    def is_a(self, iri: str, kind: str) -> bool:
        return kind in self.kinds.get(iri, ())

    def named(self, text: str, kinds: tuple[str, ...]) -> Term | None:
        """The one term of ``kinds`` whose name is ``text`` (normalised), or None."""
        found = {i for k in kinds for i in self.names.get((k, normalise(text)), ())}
        return self.terms[found.pop()] if len(found) == 1 else None

    def mentioned(self, text: str, kinds: tuple[str, ...]) -> list[Term]:
        """The terms of ``kinds`` one of whose names appears, as whole words, in ``text``
        (``"Xeljanz 5 mg tablet"`` mentions tofacitinib). A name found only inside a longer name
        that is also found does not count: "secondary failure" is loss of response, not also the
        "failure" of inadequate response."""
        padded = f" {normalise(text)} "
        hits = [(name, iris) for (k, name), iris in self.names.items() if k in kinds and f" {name} " in padded]
        kept = [iris for name, iris in hits if not any(other != name and f" {name} " in f" {other} " for other, _ in hits)]
        found = {i for iris in kept for i in iris}
        return sorted((self.terms[i] for i in found), key=lambda t: t.label)

    def read(self, text: str, kinds: tuple[str, ...], in_words: bool) -> tuple[Term | None, bool]:
        """The one term of ``kinds`` that ``text`` names: by a whole name, else (``in_words``)
        the one term named among its words ("Olumiant 4 mg tablet", "stopped: lack of
        efficacy"); and whether a reader should be told (the term was found among other words, or by a
        hidden label: an interpretation, not one of its names)."""
        term = self.named(text, kinds)
        if term is not None:
            return term, self.is_hidden(text, kinds)
        found = self.mentioned(text, kinds) if in_words else []
        return (found[0], True) if len(found) == 1 else (None, False)

    def is_hidden(self, text: str, kinds: tuple[str, ...]) -> bool:
        """Whether ``text`` names a term only by a hidden label (a skin sign for skin disease, a
        stop-reason phrase): reading it so is an interpretation a reader should be told of."""
        return any((k, normalise(text)) in self.hidden for k in kinds)

    def _names_of(self, kinds: tuple[str, ...]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for (k, name), iris in self.names.items():
            if k in kinds:
                out.setdefault(name, set()).update(iris)
        return out

    def nearest(self, text: str, kinds: tuple[str, ...], n: int = 3) -> list[Term]:
        """Up to ``n`` terms of ``kinds`` whose names are closest to ``text`` (difflib)."""
        names = self._names_of(kinds)
        out: list[Term] = []
        for name in difflib.get_close_matches(normalise(text), list(names), n=10, cutoff=0.0):
            for iri in sorted(names[name]):
                if self.terms[iri] not in out:
                    out.append(self.terms[iri])
        return out[:n]

    def near_miss(self, text: str, kinds: tuple[str, ...]) -> Term | None:
        """A known term that ``text`` (or one of its words) is a misspelling of: a name of
        five letters or more, at least 85% alike (``tofacitnib`` -> tofacitinib), not equal."""
        names = {n: i for n, i in self._names_of(kinds).items() if len(n) >= 5}
        words = normalise(text).split()
        for candidate in [normalise(text)] + [w for w in words if len(w) >= 5]:
            if candidate in names:
                continue
            close = difflib.get_close_matches(candidate, list(names), n=1, cutoff=0.85)
            if close and len(names[close[0]]) == 1:
                return self.terms[next(iter(names[close[0]]))]
        return None

    def suggestion(self, text: str, kinds: tuple[str, ...]) -> str:
        """``"nearest: intolerance or adverse event (Intolerance), ..."``"""
        near = self.nearest(text, kinds)
        return "nearest: " + ", ".join(f"{t.label} ({t.local})" for t in near) if near else "no known term is close"


@cache
def term_index(guideline: Guideline) -> TermIndex:
    return TermIndex(guideline)


def _kind(name: str) -> str:
    return str(JDM[name])


DRUG = (_kind("Drug"),)
MANIFESTATION = (_kind("Manifestation"),)
OUTCOME = (_kind("TreatmentOutcome"),)


def add_issue(graph: Graph, node: Node, path: URIRef, value: str | None, text: str, *, note: bool = False) -> None:
    """Record a problem (a violation when validated) on the entry ``node``; with ``note``, a
    note (``jdm:inputNote``: a warning, never blocking)."""
    issue = BNode()
    graph.add((node, JDM.inputNote if note else JDM.inputIssue, issue))
    graph.add((issue, JDM.issuePath, path))
    graph.add((issue, JDM.issueText, Literal(text)))
    if value is not None:
        graph.add((issue, JDM.issueValue, Literal(value)))


def describe_episode(graph: Graph, episode: Node, number: int | None = None) -> str:
    """``"treatment 2 (prednisolone, from 2025-09-01)"``"""
    name = graph.value(episode, JDM.drugText)
    drug = graph.value(episode, JDM.drug)
    if name is None and drug is not None:
        name = _local(str(drug))
    start = graph.value(episode, JDM.startDate)
    bits = [str(name) if name is not None else "drug not given"] + ([f"from {start}"] if start is not None else [])
    return f"treatment{f' {number}' if number else ''} ({', '.join(bits)})"


def describe_screening(graph: Graph, screening: Node, number: int | None = None) -> str:
    """``"screening 1 (HBsAgTest, 2026-10-01)"``: the test (else the condition) and the date."""
    test = graph.value(screening, JDM.screeningTest) or graph.value(screening, JDM.screenedFor)
    when = graph.value(screening, JDM.date)
    bits = [_local(str(test)) if test is not None else "condition not given"] + ([str(when)] if when is not None else [])
    return f"screening{f' {number}' if number else ''} ({', '.join(bits)})"


def resolve_features(names: list[str] | tuple[str, ...], guideline: Guideline | None = None) -> tuple[URIRef, ...]:
    """The manifestations named (by term name or label) for ``--predominant``; an unknown name
    is an :class:`InputError` with the nearest ones."""
    index = term_index(guideline or default_guideline())
    out = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        iri = str(JDMG) + name
        term = index.terms.get(iri) if index.is_a(iri, MANIFESTATION[0]) else None
        term = term or index.named(name, MANIFESTATION)
        if term is None:
            raise InputError("--predominant", f"{name!r} is not a manifestation the guideline knows; "
                             f"{index.suggestion(name, MANIFESTATION)}")
        out.append(URIRef(term.iri))
    return tuple(out)


def review_patient_graph(graph: Graph, guideline: Guideline | None = None,
                         predominant: tuple[URIRef, ...] = ()) -> Graph:
    """Settle, in place, what every format needs the same way (see the module text); returns ``graph``."""
    index = term_index(guideline or default_guideline())
    _review_fields(graph, index)
    for patient in list(graph.subjects(RDF.type, JDM.Patient)):
        for episode in list(graph.objects(patient, JDM.treatmentEpisode)):
            _review_episode(graph, index, episode)
        _review_predominant(graph, index, patient, predominant)
    return graph


@cache
def _record_fields() -> list[str]:
    """The fields of a patient record (the properties the bundled JSON-LD context names)."""
    from jdm_kg.inputs.jsonld_context import bundled_context

    return sorted({str(v["@id"] if isinstance(v, dict) else v).split(":", 1)[-1]
                   for k, v in bundled_context().items() if not k.startswith("@") and str(
                       v["@id"] if isinstance(v, dict) else v).startswith("jdm:") and k[0].islower()})


def _review_fields(graph: Graph, index: TermIndex) -> None:
    """A field in jdm-kg's namespace that the model does not have (``jdm:bodyWeigth``): taken
    out and reported, on the entry it was on, with its value and the nearest record field (as
    JSON-LD keys are, before parsing). One pass over the file's predicates."""
    namespace = str(JDM)
    unknown = {p for p in set(graph.predicates()) if str(p).startswith(namespace) and p not in index.property_iris}
    for p in unknown:
        name = str(p)[len(namespace):]
        near = difflib.get_close_matches(name, _record_fields(), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else "no known field is close"
        for node, o in list(graph.subject_objects(p)):
            shown = str(o) if isinstance(o, Literal) else (_local(str(o)) if isinstance(o, URIRef) else "[...]")
            graph.remove((node, p, o))
            add_issue(graph, node, URIRef(str(p)), None,
                      f"{name!r} is not a field of a jdm-kg record ({hint}); check its spelling against the patient "
                      f"vocabulary (docs/inputs.md); its value {shown} is not used.")


def _review_episode(graph: Graph, index: TermIndex, episode: Node) -> None:
    if isinstance(episode, Literal):
        return  # a plain value: the shapes say what an episode must be
    drug = graph.value(episode, JDM.drug)
    text = graph.value(episode, JDM.drugText)
    if isinstance(drug, Literal):  # a name where an IRI belongs: read it as one
        graph.remove((episode, JDM.drug, drug))
        if text is None:
            text = Literal(str(drug))
            graph.add((episode, JDM.drugText, text))
        drug = None
    _review_outcome(graph, index, episode)
    if isinstance(drug, URIRef) and not index.is_a(str(drug), DRUG[0]):
        name = index.name_of(str(drug))
        named = index.named(_local(str(drug)), DRUG)
        if named is not None and normalise(named.local) != normalise(_local(str(drug))):
            # a brand name as an IRI (jdmg:Xeljanz): read as its drug; the drug's own name in
            # another case (jdmg:Tofacitinib) is a mistake said below ("did you mean")
            graph.set((episode, JDM.drug, URIRef(named.iri)))
            add_issue(graph, episode, JDM.drug, name, f"drug {name} is read as {named.label} "
                      f"(a name of it in the guideline graph); name it jdmg:{named.local}.", note=True)
            return
        near = index.near_miss(name, DRUG)
        same = index.named(name, DRUG)  # the name of a guideline drug in another IRI (jdmg:Tofacitinib)
        other = _not_a_drug(graph, index, drug)
        if other is not None:
            add_issue(graph, episode, JDM.drug, name, other)
        elif same is not None:
            add_issue(graph, episode, JDM.drug, name,
                      f"{name!r} is not a drug the guideline graph knows: did you mean {same.label}? IRIs are "
                      f"case-sensitive: write jdmg:{same.local}.")
        elif near is not None:
            add_issue(graph, episode, JDM.drug, name,
                      f"{name!r} is not a drug the guideline graph knows: did you mean {near.label}? "
                      f"Correct the spelling (jdmg:{near.local}); a drug outside the guideline is kept as another medication.")
        elif text is None:
            graph.add((episode, JDM.drugText, Literal(name)))
    elif drug is None and text is not None:
        named, tell = index.read(str(text), DRUG, in_words=True)
        if named is not None:  # "Olumiant 4 mg tablet", "XELJANZ 5 MG TABS"
            graph.add((episode, JDM.drug, URIRef(named.iri)))
            if tell:
                add_issue(graph, episode, JDM.drug, str(text), f"matched {str(text)!r} to {named.label} by name", note=True)
            return
        near = index.near_miss(str(text), DRUG)
        if near is not None and not index.mentioned(str(text), DRUG):
            add_issue(graph, episode, JDM.drug, str(text),
                      f"{str(text)!r} is not a drug the guideline graph knows: did you mean {near.label}? "
                      f"Correct the spelling; a drug outside the guideline is kept as another medication.")


def _not_a_drug(graph: Graph, index: TermIndex, drug: URIRef) -> str | None:
    """What a treatment's drug IRI names if it is something other than a drug: the patient
    record, a class (of drugs or anything else), or another guideline term (the disease, a
    manifestation); None if it is none of these."""
    name = _local(str(drug))
    if (drug, RDF.type, JDM.Patient) in graph:
        return (f"{name!r} is the patient record, not a drug: did you mean the drug given in this treatment "
                f"(e.g. jdmg:tofacitinib)?")
    cls = str(drug) if str(drug) in index.classes else next(  # the class, or a class of that name (jdmg:JAKInhibitor)
        (c for c in index.classes if normalise(_local(c)) == normalise(name) and index.members.get(c)), None)
    if cls is not None:
        members = index.members.get(cls, [])
        hint = (f"did you mean one of its drugs ({', '.join('jdmg:' + m for m in members[:5])})?" if members
                else "did you mean the drug given in this treatment (e.g. jdmg:tofacitinib)?")
        return f"{name!r} names a class ({index.classes[cls]}), not a drug: {hint}"
    kinds = index.kinds.get(str(drug))
    if kinds:
        term = index.terms[str(drug)]
        kind = " and ".join(sorted(normalise(_local(k)) for k in kinds))
        return (f"{name!r} is a {kind} ({term.label}), not a drug: did you mean the drug given in this treatment "
                f"(e.g. jdmg:tofacitinib)?")
    return None


def _review_outcome(graph: Graph, index: TermIndex, episode: Node) -> None:
    """An outcome given as words (``jdm:outcome "lack of efficacy"``, or ``jdm:outcomeText``
    from a reader): read as the outcome it names, with a note; else kept as ``jdm:outcomeText``
    (the shapes warn; for a JAK inhibitor the guideline's applicability is then 'cannot tell')."""
    said = [o for o in graph.objects(episode, JDM.outcome) if isinstance(o, Literal)]
    for literal in said:
        graph.remove((episode, JDM.outcome, literal))
        graph.add((episode, JDM.outcomeText, Literal(str(literal))))
    text = graph.value(episode, JDM.outcomeText)
    if text is None or graph.value(episode, JDM.outcome) is not None:
        return
    term, _ = index.read(str(text), OUTCOME, in_words=True)
    if term is not None:  # (the words stay as jdm:outcomeText, for every answer resting on this reading)
        graph.add((episode, JDM.outcome, URIRef(term.iri)))
        add_issue(graph, episode, JDM.outcome, str(text), f"stop reason {str(text)!r} read as {term.label}", note=True)


def _review_predominant(graph: Graph, index: TermIndex, patient: Node, features: tuple[URIRef, ...]) -> None:
    findings = [f for f in graph.objects(patient, JDM.hasManifestation) if not isinstance(f, Literal)]
    if features:  # the run says which predominate: a reader's inference (a note, a severity) gives way
        for finding in findings:
            if graph.value(finding, JDM.predominanceBasis) is not None and graph.value(finding, JDM.manifestation) not in features:
                graph.remove((finding, JDM.predominant, None))
                graph.remove((finding, JDM.predominanceBasis, None))
    for feature in features:
        chosen = [f for f in findings if graph.value(f, JDM.manifestation) == feature]
        label = index.terms[str(feature)].label if str(feature) in index.terms else _local(str(feature))
        if not chosen:
            graph.add((patient, JDM.importNote, Literal(
                f"--predominant {_local(str(feature))}: the record has no {label} manifestation; not applied")))
        for finding in chosen:
            graph.set((finding, JDM.predominant, Literal(True)))
            graph.remove((finding, JDM.predominanceBasis, None))
    if len(findings) == 1 and graph.value(findings[0], JDM.predominant) is None:
        manifestation = graph.value(findings[0], JDM.manifestation)
        if isinstance(manifestation, URIRef) and index.is_a(str(manifestation), MANIFESTATION[0]):
            graph.add((findings[0], JDM.predominant, Literal(True)))
            graph.add((findings[0], JDM.predominanceBasis, SOLE_MANIFESTATION_POLICY_IRI))
            label = index.terms[str(manifestation)].label
            graph.add((patient, JDM.importNote, Literal(
                f"hasManifestation: the only manifestation recorded ({label}) is taken as predominant "
                f"(jdm-kg policy: {SOLE_MANIFESTATION_POLICY})")))


# ------------------------------------------------------------------ JSON-LD records

#: JSON keys whose value names a guideline term, and the kind of term.
_TERM_KEYS = {
    "diagnosis": ("Disease", JDM.diagnosis),
    "manifestation": ("Manifestation", JDM.manifestation),
    "drug": ("Drug", JDM.drug),
    "outcome": ("TreatmentOutcome", JDM.outcome),
    "screenedFor": ("ScreenedCondition", JDM.screenedFor),
    "screeningTest": ("ScreeningTest", JDM.screeningTest),
    "result": ("ScreeningOutcome", JDM.result),
}

_ISSUE = str(JDM.inputIssue)
_NOTE = str(JDM.inputNote)

#: Keys whose value, when it names nothing the graph knows, is set aside with a note (a
#: warning) instead of a violation: words never block a record. An outcome is kept as
#: ``outcomeText``; a result or a manifestation is not used.
_WORDS_KEYS = {"outcome": "outcomeText", "result": None, "manifestation": None}


def _issue_json(path: URIRef, value: Any, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {str(JDM.issuePath): {"@id": str(path)}, str(JDM.issueText): text}
    if value is not None:
        out[str(JDM.issueValue)] = value if isinstance(value, str) else _short_json(value)
    return out


def _short_json(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _known_keys(context: dict[str, Any]) -> set[str]:
    return {k for k in context if not k.startswith("@")} | {"@id", "@type", "@context", "@graph"}


def review_jsonld_document(document: Any, context: dict[str, Any], guideline: Guideline | None = None) -> Any:
    """``document`` (parsed JSON-LD that uses the bundled ``context``) with names read as terms,
    unknown drugs as ``drugText``, and every key or value that maps to nothing replaced by a
    ``jdm:inputIssue`` on the same object (see the module text)."""
    index = term_index(guideline or default_guideline())
    known = _known_keys(context)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict) or "@value" in node:
            return node
        out: dict[str, Any] = {}
        issues: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        for key, value in node.items():
            if key in ("@context", "@id", "id", "@type", "type") or ":" in key:
                out[key] = value
            elif key not in known:
                near = difflib.get_close_matches(key, sorted(known - {"@id", "@type", "@context", "@graph"}), n=1, cutoff=0.6)
                hint = f"did you mean {near[0]}?" if near else "no known field is close"
                issues.append(_issue_json(URIRef(str(JDM) + re.sub(r"[^A-Za-z0-9_-]", "_", key)), None,
                                          f"{key!r} is not a field of a jdm-kg record ({hint}); check its spelling against "
                                          f"the patient vocabulary (docs/inputs.md); its value {_short_json(value)} is not used."))
            elif key in _TERM_KEYS:
                for item in value if isinstance(value, list) else [value]:
                    _term_value(out, issues, notes, key, item)
            else:
                out[key] = walk(value)
        if issues:
            out[_ISSUE] = issues
        if notes:
            out[_NOTE] = notes
        return out

    def _term_value(out: dict[str, Any], issues: list[dict[str, Any]], notes: list[dict[str, Any]], key: str,
                    item: Any) -> None:
        kind_name, prop = _TERM_KEYS[key]
        kind = _kind(kind_name)
        if not isinstance(item, str):
            out.setdefault(key, []).append(walk(item))
            return
        term = next((t for t in index.terms.values() if t.local == item and index.is_a(t.iri, kind)), None)
        tell = False
        if term is None:
            term, tell = index.read(item, (kind,), in_words=key == "outcome")
        if term is not None:
            out.setdefault(key, []).append(term.local)
            if tell:
                notes.append(_issue_json(prop, item, f"{key} {item!r} read as {term.label}"))
        elif key == "drug":
            out.setdefault("drugText", []).append(item)
        elif key in _WORDS_KEYS:
            near = index.near_miss(item, (kind,)) if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", item) else None
            hint = f"did you mean {near.label} ({near.local})? " if near else ""
            kept = _WORDS_KEYS[key]
            if kept:
                out.setdefault(kept, []).append(item)
            else:
                notes.append(_issue_json(prop, item, f"{key} {item!r} names no {normalise(kind_name)} jdm-kg knows "
                                                      f"({hint or index.suggestion(item, (kind,)) + '; '}"
                                                      f"not read as one): this entry's {key} is not used."))
                return
            if near is not None:
                notes.append(_issue_json(prop, item, f"{key} {item!r}: {hint}it is not read as {near.label}."))
        elif re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", item):
            out.setdefault(key, []).append(item)  # a term-like name: the shapes name it and list the terms
            near = index.near_miss(item, (kind,))
            if near is not None:
                issues.append(_issue_json(prop, item, f"{key} {item!r} is not a known {normalise(kind_name)}: "
                                                       f"did you mean {near.label} ({near.local})?"))
        else:
            issues.append(_issue_json(prop, item, f"{key} {item!r} is not a known {normalise(kind_name)} "
                                                   f"({index.suggestion(item, (kind,))}); give one of the graph's terms."))

    return walk(document)
