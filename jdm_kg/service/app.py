"""The ``jdm-kg serve`` application (Starlette): routes, wiring, start-up.

Routes (the OpenAPI document at ``/openapi.json`` describes each):

- ``GET /health``, ``GET /guideline``
- ``POST /validate``, ``POST /recommend`` (Turtle, JSON-LD or FHIR in; JSON, FHIR, Markdown or
  PROV-O Turtle out, by ``Accept``), ``POST /whatif`` (what would change the answer: JSON or Markdown)
- ``GET /cds-services``, ``POST /cds-services/{id}``, ``POST /cds-services/{id}/feedback``
- ``GET|POST /sparql`` (read-only)
- ``GET /`` and ``POST /`` (the web page), ``GET /report/{token}``, ``/static``, ``/docs``
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jdm_kg.inputs.loading import rdf_files
from jdm_kg.outputs.fhir_output import operation_outcome, results_bundle
from jdm_kg.outputs.report import (
    results_graph,
    results_json,
    results_text,
    validation_json,
    validation_text,
)
from jdm_kg.outputs.shacl_report import shacl_report_turtle
from jdm_kg.service import cds_hooks
from jdm_kg.service.auth import JwtVerifier
from jdm_kg.service.config import ServiceConfig
from jdm_kg.service.core import Core
from jdm_kg.service.http import LOG, RequestGuard, media_type, negotiate
from jdm_kg.service.openapi import openapi_document
from jdm_kg.service.problems import Problem, problem
from jdm_kg.service.web import web_routes
from jdm_kg.version import __version__

__all__ = ["create_app"]

_HERE = Path(__file__).parent
_DEFAULT_URL = "http://127.0.0.1:8080"  # links, when no --audience (the service's public URL) is given
RECOMMEND_TYPES = ["application/json", "application/fhir+json", "text/markdown", "text/turtle"]
VALIDATE_TYPES = ["application/json", "application/fhir+json", "text/markdown", "text/plain", "text/turtle"]
WHATIF_TYPES = ["application/json", "text/markdown"]
#: The deepest what-if the service searches (changes of at most this many facts): a bound on the
#: work one request can ask for, under the same time limit as /recommend.
WHATIF_MAX_DEPTH = 3


def _rid(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def _accept(request: Request, offered: list[str]) -> str:
    chosen = negotiate(request.headers.get("accept"), offered)
    if chosen is None:
        raise Problem("not-acceptable", f"Accept {request.headers.get('accept')!r}: this route answers "
                                        + ", ".join(offered))
    return chosen


async def _json_body(request: Request) -> Any:
    if media_type(request.headers.get("content-type")) not in ("application/json", "application/fhir+json"):
        raise Problem("unsupported-media-type", "send the request as application/json")
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):
        raise Problem("bad-request", "the body is not valid JSON") from None


def _source(request: Request) -> str:
    name = request.query_params.get("source", "request body")
    return name[:200] if name else "request body"


def create_app(config: ServiceConfig | None = None) -> Any:
    """The ASGI application for ``config`` (the guideline is compiled here, once)."""
    config = config or ServiceConfig()
    if config.jwks and not config.audience:
        raise ValueError("give the service's public URL with --audience: a JWT's aud is checked against it "
                         "(never against the Host header a request names)")
    core = Core(config)
    verifier = JwtVerifier(config.jwks, config.issuers) if config.jwks else None
    core.warm()
    public = (config.audience or _DEFAULT_URL).rstrip("/")  # links in cards; the JWT audience
    if verifier is None and not config.insecure_dev:
        LOG.warning("no --jwks given: CDS Hooks calls will be refused (401) until one is configured")
    if config.insecure_dev:
        LOG.warning("INSECURE DEV MODE: CDS Hooks calls are accepted WITHOUT authentication; never use with real "
                    "patients or off loopback")
    sparql_files = len(rdf_files(list(config.data))) if config.data else 0
    docs_dir = _docs_dir(core.guideline)

    # ------------------------------------------------------------------ plain REST
    async def health(request: Request) -> Response:
        authentication = "jwt" if verifier else "off (insecure dev)" if config.insecure_dev else "not configured"
        return JSONResponse({"status": "ok", "version": __version__, "guidelineVersion": core.guideline.version,
                             "sparqlData": sparql_files, "cacheHits": core.cache_hits,
                             "authentication": authentication})

    guideline_summary = _guideline_summary(core)

    async def guideline(request: Request) -> Response:
        chosen = _accept(request, ["application/json", "text/turtle"])
        if chosen == "text/turtle":
            return Response(core.guideline.asserted.serialize(format="turtle"), media_type="text/turtle")
        return JSONResponse(guideline_summary)

    async def validate(request: Request) -> Response:
        chosen = _accept(request, VALIDATE_TYPES)
        body = await request.body()
        source = _source(request)
        report = await core.validate(body, media_type(request.headers.get("content-type")), source, request)
        if chosen == "application/fhir+json":
            return JSONResponse(operation_outcome(report.issues, source), media_type=chosen)
        if chosen in ("text/markdown", "text/plain"):
            return Response(validation_text(report) + "\n", media_type=chosen)
        if chosen == "text/turtle":
            return Response(shacl_report_turtle([report]), media_type=chosen)
        return JSONResponse(validation_json(report))

    async def recommend(request: Request) -> Response:
        chosen = _accept(request, RECOMMEND_TYPES)
        details = request.query_params.get("details", "false").lower() in ("1", "true", "yes")
        body = await request.body()
        source = _source(request)
        kind = media_type(request.headers.get("content-type"))

        report, results = await core.evaluate(body, kind, source, request)

        def work() -> Response:
            if chosen == "application/fhir+json":
                return JSONResponse(results_bundle(results, report.issues, source, core.guideline), media_type=chosen)
            if chosen == "text/markdown":
                text = results_text(results, markdown=True, detail=details) if results else validation_text(report)
                return Response(text + "\n", media_type=chosen)
            if chosen == "text/turtle":
                return Response(results_graph(results, core.guideline).serialize(format="turtle"), media_type=chosen)
            return JSONResponse({"validation": validation_json(report), "results": results_json(results)})

        return await core.run(work, exclusive=False)

    async def whatif(request: Request) -> Response:
        """What would change the answer (jdm-kg whatif): per option, the smallest changes."""
        from jdm_kg.errors import InputError
        from jdm_kg.reasoning.whatif import resolve_option

        chosen = _accept(request, WHATIF_TYPES)
        try:
            depth = int(request.query_params.get("depth", "2"))
        except ValueError:
            raise Problem("bad-request", "depth must be a whole number from 1 to "
                                         f"{WHATIF_MAX_DEPTH}") from None
        if not 1 <= depth <= WHATIF_MAX_DEPTH:
            raise Problem("bad-request", f"depth {depth}: give 1 to {WHATIF_MAX_DEPTH} (changes of at most that many "
                                         "facts; the service's limit)")
        name = request.query_params.get("option")
        try:
            option = resolve_option(name[:200], core.guideline) if name else None
        except InputError as err:
            raise Problem("bad-request", err.problem) from None
        body = await request.body()
        source = _source(request)
        report, found = await core.whatif(body, media_type(request.headers.get("content-type")), source, option, depth,
                                          chosen == "text/markdown", request)
        if chosen == "text/markdown":
            return Response((found if found else validation_text(report)) + "\n", media_type=chosen)
        return JSONResponse({"validation": validation_json(report), "whatIf": found})

    # ------------------------------------------------------------------ CDS Hooks
    discovery_document = cds_hooks.discovery(core.guideline)

    async def discovery(request: Request) -> Response:
        return JSONResponse(discovery_document)

    def authenticate(request: Request, service_id: str) -> None:
        if config.insecure_dev:
            return
        if verifier is None:
            raise Problem("unauthorized", "this service has no JWKS configured (--jwks): CDS Hooks calls are refused")
        verifier.verify(request.headers.get("authorization"), [f"{public}/cds-services/{service_id}", public])

    async def cds_call(request: Request) -> tuple[str, Any]:
        """The service named in the path (404 if none), the caller authenticated, the JSON body."""
        service_id = request.path_params["service_id"]
        if service_id not in cds_hooks.SERVICES:
            raise Problem("not-found", f"no CDS service {service_id!r}; see GET /cds-services")
        authenticate(request, service_id)
        return service_id, await _json_body(request)

    async def cds_service(request: Request) -> Response:
        service_id, body = await cds_call(request)
        context = cds_hooks.check_request(service_id, body)
        orders = cds_hooks.selected_orders(context) if service_id == cds_hooks.ORDER_SELECT else []
        text = cds_hooks.prefetch_bundle(body["prefetch"], context["patientId"], config.today)
        base = public  # links from the configured URL, never from the request's Host header
        _, results = await core.evaluate(text.encode(), "application/fhir+json", "prefetch", request,
                                        lines=False)  # (a bundle made here from the prefetch: its lines mean nothing)

        def work() -> dict[str, Any]:
            cards: list[dict[str, Any]] = []
            for result in results[:1]:
                link = f"{base}/report/{core.keep_report([result])}"
                if service_id == cds_hooks.PATIENT_VIEW:
                    cards += cds_hooks.patient_view_cards(result, base, link)
                else:
                    cards += cds_hooks.order_select_cards(result, orders, core.guideline, base, link)
            return {"cards": cards, "systemActions": []}

        return JSONResponse(await core.run(work, exclusive=False))

    async def feedback(request: Request) -> Response:
        service_id, body = await cds_call(request)
        count = cds_hooks.check_feedback(body)
        outcomes = [e["outcome"] for e in body["feedback"]]
        LOG.info("request %s feedback %s: %d entries (%d accepted, %d overridden)", _rid(request), service_id, count,
                 outcomes.count("accepted"), outcomes.count("overridden"))
        return JSONResponse({})

    # ------------------------------------------------------------------ SPARQL
    async def sparql_endpoint(request: Request) -> Response:
        for name in ("default-graph-uri", "named-graph-uri", "using-graph-uri", "using-named-graph-uri"):
            if name in request.query_params:
                raise Problem("refused-query", f"{name} is not accepted: the endpoint answers from its own data")
        if request.method == "GET":
            if "update" in request.query_params:
                raise Problem("refused-query", "this endpoint is read-only: updates are refused")
            text = request.query_params.get("query", "")
        else:
            kind = media_type(request.headers.get("content-type"))
            if kind == "application/sparql-update":
                raise Problem("refused-query", "this endpoint is read-only: updates are refused")
            if kind == "application/sparql-query":
                try:
                    text = (await request.body()).decode("utf-8")
                except UnicodeDecodeError:
                    raise Problem("bad-request", "the query is not UTF-8 text") from None
            elif kind == "application/x-www-form-urlencoded":
                form = await request.form()
                if "update" in form:
                    raise Problem("refused-query", "this endpoint is read-only: updates are refused")
                text = str(form.get("query", ""))
            else:
                raise Problem("unsupported-media-type", "POST a query as application/sparql-query or "
                                                        "application/x-www-form-urlencoded (query=...)")
        if len(text) > 100_000:
            raise Problem("bad-request", f"the query is {len(text)} characters long; the limit is 100000")
        if not text.strip():
            raise Problem("bad-request", "no query: give it as ?query=, a form field, or an application/sparql-query body")
        # checked, run and written in a process of its own, killed at the time limit or when the client goes
        chosen, body, truncated = await core.sparql(text, request.headers.get("accept"), request)
        headers = {"X-JDM-KG-Truncated": f"true; at {config.sparql_max_rows} rows"} if truncated else {}
        return Response(body, media_type=chosen, headers=headers)

    # ------------------------------------------------------------------ errors
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = {"Retry-After": "1"} if exc.kind in ("busy", "timeout", "cancelled") else None
        if exc.kind == "unauthorized":
            headers = {"WWW-Authenticate": 'Bearer realm="jdm-kg CDS Hooks"'}
        return problem(exc.kind, exc.detail, _rid(request), headers, **exc.extra)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "bad-request")
        detail = {404: f"no route {request.url.path}; see /openapi.json",
                  405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return problem(kind, detail, _rid(request))

    async def on_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this response; the request guard logs the exception's type only
        return problem("internal", "an internal error occurred; the request id identifies it in the service log",
                       _rid(request))

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(core.guideline.version))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/guideline", guideline, methods=["GET"]),
        Route("/validate", validate, methods=["POST"]),
        Route("/recommend", recommend, methods=["POST"]),
        Route("/whatif", whatif, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/cds-services", discovery, methods=["GET"]),
        Route("/cds-services/{service_id}", cds_service, methods=["POST"]),
        Route("/cds-services/{service_id}/feedback", feedback, methods=["POST"]),
        Route("/sparql", sparql_endpoint, methods=["GET", "POST"]),
        *web_routes(core),
        Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static"),
        Mount("/docs", app=StaticFiles(directory=docs_dir, html=True), name="docs"),
    ]
    middleware = []
    if config.cors_origins:
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"],
                                     allow_headers=["Authorization", "Content-Type", "Accept"],
                                     expose_headers=["X-Request-Id"], max_age=600))
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        core.reopen()
        yield
        core.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={Problem: on_problem, HTTPException: on_http, Exception: on_error})
    atexit.register(core.close)  # (also when the server stops without a lifespan shutdown)
    app.state.core = core
    app.state.config = config
    return RequestGuard(app, config.max_body_bytes)


@cache
def _docs_dir(guideline: Any) -> Path:
    """The guideline's HTML pages (``jdm-kg docs``), written once: into the cache folder, keyed by
    the guideline files and jdm-kg's version (a restart reuses them), or else into a temporary
    folder removed when the process exits normally."""
    import hashlib

    from jdm_kg.outputs.docs import write_docs
    from jdm_kg.resources import cache_dir

    key = hashlib.sha256(__version__.encode())
    for file in sorted(guideline.files):
        stat = file.stat()
        key.update(f"{file}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    folder = cache_dir()
    if folder is not None:
        path = folder / f"service-docs-{key.hexdigest()[:16]}"
        if (path / "index.html").is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="service-docs-", dir=folder))
        except OSError:
            pass  # no writable cache folder: a temporary one below
        else:
            write_docs(guideline, staging)
            try:
                staging.rename(path)
            except OSError:  # another process wrote it first
                shutil.rmtree(staging, ignore_errors=True)
            return path
    path = Path(tempfile.mkdtemp(prefix="jdm-kg-docs-"))
    atexit.register(shutil.rmtree, path, True)
    write_docs(guideline, path)
    return path


def _guideline_summary(core: Core) -> dict[str, Any]:
    from rdflib import RDF, RDFS

    from jdm_kg.knowledge.guideline import JDM

    graph = core.guideline.graph
    options = []
    for subject, role in sorted(graph.subject_objects(JDM.role), key=str):
        options.append({"option": str(subject), "label": str(graph.value(subject, RDFS.label) or subject),
                        "role": str(graph.value(role, RDFS.label) or role)})
    statements = sorted(set(graph.subjects(RDF.type, JDM.GuidelineStatement)), key=str)
    return {
        "version": core.guideline.version,
        "versionIRI": str(core.guideline.version_iri),
        "options": options,
        "statements": [{"statement": str(s), "label": str(graph.value(s, RDFS.label) or s),
                        "quote": str(graph.value(s, JDM.quote)) if graph.value(s, JDM.quote) else None}
                       for s in statements],
        "docs": "/docs/index.html",
    }


def configure_logging() -> None:
    """Log lines on stderr: time, level, the message (request id, route, status, duration)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
