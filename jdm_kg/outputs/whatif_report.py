"""What-if answers (:mod:`jdm_kg.reasoning.whatif`) as text, Markdown and JSON, and the
HYPOTHETICAL header of a result computed under ``--assume``.

A change that moves several options the same way (a clearance that unblocks every biologic, a
negative result that completes the screening of all of them) is printed once, above the
options, with each option's new standing under it; each option then lists the lines of its own.
"""

from __future__ import annotations

from typing import Any

from jdm_kg.reasoning.recommend import PatientResult
from jdm_kg.reasoning.whatif import IF_SO, OptionWhatIf, WhatIf, WhatIfReport

__all__ = ["whatif_text", "whatif_json", "option_lines", "hypothetical_lines", "cannot_tell_lines", "shortest_line"]


def _assume(line: WhatIf, already: list[str] | None = None) -> str:
    """The ``--assume`` arguments that show the line's result (with those the answer itself
    assumed, if any: a what-if of a hypothetical record)."""
    return "[" + " ".join(f"--assume {spec}" for spec in [*(already or []), *line.assume]) + "]"


def _if(line: WhatIf) -> str:
    """``if so: `` before a line that holds only if the data needed settle it."""
    return IF_SO if line.conditional else ""


def _why(line: WhatIf) -> str:
    return f" ({'; '.join(line.because)})" if line.because else ""


#: Each target as a line's heading says it.
HEADINGS = {"applies": "the guideline applies", "offered": "offered", "first": "first", "ready": "ready to start",
            "dose": "dose worked out"}


def _targets(line: WhatIf) -> str:
    return "[" + ", ".join(HEADINGS[t] for t in line.targets) + "]"


def _shared(report: WhatIfReport) -> list[tuple[tuple[str, ...], list[WhatIf]]]:
    """Change sets that meet the same targets for two options or more, in the order they first
    appear: (the ``--assume`` specs, the lines)."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[WhatIf]] = {}
    for option in report.options:
        for line in option.lines:
            groups.setdefault((line.specs, line.targets), []).append(line)
    return [(specs, lines) for (specs, _), lines in groups.items() if len(lines) > 1]


def option_lines(option: OptionWhatIf, skip: set[tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
                 indent: str = "  ", already: list[str] | None = None) -> list[str]:
    """One option's what-if lines (those not in ``skip``: printed above) and the targets no
    change reaches, each with what it would take."""
    out = []
    for line in option.lines:
        if skip and (line.specs, line.targets) in skip:
            continue
        out.append(f"{indent}{_targets(line)} {_if(line)}{line.condition} -> {line.after}{_why(line)} "
                   f"{_assume(line, already)}")
    for target, why in option.unmet.items():
        out.append(f"{indent}[{HEADINGS[target]}] {why}")
    return out


def whatif_text(report: WhatIfReport, markdown: bool = False) -> str:
    """One patient's what-if answer as text (or Markdown)."""
    result = report.result
    head = (f"Patient {result.record.patient_id} ({report.source}); guideline {result.guideline_version}; "
            f"as of {result.as_of.isoformat()}: what would change the answer")
    intro = (f"The smallest changes of at most {report.depth} fact{'s' if report.depth != 1 else ''} (--depth) that "
             "would change an option's standing, each checked by assessing the changed record again "
             f"({report.variants} variant{'s' if report.variants != 1 else ''} assessed). A change that needs a "
             "clinician's judgement is worded as what a clinician would have to record; none is advice. Changes no "
             "record can make (age, a failure that happened) are never considered. See one: jdm-kg recommend FILE "
             "--assume FACT=VALUE.")
    mark = "HYPOTHETICAL: " if result.assumptions else ""
    lines: list[str] = [f"## {mark}{head}\n" if markdown else mark + head]
    said_first = hypothetical_lines(result) + cannot_tell_lines(result)
    lines += [("> " if markdown else "! ") + line for line in said_first]
    if markdown and said_first:
        lines[-1] += "\n"  # (the intro is no part of the quote)
    lines.append(intro + ("\n" if markdown else ""))
    lines += [("> " if markdown else "! ") + note for note in report.notes]
    bullet, sub = ("- ", "  - ") if markdown else ("  ", "    ")
    already = [a["assume"] for a in result.assumptions]
    shared = _shared(report)
    skip = {(specs, lines_[0].targets) for specs, lines_ in shared}
    if shared:
        lines.append("\n### Changes that move several options\n" if markdown else "Changes that move several options:")
        for _, group in shared:
            first = group[0]
            common = len({line.because for line in group}) == 1
            lines.append(f"{bullet}{_if(first)}{first.condition}{_why(first) if common else ''} "
                         f"{_assume(first, already)}")
            for line in group:
                lines.append(f"{sub}-> {line.label}: {line.after}{'' if common else _why(line)}")
    if report.options:
        lines.append("\n### Option by option\n" if markdown else "Option by option:")
    for option in report.options:
        own = option_lines(option, skip, indent=sub, already=already)
        moved = any((line.specs, line.targets) in skip for line in option.lines)
        tail = ""
        if not own:
            tail = " (see the changes above)" if moved else ": nothing to change"
        lines.append(f"{bullet}{option.label}: now {option.before}{tail}")
        lines += own
    return "\n".join(lines)


def whatif_json(reports: list[WhatIfReport]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in reports]


def shortest_line(result: PatientResult, option: str) -> str | None:
    """The report's one line under an option (``--details``, the web page): its shortest what-if,
    or why there is none."""
    found = result.whatif.get(option)
    if found is None:
        return None
    if isinstance(found, str):
        return f"what would change it: {found}"
    return f"what would change it: {_if(found)}{found.condition} -> {found.after}{_why(found)} {_assume(found)}"


def cannot_tell_lines(result: PatientResult) -> list[str]:
    """What a what-if of a record jdm-kg cannot tell about says first, as ``recommend`` says it:
    cannot tell, and each datum that would settle it (something a clinician records: no what-if
    assumes it)."""
    if not result.cannot_tell:
        return []
    return [result.applicability, *(f"Needed: {needed.text()}" for needed in result.data_needed)]


def hypothetical_lines(result: PatientResult) -> list[str]:
    """What a result computed under ``--assume`` says first: it is HYPOTHETICAL, and what it assumes."""
    if not result.assumptions:
        return []
    return ["HYPOTHETICAL: not the record as written, but what jdm-kg would say "
            + " and ".join(f"if {a['text']} [--assume {a['assume']}]" for a in result.assumptions) + "."]
