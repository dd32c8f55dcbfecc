"""The fuzz corpus: hostile and broken patient files made from the examples, seeded.

``python tests/fuzz/generate.py FOLDER`` writes the cases to FOLDER (the test suite writes them
to a temporary folder: the corpus is this script, not a thousand committed files). The same
seed always gives the same files. Kinds of case (the name of each file starts with its kind):

- ``trunc``: an example cut at a random byte; ``mut``: random bytes deleted, doubled or
  replaced by syntax characters; ``enc``: other encodings (UTF-16, Latin-1, a BOM, CRLF,
  invalid UTF-8, NUL bytes);
- ``deep``: nesting hundreds to a hundred thousand levels deep (JSON arrays and objects,
  Turtle blank nodes and lists);
- ``huge``: a JSON integer of 5,000 digits, long strings, 1e999, many values;
- ``iri``: IRIs rdflib accepts and Oxigraph refuses (``^^<urn:a"b>``, a JSON-LD key ``"a<"``);
- ``date``, ``num``: impossible dates and NaN/Infinity in every date and number field;
- ``fhir``: FHIR shape errors (``entry: ["x"]``, ``entry: [{}]``, ``"resourceType": "Conditionx"``,
  wrong types in every field);
- ``json``: any one JSON value of an example replaced by another of any type;
- ``ctl``: control characters (ESC sequences) in record text.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = 13

SYNTAX = [b";", b".", b",", b'"', b"<", b">", b"[", b"]", b"{", b"}", b"\\", b"^^", b"@", b":", b"\n", b"#", b"\x00",
          b"\x1b", b"\xff", b"\xc3", b'"""', b"_:b", b"a"]
ODD_DATES = ["2020-02-30", "", "2012-2-3", "2020-13-01", "0000-01-01", "-2020-01-01", "99999-01-01", "2020-02-29T25:00",
             "tomorrow", "2021-02-29"]
ODD_NUMBERS = ["NaN", "INF", "-INF", "1e999", "-0", "1" + "0" * 400, "0x10", "", "3,5", "Infinity"]
JSON_VALUES: list[Any] = [None, True, 0, -1, 1.5, 1e308, "", "x", "a<", 'urn:a"b', "2020-02-30", [], {}, ["x"], [{}],
                          {"@id": "a<"}, {"@value": "x", "@type": 'urn:a"b'}, {"@list": [1]}, {"resourceType": "Conditionx"},
                          {"@id": "_:b1"}, "\x1b[31mred", "\u202e", "\ud7ff", 10**30]


def examples() -> dict[str, bytes]:
    """The example files (valid and invalid) the mutations start from, by name."""
    files = sorted(EXAMPLES.glob("*.ttl")) + sorted(EXAMPLES.glob("*.jsonld")) + sorted((EXAMPLES / "fhir").glob("*.json"))
    files += sorted((EXAMPLES / "invalid").glob("*"))
    return {f"{p.parent.name}-{p.name}" if p.parent != EXAMPLES else p.name: p.read_bytes() for p in files}


def _suffix(name: str) -> str:
    return "." + name.rsplit(".", 1)[1]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _json_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _json_paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _json_paths(value, path + (index,))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def _deep_json(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def cases(seed: int = SEED) -> Iterator[tuple[str, bytes]]:
    """Every case: (file name, content). Names are unique; the order and content depend only on
    ``seed``. Each case's patient IRIs are its own (``.../patient/<case>/P-SKIN``), so that a batch
    can process the cases together (files that share a node are processed apart)."""
    for number, (file_name, content) in enumerate(_cases(seed)):
        yield file_name, content.replace(b"/example/patient/", b"/example/patient/%d/" % number)


def _cases(seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    sources = examples()
    count = 0

    def name(kind: str, base: str, suffix: str | None = None) -> str:
        nonlocal count
        count += 1
        return f"{kind}-{count:04d}-{_stem(base)}{suffix or _suffix(base)}"

    for base, data in sources.items():
        text = data.decode("utf-8")
        for _ in range(12):
            yield name("trunc", base), data[: rng.randrange(0, len(data))]
        for _ in range(14):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(mutated))
                action = rng.choice(("delete", "insert", "double"))
                if action == "delete":
                    del mutated[at:at + rng.randint(1, 8)]
                elif action == "insert":
                    mutated[at:at] = rng.choice(SYNTAX)
                else:
                    mutated[at:at] = mutated[at:at + rng.randint(1, 30)]
            yield name("mut", base), bytes(mutated)
        yield name("enc", base), text.encode("utf-16")
        yield name("enc", base), ("\ufeff" + text).encode("utf-8")
        yield name("enc", base), text.replace("\n", "\r\n").encode("utf-8")
        yield name("enc", base), text.replace('"', '"é', 1).encode("latin-1", "replace")
        yield name("enc", base), data[: len(data) // 2] + b"\xc3\x28" + data[len(data) // 2:]
        yield name("enc", base), data.replace(b"\n", b"\n\x00", 1)
        yield name("ctl", base), text.replace("P-", "P-\x1b[2J\x1b]0;owned\x07\r", 1).encode("utf-8")
        if base.endswith(".ttl"):
            yield from _turtle_cases(rng, base, text, name)
        else:
            yield from _json_cases(rng, base, text, name)
    for depth in (300, 1_000, 100_000):
        for kind in ("array", "object"):
            yield name("deep", f"{kind}{depth}.jsonld"), _deep_json(depth, kind)
            yield name("deep", f"{kind}{depth}.json"), b'{"resourceType": "Bundle", "type": "collection", "entry": ' + _deep_json(depth, kind) + b"}"
    for depth in (300, 1_000, 10_000):
        yield name("deep", f"blank{depth}.ttl"), b"<urn:p> a <https://w3id.org/jdm-kg/vocab#Patient> ; <urn:x> " + b"[ <urn:x> " * depth + b"1" + b" ]" * depth + b" ."
        yield name("deep", f"list{depth}.ttl"), b"<urn:p> <urn:x> " + b"( " * depth + b")" * depth + b" ."


def _turtle_cases(rng: random.Random, base: str, text: str, name: Any) -> Iterator[tuple[str, bytes]]:
    dates = [i for i in range(len(text)) if text.startswith('"^^xsd:date', i)]
    for odd in ODD_DATES:
        if dates:
            end = rng.choice(dates)
            start = text.rindex('"', 0, end)
            yield name("date", base), (text[:start + 1] + odd + text[end:]).encode("utf-8")
    numbers = [i for i in range(len(text)) if text.startswith("jdm:value ", i)]
    for odd in ODD_NUMBERS:
        if numbers:
            at = rng.choice(numbers) + len("jdm:value ")
            end = text.index(" ", at)
            yield name("num", base), (text[:at] + f'"{odd}"^^xsd:{rng.choice(["decimal", "integer", "double"])}' + text[end:]).encode("utf-8")
    for odd in ['"x"^^<urn:a"b>', '"x"^^<urn:a b>', "<urn:a\"b>", "<a<b>", '"x"@en-', '"x"@123456789', "<\\u0000>",
                "<http://a/\\u003c>", "<urn:\\u0020x>", '"x"^^xsd:date', '"\\uD800"', "<>", "<#frag>", '"\\u0000"']:
        yield name("iri", base), text.replace('"female"', odd, 1).replace('"male"', odd, 1).replace('"P-', f"{odd} , \"P-", 1).encode("utf-8")
    yield name("huge", base), text.replace("jdm:value ", "jdm:value " + "9" * 5000 + " , ", 1).encode("utf-8")
    yield name("huge", base), text.replace('"kg"', '"' + "k" * 2_000_000 + '"', 1).encode("utf-8")
    yield name("huge", base), text.replace("jdm:value ", "jdm:value 1e999 , ", 1).encode("utf-8")


def _json_cases(rng: random.Random, base: str, text: str, name: Any) -> Iterator[tuple[str, bytes]]:
    document = json.loads(text)
    paths = list(_json_paths(document))
    for _ in range(30):
        path = rng.choice(paths)
        yield name("json", base), json.dumps(_replaced(document, path, rng.choice(JSON_VALUES))).encode("utf-8")
    date_paths = [p for p in paths if p and isinstance(p[-1], str) and ("date" in p[-1].lower() or p[-1] in ("timestamp", "start", "end"))]
    number_paths = [p for p in paths if p and p[-1] == "value" and isinstance(_get(document, p), (int, float))]
    for odd in ODD_DATES:
        if date_paths:
            yield name("date", base), json.dumps(_replaced(document, rng.choice(date_paths), odd)).encode("utf-8")
    for odd in ("NaN", "Infinity", "-Infinity", "1" + "0" * 5000, "1e999"):
        if number_paths:
            # the token itself, not a JSON string: Python's json reads NaN and Infinity
            marker = "__NUMBER__"
            raw = json.dumps(_replaced(document, rng.choice(number_paths), marker))
            yield name("num", base), raw.replace(f'"{marker}"', odd).encode("utf-8")
    yield name("iri", base), json.dumps(_replaced(document, (), dict(document, **{"a<": "x"}))).encode("utf-8")
    if "@context" in document:
        yield name("iri", base), json.dumps(dict(document, id='urn:a"b')).encode("utf-8")
        yield name("iri", base), json.dumps(dict(document, birthDate={"@value": "2015-05-12", "@type": 'urn:a"b'})).encode("utf-8")
        yield name("iri", base), json.dumps(dict(document, **{"@context": [document["@context"], {"a<": "urn:x"}], "a<": "y"})).encode("utf-8")
    if document.get("resourceType") == "Bundle":
        for entries in (["x"], [{}], None, {}, [None], [{"resource": "x"}], [{"resource": []}], [{"resource": {}}],
                        [{"resource": {"resourceType": "Conditionx"}}], [{"resource": {"resourceType": "Bundle"}}],
                        [{"fullUrl": 5, "resource": {"resourceType": "Patient"}}]):
            yield name("fhir", base), json.dumps(dict(document, entry=entries)).encode("utf-8")
        for resource_type in ("Conditionx", "", None, 5, "Patient", "bundle"):
            entries = [dict(e) for e in document["entry"]]
            pick = rng.randrange(len(entries))
            entries[pick] = dict(entries[pick], resource=dict(entries[pick]["resource"], resourceType=resource_type))
            yield name("fhir", base), json.dumps(dict(document, entry=entries)).encode("utf-8")
        yield name("fhir", base), json.dumps(dict(document, resourceType="Conditionx")).encode("utf-8")
        yield name("fhir", base), json.dumps(document["entry"]).encode("utf-8")
        yield name("huge", base), json.dumps(dict(document, entry=document["entry"] * 200)).encode("utf-8")
    yield name("huge", base), text.replace("{", '{"zz": ' + "1" * 5000 + ",", 1).encode("utf-8")


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def write(folder: Path, seed: int = SEED) -> list[Path]:
    """Write every case into ``folder``; return the paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, content in cases(seed):
        path = folder / file_name
        path.write_bytes(content)
        paths.append(path)
    return paths


if __name__ == "__main__":
    written = write(Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz-corpus"))
    print(f"{len(written)} cases written to {written[0].parent}")
