"""Errors that end in a clear message: unusable input or usage (exit 2), a bug (exit 3), and
the library warnings captured on the way (one line each, never a traceback)."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "InputError", "ServerError", "escape_controls", "internal_error", "captured_messages",
    "EXIT_OK", "EXIT_VIOLATIONS", "EXIT_ERROR", "EXIT_INTERNAL",
]

#: Exit codes, as pySHACL's: ok / conforms, violations found, unusable input or usage error.
EXIT_OK, EXIT_VIOLATIONS, EXIT_ERROR = 0, 1, 2
#: The exit code of a run that met a bug in jdm-kg (not a problem with the input).
EXIT_INTERNAL = 3


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


class ServerError(InputError):
    """A SPARQL server that cannot be used (unreachable, failing, holding another guideline): an
    error of the run, not of a file (exit 2)."""


# C0 and C1 control characters and DEL, except newline and tab, and the bidirectional formatting
# characters that make a terminal show text in another order than it is (U+061C, U+200E/F,
# U+202A-E, U+2066-9): an escape sequence in a record must not reach the terminal. ``\uXXXX`` is
# also a valid escape in JSON and Turtle strings.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    r"""``text`` with control characters (other than newline and tab) written as ``\uXXXX``.

    >>> escape_controls("P-1\x1b[31m\tok\n")
    'P-1\\u001b[31m\tok\n'
    >>> escape_controls("drug \u202e")
    'drug \\u202e'
    """
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters.

    >>> one_line("a\\n  b" + "c" * 400, 10)
    'a bcccc...'
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def internal_error(where: str, stage: str, err: BaseException) -> str:
    """The one line for an exception that is a bug in jdm-kg (exit :data:`EXIT_INTERNAL`).

    >>> internal_error("a.ttl", "validation", KeyError("x"))[:55]
    "a.ttl: validation: internal error (KeyError: 'x'); this"
    """
    from jdm_kg.version import __version__

    detail = one_line(str(err)) or "no detail"
    return (f"{where}: {stage}: internal error ({type(err).__name__}: {detail}); this is a bug in "
            f"jdm-kg {__version__}: please report it (with this line, and the input if you can share it)")


_LOGGERS = ("rdflib", "pyshacl", "owlrl", "pyoxigraph")

#: rdflib's warnings for an ill-typed literal and a bad IRI: jdm-kg reports each as a violation
#: (:func:`jdm_kg.reasoning.validation.set_aside_ill_typed`) or an error (:func:`jdm_kg.inputs.loading.check_terms`).
_REPORTED_ELSEWHERE = ("Failed to convert Literal lexical form to value",)
_BAD_IRI = " does not look like a valid URI"


class _Collect(logging.Handler):
    """Puts each log record, as one line, in the innermost :func:`captured_messages` list."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.active: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if self.active and not text.startswith(_REPORTED_ELSEWHERE) and _BAD_IRI not in text:
            self.active[-1].append(f"{record.name.split('.')[0]}: {one_line(text)}")


_HANDLER = _Collect()


@contextmanager
def captured_messages() -> Iterator[list[str]]:
    """Collect what rdflib, pySHACL and owlrl log (warnings and above) and what Python's
    ``warnings`` module is told, as one line each, in the list yielded; nothing reaches stderr
    and no traceback is printed. Each distinct line is kept once. Blocks may nest: a message
    goes to the innermost."""
    lines: list[str] = []
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    outermost = not _HANDLER.active
    saved = [(lg.propagate, lg.level) for lg in loggers]
    if outermost:
        for lg in loggers:
            lg.addHandler(_HANDLER)
            lg.propagate = False
            if lg.level == logging.NOTSET or lg.level > logging.WARNING:
                lg.setLevel(logging.WARNING)
    _HANDLER.active.append(lines)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every time, not once per process: the same notes for each file
            for category in (DeprecationWarning, PendingDeprecationWarning):  # for jdm-kg's developers, not its users
                warnings.simplefilter("ignore", category)
            yield lines
        lines += [f"{w.category.__name__}: {one_line(str(w.message))}" for w in caught]
        lines[:] = list(dict.fromkeys(lines))
    finally:
        _HANDLER.active.pop()
        if outermost:
            for lg, (propagate, level) in zip(loggers, saved):
                lg.removeHandler(_HANDLER)
                lg.propagate = propagate
                lg.setLevel(level)
