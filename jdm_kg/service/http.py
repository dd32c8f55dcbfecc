"""HTTP plumbing shared by the routes: the request guard (request id, body size limit, logging
without patient data, no traceback ever sent) and content negotiation."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jdm_kg.service.problems import PROBLEM_TYPES

__all__ = ["LOG", "RequestGuard", "media_type", "negotiate"]

LOG = logging.getLogger("jdm_kg.service")
_GONE = b"\0gone"  # _read_body: the client went away mid-body

#: On every response: nothing but this service's own files may load in its pages, no framing,
#: no content sniffing, no referrer sent on.
_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: The generated guideline pages (``/docs``) carry their stylesheet inline: the same policy, with
#: inline styles allowed (no script, no other origin).
_DOCS_SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"),
    *_SECURITY_HEADERS[1:],
]


class RequestGuard:
    """Pure ASGI middleware around the whole app.

    - gives each request an id (``X-Request-Id`` on the response, ``scope["state"]["request_id"]``);
    - on every response, ``/static`` and ``/docs`` included, adds a content security policy (the
      page loads only this service's files; ``/docs`` may use its inline stylesheet), no framing
      (``frame-ancestors 'none'``, ``X-Frame-Options``), ``nosniff`` and ``no-referrer``; outside
      ``/static`` and ``/docs`` also ``Cache-Control: no-store`` (answers may carry patient data);
    - reads the body up to ``max_body`` bytes before the app sees it (413 beyond, whether or not
      ``Content-Length`` says so) and replays it; a client that goes away before its body is
      all sent gets nothing more (the app never sees half a body);
    - logs one line per request: id, method, path (never the query string or the body), status,
      duration; nothing from the patient record;
    - turns any exception that escaped the app into a 500 problem without a traceback (the log
      names only the exception's type), so the service keeps serving.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        state: dict[str, Any] = {"status": 0, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message.setdefault("headers", [])
                extra = [(b"x-request-id", request_id.encode())]
                path = str(scope.get("path", ""))
                if path == "/docs" or path.startswith("/docs/"):
                    extra += _DOCS_SECURITY_HEADERS
                elif path.startswith("/static/"):
                    extra += _SECURITY_HEADERS
                else:  # answers may carry patient data
                    extra += [*_SECURITY_HEADERS, (b"cache-control", b"no-store")]
                names = {name for name, _ in extra}
                message["headers"] = [*(h for h in message["headers"] if h[0].lower() not in names), *extra]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is _GONE:
                return
            if body is None:
                await self._problem(send_with_id, "too-large", f"the body is larger than {self.max_body} bytes",
                                    request_id)
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # http.disconnect

            await self.app(scope, replay, send_with_id)
        except Exception as err:  # noqa: BLE001 (the last line of defence: log the type only)
            # the type and where it was raised, never its message (it may quote patient data)
            frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
            where = f" at {Path(frame.filename).name}:{frame.lineno} ({frame.name})" if frame else ""
            LOG.error("request %s: %s escaped the handler%s", request_id, type(err).__name__, where)
            if not state["started"]:
                await self._problem(send_with_id, "internal", "an internal error occurred; the request id "
                                    "identifies it in the service log", request_id)
        finally:
            LOG.info("request %s %s %s %s %.1fms", request_id, scope.get("method"), scope.get("path"),
                     state["status"], (time.perf_counter() - start) * 1000)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _GONE  # the client went away (or was cut off as too slow) before its body was all sent
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _problem(send: Send, kind: str, detail: str, request_id: str) -> None:
        status, title = PROBLEM_TYPES[kind]
        body = json.dumps({"type": f"https://w3id.org/jdm-kg/problems/{kind}", "title": title, "status": status,
                           "detail": detail, "instance": f"urn:jdm-kg:request:{request_id}"}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header ('text/turtle; charset=utf-8' -> 'text/turtle')."""
    return (header or "").split(";", 1)[0].strip().lower()


def negotiate(accept: str | None, offered: list[str]) -> str | None:
    """The offered media type the Accept header prefers (the first offered for none or ``*/*``).

    >>> negotiate("text/markdown, application/json;q=0.5", ["application/json", "text/markdown"])
    'text/markdown'
    >>> negotiate("image/png", ["application/json"]) is None
    True
    """
    if not accept or not accept.strip():
        return offered[0]
    ranges = []
    for i, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        ranges.append((fields[0].lower(), q, i))
    best: tuple[float, int, int, str] | None = None
    for kind, q, order in ranges:
        if q <= 0:
            continue
        for rank, candidate in enumerate(offered):
            main = candidate.split("/")[0]
            if kind in (candidate, "*/*", f"{main}/*"):
                specificity = 2 if kind == candidate else 1 if kind.endswith("/*") and kind != "*/*" else 0
                key = (q, specificity, -order, candidate)
                if best is None or key[:3] > best[:3] or (key[:3] == best[:3] and rank < offered.index(best[3])):
                    best = key
    return best[3] if best else None
