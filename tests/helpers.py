"""Helpers shared by the test modules (on the path through pytest's ``pythonpath``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI with an audit hook that records every attempt to resolve or connect a socket
# (before jdm-kg's own guard can refuse it), so a test can assert that none was attempted.
WATCH = """
import sys, json
attempts = []
def watch(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        attempts.append(event)
        with open(sys.argv[1], "w") as fh:
            json.dump(attempts, fh)
sys.addaudithook(watch)
from jdm_kg.cli import main
sys.exit(main(sys.argv[2:]))
"""


def cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``jdm-kg ARGS`` in this process: the console script's ``main()`` called as the script calls it,
    in ``cwd``, with ``env`` added to the environment; its exit code, stdout and stderr as
    :func:`run` gives them. No interpreter to start and the compiled guideline already in memory:
    for tests of what a command prints. Each command is also run as a user runs it (a subprocess,
    :func:`run`) by at least one test; what only a process shows (the network watch, signals,
    pipes, worker processes, hash seeds) stays a subprocess test."""
    import contextlib
    import io
    import os

    from jdm_kg.cli import main
    from jdm_kg.inputs import netguard
    from jdm_kg.knowledge.guideline import load_guideline

    # Another checkout or --guideline: a folder a test may edit between runs, and load_guideline
    # keeps one compiled guideline per folder for the life of the process (a new process reads
    # the folder afresh): forget them before and after, and the bundled one is read back from the
    # on-disk cache.
    elsewhere = Path(cwd).resolve() != ROOT or "--guideline" in args
    if elsewhere:
        load_guideline.cache_clear()  # type: ignore[attr-defined]
    out, err = io.StringIO(), io.StringIO()
    saved_env = {key: os.environ.get(key) for key in (env or {})}
    guard = dict(netguard._state)
    here = os.getcwd()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse: usage errors (2), --help and --version (0)
                code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 2
    finally:
        os.chdir(here)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # main() blocks the network for its run, not for the servers of the tests after it in this process
        netguard._state.update(allowed=guard["allowed"] or not guard["installed"], hosts=guard["hosts"])
        if elsewhere:
            load_guideline.cache_clear()  # type: ignore[attr-defined]
    proc = subprocess.CompletedProcess(["jdm-kg", *args], code, out.getvalue(), err.getvalue())
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def run(*args: str, tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:  # one log per call: tests may run in parallel
        log = Path(folder) / "net-attempts.json"
        proc = subprocess.run(
            [sys.executable, "-c", WATCH, str(log), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        proc.net_attempts = json.loads(log.read_text()) if log.exists() else []  # type: ignore[attr-defined]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc
