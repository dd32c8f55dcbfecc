"""What would change the answer: the smallest changes to a patient's facts that would make an
option offered, ranked first, ready to start or dosable, each found by re-running the same
assessment (:func:`jdm_kg.reasoning.recommend.assess_patient`) on the changed facts.

**The facts that may change** (:class:`Change`) are the ones the guideline's conditions read,
named by the guideline's own terms (``--assume FACT=VALUE``, :func:`parse_assumptions`):

=============================  =================================================================
``CONDITION=RESULT``           a screening result for a screened condition (``tuberculosis``,
                               ``hepatitis-b``, ``hepatitis-c``), recorded on the as-of date:
                               ``negative``, ``positive``, ``indeterminate``; or ``cleared``: a
                               clinician's clearance of the positive results on record
``TEST=RESULT``                a result of one screening test (``hbsag``, ``anti-hbc``,
                               ``anti-hcv``, ``igra``, ``tuberculin-skin-test``)
``predominant=FEATURE[,...]``  exactly these manifestations predominant (one not recorded is
                               added)
``present=FEATURE[,...]``      these manifestations recorded as well (not predominant)
``DRUG=OUTCOME``               the ongoing course of DRUG ends with OUTCOME (``inadequate-response``,
                               ``loss-of-response``, ``intolerance``, ``stopped-other-reason``)
``weight=KG``, ``height=CM``   a measurement taken on the as-of date (``current``: the last value,
                               measured again), replacing the one on record
=============================  =================================================================

Each change is triples added to and removed from the patient's own graph (:class:`Applied`);
the record's history is never rewritten: a result or a clearance is a new entry, a failure that
happened stays, an age is never changed. A change that needs a clinician's judgement (a
clearance, which feature predominates, a new finding, a course's outcome) is worded as what a
clinician would have to record, never as advice.

**The search** (:func:`what_if`): breadth first over sets of at most ``depth`` (default 2)
consistent changes, drawn from the record (a clearance for each positive screening that blocks,
a negative result for each test of a screening still needed, a current measurement where a dose
cannot be worked out, the failure of an ongoing JAK inhibitor course where the guideline does not
apply yet, which recorded feature predominates, a feature not yet recorded). For each option and
each **target** it does not meet (:data:`TARGETS`), only the smallest sets that meet it are kept
(no superset of a set that already works). Every set is evaluated by the assessment itself
(:func:`assess_variants`), never guessed from the rules; the order of the candidates (actions
first, then judgements about recorded features, then new findings) makes the answer the same
every run and puts what a clinician can do first.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.term import Node

from jdm_kg.errors import InputError
from jdm_kg.inputs.intake import normalise, term_index
from jdm_kg.knowledge.guideline import JDM, Guideline, load_guideline
from jdm_kg.reasoning.engines import GroupQueries, group_store, oxigraph_store
from jdm_kg.reasoning.recommend import (
    CANNOT_TELL_STATUS,
    GAP_AFTER_POSITIVE,
    POLICY_FAILURE,
    POLICY_MEASURES,
    POLICY_SCREENING,
    REFRACTORY,
    OptionAssessment,
    PatientResult,
    Provenance,
    assess_patient,
    guideline_facts,
    recommend_graph,
)
from jdm_kg.reasoning.validation import Issue, RecordRef, ValidationReport, set_aside_ill_typed

__all__ = [
    "TARGETS",
    "MAX_DEPTH",
    "Change",
    "Applied",
    "Standing",
    "WhatIf",
    "OptionWhatIf",
    "WhatIfReport",
    "Vocabulary",
    "vocabulary",
    "parse_assumptions",
    "assume",
    "apply_assumptions",
    "assess_variants",
    "Baseline",
    "what_if",
    "what_if_file",
    "shortest",
    "shortest_lines",
    "shortest_change",
    "outcome_if",
    "standing_of",
    "if_applies",
    "IF_SO",
    "resolve_option",
]

Triple = tuple[Node, Node, Node]

#: What a change can achieve for an option, in the order lines are shown: applies (the guideline
#: applies: asked only of a record it does not apply to), offered (status "offered"), first
#: (rank 1, offered or blocked, in a band that a statement about the patient's features gives),
#: ready (offered, every screening gate passed or cleared), dose (every dose the guideline gives
#: can be worked out).
TARGETS = ("applies", "offered", "first", "ready", "dose")
UNMET = {"applies": "makes the guideline apply", "offered": "gets it offered", "first": "ranks it first",
         "ready": "makes it ready to start", "dose": "lets its dose be worked out"}
#: What a line of a record jdm-kg cannot tell about starts with: it holds only if the data needed
#: settle that the guideline applies (as ``recommend`` says of each option then).
IF_SO = "if so: "
#: The deepest search allowed (changes of at most this many facts).
MAX_DEPTH = 4
#: Gate states that let a biologic start.
PASSING = ("passed", "cleared")
#: The plausible ranges of a measurement (docs/reference-sheet.md: wide enough never to reject a
#: real child, narrow enough to catch a unit slip) and the value a search tries where none is
#: on record (only to see whether a dose can then be worked out; the amount is never shown).
_MEASURES = {"weight": ("kg", Decimal(1), Decimal(250), Decimal(30), JDM.bodyWeight, "body weight"),
             "height": ("cm", Decimal(30), Decimal(230), Decimal(130), JDM.bodyHeight, "body height")}
#: Who a hypothetical clearance says cleared the positive result (shown in the screening line).
_CLEARED_BY = "a clinician (hypothetical: --assume)"


# --------------------------------------------------------------------------------------
# The guideline's names for the facts


@dataclass(frozen=True)
class Term:
    """A guideline term as a what-if names it: ``name`` is what ``--assume`` takes."""

    iri: str
    label: str
    name: str
    short: str


class Vocabulary:
    """The terms a change can name, from the guideline graph (labels, alternative labels, the
    term's own name): screened conditions and their tests, manifestations, drugs, outcomes."""

    def __init__(self, guideline: Guideline) -> None:
        index = term_index(guideline)
        graph = guideline.graph
        self.index = index
        names: dict[tuple[str, str], list[str]] = {}
        for (kind, name), iris in index.names.items():
            for iri in iris:
                names.setdefault((kind, iri), []).append(name)

        alt = URIRef("http://www.w3.org/2004/02/skos/core#altLabel")
        self._plain: dict[str, dict[str, Term]] = {}

        def terms(kind: str, shortest: bool = False) -> dict[str, Term]:
            out = {}
            plain: dict[str, Term] = self._plain.setdefault(kind, {})
            for iri, term in index.terms.items():
                if not index.is_a(iri, str(JDM[kind])):
                    continue
                labels = [term.label, *(str(v) for v in graph.objects(URIRef(iri), alt))]
                short = min(labels, key=lambda n: (len(n), n)) if shortest else term.label
                # a test by its shortest label (HBsAg -> hbsag); anything else by its own name, split at
                # its capitals (InterstitialLungDisease -> interstitial-lung-disease)
                name = _plain(short) if shortest else normalise(term.local).replace(" ", "-")
                out[iri] = Term(iri, term.label, name, short)
                for variant in (name, *labels, term.local):
                    plain.setdefault(_plain(variant), out[iri])
            return dict(sorted(out.items(), key=lambda item: item[1].name))

        self.conditions = terms("ScreenedCondition")
        self.tests = terms("ScreeningTest", shortest=True)
        self.features = terms("Manifestation")
        self.drugs = terms("Drug")
        self.outcomes = {i: t for i, t in terms("TreatmentOutcome").items() if i != str(JDM.Ongoing)}
        self.results = terms("ScreeningOutcome")
        self.test_for = {t: str(graph.value(URIRef(t), JDM.testFor)) for t in self.tests
                         if graph.value(URIRef(t), JDM.testFor) is not None}
        self.jak = {str(s) for s in graph.subjects(RDF.type, JDM.JAKInhibitor)}
        gap = graph.value(URIRef(GAP_AFTER_POSITIVE), RDFS.label)
        self.after_positive = str(gap) if gap is not None else None
        self.failures = {str(s) for s in graph.subjects(RDF.type, JDM.TreatmentFailure)}

    def tests_of(self, condition: str) -> list[Term]:
        return [t for i, t in self.tests.items() if self.test_for.get(i) == condition]

    def find(self, text: str, kind: str, table: dict[str, Term]) -> Term | None:
        """The term of ``table`` that ``text`` names: its --assume name, a label, an alternative
        label or its own name, case and punctuation aside."""
        found = self._plain.get(kind, {}).get(_plain(text))
        if found is not None and found.iri in table:
            return found
        term = self.index.named(text, (str(JDM[kind]),))
        return table.get(term.iri) if term is not None else None

    def fact_names(self) -> list[str]:
        return (["predominant", "present", "weight", "height"] + [t.name for t in self.conditions.values()]
                + [t.name for t in self.tests.values()] + [t.name for t in self.drugs.values()])


def _plain(text: str) -> str:
    """``text`` lower case, every run of other characters one dash: ``"anti-HBc"`` -> ``anti-hbc``."""
    return re.sub(r"[^0-9a-z]+", "-", str(text).lower()).strip("-")


@cache
def vocabulary(guideline: Guideline) -> Vocabulary:
    return Vocabulary(guideline)


# --------------------------------------------------------------------------------------
# Changes


@dataclass(frozen=True)
class Change:
    """One changed fact, independent of any record: what ``--assume FACT=VALUE`` says."""

    kind: str  # "result", "clearance", "predominant", "present", "outcome", "weight", "height"
    fact: str
    value: str
    condition: str | None = None
    test: str | None = None
    result: str | None = None
    features: tuple[str, ...] = ()
    drug: str | None = None
    outcome: str | None = None
    amount: Decimal | None = None

    @property
    def spec(self) -> str:
        """``FACT=VALUE``, as ``--assume`` takes it."""
        return f"{self.fact}={self.value}"

    @property
    def key(self) -> tuple[str, ...]:
        """Two changes with the same key change the same fact: they are never combined."""
        if self.kind == "result":
            return ("result", self.condition or "", self.test or "")
        if self.kind == "present":
            return ("feature", *self.features)
        if self.kind in ("clearance",):
            return ("clearance", self.condition or "")
        if self.kind == "outcome":
            return ("outcome", self.drug or "")
        return (self.kind,)


@dataclass(frozen=True)
class Applied:
    """A change on one record: the triples it adds to and removes from the patient's graph, and
    what it says in words (``action``: it may be suggested as something to do; else it is what a
    clinician would have to judge and record)."""

    change: Change
    added: tuple[Triple, ...]
    removed: tuple[Triple, ...]
    words: str
    action: bool

    def as_dict(self) -> dict[str, Any]:
        return {"assume": self.change.spec, "text": self.words, "kind": self.change.kind,
                "clinicianJudgement": not self.action}


def _usage(message: str) -> InputError:
    return InputError("--assume", message)


def _near(text: str, names: Iterable[str]) -> str:
    names = sorted(set(names))
    close = difflib.get_close_matches(text.strip().lower(), names, n=3, cutoff=0.5)
    return f"did you mean {' or '.join(close)}?" if close else "one of: " + ", ".join(names)


def _amount(text: str, what: str) -> Decimal | None:
    unit, low, high, _, _, label = _MEASURES[what]
    raw = text.strip().lower().replace(",", ".")
    if raw == "current":
        return None
    raw = re.sub(rf"\s*{unit}$", "", raw)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _usage(f"{what}={text}: give the {label} in {unit} (e.g. {what}={'35' if what == 'weight' else '140'}), "
                     f"or {what}=current for the last one measured again") from None
    if not value.is_finite() or not low <= value <= high:
        hint = " (in cm, not metres?)" if what == "height" and value < low else ""
        raise _usage(f"{what}={text}: a {label} must be {low}-{high} {unit}{hint}")
    return value


def parse_assumptions(specs: Sequence[str], guideline: Guideline | None = None) -> tuple[Change, ...]:
    """``--assume FACT=VALUE`` (each ``spec``) as changes; a name or value the guideline does not
    know is an :class:`InputError` with the nearest names (exit 2)."""
    vocab = vocabulary(guideline or load_guideline())
    out: list[Change] = []
    for spec in specs:
        out += _parse_one(spec, vocab)
    seen: dict[tuple[str, ...], str] = {}
    for change in out:
        if change.key in seen:
            raise _usage(f"{change.spec} and {seen[change.key]} change the same fact: give it once")
        seen[change.key] = change.spec
    return tuple(out)


def _parse_one(spec: str, vocab: Vocabulary) -> list[Change]:
    if "=" not in spec:
        raise _usage(f"{spec!r}: write FACT=VALUE (e.g. tuberculosis=negative, predominant=skin-disease); "
                     "jdm-kg recommend --help lists the names")
    fact, value = (part.strip() for part in spec.split("=", 1))
    key = normalise(fact)
    if not value:
        raise _usage(f"{spec!r}: no value after '='")
    if key in ("predominant", "present"):
        features = []
        for name in (v for v in value.split(",") if v.strip()):
            term = vocab.find(name, "Manifestation", vocab.features)
            if term is None:
                raise _usage(f"{fact}={name}: not a manifestation the guideline knows; "
                             + _near(name, [t.name for t in vocab.features.values()]))
            features.append(term)
        if not features:
            raise _usage(f"{spec!r}: name at least one manifestation")
        if key == "predominant":
            chosen = tuple(sorted({t.iri for t in features}, key=lambda i: vocab.features[i].name))
            return [Change("predominant", "predominant", ",".join(vocab.features[i].name for i in chosen), features=chosen)]
        return [Change("present", "present", t.name, features=(t.iri,)) for t in features]
    if key in ("weight", "body weight", "height", "body height"):
        what = key.split()[-1]
        amount = _amount(value, what)
        return [Change(what, what, "current" if amount is None else str(amount), amount=amount)]
    condition = vocab.find(fact, "ScreenedCondition", vocab.conditions)
    test = vocab.find(fact, "ScreeningTest", vocab.tests) if condition is None else None
    if condition is not None or test is not None:
        about = condition or test
        assert about is not None
        allowed = {t.name: t for t in vocab.results.values()}
        if normalise(value) == "cleared" and condition is not None:
            return [Change("clearance", condition.name, "cleared", condition=condition.iri)]
        result = vocab.find(value, "ScreeningOutcome", vocab.results)
        if result is None:
            choices = list(allowed) + (["cleared"] if condition is not None else [])
            raise _usage(f"{fact}={value}: a screening result is {', '.join(choices)}; " + _near(value, choices))
        if condition is not None:
            return [Change("result", condition.name, result.name, condition=condition.iri, result=result.iri)]
        assert test is not None
        return [Change("result", test.name, result.name, condition=vocab.test_for.get(test.iri), test=test.iri,
                       result=result.iri)]
    drug = vocab.find(fact, "Drug", vocab.drugs)
    if drug is not None:
        outcome = vocab.find(value, "TreatmentOutcome", vocab.outcomes)
        if outcome is None:
            names = [t.name for t in vocab.outcomes.values()]
            extra = " (a course cannot be assumed back to ongoing)" if normalise(value) == "ongoing" else ""
            raise _usage(f"{fact}={value}: an outcome is one of {', '.join(names)}{extra}; " + _near(value, names))
        return [Change("outcome", drug.name, outcome.name, drug=drug.iri, outcome=outcome.iri)]
    raise _usage(f"{fact!r} is not a fact jdm-kg can assume; " + _near(fact.replace(" ", "-"), vocab.fact_names()))


# --------------------------------------------------------------------------------------
# A record's facts, read from its graph (to place a change, and to say it in words)


def _day(node: Node | None) -> date | None:
    if isinstance(node, Literal) and isinstance(node.toPython(), date):
        return node.toPython()  # type: ignore[no-any-return]
    return None


def record_as_of(graph: Graph, patient: Node, today: date | None = None) -> date:
    """The date a record describes (its recordDate, else ``today``, else today's date): the date
    every assumed fact is recorded on, as the assessment judges recency against it."""
    return _day(graph.value(patient, JDM.recordDate)) or today or date.today()


class _Record:
    def __init__(self, graph: Graph, patient: Node, vocab: Vocabulary, as_of: date) -> None:
        self.graph, self.patient, self.vocab, self.as_of = graph, patient, vocab, as_of
        g = graph
        self.findings = [(f, str(g.value(f, JDM.manifestation)), g.value(f, JDM.predominant))
                         for f in g.objects(patient, JDM.hasManifestation) if not isinstance(f, Literal)]
        self.results = [(s, str(g.value(s, JDM.screenedFor)), str(g.value(s, JDM.result)), _day(g.value(s, JDM.date)))
                         for s in g.objects(patient, JDM.screening) if not isinstance(s, Literal)]
        self.episodes = [(e, str(g.value(e, JDM.drug)), g.value(e, JDM.outcome), _day(g.value(e, JDM.startDate)),
                          g.value(e, JDM.endDate)) for e in g.objects(patient, JDM.treatmentEpisode)
                         if not isinstance(e, Literal)]

    def predominant(self) -> list[str]:
        return sorted({m for _, m, p in self.findings if isinstance(p, Literal) and p.toPython() is True})

    def label(self, iri: str) -> str:
        for table in (self.vocab.features, self.vocab.conditions, self.vocab.drugs, self.vocab.outcomes,
                      self.vocab.results, self.vocab.tests):
            if iri in table:
                return table[iri].label
        return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]

    def measure(self, what: str) -> tuple[Node | None, Literal | None, date | None]:
        link = _MEASURES[what][4]
        node = self.graph.value(self.patient, link)
        if node is None or isinstance(node, Literal):
            return None, None, None
        value = self.graph.value(node, JDM.value)
        return node, value if isinstance(value, Literal) else None, _day(self.graph.value(node, JDM.date))


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def apply(change: Change, record: _Record) -> Applied:
    """``change`` as triples on ``record`` (an :class:`InputError` when it cannot apply to it)."""
    p, g, as_of, vocab = record.patient, record.graph, record.as_of, record.vocab
    when = Literal(as_of.isoformat(), datatype=XSD.date)
    added: list[Triple] = []
    removed: list[Triple] = []
    if change.kind == "result":
        assert change.condition and change.result
        entry = BNode()
        added += [(p, JDM.screening, entry), (entry, JDM.screenedFor, URIRef(change.condition)),
                  (entry, JDM.result, URIRef(change.result)), (entry, JDM.date, when)]
        what = f"{record.label(change.condition)} screening"
        if change.test:
            added.append((entry, JDM.screeningTest, URIRef(change.test)))
            what = f"{vocab.tests[change.test].short} ({record.label(change.condition)} screening)"
        article = "an" if vocab.results[change.result].label[0] in "aeiou" else "a"
        return Applied(change, tuple(added), (), f"{article} {vocab.results[change.result].label} {what} result is "
                       f"recorded ({as_of.isoformat()})", True)
    if change.kind == "clearance":
        assert change.condition
        positives = sorted((d or date.min) for _, c, r, d in record.results
                           if c == change.condition and r == str(JDM.Positive))
        if not positives:
            raise _usage(f"{change.spec}: the record has no positive {record.label(change.condition)} result for a "
                         "clearance to clear")
        entry = BNode()
        added += [(p, JDM.screeningClearance, entry), (entry, JDM.screenedFor, URIRef(change.condition)),
                  (entry, JDM.date, when), (entry, JDM.clearedBy, Literal(_CLEARED_BY))]
        latest = positives[-1]
        on = f" of {latest.isoformat()}" if latest != date.min else ""
        gap = f"; guideline gap: {vocab.after_positive.lower()}" if vocab.after_positive else ""
        return Applied(change, tuple(added), (), f"a clinician, having assessed the positive "
                       f"{record.label(change.condition)} result{on}, records that it no longer blocks a biologic "
                       f"(a screening clearance{gap})", False)
    if change.kind == "present":
        feature = change.features[0]
        if any(m == feature for _, m, _ in record.findings):
            raise _usage(f"{change.spec}: {record.label(feature)} is already recorded")
        finding = BNode()
        added += [(p, JDM.hasManifestation, finding), (finding, JDM.manifestation, URIRef(feature)),
                  (finding, JDM.predominant, Literal(False))]
        if feature == REFRACTORY:
            words = (f"the disease were judged severe, multi-system and refractory (recorded as "
                     f"'{record.label(feature)}')")
        else:
            words = f"the patient also had {record.label(feature)} (not recorded now; not predominant)"
        return Applied(change, tuple(added), (), words, False)
    if change.kind == "predominant":
        chosen = set(change.features)
        before = record.predominant()
        if set(before) == chosen and all(any(m == f for _, m, _ in record.findings) for f in chosen):
            raise _usage(f"{change.spec}: already the predominant feature(s)")
        recorded = {m for _, m, _ in record.findings}
        for finding, manifestation, flag in record.findings:
            want = manifestation in chosen
            if isinstance(flag, Literal) and flag.toPython() is want:
                continue
            if flag is not None:
                removed.append((finding, JDM.predominant, flag))
            added.append((finding, JDM.predominant, Literal(want)))
        for feature in sorted(chosen - recorded):
            finding = BNode()
            added += [(p, JDM.hasManifestation, finding), (finding, JDM.manifestation, URIRef(feature)),
                      (finding, JDM.predominant, Literal(True))]
        new = sorted(chosen - recorded, key=record.label)
        names = [record.label(f) for f in sorted(chosen, key=record.label)]
        now = [record.label(f) for f in before]
        also = (f"the patient also had {_and([record.label(f) for f in new])} (not recorded now) and " if new else "")
        it = "it" if len(names) == 1 and new else _and(names)
        plural = "s" if len(names) > 1 else ""
        if not now:
            words = f"{also}{it} were judged the predominant feature{plural}"
        elif set(before) < chosen:
            words = f"{also}{_and([record.label(f) for f in sorted(chosen - set(before), key=record.label)])} were judged " \
                    f"predominant as well as {_and(now)}"
        else:
            words = f"{also}{it} were judged the predominant feature{plural} instead of {_and(now)}"
        return Applied(change, tuple(added), tuple(removed), words, False)
    if change.kind == "outcome":
        assert change.drug and change.outcome
        open_ = [e for e in record.episodes if e[1] == change.drug and (e[2] is None or e[2] == JDM.Ongoing)]
        if not open_:
            raise _usage(f"{change.spec}: the record has no ongoing {record.label(change.drug)} course; an outcome on "
                         "record is not changed")
        episode, _, outcome, start, end = max(open_, key=lambda e: (e[3] or date.min, str(e[0])))
        if outcome is not None:
            removed.append((episode, JDM.outcome, outcome))
        added.append((episode, JDM.outcome, URIRef(change.outcome)))
        if end is None:
            added.append((episode, JDM.endDate, when))
        since = f" (ongoing since {start.isoformat()})" if start else " (ongoing)"
        label = record.label(change.outcome)
        verdict = f"as failed ({label})" if change.outcome in vocab.failures else f"as {label}"
        return Applied(change, tuple(added), tuple(removed),
                       f"the {record.label(change.drug)} course{since} were recorded {verdict}", False)
    if change.kind in _MEASURES:
        unit, _, _, probe, link, label = _MEASURES[change.kind]
        node, old, measured = record.measure(change.kind)
        if node is not None:
            removed.append((p, link, node))
        if change.amount is not None:
            value: Literal = Literal(change.amount, datatype=XSD.decimal)
        elif change.value == "current":
            if old is None:
                raise _usage(f"{change.spec}: the record has no {label} to measure again; give the value "
                             f"({change.kind}=N, in {unit})")
            value = old
        else:  # a search's placeholder: any plausible value shows whether a dose can be worked out
            value = old if old is not None else Literal(probe, datatype=XSD.decimal)
        entry = BNode()
        added += [(p, link, entry), (entry, JDM.value, value), (entry, JDM.unit, Literal(unit)), (entry, JDM.date, when)]
        last = (f" (the last, {old} {unit}, is from {measured.isoformat()})" if old is not None and measured
                else f" (the last, {old} {unit}, is undated)" if old is not None else " (none on record)")
        if change.amount is not None:
            words = f"a {label} of {change.amount} {unit} is recorded ({as_of.isoformat()}){last}"
        elif change.value == "current":
            words = f"the last {label} ({old} {unit}) is taken as measured on {as_of.isoformat()}"
        else:
            words = f"a current {label} is measured and recorded{last}"
        return Applied(change, tuple(added), tuple(removed), words, True)
    raise ValueError(f"unknown change kind {change.kind!r}")


def assume(graph: Graph, patient: Node, changes: Sequence[Change], guideline: Guideline | None = None,
           today: date | None = None) -> list[Applied]:
    """``changes`` applied to one record, in a fixed order (features present, then which
    predominate, screening results, clearances, outcomes, measurements); each change sees the
    ones before it."""
    vocab = vocabulary(guideline or load_guideline())
    order = {"present": 0, "predominant": 1, "result": 2, "clearance": 3, "outcome": 4, "weight": 5, "height": 6}
    as_of = record_as_of(graph, patient, today)
    out = []
    work = Graph()
    for triple in _record_triples(graph, patient, guideline or load_guideline()):
        work.add(triple)
    for change in sorted(changes, key=lambda c: order[c.kind]):
        applied = apply(change, _Record(work, patient, vocab, as_of))
        for triple in applied.removed:
            work.remove(triple)
        for triple in applied.added:
            work.add(triple)
        out.append(applied)
    return out


def apply_assumptions(graph: Graph, changes: Sequence[Change], source: str, guideline: Guideline | None = None,
                      today: date | None = None) -> dict[Node, list[Applied]]:
    """Apply ``changes`` to every patient record of ``graph``, in place (``recommend --assume``:
    before validation, so the assumed facts are checked like recorded ones); the changes applied,
    by record. A change that cannot apply to a record is an :class:`InputError` naming ``source``."""
    applied: dict[Node, list[Applied]] = {}
    for patient in sorted(set(graph.subjects(RDF.type, JDM.Patient)), key=str):
        try:
            done = assume(graph, patient, changes, guideline, today)
        except InputError as err:
            pid = graph.value(patient, JDM.patientId)
            raise InputError(source, f"record {pid or patient}: {err.problem}") from None
        for change in done:
            for triple in change.removed:
                graph.remove(triple)
            for triple in change.added:
                graph.add(triple)
        applied[patient] = done
    return applied


# --------------------------------------------------------------------------------------
# The one evaluation: the assessment of a record under variants of its facts


def _record_triples(graph: Graph, patient: Node, guideline: Guideline) -> list[Triple]:
    """The triples of one record: those reached from the patient through nodes of the record
    (never through another patient or a guideline term)."""
    out: list[Triple] = []
    seen = {patient}
    stack = [patient]
    terms = guideline.graph
    while stack:
        node = stack.pop()
        for p, o in graph.predicate_objects(node):
            out.append((node, p, o))
            if (isinstance(o, Literal) or o in seen or (o, RDF.type, JDM.Patient) in graph
                    or (o, None, None) not in graph or (o, None, None) in terms):
                continue
            seen.add(o)
            stack.append(o)
    return out


def assess_variants(guideline: Guideline, record_triples: Sequence[Triple], record: RecordRef,
                    variants: Sequence[tuple[Sequence[Triple], Sequence[Triple]]], issues: list[Issue],
                    source: str, today: date | None = None, store: Any = None) -> list[PatientResult]:
    """The assessment of ``record`` (its triples: ``record_triples``) under each variant
    ``(added, removed)`` of its facts: :func:`~jdm_kg.reasoning.recommend.assess_patient`, the
    same function ``recommend`` runs, over the compiled guideline loaded once (an Oxigraph store
    that shares the process's guideline quads) and every variant at once (each a patient of its
    own, each per-patient query run once for all of them). Not validated again: a variant differs
    from the validated record only by facts built from the guideline's own terms. ``store``: an
    Oxigraph store of :func:`~jdm_kg.reasoning.engines.group_store` to add the variants to (one
    search's levels share one), else a new one."""
    store = store or group_store(guideline)
    nodes: list[URIRef] = []
    graphs: list[list[Triple]] = []
    patient = record.node
    named = sorted({s for s, _, _ in record_triples if isinstance(s, URIRef) and s != patient}, key=str)
    for n, (added, removed) in enumerate(variants):
        gone = set(removed)
        node = URIRef(f"urn:jdm-kg:whatif:{n}")
        renamed: dict[Node, Node] = {patient: node}

        def rename(term: Node) -> Node:
            if isinstance(term, BNode):
                new = renamed.get(term)
                if new is None:
                    new = renamed[term] = BNode()
                return new
            return renamed.get(term, term)

        for k, s in enumerate(named):  # the record's own named nodes (an episode's IRI): one copy per variant
            renamed[s] = URIRef(f"{node}/{k}")
        graphs.append([(rename(s), p, rename(o)) for s, p, o in itertools.chain(record_triples, added)
                       if (s, p, o) not in gone])
        nodes.append(node)
    engine = GroupQueries(store.engine(store.add(*graphs)))
    return [assess_patient(engine, RecordRef(node, record.patient_id), source, issues, guideline, today)
            for node in nodes]


# --------------------------------------------------------------------------------------
# Standings


@dataclass(frozen=True)
class Standing:
    """Where an option stands, as a what-if compares it: status, rank, band, readiness, dose."""

    status: str
    rank: int | None
    band: str | None
    band_default: bool
    ready: bool
    dose: bool | None  # every dose the guideline gives can be worked out (None: no dose to work out)
    #: The record's result is "cannot tell" and this is the standing the option would have if the
    #: data needed settle that the guideline applies (``OptionAssessment.if_applies``): "if so".
    conditional: bool = False

    def meets(self, target: str, ranked: bool, gated: bool) -> bool:
        if target == "applies":
            return self.status != "not-applicable"
        if target == "offered":
            return self.status == "offered"
        if target == "first":  # (a blocked option ranks too: its "offered" line says what unblocks it)
            return self.status in ("offered", "blocked") and ranked and self.rank == 1 and not self.band_default
        if target == "ready":
            return self.status == "offered" and (self.ready or not gated)
        return self.dose is True

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "rank": self.rank, "standingBand": self.band, "ready": self.ready,
                "doseWorkedOut": self.dose, **({"ifTheDataNeededSettleIt": True} if self.conditional else {})}


def if_applies(option: OptionAssessment) -> OptionAssessment:
    """``option`` as it would be if the data needed settle that the guideline applies: of a record
    jdm-kg cannot tell about, an option shown as "cannot tell" has the status it would have kept in
    ``if_applies`` (the assessment ran as for a record the guideline applies to); any other option
    as it is."""
    if option.status == CANNOT_TELL_STATUS and option.if_applies:
        return replace(option, status=option.if_applies, status_policy=option.if_applies_policy)
    return option


def standing_of(option: OptionAssessment, guideline: Guideline) -> Standing:
    """Where ``option`` stands (on a cannot-tell record: where it would stand if the guideline
    applies, marked ``conditional``)."""
    default = _default_band(guideline)
    shown = if_applies(option)
    doses = [d for d in option.doses if d.status != "not-given"]
    return Standing(shown.status, option.rank, option.standing_iri, option.standing_iri in (None, default),
                    all(g.state in PASSING for g in option.gates),
                    all(d.status == "computed" for d in doses) if doses else None, shown is not option)


@cache
def _default_band(guideline: Guideline) -> str:
    return next(b.iri for b in _facts(guideline).bands if b.is_default)


def _facts(guideline: Guideline) -> Any:
    return guideline_facts(guideline, oxigraph_store(guideline).guideline_view)


def standing_text(option: OptionAssessment, result: PatientResult, dose: bool = True, conditional: bool = True) -> str:
    """An option's standing in words: ``offered, #1 preferred for the predominant feature;
    screening complete`` (``dose``: and why a dose cannot be worked out, if so). Of a record jdm-kg
    cannot tell about: ``cannot tell; if so: offered, #1 ...`` (``conditional=False``: the standing
    as it would be, without the words; the caller says "if so")."""
    shown = if_applies(option)
    if shown is not option:
        text = standing_text(shown, result, dose)
        return f"cannot tell; if so: {text}" if conditional else text
    if option.status == "not-applicable":
        return "not offered: the guideline does not apply"
    if option.status == "excluded":
        return "not offered (history)"
    if option.status == "current":
        return "already on it"
    if option.status == "not-indicated":
        return "not indicated"
    if option.status == "conditional":
        return "to consider only if the disease is severe and multi-system"
    if option.status not in ("offered", "blocked"):  # a status of another kind: said as the report says it
        return option.status.replace("-", " ")
    if option.ranked:
        ties = sorted(o.label for o in result.options if o.rank == option.rank and o.option != option.option
                      and o.ranked and if_applies(o).status in ("offered", "blocked"))
        tie = f" (tie with {', '.join(ties)})" if ties else ""
        where = f"#{option.rank} {option.standing}{tie}"
        text = f"offered, {where}" if option.status == "offered" else f"{where}, BLOCKED by " + ", ".join(
            g.condition_label for g in option.gates if g.state == "blocking") + " screening"
    else:
        text = "offered (to consider)"
    if option.gates and option.status == "offered":
        pending = [g.condition_label + ("" if g.state == "required" else f" ({g.state})")
                   for g in option.gates if g.state not in PASSING]
        text += "; screening still needed: " + ", ".join(pending) if pending else "; screening complete"
    missing = [d for d in option.doses if d.status == "missing-data"]
    if missing and dose:
        text += "; dose not worked out (" + "; ".join(dict.fromkeys(n for d in missing for n in d.notes)) + ")"
    return text


def _quote(p: Provenance) -> str:
    text = " ".join((p.quote or p.label).split())
    return f'"{text if len(text) <= 110 else text[:107].rsplit(" ", 1)[0] + "..."}"'


def _because(before: OptionAssessment, after: OptionAssessment, after_result: PatientResult,
             guideline: Guideline) -> list[str]:
    """What makes the difference between ``before`` and ``after``: the guideline statements
    (quoted) and the jdm-kg policies (labelled) behind the change of standing."""
    facts = _facts(guideline)
    out: list[str] = []
    if before.status == "not-applicable" and after.status != "not-applicable":  # what makes the guideline apply
        if after_result.next_line:
            out.append(_quote(after_result.next_line))
        failure = facts.policy(POLICY_FAILURE)
        if failure.tag in after_result.applicability:
            out.append(failure.tag)
        return out
    if before.status in ("not-indicated", "conditional") and after.status != before.status:
        if after.summary_statement:
            out.append(_quote(after.summary_statement))
        if before.status_policy:
            out.append(before.status_policy.tag)
    moved = (before.rank, before.standing_iri) != (after.rank, after.standing_iri)
    if after.ranked and after.status in ("offered", "blocked") and (moved or before.status not in ("offered", "blocked")):
        if after.summary_statement:
            out.append(_quote(after.summary_statement))
        if after.band_policy:
            out.append(after.band_policy.tag)
    gates_before = {g.condition: g.state for g in before.gates}
    if (before.status == "blocked" and after.status != "blocked") or any(
            g.state != gates_before.get(g.condition) and g.state in PASSING for g in after.gates):
        out.append(facts.policy(POLICY_SCREENING).tag)
    dosed_before = {d.regimen.iri: d.status for d in before.doses}
    newly = [d for d in after.doses if d.status == "computed" and dosed_before.get(d.regimen.iri) == "missing-data"]
    if newly:
        for p in after.dose_statements:
            if any(d.regimen.statement == p.statement for d in newly):
                out.append(_quote(p))
        out.append(facts.policy(POLICY_MEASURES).tag)
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------
# The search


@dataclass(frozen=True)
class WhatIf:
    """One what-if line: the smallest set of changes that makes ``option`` meet ``targets``."""

    option: str
    label: str
    targets: tuple[str, ...]
    changes: tuple[Applied, ...]
    before: str
    after: str
    standing: Standing
    because: tuple[str, ...]
    #: The changed record is still one jdm-kg cannot tell about: the line holds only if the data
    #: needed settle that the guideline applies ("if so: ...").
    conditional: bool = False

    @property
    def assume(self) -> list[str]:
        """The ``--assume FACT=VALUE`` arguments that make the same change."""
        return [a.change.spec for a in self.changes]

    @property
    def condition(self) -> str:
        """The changes in words (``if ... and ...``)."""
        return "if " + " and ".join(a.words for a in self.changes)

    def text(self, with_option: bool = False) -> str:
        """``if <changes> -> <new standing> (<why>)``."""
        who = f"{self.label}: " if with_option else ""
        why = f" ({'; '.join(self.because)})" if self.because else ""
        return f"{IF_SO if self.conditional else ''}{self.condition} -> {who}{self.after}{why}"

    @property
    def specs(self) -> tuple[str, ...]:
        return tuple(self.assume)

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "label": self.label, "targets": list(self.targets),
                "changes": [a.as_dict() for a in self.changes], "assume": self.assume, "text": self.text(),
                "before": self.before, "after": self.after, "standing": self.standing.as_dict(),
                "because": list(self.because), "ifTheDataNeededSettleIt": self.conditional}


@dataclass
class OptionWhatIf:
    """The what-if lines of one option, and for each target it does not meet that no set of at
    most ``depth`` changes meets, why (``unmet``)."""

    option: str
    label: str
    status: str
    before: str
    lines: list[WhatIf] = field(default_factory=list)
    unmet: dict[str, str] = field(default_factory=dict)

    def shortest(self, target: str | None = None) -> WhatIf | None:
        """The shortest line that meets ``target`` (by default the first target the option does
        not meet: offered, then first); ties go to the line whose changes come first (actions
        before judgements)."""
        wanted = [target] if target else [t for t in ("applies", "offered", "first") if t in self.pending]
        for t in wanted:
            lines = [w for w in self.lines if t in w.targets]
            if lines:
                return min(lines, key=lambda w: len(w.changes))
        return None

    @property
    def pending(self) -> list[str]:
        return [t for t in TARGETS if t in self.unmet or any(t in w.targets for w in self.lines)]

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "label": self.label, "status": self.status, "now": self.before,
                "whatIf": [w.as_dict() for w in self.lines],
                "notReached": [{"target": t, "why": why} for t, why in self.unmet.items()]}


@dataclass
class WhatIfReport:
    """What would change the answer for one patient record."""

    source: str
    record: RecordRef
    result: PatientResult
    depth: int
    options: list[OptionWhatIf] = field(default_factory=list)
    candidates: list[Applied] = field(default_factory=list)
    variants: int = 0
    notes: list[str] = field(default_factory=list)

    def option(self, iri: str) -> OptionWhatIf | None:
        return next((o for o in self.options if o.option == iri), None)

    def as_dict(self) -> dict[str, Any]:
        result = self.result
        return {"source": self.source, "patientId": self.record.patient_id, "patient": str(self.record.node),
                "guidelineVersion": result.guideline_version, "asOf": result.as_of.isoformat(),
                "applicable": result.applicable, "applicability": result.state,
                "applicabilityText": result.applicability,
                "dataNeeded": [{**d.as_dict(), "text": d.text()} for d in result.data_needed],
                "depth": self.depth, "variantsAssessed": self.variants,
                "notes": self.notes, "changesConsidered": [a.as_dict() for a in self.candidates],
                "options": [o.as_dict() for o in self.options]}


@dataclass
class Baseline:
    """A validated record and its assessment: what a what-if starts from."""

    graph: Graph
    record: RecordRef
    result: PatientResult
    source: str
    guideline: Guideline
    today: date | None = None

    def __post_init__(self) -> None:
        self.triples = _record_triples(self.graph, self.record.node, self.guideline)
        self.vocab = vocabulary(self.guideline)
        self._record: _Record | None = None
        self._single: dict[Change, Applied] = {}
        self._store: Any = None

    def facts(self) -> _Record:
        if self._record is None:
            self._record = _Record(self.graph, self.record.node, self.vocab, self.result.as_of)
        return self._record

    def assess(self, variants: Sequence[Sequence[Applied]]) -> list[PatientResult]:
        """The assessment under each variant (a list of applied changes, applied together)."""
        if self._store is None:
            self._store = group_store(self.guideline)
        return assess_variants(self.guideline, self.triples, self.record,
                               [([t for a in v for t in a.added], [t for a in v for t in a.removed]) for v in variants],
                               self.result.issues, self.source, self.today, self._store)

    def applied(self, changes: Sequence[Change]) -> list[Applied]:
        """``changes`` on this record, in order, each seeing the ones before it (as ``--assume``)."""
        return assume(self.graph, self.record.node, changes, self.guideline, self.result.as_of)

    def single(self, change: Change) -> Applied:
        """``change`` alone on this record (remembered: a search combines the same few changes)."""
        if change not in self._single:
            self._single[change] = apply(change, self.facts())
        return self._single[change]


def candidates(base: Baseline) -> list[Change]:
    """The changes a search tries for this record, most actionable first (see the module text)."""
    result, vocab, record = base.result, base.vocab, base.facts()
    out: list[Change] = []
    if not result.applicable and not result.cannot_tell:  # only what would make the guideline apply
        for episode, drug, outcome, _, _ in sorted(record.episodes, key=lambda e: (e[1], e[3] or date.min)):
            if drug in vocab.jak and outcome == JDM.Ongoing and drug in vocab.drugs:
                failure = str(JDM.InadequateResponse)
                change = Change("outcome", vocab.drugs[drug].name, vocab.outcomes[failure].name, drug=drug, outcome=failure)
                if change not in out:
                    out.append(change)
        return out
    for gate in result.screening:
        if gate.state == "blocking":
            out.append(Change("clearance", vocab.conditions[gate.condition].name, "cleared", condition=gate.condition))
        elif gate.state not in PASSING:
            tests = vocab.tests_of(gate.condition)
            negative = str(JDM.Negative)
            for test in tests:
                out.append(Change("result", test.name, vocab.results[negative].name, condition=gate.condition,
                                  test=test.iri, result=negative))
            if not tests:
                out.append(Change("result", vocab.conditions[gate.condition].name, vocab.results[negative].name,
                                  condition=gate.condition, result=negative))
    missing = [d for o in result.options for d in o.doses if d.status == "missing-data"]
    if missing and result.body is not None:
        for what, problem in (("weight", result.body.weight_problem), ("height", result.body.height_problem)):
            if problem:  # (the value is the clinician's to measure: the search tries the last one, never says it)
                out.append(Change(what, what, f"<{_MEASURES[what][0]}>"))
    recorded = [m for _, m, _ in record.findings if m in vocab.features]
    now = set(record.predominant())
    for feature in sorted(set(recorded), key=lambda f: vocab.features[f].name):
        if now != {feature}:
            out.append(_predominant({feature}, vocab))
        if now and feature not in now:
            out.append(_predominant(now | {feature}, vocab))
    refractory = REFRACTORY
    for feature, term in vocab.features.items():
        if feature in recorded:
            continue
        out.append(Change("present", "present", term.name, features=(feature,)))
        if feature != refractory:
            out.append(_predominant({feature}, vocab))
    return list(dict.fromkeys(out))


def _predominant(features: set[str], vocab: Vocabulary) -> Change:
    chosen = tuple(sorted(features, key=lambda i: vocab.features[i].name))
    return Change("predominant", "predominant", ",".join(vocab.features[i].name for i in chosen), features=chosen)


def _consistent(changes: Sequence[Change]) -> bool:
    keys = [c.key for c in changes]
    if len(set(keys)) < len(keys):
        return False
    chosen = {f for c in changes if c.kind == "predominant" for f in c.features}
    return not any(c.kind == "present" and c.features[0] in chosen for c in changes)


def _targets(option: OptionAssessment, standing: Standing, applicable: bool, wanted: Sequence[str]) -> list[str]:
    """The targets ``option`` does not meet now and a change might: of a record the guideline does
    not apply to, only that it applies; of a drug that failed or is being given, only "offered"
    (said once: nothing a record can change would offer it); "first" only of an option not ranked
    #1 now (a tie at #1 is #1, as the report says)."""
    if not applicable:
        return ["applies"] if "applies" in wanted and not option.status == "excluded" else []
    if option.status in ("excluded", "current"):
        return ["offered"] if "offered" in wanted else []
    out = []
    for target in wanted:
        if target == "first" and (not option.ranked or option.rank == 1):
            continue
        if target == "ready" and not option.gates:
            continue
        if target == "dose" and standing.dose is not False:
            continue
        if target == "applies":
            continue
        if not standing.meets(target, option.ranked, bool(option.gates)):
            out.append(target)
    return out


def _unmet_reason(option: OptionAssessment, target: str, depth: int, base: Baseline) -> str:
    if option.status == "excluded":
        return f"{option.summary}: a failure that happened stays on record, so no change is proposed"
    if option.status == "current":
        return f"{option.summary}: nothing to change (the options above are the alternatives if it fails)"
    if not base.result.applicable and not base.result.cannot_tell:
        return ("the guideline does not apply to this record, and no change a record can make would apply it (a "
                "treatment failure is never assumed; only an ongoing JAK inhibitor course can be recorded as failed)")
    text = f"no change of at most {depth} fact{'s' if depth != 1 else ''} {UNMET[target]}"
    if target == "first":
        named = [n for n in _facts(base.guideline).named_for.get(option.option, []) if n[0] == "for"]
        if not named:
            text += " (the guideline ties it to no feature, so no feature of the patient ranks it above the others)"
    if target == "ready":
        needed = [g.condition_label for g in option.gates if g.state not in PASSING]
        text += (f": {len(needed)} screenings are still needed ({_and(needed)}), one result or more each; "
                 f"--depth {min(MAX_DEPTH, depth + 1)} looks further") if len(needed) > depth else ""
    if target == "dose":
        text += " (see the dose line: what is missing)"
    return (IF_SO if standing_of(option, base.guideline).conditional else "") + text


def what_if(base: Baseline, option: str | None = None, depth: int = 2,
            targets: Sequence[str] = TARGETS) -> WhatIfReport:
    """For each option of ``base`` (or the one named), the smallest sets of at most ``depth``
    changes that meet each target it does not meet now (see the module text)."""
    if not 1 <= depth <= MAX_DEPTH:
        raise InputError("--depth", f"{depth}: give a depth from 1 to {MAX_DEPTH} (changes of at most that many facts)")
    result = base.result
    report = WhatIfReport(base.source, base.record, result, depth)
    if result.blocked_by_validation:
        report.notes.append("the record has violations: fix them first (nothing is assumed over a record that does "
                            "not conform)")
        return report
    guideline = base.guideline
    options = [o for o in result.options if option is None or o.option == option]
    now = {o.option: standing_of(o, guideline) for o in options}
    # cannot tell: the search runs on each option as it would be if the guideline applies (its
    # "if so" standing); what would settle it is the data needed, which no what-if assumes
    searched = result.applicable or result.cannot_tell
    pending = {o.option: _targets(if_applies(o), now[o.option], searched, targets) for o in options}
    if result.cannot_tell:
        report.notes.append(f'Lines marked "{IF_SO.strip()}" hold only if the data needed (above) settle it, as '
                            "jdm-kg recommend's \"if so\" lines say: each was found on the options as they would "
                            "then be.")
    for o in options:
        report.options.append(OptionWhatIf(o.option, o.label, o.status, standing_text(o, result)))
    pool = candidates(base)
    applied: list[Applied] = []
    for change in pool:
        try:
            applied.append(base.single(change))
        except InputError:
            continue  # (a candidate that does not fit this record: never proposed)
    report.candidates = applied
    by_option = {o.option: o for o in options}
    found: dict[tuple[str, str], list[tuple[int, ...]]] = {}
    lines: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    after_of: dict[tuple[str, tuple[int, ...]], tuple[OptionAssessment, PatientResult]] = {}
    for size in range(1, depth + 1):
        open_ = {(o, t) for o, ts in pending.items() for t in ts if (o, t) not in found}
        if not open_:
            break
        sets = []
        for combo in itertools.combinations(range(len(applied)), size):
            if not _consistent([applied[i].change for i in combo]):
                continue
            sets.append(combo)
        if not sets:
            break
        # consistent changes touch different facts, so each applies to the record as it is (the
        # property test re-runs every line through --assume, which applies them in turn)
        results = base.assess([[applied[i] for i in combo] for combo in sets])
        report.variants += len(sets)
        for combo, changed in zip(sets, results):
            options_after = {o.option: o for o in changed.options}
            for key in sorted(open_):
                name, target = key
                after = options_after.get(name)
                if after is None:
                    continue
                if standing_of(after, guideline).meets(target, after.ranked, bool(after.gates)):
                    found.setdefault(key, []).append(combo)
                    lines.setdefault((name, combo), []).append(target)
                    after_of[(name, combo)] = (after, changed)
        for (name, combo), reached in sorted(lines.items(), key=lambda item: (item[0][0], len(item[0][1]), item[0][1])):
            if len(combo) != size:
                continue
            before = by_option[name]
            after, changed = after_of[(name, combo)]
            changes = tuple(applied[i] for i in combo)
            what = next(o for o in report.options if o.option == name)
            reached_in_order = tuple(t for t in TARGETS if t in reached)
            words = (standing_text(after, changed, dose=False, conditional=False)
                     + ("; its dose can be worked out" if "dose" in reached else ""))
            standing = standing_of(after, guideline)
            what.lines.append(WhatIf(name, before.label, reached_in_order, changes,
                                     what.before, words, standing,
                                     tuple(_because(if_applies(before), if_applies(after), changed, guideline)),
                                     standing.conditional))
    for what in report.options:
        o = by_option[what.option]
        for target in pending[what.option]:
            if (what.option, target) not in found:
                what.unmet[target] = _unmet_reason(o, target, depth, base)
        what.lines.sort(key=lambda w: (TARGETS.index(w.targets[0]), len(w.changes),
                                       [pool.index(a.change) for a in w.changes]))
    if not searched and not applied:
        report.notes.append("the guideline does not apply (no JAK inhibitor failure is recorded) and no change a record "
                            "can make would apply it: a treatment failure is never assumed")
    return report


def shortest(report: WhatIfReport, option: str, target: str | None = None) -> WhatIf | None:
    """The shortest what-if line for ``option`` that meets ``target`` (by default: offered if it is
    not offered, else first): the one line a report shows under an option. For "record X and this
    changes to Y" lines elsewhere (a pending screening, a datum that cannot be read): ask
    :func:`what_if` for that option and target, then this."""
    found = report.option(option)
    return found.shortest(target) if found else None


def shortest_change(graph: Graph, result: PatientResult, option: str, target: str = "ready",
                    guideline: Guideline | None = None, depth: int = 2, today: date | None = None,
                    source: str | None = None) -> WhatIf | str | None:
    """"Record X and this changes to Y" for one option of one assessed record (``result``, whose
    patient graph is ``graph``): the shortest what-if that makes ``option`` meet ``target``
    (:data:`TARGETS`; e.g. "ready" for a screening still pending, "offered" for a blocked option),
    searched for that option and target alone; the reason none is found (a string); or None when
    the option meets the target already. ``line.condition`` is the X, ``line.after`` the Y,
    ``line.because`` the statement or policy, ``line.assume`` the ``--assume`` arguments."""
    guideline = guideline or load_guideline()
    base = Baseline(graph, result.record, result, source or result.source, guideline, today)
    found = what_if(base, option, depth, targets=(target,)).option(option)
    if found is None:
        return None
    line = found.shortest(target)
    return line if line is not None else found.unmet.get(target)


def outcome_if(graph: Graph, result: PatientResult, specs: Sequence[str], guideline: Guideline | None = None,
               today: date | None = None) -> PatientResult:
    """The assessment of ``result``'s record if the facts ``specs`` (``--assume`` FACT=VALUE) were
    recorded: for saying what each reading of a datum that cannot be read would change (compare
    its options with ``result``'s, e.g. with :func:`standing_of`)."""
    guideline = guideline or load_guideline()
    base = Baseline(graph, result.record, result, result.source, guideline, today)
    applied = base.applied(parse_assumptions(specs, guideline))
    (changed,) = base.assess([applied])
    changed.assumptions = [a.as_dict() for a in applied]
    return changed


def resolve_option(name: str, guideline: Guideline) -> str:
    """The option (next line, adjunct, escalation) that ``name`` names: its IRI, its local name
    (``rituximab``) or a label; an :class:`InputError` with the nearest ones otherwise."""
    options = {c.option: c.label for c in _facts(guideline).candidates}
    wanted = _plain(name)
    for iri, label in options.items():
        if name == iri or wanted in (_plain(iri.rsplit("/", 1)[-1]), _plain(label)):
            return iri
    drugs = vocabulary(guideline)
    term = drugs.find(name, "Drug", drugs.drugs)
    if term is not None and term.iri in options:
        return term.iri
    names = sorted(iri.rsplit("/", 1)[-1] for iri in options)
    raise InputError("option", f"{name!r} is not an option this guideline presents; " + _near(wanted, names))


# --------------------------------------------------------------------------------------
# Files


def what_if_file(path: str | Path, option: str | None = None, depth: int = 2, patient_id: str | None = None,
                 predominant: Sequence[str] = (), guideline: Guideline | None = None,
                 targets: Sequence[str] = TARGETS, today: date | None = None, assume: Sequence[Change] = ()
                 ) -> tuple[ValidationReport, list[WhatIfReport]]:
    """Read, validate and assess the patient file at ``path`` as ``recommend`` does (with the
    hypothetical facts ``assume``, as ``recommend --assume``), then search what would change the
    answer for each record (or the one with ``patient_id``)."""
    from jdm_kg.inputs.loading import load_patient_file

    if not 1 <= depth <= MAX_DEPTH:
        raise InputError("--depth", f"{depth}: give a depth from 1 to {MAX_DEPTH} (changes of at most that many facts)")
    guideline = guideline or load_guideline()
    graph = load_patient_file(path, tuple(predominant), guideline)
    assumed = apply_assumptions(graph, assume, str(path), guideline, today) if assume else {}
    graph = set_aside_ill_typed(graph)
    report, results = recommend_graph(graph, str(path), guideline, today, engine="oxigraph")
    for result in results:
        result.assumptions = [a.as_dict() for a in assumed.get(result.record.node, [])]
    if patient_id is not None:
        results = [r for r in results if r.record.patient_id == patient_id]
        if not results:
            raise InputError(str(path), f"no record with patientId {patient_id!r}")
    return report, [what_if(Baseline(graph, r.record, r, str(path), guideline, today), option, depth, targets)
                    for r in results]


def shortest_lines(graph: Graph, results: Sequence[PatientResult], guideline: Guideline, source: str,
                   today: date | None = None, depth: int = 2) -> None:
    """Attach to each result the shortest what-if of each option not offered or not first
    (``result.whatif``: option IRI -> :class:`WhatIf` or the reason none was found), for the
    report's details and the web page."""
    for result in results:
        if result.blocked_by_validation or not result.applicable and not result.options:
            continue
        found = what_if(Baseline(graph, result.record, result, source, guideline, today), depth=depth,
                        targets=("offered", "first"))
        for what in found.options:
            line = what.shortest()
            if line is not None:
                result.whatif[what.option] = line
            elif what.unmet:
                result.whatif[what.option] = next(iter(what.unmet.values()))
