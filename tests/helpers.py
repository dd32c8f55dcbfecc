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


def run(*args: str, tmp_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:  # one log per call: tests may run in parallel
        log = Path(folder) / "net-attempts.json"
        proc = subprocess.run(
            [sys.executable, "-c", WATCH, str(log), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        proc.net_attempts = json.loads(log.read_text()) if log.exists() else []  # type: ignore[attr-defined]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc
