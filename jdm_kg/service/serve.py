"""``jdm-kg serve``: options and start-up (uvicorn). Imports nothing heavy until it runs, so the
command line's other subcommands do not pay for the web stack."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

from jdm_kg.service.config import ServiceConfig

__all__ = ["add_arguments", "config_from_args", "serve"]

_DEFAULTS = ServiceConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--insecure-dev", action="store_true",
                   help="accept CDS Hooks calls WITHOUT a JWT: local trials only, never with real patients")
    p.add_argument("--jwks", metavar="FILE", help="local JWKS file with the public keys of the EHRs allowed to call")
    p.add_argument("--audience", metavar="URL",
                   help="the service's public base URL: a JWT's aud must be it (or a CDS service URL under it), and "
                        "links in cards are built from it; required with --jwks (default without: "
                        "http://HOST:PORT as started; never the Host header a request names)")
    p.add_argument("--issuer", action="append", default=[], metavar="ISS",
                   help="accepted JWT issuer (repeat; default: any issuer whose key is in the JWKS)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow a browser-based CDS client from ORIGIN (repeat; default: no CORS)")
    p.add_argument("--data", nargs="*", default=[], metavar="FILE",
                   help="patient files or folders to load into the SPARQL endpoint beside the guideline")
    p.add_argument("--max-body-bytes", type=int, default=_DEFAULTS.max_body_bytes, metavar="N",
                   help=f"largest request body (default {_DEFAULTS.max_body_bytes})")
    p.add_argument("--request-timeout", type=float, default=_DEFAULTS.request_timeout, metavar="SECONDS",
                   help=f"time limit for one request's work (default {_DEFAULTS.request_timeout:g})")
    p.add_argument("--max-concurrent", type=int, default=_DEFAULTS.max_concurrent, metavar="N",
                   help=f"requests worked on or waiting at once; more get 503 (default {_DEFAULTS.max_concurrent})")
    p.add_argument("--workers", type=int, default=_DEFAULTS.workers, metavar="N",
                   help=f"worker processes that validate and recommend (default {_DEFAULTS.workers}: one per core); "
                        "each SPARQL query runs in a process of its own besides")
    p.add_argument("--worker-memory-mb", type=int, default=_DEFAULTS.worker_memory_mb, metavar="MIB",
                   help=f"memory one request's work may use, in MiB (default {_DEFAULTS.worker_memory_mb})")
    p.add_argument("--read-timeout", type=float, default=_DEFAULTS.read_timeout, metavar="SECONDS",
                   help=f"time a client has to send a whole request, headers and body (default "
                        f"{_DEFAULTS.read_timeout:g}); a slower one is disconnected")
    p.add_argument("--sparql-timeout", type=float, default=_DEFAULTS.sparql_timeout, metavar="SECONDS",
                   help=f"time limit of one SPARQL query (default {_DEFAULTS.sparql_timeout:g})")
    p.add_argument("--sparql-max-rows", type=int, default=_DEFAULTS.sparql_max_rows, metavar="N",
                   help=f"rows one SPARQL answer may hold (default {_DEFAULTS.sparql_max_rows})")
    p.add_argument("--result-cache", type=int, default=_DEFAULTS.result_cache, metavar="N",
                   help=f"answers kept for identical requests on the same day; 0: off (default {_DEFAULTS.result_cache})")
    p.add_argument("--engine", choices=["oxigraph", "rdflib"], default="oxigraph",
                   help="what runs the recommendation queries (default oxigraph, embedded)")
    p.add_argument("--today", metavar="YYYY-MM-DD", help=argparse.SUPPRESS)  # tests: a fixed "as of" date


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    from jdm_kg.errors import InputError

    for name in ("max_body_bytes", "max_concurrent", "sparql_max_rows", "workers", "worker_memory_mb"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", "must be at least 1")
    for name in ("request_timeout", "sparql_timeout", "read_timeout"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')}", "must be more than 0 seconds")
    if args.endpoint and not args.update:
        raise InputError("--endpoint", "the service loads each patient there for its run: give --update URL too")
    if args.jwks and not args.audience:
        raise InputError("--audience", "give the service's public URL (e.g. https://cds.example.org): a JWT's aud is "
                                       "checked against it, never against the Host header a request names")
    audience = args.audience
    if audience is None:  # links only (no JWT is checked without --jwks): the address the service listens on
        host = f"[{args.host}]" if ":" in args.host else args.host
        audience = f"http://{host}:{args.port}"
    elif not audience.startswith(("https://", "http://")):
        raise InputError("--audience", f"{audience!r} is not an http(s) URL")
    return ServiceConfig(
        insecure_dev=args.insecure_dev, jwks=args.jwks, audience=audience, issuers=tuple(args.issuer),
        workers=args.workers, worker_memory_mb=args.worker_memory_mb, read_timeout=args.read_timeout,
        cors_origins=tuple(args.cors_origin),
        max_body_bytes=args.max_body_bytes, request_timeout=args.request_timeout, max_concurrent=args.max_concurrent,
        sparql_timeout=args.sparql_timeout, sparql_max_rows=args.sparql_max_rows, data=list(args.data),
        result_cache=max(0, args.result_cache), engine=args.engine, endpoint=args.endpoint, update=args.update,
        today=date.fromisoformat(args.today) if args.today else None,
    )


def serve(args: argparse.Namespace) -> int:
    """Build the app (the guideline compiled once), then serve it with uvicorn until stopped."""
    import uvicorn

    from jdm_kg.errors import InputError
    from jdm_kg.inputs.netguard import allow_hosts
    from jdm_kg.service.app import configure_logging, create_app

    config = config_from_args(args)
    configure_logging()
    if config.insecure_dev:
        print("\n*** jdm-kg serve --insecure-dev: CDS Hooks requests are NOT authenticated. For local trials "
              "only; never with real patient data. ***\n", file=sys.stderr, flush=True)
    if config.jwks is None and not config.insecure_dev:
        print("jdm-kg serve: no --jwks: CDS Hooks calls will get 401 (REST, SPARQL and the web page work).",
              file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"jdm-kg serve: listening on {args.host}, not loopback: put TLS in front of it.", file=sys.stderr)
    try:
        app = create_app(config)
    except ValueError as err:  # an unusable JWKS file
        raise InputError("--jwks", str(err)) from None
    except RuntimeError as err:  # the worker processes could not start (the guideline or --data could not be read)
        raise InputError("jdm-kg serve", str(err)) from None
    allow_hosts({args.host})  # the listening socket's own address lookup (never an outgoing connection)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False, server_header=False,
                timeout_graceful_shutdown=5, http=read_timeout_protocol(config.read_timeout))
    return 0


def read_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol with a read timeout: a client has ``seconds`` from opening the
    connection (or from the end of its last answer) to send a whole request, headers and body;
    a slower one is disconnected. (uvicorn times out idle keep-alive connections only: a client
    that sends half a request holds its connection open for as long as it likes.) A request
    that is all in is never cut: its work has its own time limit."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ReadTimeoutH11Protocol(H11Protocol):
        _read_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._read_timer = self.loop.call_later(seconds, self._too_slow)

        def _too_slow(self) -> None:
            cycle = self.cycle
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                return  # the whole request is in: the app is working on it
            if not self.transport.is_closing():
                self.transport.close()

    return ReadTimeoutH11Protocol
