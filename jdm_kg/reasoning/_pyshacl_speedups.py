"""Speed-ups for pySHACL, kept in one place: three of its internal methods replaced while
:func:`faster_pyshacl` is active (or from :func:`enable` to :func:`disable`).

- :func:`_validate_property_shape_in_bulk`: a property shape validates each distinct value node
  once for all focus nodes instead of once per (focus node, value node) pair, and reports per pair
  as SHACL requires (a value node shared by two focus nodes gives two results);
- :func:`_evaluate_or_in_order`: ``sh:or`` stops at the first alternative that conforms;
- :func:`_format_message_literally`: a bug fix, a SPARQL-based message takes its bound values
  literally (pySHACL passes them to ``re.sub`` as a replacement template);
- :class:`_ParameterList`: the list of constraint parameters each shape's predicates are looked
  up in answers ``in`` from a set (pySHACL scans the list: 60 comparisons per predicate, a
  twentieth of a patient's validation). Same list, same order;
- :func:`_shared_shapes_graph`: a shapes graph is compiled into pySHACL's shapes once per process
  and reused by every validation with that same graph object (pySHACL builds them anew for each
  run: a sixth of a patient's validation in the service). The graph must not change once used,
  as jdm-kg's shapes, read once per process, never do.

They replace pySHACL internals, so they are used only with the pySHACL versions in
:data:`TESTED_VERSIONS`, the versions whose own W3C SHACL core and DASH tests give the same
results with and without them (``tests/test_pyshacl_suite.py`` runs them). With another version
they switch themselves off with a one-line notice on stderr: validation is then slower, never
different. ``JDM_KG_PYSHACL_SPEEDUPS=0`` switches them off too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rdflib import BNode, Graph, Node

__all__ = ["TESTED_VERSIONS", "faster_pyshacl", "enable", "disable", "available"]

#: pySHACL versions whose own conformance tests pass the same with the speed-ups as without.
TESTED_VERSIONS = frozenset({"0.40.1"})


@cache
def _pyshacl_version() -> str:  # (read once: importlib parses the package's metadata each time)
    try:
        return version("pyshacl")
    except PackageNotFoundError:  # pragma: no cover - pySHACL is a dependency
        return "unknown"


_noticed = False


def available() -> bool:
    """Whether the speed-ups apply to the installed pySHACL (and are not switched off with
    ``JDM_KG_PYSHACL_SPEEDUPS=0``). Says once on stderr why not, for an untested version."""
    global _noticed
    if os.environ.get("JDM_KG_PYSHACL_SPEEDUPS", "1") == "0":
        return False
    found = _pyshacl_version()
    if found in TESTED_VERSIONS:
        return True
    if not _noticed:
        _noticed = True
        print(f"note: pySHACL {found} is not a version jdm-kg's validation speed-ups were tested with "
              f"({', '.join(sorted(TESTED_VERSIONS))}): validating without them (same results, slower)",
              file=sys.stderr)
    return False


def _fresh_copy(report: tuple[Any, Node, list[Any]]) -> tuple[Any, Node, list[Any]]:
    """The same validation result under a new result node, so that the report graph holds it twice."""
    desc, old, triples = report
    new = BNode()
    return desc, new, [(new if s == old else s, p, new if o == old else o) for s, p, o in triples]


def _validate_property_shape_in_bulk(
    self: Any,
    executor: Any,
    prop_shape: Node,
    target_graph: Graph,
    focus_value_nodes: dict[Node, Any],
    potentially_recursive: Any,
    _evaluation_path: list[Any],
) -> tuple[bool, list[Any]]:
    """pySHACL's ``PropertyConstraintComponent._evaluate_property_shape``, except that the
    property shape validates all the distinct value nodes in one call instead of one call per
    (focus node, value node) pair.

    The results are the same: pySHACL validates a value node that two focus nodes share twice
    and reports each result twice (SHACL: one result per focus node), so here each value
    node's results are given once for each pair it is in, as fresh result nodes. pySHACL's set-up
    cost per call (reading the shape's parameters, building its constraint components) is paid
    once per shape instead of once per record: a third of the validation time of a registry.
    """
    found = self.shape.get_other_shape(prop_shape)
    if not found or not found.is_property_shape or (potentially_recursive and found in potentially_recursive):
        return _originals["property"](  # pySHACL's own warning or error for these cases
            self, executor, prop_shape, target_graph, focus_value_nodes, potentially_recursive, _evaluation_path
        )
    pairs = [v for nodes in focus_value_nodes.values() for v in nodes]
    values = list(dict.fromkeys(pairs))
    if not values:
        return False, []
    conforms, reports = found.validate(executor, target_graph, focus=values, _evaluation_path=_evaluation_path[:])
    if len(values) == len(pairs) or conforms:
        return not conforms, reports
    by_value: dict[Node, list[Any]] = {}
    for report in reports:  # a result of validating ``v`` has ``v`` as its focus node
        focus = next((o[1] for s, p, o in report[2] if str(p).endswith("#focusNode")), None)
        by_value.setdefault(focus, []).append(report)
    out: list[Any] = []
    seen: set[Node] = set()
    for value in pairs:
        own = by_value.get(value, [])
        out.extend(own if value not in seen else [_fresh_copy(r) for r in own])
        seen.add(value)
    out.extend(r for focus, rs in by_value.items() if focus not in seen for r in rs)  # none expected
    return True, out


def _evaluate_or_in_order(
    self: Any,
    executor: Any,
    or_c: Node,
    target_graph: Graph,
    focus_value_nodes: dict[Node, Any],
    _evaluation_path: list[Any],
) -> tuple[bool, list[Any]]:
    """pySHACL's ``OrConstraintComponent._evaluate_or_constraint``, except that the alternatives
    are tried in the order the shape lists them and the first that conforms ends the search.

    A value conforms to ``sh:or`` if it conforms to any alternative (SHACL 4.6.3), and the
    reports of the alternatives are thrown away either way, so the results are the same; but
    pySHACL tries every alternative and writes a full report for each one that fails (an
    integer weight fails ``sh:datatype xsd:decimal``): half of the validation time of a
    registry.
    """
    shapes = []
    for alternative in dict.fromkeys(self.shape.sg.graph.items(or_c)):
        if self.shape.sg.is_filtered_out_shape(alternative):
            continue
        shape = self.shape.get_other_shape(alternative)
        if not shape:
            shapes = []
            break
        shapes.append(shape)
    if not shapes:  # an empty or broken list: pySHACL's own error (or nothing to check)
        return _originals["or"](self, executor, or_c, target_graph, focus_value_nodes, _evaluation_path)
    non_conformant = False
    reports = []
    for focus, value_nodes in focus_value_nodes.items():
        for value in value_nodes:
            if not any(
                shape.validate(executor, target_graph, focus=value, _evaluation_path=_evaluation_path[:])[0]
                for shape in shapes
            ):
                non_conformant = True
                reports.append(self.make_v_result(target_graph, focus, value_node=value))
    return non_conformant, reports


def _format_message_literally(self: Any, msg: Any, bound_vars: Any) -> Any:
    """pySHACL's ``_format_sparql_based_result_message`` with the bound values put into the
    message as they are: pySHACL passes each value to ``re.sub`` as the replacement template, so
    a value holding a backslash (``"\\u"`` in a drug name) raised ``re.error`` and stopped
    validation. Same substitution of ``{?var}`` / ``{$var}`` otherwise.

    >>> _format_message_literally(None, "bad dose {$value}", (None, None, "C:\\\\u1"))
    'bad dose C:\\\\u1'
    """
    if bound_vars is None:
        return msg
    fdict: dict[str, Any] = {}
    if isinstance(bound_vars, (tuple, list)):
        if len(bound_vars) == 4:
            fdict.update(bound_vars[3])
            bound_vars = bound_vars[:3]
        if len(bound_vars) == 3:
            for key, value in zip(("this", "path", "value"), bound_vars):
                if value is not None:
                    fdict[key] = value
    elif isinstance(bound_vars, dict):
        fdict.update(bound_vars)
    else:
        return msg
    for var, val in fdict.items():
        msg = re.sub("{{[?$]{}}}".format(var), lambda _match, text=str(val): text, msg)
    return msg


class _ParameterList(list):  # type: ignore[type-arg]
    """pySHACL's list of constraint parameters, with ``in`` answered from a set; ``copy`` and
    ``append`` (pySHACL adds ``sh:expression`` in advanced mode) keep it so."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self._set = set(self)

    def __contains__(self, item: object) -> bool:
        return item in self._set

    def copy(self) -> _ParameterList:
        return _ParameterList(self)

    def append(self, item: Any) -> None:
        super().append(item)
        self._set.add(item)


def _set_parameters(on: bool) -> None:
    """Give pySHACL's shapes the constraint parameters as a :class:`_ParameterList` (``on``), or
    let pySHACL look them up again as it does by itself."""
    import pyshacl.shape as shape_module

    if on:
        from pyshacl.constraints import ALL_CONSTRAINT_PARAMETERS, CONSTRAINT_PARAMETERS_MAP

        shape_module.CONSTRAINT_PARAMS = (_ParameterList(ALL_CONSTRAINT_PARAMETERS), CONSTRAINT_PARAMETERS_MAP)
    else:
        shape_module.__dict__.pop("CONSTRAINT_PARAMS", None)


#: id(shapes graph) -> (a weak reference to it, pySHACL's ShapesGraph built from it).
_shapes_graphs: dict[int, tuple[Any, Any]] = {}


def _shared_shapes_graph(graph: Any, debug: Any = False, logger: Any = None) -> Any:
    """pySHACL's ``ShapesGraph(graph, debug, logger)``, the same object again for the same
    ``graph`` (while it lives; not in debug mode)."""
    import weakref

    make = _originals["shapes_graph"]
    if debug:
        return make(graph, debug, logger)
    known = _shapes_graphs.get(id(graph))
    if known is not None and known[0]() is graph:
        return known[1]
    built = make(graph, debug, logger)
    key = id(graph)
    _shapes_graphs[key] = (weakref.ref(graph, lambda _ref: _shapes_graphs.pop(key, None)), built)
    return built


_originals: dict[str, Any] = {}
_depth = 0


def _targets() -> list[tuple[type, str, str, Any]]:
    from pyshacl.constraints.constraint_component import ConstraintComponent
    from pyshacl.constraints.core.logical_constraints import OrConstraintComponent
    from pyshacl.constraints.core.shape_based_constraints import PropertyConstraintComponent

    return [
        (PropertyConstraintComponent, "_evaluate_property_shape", "property", _validate_property_shape_in_bulk),
        (OrConstraintComponent, "_evaluate_or_constraint", "or", _evaluate_or_in_order),
        (ConstraintComponent, "_format_sparql_based_result_message", "format", _format_message_literally),
    ]


def enable() -> bool:
    """Put the speed-ups in place (nested calls count); False if they do not apply to this pySHACL."""
    global _depth
    if not available():
        return False
    if _depth == 0:
        for cls, name, key, replacement in _targets():
            _originals[key] = cls.__dict__[name]
            setattr(cls, name, replacement)
        _set_parameters(True)
        import pyshacl.validator as validator_module

        _originals["shapes_graph"] = validator_module.ShapesGraph
        validator_module.ShapesGraph = _shared_shapes_graph
    _depth += 1
    return True


def disable() -> None:
    """Undo one :func:`enable`; pySHACL is as it was after the last one."""
    global _depth
    if _depth == 0:
        return
    _depth -= 1
    if _depth == 0:
        for cls, name, key, _ in _targets():
            setattr(cls, name, _originals[key])
        _set_parameters(False)
        import pyshacl.validator as validator_module

        validator_module.ShapesGraph = _originals["shapes_graph"]


@contextmanager
def faster_pyshacl() -> Iterator[None]:
    """Within the block, pySHACL runs with the speed-ups (if they apply to its version): the same
    results, sooner. pySHACL is left as it was afterwards."""
    enabled = enable()
    try:
        yield
    finally:
        if enabled:
            disable()
