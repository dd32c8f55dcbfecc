"""The service's settings: limits, authentication, data. Defaults are stated in docs/service.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

__all__ = ["ServiceConfig"]


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class ServiceConfig:
    """How ``jdm-kg serve`` runs (every field has a command-line option of the same name)."""

    #: Accept CDS Hooks calls without a JWT (local trials only; the service says so loudly).
    insecure_dev: bool = False
    #: A local JWKS file (``{"keys": [...]}``) with the public keys of the EHRs allowed to call.
    jwks: str | None = None
    #: The service's public base URL (``--audience``): a JWT's ``aud`` must be it or a CDS
    #: service URL under it, and the links in cards are built from it (never from the request's
    #: Host header). Required with ``jwks``; without it, links are built from ``http://host:port``
    #: as the service was started.
    audience: str | None = None
    #: Accepted JWT issuers (``iss``); empty: any issuer whose key is in the JWKS.
    issuers: tuple[str, ...] = ()
    #: Origins of browser-based CDS clients allowed by CORS (CDS Hooks 2.0, "Cross-Origin
    #: Resource Sharing"); empty: no CORS headers.
    cors_origins: tuple[str, ...] = ()
    #: Seconds a client has to send a whole request (headers and body); a slower one is disconnected.
    read_timeout: float = 10.0
    #: Largest request body, in bytes.
    max_body_bytes: int = 2_000_000
    #: Time limit for one request's work, in seconds.
    request_timeout: float = 30.0
    #: Requests worked on or waiting for a worker at once; more get 503 with Retry-After.
    max_concurrent: int = 32
    #: Worker processes that validate and recommend (default: one per core); 0 runs the work in
    #: the service's own process (tests, embedding: no process to kill at the time limit).
    workers: int = field(default_factory=lambda: _cores())
    #: Memory one worker process may use beyond what it starts with (MiB); more fails the request.
    worker_memory_mb: int = 1024
    #: Time limit and row limit of one SPARQL query (each runs in a process of its own, killed at the limit).
    sparql_timeout: float = 10.0
    sparql_max_rows: int = 10_000
    #: Patient files (folders or files) loaded into the SPARQL endpoint at start-up.
    data: list[str] = field(default_factory=list)
    #: What runs the recommendation queries: "oxigraph" (embedded) or "rdflib", or a SPARQL
    #: server (``endpoint`` and ``update`` URLs).
    engine: str = "oxigraph"
    endpoint: str | None = None
    update: str | None = None
    #: The date the service assesses records "as of" when a record has none (tests fix it).
    today: date | None = None
    #: Answers kept for identical requests (same bytes, same day); 0 turns the cache off.
    result_cache: int = 256
    #: How long a patient's report stays reachable by its link (the CDS card's link), seconds.
    report_ttl: float = 3600.0
