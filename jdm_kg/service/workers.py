"""Worker processes for ``jdm-kg serve``: every evaluation and every SPARQL query runs in a
process that can be stopped for real.

- A *zygote* process (started with ``spawn``, so it shares nothing with the service's threads)
  builds an :class:`~jdm_kg.service.evaluator.Evaluator` once: the compiled guideline, the
  shapes, the SPARQL store, one warm-up evaluation. It then only forks, single-threaded, on
  the service's request: a fork starts in milliseconds with all of that already in memory
  (copy-on-write, shared read-only).
- ``workers`` persistent *evaluation workers* forked from it validate and recommend, one
  request at a time each: both cores busy, and a slow request holds up only its own worker.
- Each SPARQL query gets a one-shot child of its own: however many runaway queries run, a
  new query (``ASK {}``) gets a process of its own at once.

Every child has a memory cap (``RLIMIT_AS``: its size at fork plus ``worker_memory_mb``); a
child that passes it fails its request (``MemoryError``, or Oxigraph aborting) and is replaced.
When a request's time is up, or its client has gone or been refused, the service kills the
child doing its work (``SIGKILL``; the zygote reaps it and forks a new worker). A one-shot
child also ends itself with ``alarm()`` a second after its deadline, and one still running after
a quarter of a second gets a lower CPU priority, so that runaway queries leave the cores to
short ones. When the service stops,
or dies, the zygote sees its control pipe close and kills every child before it exits.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

from jdm_kg.service.config import ServiceConfig
from jdm_kg.service.problems import Problem

__all__ = ["WorkerPool"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Worker:
    """A child process (its pid, the service's end of its socket)."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn


class WorkerPool:
    """The zygote, the evaluation workers, and the calls that hand them work (blocking calls:
    the service makes them from its thread pool)."""

    def __init__(self, config: ServiceConfig, workers: int, start_timeout: float = 600.0) -> None:
        self.config = config
        self.memory = config.worker_memory_mb * 1024 * 1024
        ctx = multiprocessing.get_context("spawn")
        self._control, theirs = ctx.Pipe()
        self._zygote = ctx.Process(target=_zygote_main, args=(config, theirs), name="jdm-kg zygote", daemon=True)
        self._zygote.start()
        theirs.close()
        if not self._control.poll(start_timeout):
            self.close()
            raise RuntimeError("the worker processes did not start in time")
        try:
            first = self._control.recv()
        except EOFError:
            raise RuntimeError("the worker processes could not start") from None
        if first[0] != "ready":
            self.close()
            raise RuntimeError(f"the worker processes could not start: {first[1]}")
        self._control_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._idle_ready = threading.Condition()
        self._closed = False
        for _ in range(workers):
            self._idle.append(self._fork(once=False))
        self.size = workers
        self.replaced = 0

    # ------------------------------------------------------------------ the zygote's services
    def _fork(self, once: bool) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            with self._control_lock:
                self._control.send(("fork", once, self.memory, self.config.sparql_timeout + 1 if once else 0))
                reduction.send_handle(self._control, theirs.fileno(), self._zygote.pid or 0)
                pid = self._control.recv()
        except (EOFError, OSError):
            ours.close()
            raise Problem("busy", "the service's worker processes have stopped; restart the service") from None
        finally:
            theirs.close()
        return _Worker(pid, Connection(ours.detach()))

    def _kill(self, worker: _Worker) -> None:
        worker.conn.close()
        with self._control_lock:
            if not self._closed:
                self._control.send(("kill", worker.pid))

    # ------------------------------------------------------------------ calls
    def call(self, job: tuple[Any, ...], deadline: float, cancelled: threading.Event) -> Any:
        """``job`` done by an evaluation worker (waiting for one to be free until ``deadline``);
        the worker is killed and replaced if the deadline passes or ``cancelled`` is set first."""
        worker = self._checkout(deadline, cancelled)
        healthy = False
        try:
            answer = self._exchange(worker, job, deadline, cancelled)
            healthy = not answer[-1]  # the worker asks to be replaced (it met its memory cap)
            return _unwrap(answer)
        finally:
            if healthy:
                self._checkin(worker)
            else:
                self._kill(worker)
                if not self._closed:
                    self.replaced += 1
                    self._checkin(self._fork(once=False))

    def call_once(self, job: tuple[Any, ...], deadline: float, cancelled: threading.Event) -> Any:
        """``job`` done by a child forked for it alone (a SPARQL query), killed if the deadline
        passes or ``cancelled`` is set first."""
        worker = self._fork(once=True)
        try:
            return _unwrap(self._exchange(worker, job, deadline, cancelled))
        finally:
            self._kill(worker)  # (it has exited already if it answered: the zygote reaps it)

    def _exchange(self, worker: _Worker, job: tuple[Any, ...], deadline: float,
                  cancelled: threading.Event) -> tuple[Any, ...]:
        try:
            worker.conn.send(job)
            while not worker.conn.poll(0.05):
                if cancelled.is_set():
                    raise Problem("cancelled", "the client went away or was refused: the work was stopped")
                if time.monotonic() > deadline:
                    raise Problem("timeout", "the work took longer than its time limit and was stopped")
            answer: tuple[Any, ...] = worker.conn.recv()
            return answer
        except (EOFError, OSError):
            raise Problem("too-costly", "the work needed more memory than a request may use "
                                        f"({self.config.worker_memory_mb} MiB) and was stopped") from None

    def _checkout(self, deadline: float, cancelled: threading.Event) -> _Worker:
        with self._idle_ready:
            while not self._idle:
                if self._closed:
                    raise Problem("busy", "the service is stopping")
                if cancelled.is_set():
                    raise Problem("cancelled", "the client went away or was refused before the work began")
                if time.monotonic() > deadline:
                    raise Problem("timeout", "no worker was free before the request's time limit")
                self._idle_ready.wait(0.05)
            return self._idle.pop()

    def _checkin(self, worker: _Worker) -> None:
        with self._idle_ready:
            self._idle.append(worker)
            self._idle_ready.notify()

    def close(self) -> None:
        """Stop the zygote (it kills every child)."""
        self._closed = True
        try:
            self._control.close()
        except OSError:
            pass
        self._zygote.join(5)
        if self._zygote.is_alive():
            self._zygote.kill()
            self._zygote.join(5)


def _unwrap(answer: tuple[Any, ...]) -> Any:
    if answer[0] == "ok":
        return answer[1]
    raise Problem(answer[1], answer[2], **answer[3])


# ---------------------------------------------------------------------- in the zygote and its children


def _zygote_main(config: ServiceConfig, control: Connection) -> None:
    """Build the evaluator once, then fork children on request until the control pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the service's to handle
    try:
        from jdm_kg.inputs.netguard import allow_hosts, block_network
        from jdm_kg.service.evaluator import Evaluator

        block_network()
        hosts = {h for h in (_host(config.endpoint), _host(config.update)) if h}
        if hosts:
            allow_hosts(hosts)
        evaluator = Evaluator(config)
        evaluator.warm()
    except Exception as err:  # noqa: BLE001 (said to the service, which stops with the reason)
        from jdm_kg.errors import InputError

        control.send(("error", str(err) if isinstance(err, InputError) else f"{type(err).__name__}: {err}"))
        return
    gc.collect()
    gc.freeze()  # what is built is shared with the children: keep the collector from touching (copying) it
    control.send(("ready",))
    children: set[int] = set()
    young: dict[int, float] = {}  # one-shot children not yet given a lower priority: pid -> when forked
    try:
        while True:
            _reap(children)
            _age(young, children)
            if not control.poll(0.1):
                continue
            try:
                message = control.recv()
            except (EOFError, OSError):
                break
            if message[0] == "fork":
                _, once, memory, alarm = message
                fd = reduction.recv_handle(control)
                pid = os.fork()
                if pid == 0:
                    try:
                        control.close()
                        _child(evaluator.do, fd, once, memory, alarm)
                    finally:
                        os._exit(0)
                os.close(fd)
                children.add(pid)
                if once:
                    young[pid] = time.monotonic()
                control.send(pid)
            elif message[0] == "kill" and message[1] in children:
                _end(message[1])
                children.discard(message[1])
    finally:
        for pid in children:
            _end(pid)


#: A one-shot child (a SPARQL query) still running after this many seconds gets a lower CPU
#: priority (nice +10), so that runaway queries leave the cores to short ones (ASK {}) and to
#: the evaluations until their time limit kills them.
LOWER_PRIORITY_AFTER = 0.25


def _age(young: dict[int, float], children: set[int]) -> None:
    now = time.monotonic()
    for pid, born in list(young.items()):
        if pid not in children:
            del young[pid]
        elif now - born > LOWER_PRIORITY_AFTER:
            del young[pid]
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 10)
            except OSError:
                pass


def _host(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname if url else None


def _end(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _reap(children: set[int]) -> None:
    """Collect the children that have exited by themselves (one-shot children, a worker that met
    its memory cap), so that no pid the service may name is reused while it is still known."""
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            children.discard(pid)


def _child(do: Callable[[tuple[Any, ...]], Any], fd: int, once: bool, memory: int, alarm: float) -> None:
    """A worker: answer jobs from the socket ``fd`` (one if ``once``) within ``memory`` more bytes
    of address space than it was forked with; each answer is ``("ok", value, retire)`` or
    ``("problem", kind, detail, extra, retire)``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if alarm:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # ends the process, even inside Oxigraph's Rust code
        signal.alarm(int(alarm) + 1)
    if memory:
        size = _address_space()
        resource.setrlimit(resource.RLIMIT_AS, (size + memory, size + memory))
    conn = Connection(fd)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        retire = False
        try:
            answer: tuple[Any, ...] = ("ok", _portable(do(job)), False)
        except Problem as problem:
            answer = ("problem", problem.kind, problem.detail, problem.extra, False)
        except MemoryError:
            retire = True
            answer = ("problem", "too-costly", "the work needed more memory than a request may use and was "
                                              "stopped", {}, True)
        except RecursionError:
            answer = ("problem", "invalid-input", "the input is nested too deeply to read", {}, False)
        except Exception as err:  # noqa: BLE001 (the service answers 500; the log names the type)
            answer = ("problem", "internal", f"an internal error occurred ({type(err).__name__})", {}, False)
        try:
            conn.send(answer)
        except MemoryError:
            return
        if once or retire:
            return


def _portable(value: Any) -> Any:
    """``value`` as it is sent back: a validation report without pySHACL's report graph's
    store internals (its triples are copied into a plain graph)."""
    from jdm_kg.reasoning.validation import ValidationReport

    reports = value if isinstance(value, tuple) else (value,)
    for report in reports:
        if isinstance(report, ValidationReport) and report.shacl_report is not None:
            from rdflib import Graph

            plain = Graph()
            for prefix, namespace in report.shacl_report.namespaces():
                plain.bind(prefix, namespace)
            plain += report.shacl_report
            report.shacl_report = plain
    return value


def _address_space() -> int:
    """This process's virtual size in bytes (``/proc/self/statm``; 0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
