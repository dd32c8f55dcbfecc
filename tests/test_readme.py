"""README.md as a newcomer uses it: every shell command in its fenced ``sh`` blocks is run, and
every relative link of the README and of ``docs/*.md`` points to a file (and a heading) that exists.

The commands run as a user types them (``bash -c``), from a folder that looks like the checkout
(every top-level entry of the repository linked into it, but the files the commands write), with
``jdm-kg`` of the environment running these tests first on ``PATH``. Every command exits 0
unless its comment says ``# exit code N``. A ``text`` block right after an ``sh`` block shows
what that block's last command prints: each part of it (parts are separated by ``...`` lines) must
be in the output, as consecutive lines.

A command that cannot run here is in ``NOT_RUN_HERE`` with the reason; the test asserts that set,
so a new README command is run or explained, never skipped silently. Commands slower than about
10 s are in ``SLOW`` and run under ``-m slow``. The compiled guideline comes from the cache every
``jdm-kg`` process shares, so it is compiled at most once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: README commands this test does not run, and why (each one's part of a ``&&`` chain counts).
NOT_RUN_HERE = {
    "python3 -m venv .venv": "makes the environment these tests run in; .ci/run does it on a fresh machine",
    ".venv/bin/pip install .": "an install from the package registry (network); .ci/run installs '.[test]', a superset",
    ".venv/bin/pip install '.[test]'": "an install from the package registry (network); .ci/run runs it (asserted)",
    ".venv/bin/python -m pytest -q": "the test suite itself; .ci/run runs this very command (asserted below)",
    "pip install oxigraph": "an install from the package registry (network); the oxigraph server is in the test extras",
    "oxigraph serve --bind 127.0.0.1:7878 &": "run as written, with the next line, by tests/test_endpoint.py "
                                              "(test_the_readme_load_example_loads_every_valid_example_...)",
    "jdm-kg load --endpoint http://127.0.0.1:7878/query --update http://127.0.0.1:7878/update examples/":
        "run as written on the server the line before starts, by tests/test_endpoint.py, which also checks the "
        "closing line and the exit code the README quotes",
}

#: README commands that take more than about 10 s: each is a case of its own, marked slow.
SLOW = {"jdm-kg check": "the whole guideline check (OWL RL closure, shapes, QC queries, quotes): about 20 s"}

#: What the ``.venv/bin/`` prefix of the first commands stands for here: the running environment.
VENV_PREFIX = ".venv/bin/"


@dataclass
class Command:
    text: str  # as the README writes it, without its comment
    line: int  # line of the README
    exit_code: int = 0


@dataclass
class Block:
    lang: str
    body: str
    line: int  # line of the opening fence
    commands: list[Command] = field(default_factory=list)


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(```+)(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        fence, start, body = opening.group(2), i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append(Block(opening.group(3), "\n".join(body), start))
        i += 1
    return blocks


def _without_comment(line: str) -> tuple[str, str]:
    """A shell line and its trailing comment (a ``#`` after white space, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def shell_commands(block: Block) -> list[Command]:
    """An ``sh`` block's commands: lines joined at a trailing backslash, comments dropped, each
    part of a ``&&`` chain a command, its exit code the one its comment names (``# exit code N``)."""
    joined: list[tuple[str, int]] = []
    for offset, raw in enumerate(block.body.splitlines()):
        if joined and joined[-1][0].endswith("\\"):
            joined[-1] = (joined[-1][0][:-1].rstrip() + " " + raw.strip(), joined[-1][1])
        else:
            joined.append((raw, block.line + 1 + offset))
    commands = []
    for raw, line in joined:
        command, comment = _without_comment(raw)
        if not command.strip():
            continue
        wanted = re.search(r"\bexit code (\d+)", comment)
        for part in command.split(" && "):
            commands.append(Command(part.strip(), line, int(wanted.group(1)) if wanted else 0))
    return commands


def readme_blocks() -> list[Block]:
    """The README's fenced blocks, each ``sh`` block with its commands."""
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    for block in blocks:
        if block.lang == "sh":
            block.commands = shell_commands(block)
    return blocks


def readme_commands() -> list[Command]:
    return [c for b in readme_blocks() for c in b.commands]


# ------------------------------------------------------------------ what the README must keep true


def test_the_readme_opens_with_the_two_commands_of_a_fresh_machine() -> None:
    """The first two blocks: set up and run the main job on a bundled example; set up and run the
    tests. .ci/run (a fresh environment) installs as they do and runs the same test command."""
    first, second = [b for b in readme_blocks()][:2]
    assert [c.text for c in first.commands] == [
        "python3 -m venv .venv", ".venv/bin/pip install .", ".venv/bin/jdm-kg recommend examples/skin-predominant.ttl"]
    assert [c.text for c in second.commands] == [
        "python3 -m venv .venv", ".venv/bin/pip install '.[test]'", ".venv/bin/python -m pytest -q"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv .venv" in ci and "pip install --quiet '.[test]'" in ci
    assert "\n.venv/bin/jdm-kg recommend examples/skin-predominant.ttl " in ci
    assert re.search(r"^\.venv/bin/python -m pytest -q( |$)", ci, re.M), "the README's test command is not .ci/run's"
    assert README.read_text(encoding="utf-8").index("```sh") < 200, "the README does not open with the commands"


def test_every_readme_command_is_run_or_said_why_not() -> None:
    commands = {c.text for c in readme_commands()}
    assert set(NOT_RUN_HERE) <= commands, f"no longer in the README: {set(NOT_RUN_HERE) - commands}"
    assert set(SLOW) <= commands, f"no longer in the README: {set(SLOW) - commands}"
    # the two commands tests/test_endpoint.py runs for this test are read from the README by it
    endpoint = (ROOT / "tests" / "test_endpoint.py").read_text(encoding="utf-8")
    assert "def test_the_readme_load_example_loads_every_valid_example_and_notes_the_invalid_ones" in endpoint
    assert '"oxigraph serve"' in endpoint and '"jdm-kg load"' in endpoint
    ran = {c.text for case in _cases() for c in case.values[0]}
    assert ran | set(NOT_RUN_HERE) == commands, f"neither run nor explained: {commands - ran - set(NOT_RUN_HERE)}"


def test_the_readme_is_short_and_tells_no_history() -> None:
    """For users: about 150 lines; what the code was or did before belongs in CHANGELOG.md."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160, len(text.splitlines())
    prose = text
    for block in fenced_blocks(text):
        prose = prose.replace(block.body, "")
    history = re.findall(r"[^.\n]*\b(?:was|were|previously|formerly|used to|no longer|now|since issue|issue \d+|"
                         r"before this change)\b[^.\n]*", prose, re.I)
    assert not history, history


# ------------------------------------------------------------------ running the commands


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like the checkout: its entries linked in, but what the commands write."""
    written = set()
    for command in readme_commands():
        words = shlex.split(command.text.rstrip("&"))
        written |= {words[i + 1] for i, w in enumerate(words[:-1]) if w in (">", "-o", "--output")}
    folder = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in written and entry.name not in ("release", "site"):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of this test run, with its ``jdm-kg`` first on PATH."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "jdm-kg").exists():  # jdm_kg importable but its script not installed: the same entry point
        bin_dir = tmp_path_factory.mktemp("bin")
        shim = bin_dir / "jdm-kg"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from jdm_kg.cli import main; '
                        f'sys.exit(main())" "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("COLUMNS", None)
    return env


def _sh(command: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if command.startswith(VENV_PREFIX + "jdm-kg "):
        command = command[len(VENV_PREFIX):]
    return subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def _check(command: Command, proc: subprocess.CompletedProcess[str]) -> None:
    where = f"README.md:{command.line}: {command.text}"
    assert "Traceback" not in proc.stderr, f"{where}\n{proc.stderr}"
    assert proc.returncode == command.exit_code, (
        f"{where}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr}")


def _shown_output(blocks: list[Block], block: Block) -> str | None:
    """The ``text`` block right after ``block``, if any: what its last command prints."""
    following = blocks[blocks.index(block) + 1:]
    return following[0].body if following and following[0].lang == "text" else None


def _cases() -> list:
    """One case per ``sh`` block (its commands in order: later ones may read what earlier ones
    wrote), less the commands not run here; each slow command a case of its own."""
    cases = []
    blocks = readme_blocks()
    for block in blocks:
        if block.lang != "sh":
            continue
        quick = [c for c in block.commands if c.text not in NOT_RUN_HERE and c.text not in SLOW]
        if quick:
            cases.append(pytest.param(quick, _shown_output(blocks, block), id=f"line-{block.line}"))
        for command in block.commands:
            if command.text in SLOW:
                cases.append(pytest.param([command], None, id=f"line-{command.line}-slow", marks=pytest.mark.slow))
    return cases


def _serve_and_call(commands: list[Command], folder: Path, env: dict[str, str]) -> None:
    """``jdm-kg serve ... &`` on a free port, the commands after it against that port, ``kill %1``
    stops it (as it does in the reader's shell)."""
    serve = commands[0]
    assert serve.text.endswith("&") and commands[-1].text == "kill %1", [c.text for c in commands]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    words = shlex.split(serve.text[:-1])
    assert "--port" not in words  # the README's default port, 8080, is replaced by a free one
    log = folder / f"serve-{port}.log"
    with open(log, "w") as out:
        server = subprocess.Popen(["bash", "-c", f"exec {shlex.join(words)} --port {port}"], cwd=folder, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        from jdm_kg.inputs.netguard import allow_hosts

        allow_hosts({"127.0.0.1"})  # this process may hold an in-process CLI test's network guard
        deadline = time.monotonic() + 90
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read())
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"jdm-kg serve did not start:\n{log.read_text()}"
                time.sleep(0.2)
        assert health["status"] == "ok"
        for command in commands[1:-1]:
            text = command.text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            if text.split()[0] == "curl" and shutil.which("curl") is None:
                pytest.skip("curl is not installed: the README's calls to the service cannot be made")
            proc = _sh(text, folder, env)
            _check(command, proc)
            assert proc.stdout.strip(), f"README.md:{command.line}: no answer"
    finally:
        server.send_signal(signal.SIGTERM)  # what `kill %1` sends
        try:
            stopped = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError(f"jdm-kg serve did not stop on SIGTERM:\n{log.read_text()}") from None
    assert "Traceback" not in log.read_text(), log.read_text()
    assert stopped == 143, log.read_text()  # terminated by SIGTERM: the documented exit code


@pytest.mark.parametrize(("commands", "shown"), _cases())
def test_readme_commands(commands: list[Command], shown: str | None, workdir: Path, environment: dict[str, str]):
    if commands[0].text.split()[:2] == ["jdm-kg", "serve"]:
        _serve_and_call(commands, workdir, environment)
        return
    proc = None
    for command in commands:
        proc = _sh(command.text, workdir, environment)
        _check(command, proc)
    if shown is not None:
        output = proc.stdout.splitlines()
        for part in re.split(r"^\.\.\.$", shown, flags=re.M):
            lines = part.strip("\n").splitlines()
            assert any(output[i:i + len(lines)] == lines for i in range(len(output))), (
                f"README.md shows, after `{commands[-1].text}`:\n{part}\nbut it printed:\n{proc.stdout}")


def test_commands_are_split_and_their_exit_codes_read() -> None:
    block = fenced_blocks("text\n```sh\na && b   # exit code 2: why\n\nc \\\n  --d  # e#f\n'#' x\n```\n")[0]
    assert block.lang == "sh" and block.line == 2
    assert [(c.text, c.line, c.exit_code) for c in shell_commands(block)] == [
        ("a", 3, 2), ("b", 3, 2), ("c --d", 5, 0), ("'#' x", 7, 0)]
    assert _without_comment("a 'b # c' # exit code 1") == ("a 'b # c'", "exit code 1")
    assert _without_comment("curl http://x/vocab#y") == ("curl http://x/vocab#y", "")


# ------------------------------------------------------------------ links


#: Pages written on another branch (docs/testing.md: the tests, on branch test-speed); a link to
#: one is allowed to dangle until that branch is merged, and no longer once the page exists.
PENDING_PAGES = {"docs/testing.md"}


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    for block in fenced_blocks(text):
        text = text.replace(block.body, "")
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(path: Path) -> list[tuple[int, str]]:
    """Relative links of a Markdown file (not in code), with their line."""
    text = path.read_text(encoding="utf-8")
    for block in fenced_blocks(text):
        text = text.replace(block.body, "\n" * block.body.count("\n"))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                found.append((number, target))
    return found


def _markdown_files() -> list[Path]:
    return [README, ROOT / "AUTHORING.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_points_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for path in _markdown_files():
        for line, target in _links(path):
            file_part, _, anchor = target.partition("#")
            goal = (path.parent / file_part).resolve() if file_part else path
            shown = f"{path.relative_to(ROOT)}:{line}: {target}"
            if not goal.exists():
                if goal.relative_to(ROOT).as_posix() not in PENDING_PAGES:
                    broken.append(f"{shown}: no such file")
                continue
            if anchor and goal.suffix == ".md" and anchor not in _anchors(goal):
                broken.append(f"{shown}: no heading #{anchor} in {goal.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)
    assert any(target.startswith("docs/") for _, target in _links(README))
    for page in PENDING_PAGES:  # a page may be pending only while it is missing and linked
        assert any(page in target for _, target in _links(README))


def test_the_link_checker_finds_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A `title`: here\n\n[ok](#a-title-here) [bad](#nowhere) [gone](no-such.md) "
                    "[web](https://example.org) `[code](x.md)`\n```sh\n[block](y.md)\n```\n")
    assert _links(page) == [(3, "#a-title-here"), (3, "#nowhere"), (3, "no-such.md")]
    assert _anchors(page) == {"a-title-here"}
