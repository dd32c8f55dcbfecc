"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal the service makes goes through :func:`problem`: a ``type`` URI naming the kind of
problem, a short ``title``, the HTTP ``status``, a ``detail`` in words for the person who sent
the request (the same sentence the CLI prints for the same input) and the request id.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["PROBLEM_TYPES", "Problem", "problem"]

_BASE = "https://w3id.org/jdm-kg/problems/"

#: kind -> (HTTP status, title)
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be read"),
    "invalid-input": (400, "The patient data could not be read"),
    "unauthorized": (401, "Authentication failed"),
    "refused-query": (403, "The query is refused"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "No acceptable representation"),
    "too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "precondition-failed": (412, "Required prefetch data missing"),
    "unprocessable": (422, "The request is well-formed but cannot be used"),
    "too-costly": (422, "The work needs more memory than one request may use"),
    "busy": (503, "The service is at its limit of concurrent work"),
    "cancelled": (503, "The work was stopped"),
    "timeout": (503, "The request took longer than the time limit"),
    "internal": (500, "Internal error"),
}


class Problem(Exception):
    """Raised anywhere in a request; the app turns it into a problem response."""

    def __init__(self, kind: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra


def problem(kind: str, detail: str, request_id: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    status, title = PROBLEM_TYPES[kind]
    body: dict[str, Any] = {"type": _BASE + kind, "title": title, "status": status, "detail": detail}
    if request_id:
        body["instance"] = f"urn:jdm-kg:request:{request_id}"
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)
