"""Refuse network connections at run time (defence in depth).

jdm-kg never needs the network: contexts are bundled and queries are checked. This audit hook
turns any attempt to open a connection (by any library) into a clear error, unless the user
passed an explicit flag such as ``--allow-service``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["NetworkBlocked", "block_network"]

_state = {"installed": False, "allowed": False}


class NetworkBlocked(RuntimeError):
    """Raised when code tries to open a network connection while jdm-kg forbids it."""


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _state["allowed"]:
        return
    if event in ("socket.connect", "socket.getaddrinfo"):
        target = args[1] if event == "socket.connect" and len(args) > 1 else args[0] if args else "?"
        raise NetworkBlocked(f"jdm-kg refused a network connection to {target!r}; nothing is fetched at run time")


def block_network(allow: bool = False) -> None:
    """Install the audit hook once; ``allow=True`` lets connections through (explicit user opt-in)."""
    _state["allowed"] = allow
    if not _state["installed"]:
        sys.addaudithook(_hook)
        _state["installed"] = True
