"""``jdm-kg query`` for analysts (issue 23, part 4): tables name terms with the guideline's
prefixes, never break an IRI, keep to the terminal's width (CSV and JSON stay whole), and a
query of one's own that names a term the vocabulary does not have gets a note with the nearest."""

from __future__ import annotations

import csv
import doctest
import io
import json
import os
import pty
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli, run

from jdm_kg import load_guideline
from jdm_kg.knowledge import prefixes, query_terms
from jdm_kg.knowledge.queries import check_query, parse_param
from jdm_kg.outputs import table

EX = ROOT / "examples"
LONG = "https://example.org/a-registry-with-a-long-name/patients/P-WITH-A-RATHER-LONG-IDENTIFIER-0001"
OWN = """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
PREFIX jdmg: <https://w3id.org/jdm-kg/guideline/>
SELECT ?patient ?drug WHERE { ?patient a jdm:Patient ; jdm:treatmentEpisode/jdm:drug ?drug }
ORDER BY ?patient ?drug
"""


def _cli(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI into a pipe (in-process, :func:`helpers.cli`), with COLUMNS set or not: a pipe is
    no terminal, so COLUMNS must not matter. On a terminal (a pseudo-terminal) and as a user runs
    it: :func:`_terminal`, a subprocess; so is ``run`` below."""
    return cli(*args, env={"COLUMNS": str(columns)} if columns is not None else None)


def _long_patient(tmp_path: Path) -> Path:
    path = tmp_path / "long.ttl"
    path.write_text((EX / "skin-predominant.ttl").read_text(encoding="utf-8").replace("ex:P-SKIN a", f"<{LONG}> a"),
                    encoding="utf-8")
    return path


def _table_lines(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line) <= {"─", " "} and line) - 1
    end = next(i for i, line in enumerate(lines) if line.startswith("("))
    return lines[start:end]


def test_tables_name_terms_with_the_guidelines_prefixes():
    proc = _cli("query", "option-statements")
    assert proc.returncode == 0, proc.stderr
    rows = _table_lines(proc.stdout)[2:]
    assert any(line.startswith("jdmg:rituximab ") and "jdmg:pref-rituximab-muscle-ild" in line for line in rows)
    assert "https://w3id.org/jdm-kg/guideline/" not in proc.stdout  # was the whole IRI in every cell
    # CSV and JSON give the IRIs whole, for programs
    as_csv = list(csv.DictReader(io.StringIO(_cli("query", "option-statements", "--format", "csv").stdout)))
    assert "https://w3id.org/jdm-kg/guideline/rituximab" in {r["option"] for r in as_csv}
    as_json = json.loads(_cli("query", "option-statements", "--format", "json").stdout)
    assert {r["option"] for r in as_json} == {r["option"] for r in as_csv}


def test_a_prefixed_name_from_a_table_can_be_given_back_as_a_parameter():
    by_name = _cli("query", "option-statements", "--param", "option=jdmg:rituximab", "--format", "json")
    by_iri = _cli("query", "option-statements", "--param", "option=<https://w3id.org/jdm-kg/guideline/rituximab>",
                  "--format", "json")
    assert by_name.returncode == 0 and json.loads(by_name.stdout) == json.loads(by_iri.stdout) != []
    assert parse_param("x=jdmg:rituximab", prefixes.guideline_prefixes())[1] == \
        parse_param("x=<https://w3id.org/jdm-kg/guideline/rituximab>")[1]
    assert str(parse_param("x=nope:rituximab", prefixes.guideline_prefixes())[1]) == "nope:rituximab"  # a literal


def test_a_query_s_own_prefixes_name_the_data_s_iris(tmp_path):
    query = tmp_path / "own.rq"
    query.write_text("PREFIX reg: <https://example.org/a-registry-with-a-long-name/patients/>\n" + OWN, encoding="utf-8")
    proc = _cli("query", str(query), "--data", str(_long_patient(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "reg:P-WITH-A-RATHER-LONG-IDENTIFIER-0001   jdmg:methotrexate" in proc.stdout


def test_an_iri_is_never_broken_and_a_pipe_gets_every_value_whole(tmp_path):
    proc = _cli("query", str(_write(tmp_path, OWN)), "--data", str(_long_patient(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    rows = _table_lines(proc.stdout)[2:]
    assert len(rows) == 2 and all(line.startswith(LONG + "   jdmg:") for line in rows)  # was folded at 60 characters
    assert "…" not in proc.stdout


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "query.rq"
    path.write_text(text, encoding="utf-8")
    return path


def _terminal(*args: str, columns: int) -> str:
    """What the CLI prints on a terminal ``columns`` wide (a pseudo-terminal), as a user sees it."""
    import fcntl
    import termios

    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "jdm_kg.cli", *args], stdout=child, stderr=subprocess.PIPE,
                            cwd=ROOT, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, stderr = proc.communicate(timeout=300)
    os.close(parent)
    assert proc.returncode == 0, stderr
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.mark.parametrize("columns", [60, 100])
def test_on_a_terminal_the_table_keeps_to_its_width_and_cuts_with_an_ellipsis(tmp_path, columns):
    data = str(_long_patient(tmp_path))
    text = _terminal("query", str(_write(tmp_path, OWN)), "--data", data, columns=columns)
    lines = _table_lines(text)
    assert len(lines) == 4 and max(len(line) for line in lines) <= columns
    first = lines[2].split()
    assert first[0].endswith("…") and LONG.startswith(first[0][:-1])  # cut at the end, never split inside
    assert first[1] in ("jdmg:methotrexate", "jdmg:tofacitinib") or first[1].endswith("…")
    assert "Values too wide to show end in …: --format csv or json gives them whole." in text
    whole = _cli("query", str(_write(tmp_path, OWN)), "--data", data, "--format", "csv", columns=columns)
    assert LONG in whole.stdout and "…" not in whole.stdout  # CSV stays whole, whatever COLUMNS says
    piped = _cli("query", str(_write(tmp_path, OWN)), "--data", data, columns=columns)
    assert LONG in piped.stdout and "…" not in piped.stdout  # and so does a table into a pipe


def test_a_bundled_query_on_a_terminal_keeps_to_its_width():
    text = _terminal("query", "option-statements", columns=120)
    lines = _table_lines(text)
    assert len(lines) > 10 and max(len(line) for line in lines) <= 120
    assert lines[2].startswith("jdmg:") and "…" in text
    # too narrow for readable columns (a reviewer saw '…   …   …' at 80): one field per line, whole
    narrow = _terminal("query", "option-statements", columns=72)
    assert "option:             jdmg:adalimumab" in narrow and "…" not in narrow
    assert "levelLabel:         more effective for one feature than another" in narrow


def test_render_table_fits_any_width_and_leaves_short_columns_whole():
    names = ["option", "side", "label"]
    rows = [["jdmg:combination-mtx-csa-ivig", "for", "refractory disease with multiple manifestations"]]
    for width in (40, 60, 80, 200):
        text, cut = table.render_table(names, rows, width)
        assert max(len(line) for line in text.splitlines()) <= width
        assert cut == (width < 88)
        assert " for " in text.splitlines()[2] + " "  # the narrow column whole while the wide ones are cut
    text, cut = table.render_table(names, rows, 20)  # a column would be under MIN_COLUMN: one field per line
    assert not cut and text.splitlines() == ["option: jdmg:combination-mtx-csa-ivig", "side:   for",
                                             "label:  refractory disease with multiple manifestations"]
    assert table.render_table(names, rows, None) == table.render_table(names, rows, 1000)
    assert table.render_table([], [], None) == ("", False)  # SELECT * of nothing: no table
    huge = "x" * (table.PIPE_MAX + 10)  # into a pipe only a value too wide for any screen is cut
    text, cut = table.render_table(["v"], [[huge]], None)
    assert cut and text.splitlines()[2] == "x" * (table.PIPE_MAX - 1) + "…"


@pytest.mark.parametrize("module", [prefixes, table, query_terms])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- terms the vocabulary does not have


def test_a_misspelt_term_gets_a_note_with_the_nearest_terms_whatever_the_rows(tmp_path):
    query = _write(tmp_path, """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
SELECT ?d ?r WHERE { ?d a jdm:Drgu ; jdm:regimen ?r }""")
    proc = _cli("query", str(query))
    assert proc.returncode == 0 and "(0 rows)" in proc.stdout
    assert (f"note: {query}: jdm:Drgu is not a class in the vocabulary or the data, so nothing matches it; nearest: "
            "jdm:Drug") in proc.stderr
    assert (f"note: {query}: jdm:regimen is not a property in the vocabulary or the data, so nothing matches it; "
            "nearest: ") in proc.stderr and "jdm:hasRegimen" in proc.stderr.split("jdm:regimen is not")[1]
    # rows or none: a query with rows and one misspelt term among alternatives still says so
    rows = _write(tmp_path, """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
PREFIX jdmg: <https://w3id.org/jdm-kg/guideline/>
SELECT ?drug WHERE { ?e jdm:drug ?drug . FILTER(?drug IN (jdmg:tofacitinib, jdmg:baricitnib)) } ORDER BY ?drug""")
    proc = _cli("query", str(rows), "--data", str(EX / "skin-predominant.ttl"), "--format", "csv")
    assert proc.stdout.splitlines()[1:] == ["https://w3id.org/jdm-kg/guideline/tofacitinib"]
    assert "jdmg:baricitnib is not a term in the vocabulary or the data" in proc.stderr
    assert "nearest: jdmg:baricitinib" in proc.stderr
    # a property path, in JSON: each term named once
    path = _write(tmp_path, """PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>
SELECT ?w WHERE { ?p jdm:bodyWeight/jdm:valu ?w . ?q jdm:bodyWeight/jdm:valu ?v }""")
    proc = _cli("query", str(path), "--data", str(EX / "skin-predominant.ttl"), "--format", "json")
    assert json.loads(proc.stdout) == [] and proc.stderr.count("jdm:valu is not a property") == 1
    assert "nearest: jdm:value" in proc.stderr


def test_known_terms_bundled_queries_and_the_data_s_own_terms_get_no_note(tmp_path):
    quiet = _cli("query", str(_write(tmp_path, OWN)), "--data", str(EX / "skin-predominant.ttl"))
    assert quiet.returncode == 0 and "is not a" not in quiet.stderr
    assert "is not a" not in _cli("query", "option-statements").stderr
    # a term only the data has (a drug outside the guideline, jdmg:anakinra) is in the data: nothing to say
    query = _write(tmp_path, "PREFIX jdm: <https://w3id.org/jdm-kg/vocab#>\nPREFIX jdmg: <https://w3id.org/jdm-kg/"
                             "guideline/>\nSELECT ?e WHERE { ?e jdm:drug jdmg:anakinra }")
    data = str(EX / "invalid" / "unknown-drug-and-missing-outcome.ttl")
    assert "jdmg:anakinra is not" not in run("query", str(query), "--data", data).stderr
    assert "jdmg:anakinra is not a term" in run("query", str(query)).stderr  # without that record it is unknown


def test_unknown_terms_through_the_python_api():
    guideline = load_guideline()
    query = check_query("PREFIX jdm: <https://w3id.org/jdm-kg/vocab#> "
                        "SELECT * WHERE { ?d a jdm:Drgu ; ^jdm:drug/jdm:outcom ?o ; jdm:hasRegimen ?r }", "q")
    found = query_terms.unknown_terms(query, guideline.graph)
    assert [(t.iri.split("#")[1], t.role) for t in found] == [("Drgu", "class"), ("outcom", "property")]
    assert found[0].nearest[0].endswith("#Drug") and found[1].nearest[0].endswith("#outcome")


# ---------------------------------------------------------------- --param mistakes


def test_a_param_naming_no_variable_is_an_error_and_a_value_naming_no_term_gets_a_note():
    """A misspelt --param name changed nothing and the whole table came back as if filtered; a
    misspelt IRI or a bare word gave 0 rows and no word (a reviewer's finding)."""
    wrong = run("query", "regimen", "--param", "opton=jdmg:rituximab")
    assert wrong.returncode == 2 and "?opton is not a variable of" in wrong.stderr and "did you mean option?" in wrong.stderr
    typo = run("query", "regimen", "--param", "option=jdmg:rituximabb", "--format", "csv")
    assert typo.returncode == 0 and ("note: --param option: <https://w3id.org/jdm-kg/guideline/rituximabb> is not a "
                                     "term of the guideline (nearest: jdmg:rituximab") in typo.stderr
    bare = run("query", "regimen", "--param", "option=rituximab", "--format", "csv")
    assert "--param option=rituximab is a plain string; for the term write jdmg:rituximab" in bare.stderr
    right = run("query", "regimen", "--param", "option=jdmg:rituximab", "--format", "csv")
    assert "note: --param" not in right.stderr and "jdmg:regimen-rituximab" in right.stdout.replace(
        "https://w3id.org/jdm-kg/guideline/", "jdmg:")
