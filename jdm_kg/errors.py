"""Errors that end in a clear message and exit code 2 (unusable input or usage)."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """An input file or argument jdm-kg cannot use.

    ``str(err)`` is one line naming the file (and the line where the parser says) and what
    to do. The CLI prints it and exits 2.

    >>> str(InputError("bad.ttl", "unexpected end of file", line=3))
    'bad.ttl:3: unexpected end of file'
    """

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {problem}")
