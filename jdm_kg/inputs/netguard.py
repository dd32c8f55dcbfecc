"""Refuse network connections at run time (defence in depth).

jdm-kg never needs the network: contexts are bundled and queries are checked. This audit hook
turns any attempt to open a connection (by any library) into a clear error, unless the user
passed an explicit flag such as ``--allow-service``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

__all__ = ["NetworkBlocked", "block_network", "allow_hosts"]

_state: dict[str, Any] = {"installed": False, "allowed": False, "hosts": frozenset()}


class NetworkBlocked(RuntimeError):
    """Raised when code tries to open a network connection while jdm-kg forbids it."""


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _state["allowed"]:
        return
    if event in ("socket.connect", "socket.getaddrinfo"):
        target = args[1] if event == "socket.connect" and len(args) > 1 else args[0] if args else "?"
        host = target[0] if isinstance(target, tuple) and target else target
        if isinstance(host, (str, bytes)) and (host.decode() if isinstance(host, bytes) else host) in _state["hosts"]:
            return  # a SPARQL server the user named (--endpoint / --update)
        raise NetworkBlocked(f"jdm-kg refused a network connection to {target!r}; nothing is fetched at run time")


def block_network(allow: bool = False) -> None:
    """Install the audit hook once; ``allow=True`` lets connections through (explicit user opt-in)."""
    _state["allowed"] = allow
    if not _state["installed"]:
        sys.addaudithook(_hook)
        _state["installed"] = True


def allow_hosts(hosts: set[str]) -> None:
    """Let connections through to ``hosts`` only (and their addresses): the servers the user named."""
    allowed = set(_state["hosts"]) | set(hosts)
    previous = _state["allowed"]
    _state["allowed"] = True  # resolve the names themselves before the hook checks addresses
    try:
        for host in hosts:
            try:
                allowed |= {info[4][0] for info in socket.getaddrinfo(host, None)}
            except OSError:
                pass  # the connection attempt will report it
    finally:
        _state["allowed"] = previous
    _state["hosts"] = frozenset(allowed)
