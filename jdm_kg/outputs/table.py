"""Query results as a terminal table (``jdm-kg query --format table``), drawn by ``rich``.

One line per row. On a terminal the table keeps to its width (``COLUMNS`` if set): columns that
fit are shown whole, and the widest are cut to a common width, each cut value ending in an
ellipsis ("…"); a value is never broken across lines, so an IRI is never split mid-word. When
that would leave a column under :data:`MIN_COLUMN` characters, the rows are printed one field
per line instead (``name: value``, a blank line between rows), every value whole. Into a
file or a pipe nothing is cut but a value over :data:`PIPE_MAX` characters (every row of a table
is as wide as its widest). ``--format csv`` and ``json`` always give every value whole.

>>> print(render_table(["option", "label"], [["jdmg:rituximab", "rituximab"]], width=None)[0], end="")
option           label
──────────────────────────
jdmg:rituximab   rituximab
>>> text, cut = render_table(["option"], [["jdmg:combination-mtx-csa-ivig"]], width=12)
>>> text.splitlines()[2], cut
('jdmg:combin…', True)
>>> print(render_table(["option", "drug", "dose"], [["jdmg:rituximab-regimen", "jdmg:rituximab", "375 mg/m2"]],
...                    width=30)[0], end="")
option: jdmg:rituximab-regimen
drug:   jdmg:rituximab
dose:   375 mg/m2
"""

from __future__ import annotations

import io
import shutil
from typing import Any

__all__ = ["MIN_COLUMN", "PIPE_MAX", "render_table", "table_width"]

#: Between two columns: a space of padding on each side and rich's column separator.
_GAP = 3
#: The narrowest a cut column may be on a terminal; narrower, the rows are printed one field per line.
MIN_COLUMN = 12
#: The widest a column is into a file or a pipe (a longer value is cut, with an ellipsis).
PIPE_MAX = 2000


def table_width(stream: Any) -> int | None:
    """The width a table printed to ``stream`` must keep to: the terminal's (``COLUMNS`` if
    set); None (no limit) for a file or a pipe, whatever ``COLUMNS`` says: what a program reads
    is never cut."""
    return shutil.get_terminal_size().columns if stream.isatty() else None


def _widths(natural: list[int], room: int) -> list[int]:
    """Column widths that fit ``room`` characters: every column whole if they fit, else the
    widest cut to one common width (the largest that fits), the narrow ones left whole."""
    if sum(natural) <= room:
        return natural
    for cap in range(max(natural), 0, -1):
        if sum(min(n, cap) for n in natural) <= room:
            return [min(n, cap) for n in natural]
    return [1] * len(natural)


def render_table(names: list[str], rows: list[list[str]], width: int | None) -> tuple[str, bool]:
    """The table as text, and whether a value was cut to fit ``width`` (None: no limit)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not names:
        return "", False
    rows = [[" ".join(cell.splitlines()) for cell in row] for row in rows]  # one line per row
    natural = [max([len(name)] + [len(row[i]) for row in rows]) for i, name in enumerate(names)]
    if width is None:
        widths = [min(n, PIPE_MAX) for n in natural]
    else:
        widths = _widths(natural, max(width - _GAP * (len(names) - 1), len(names)))
        if any(w < min(n, MIN_COLUMN) for w, n in zip(widths, natural)):
            return _records(names, rows), False
    table = Table(*names, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style=None)
    for column, size in zip(table.columns, widths):
        column.width, column.no_wrap, column.overflow = size, True, "ellipsis"
    for row in rows:
        table.add_row(*row)  # (control characters are escaped by the stdout writer)
    out = io.StringIO()
    console_width = sum(widths) + _GAP * (len(names) - 1) + 1
    Console(file=out, width=console_width, color_system=None, highlight=False, markup=False, emoji=False,
            soft_wrap=False).print(table)
    text = "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"
    return text, widths != natural


def _records(names: list[str], rows: list[list[str]]) -> str:
    """Each row one field per line (``name: value``, the values aligned), a blank line between
    rows: for a table too wide for the terminal, every value whole."""
    pad = max(len(name) for name in names) + 2
    blocks = ["\n".join(f"{name + ':':<{pad}}{value}".rstrip() for name, value in zip(names, row)) for row in rows]
    return "\n\n".join(blocks) + "\n"
