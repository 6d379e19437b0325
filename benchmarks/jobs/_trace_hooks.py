"""Timestamps along one job's path, for ``breakdown.py``: monkeypatched in, never in src/.

Imported by ``trace_server.py`` in the server process (``install_server()``),
and in the local executor's zygote as a preload module (its import runs
``install_zygote()`` when ``__main__`` is the zygote), so the zygote and every
attempt it forks log too. Every process appends ``<ns> <pid> <label>`` lines to
the file named by ``AIMASS_BENCH_TRACE`` with ``O_APPEND`` (one ``write`` per
line, so lines from different processes do not interleave). The clock is
``CLOCK_MONOTONIC``, which is the same clock in every process on the machine,
so the client's own timestamps line up with the server's.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_FD: int | None = None
_local = threading.local()


def _fd() -> int | None:
    global _FD
    if _FD is None:
        path = os.environ.get("AIMASS_BENCH_TRACE")
        if not path:
            return None
        _FD = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return _FD


def mark(label: str) -> None:
    """Log ``label`` now (a no-op without ``AIMASS_BENCH_TRACE``)."""
    fd = _fd()
    if fd is not None:
        os.write(fd, f"{time.monotonic_ns()} {os.getpid()} {label}\n".encode())


def _wrap(
    owner: Any, name: str, label: str, stage: str | None = None, names_commit: bool = False
) -> None:
    """Replace ``owner.name`` with a wrapper that marks ``label.begin`` and ``label.end``.

    ``stage`` names the commits of sessions opened while it runs; with
    ``names_commit`` it also names the next commit in this thread (a route that
    commits after the service function returned).
    """
    original: Callable[..., Any] = getattr(owner, name)
    if getattr(original, "_traced", False):
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = getattr(_local, "stage", None)
        if stage is not None:
            _local.stage = stage
            if names_commit:
                _local.commit_label = stage
        mark(f"{label}.begin")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"{label}.end")
            if stage is not None:
                _local.stage = previous

    wrapper._traced = True  # type: ignore[attr-defined]
    if isinstance(inspect.getattr_static(owner, name), staticmethod):
        setattr(owner, name, staticmethod(wrapper))
    else:
        setattr(owner, name, wrapper)


# ----------------------------------------------------------------------------- server


def install_server() -> None:
    """Patch the server's path: HTTP, submit, the scheduler's tick, the executor's events."""
    import contextlib

    from aimass.api import app as app_mod
    from aimass.executors import local as local_mod
    from aimass.jobs import records, service
    from aimass.platform import jobs as jobs_runtime
    from aimass.scheduler import scheduler as sched_mod
    from aimass.store import db as db_mod

    # The zygote imports this module too (as a preload), which installs its own hooks.
    if __name__ not in jobs_runtime.PRELOAD:
        jobs_runtime.PRELOAD = (*jobs_runtime.PRELOAD, __name__)
    if "preload_entries" in whatif():
        # What-if: the zygote pre-imports the entries' modules (as it does numpy).
        jobs_runtime.PRELOAD = ("aimass.jobs.builtin.noop", *jobs_runtime.PRELOAD)
    if "sse_fast_follow" in whatif():
        # What-if: the log stream looks at the job every 10 ms instead of every 200 ms.
        from aimass.api.routes import jobs as job_routes

        job_routes._follow.__defaults__ = (0.01,)

    # HTTP: one begin/end per request (method and path in the label).
    original_call = app_mod.PlatformApp.__call__

    async def traced_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await original_call(self, scope, receive, send)
            return
        label = f"http.{scope['method']}.{_route(scope['path'])}"
        mark(f"{label}.begin")
        try:
            await original_call(self, scope, receive, send)
        finally:
            mark(f"{label}.end")

    app_mod.PlatformApp.__call__ = traced_call  # type: ignore[method-assign]

    # Database sessions: the commit, named after the stage that opened the session.
    original_session = db_mod.Database.session

    @contextlib.contextmanager
    def traced_session(self: Any) -> Any:
        opened_in = getattr(_local, "stage", None)
        with original_session(self) as session:
            original_commit = session.commit

            def commit() -> None:
                # Named after the stage that opened the session, or the one that ran in it.
                stage = getattr(_local, "commit_label", None) or opened_in
                _local.commit_label = None
                if stage is None:
                    original_commit()
                    return
                mark(f"{stage}.commit.begin")
                original_commit()
                mark(f"{stage}.commit.end")

            session.commit = commit
            yield session

    db_mod.Database.session = traced_session  # type: ignore[method-assign]

    _wrap(service, "submit_job", "api.submit_job", stage="api.submit", names_commit=True)
    # The scheduler starts a tick's jobs together and ends an attempt without a reload
    # (lead16): the old labels name these calls, so breakdown.py's stages stay.
    _wrap(service, "start_attempts", "tick.start_attempt")
    _wrap(service, "end_attempt", "exit.finish_attempt")
    _wrap(sched_mod, "create_job_token", "tick.create_job_token")
    _wrap(records, "latest_checkpoint", "tick.latest_checkpoint")

    scheduler = sched_mod.Scheduler
    original_wake = scheduler.wake

    def traced_wake(self: Any) -> None:
        mark("scheduler.wake")
        original_wake(self)

    scheduler.wake = traced_wake  # type: ignore[method-assign]
    original_run_once = scheduler.run_once

    async def traced_run_once(self: Any) -> None:
        mark("scheduler.run_once.begin")
        try:
            await original_run_once(self)
        finally:
            mark("scheduler.run_once.end")

    scheduler.run_once = traced_run_once  # type: ignore[method-assign]
    _wrap(scheduler, "tick", "tick", stage="tick")
    _wrap(scheduler, "_submit", "tick.submit")
    _wrap(scheduler, "handle_exit", "exit.handle_exit")
    _wrap(scheduler, "_finish", "exit.scheduler_finish", stage="exit")
    _wrap(scheduler, "wake_threadsafe", "exit.wake_threadsafe")
    _wrap(jobs_runtime, "archive_log", "exit.archive_log")

    executor = local_mod.LocalExecutor
    _wrap(executor, "_make_scratch", "tick.submit.make_scratch")
    _wrap(executor, "_send", "executor.send")
    original_on_event = executor._on_event

    early_exit = "early_exit" in whatif()

    def traced_on_event(self: Any, event: dict[str, Any]) -> None:
        mark(f"executor.event.{event.get('ev')}.begin")
        try:
            if early_exit and event.get("ev") == "exited":
                # What-if early_exit: the attempt's own 'exited' can overtake the zygote's
                # 'started' (the child may run to its end before the zygote writes it), so
                # an end also counts as the start, or submit() would wait for its timeout.
                with self._lock:
                    attempt = self._attempts.get(
                        (int(event.get("job_id") or 0), int(event.get("attempt") or 0))
                    )
                if attempt is not None:
                    attempt.pid = attempt.pid or int(event["pid"])
                    attempt.started.set()
            original_on_event(self, event)
        finally:
            mark(f"executor.event.{event.get('ev')}.end")

    executor._on_event = traced_on_event  # type: ignore[method-assign]
    _wrap(executor, "_finish", "exit.executor_finish")
    _wrap(executor, "_report", "exit.report")


def whatif() -> set[str]:
    """Changes to try, named in ``AIMASS_BENCH_WHATIF`` (comma-separated); see ``breakdown.py``."""
    return {w for w in os.environ.get("AIMASS_BENCH_WHATIF", "").split(",") if w}


def _route(path: str) -> str:
    parts = path.strip("/").split("/")
    return "/".join("{id}" if p.isdigit() else p for p in parts)


# ----------------------------------------------------------------------------- zygote


def install_zygote() -> None:
    """Patch the zygote (``__main__``) and the attempt's steps in ``_child``."""
    main = sys.modules["__main__"]
    zygote = main.Zygote
    original_start = zygote.start
    parent = os.getpid()

    def traced_start(self: Any, spec: dict[str, Any]) -> None:
        mark("zygote.fork.begin")
        try:
            original_start(self, spec)
        finally:
            if os.getpid() == parent:
                mark("zygote.fork.end")

    zygote.start = traced_start
    original_reap = zygote.reap

    def traced_reap(self: Any) -> None:
        mark("zygote.reap.begin")
        original_reap(self)
        mark("zygote.reap.end")

    zygote.reap = traced_reap
    original_emit = main._emit

    def traced_emit(event: dict[str, Any]) -> None:
        mark(f"zygote.emit.{event.get('ev')}")
        original_emit(event)

    main._emit = traced_emit

    from aimass.executors import _child
    from aimass.runtime import heartbeat

    _wrap(_child, "run_attempt", "child.run_attempt")
    _wrap(_child, "_die_with_parent", "child.die_with_parent")
    _wrap(_child, "_redirect", "child.redirect")
    _wrap(_child, "_limit_threads", "child.limit_threads")
    _wrap(_child, "_write_result", "child.write_result")
    _wrap(heartbeat, "start_heartbeat", "child.start_heartbeat")

    class _Importlib:
        """``_child.importlib`` with ``import_module`` marked (the entry's import)."""

        def __getattr__(self, name: str) -> Any:
            import importlib

            return getattr(importlib, name)

        @staticmethod
        def import_module(name: str, package: str | None = None) -> Any:
            import importlib

            mark("child.import_entry.begin")
            try:
                return importlib.import_module(name, package)
            finally:
                mark("child.import_entry.end")

    _child.importlib = _Importlib()  # type: ignore[assignment]
    _install_whatif(_child, heartbeat)


def _install_whatif(child: Any, heartbeat: Any) -> None:
    """The changes named in ``AIMASS_BENCH_WHATIF``, applied to the zygote and its attempts."""
    wanted = whatif()
    if "gc_freeze" in wanted:
        # What-if: the zygote moves everything it imported into the GC's permanent
        # generation before it forks, so a collection in an attempt neither walks those
        # objects nor touches (copies) their pages.
        import gc

        gc.collect()
        gc.freeze()
    if "threadpool_controller" in wanted:
        # What-if: find the thread pools once in the zygote; an attempt only resizes them.
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()

        def limit_threads(threads: str | None) -> None:
            mark("child.limit_threads.begin")
            if threads and "numpy" in sys.modules:
                controller.limit(limits=int(threads))
            mark("child.limit_threads.end")

        child._limit_threads = limit_threads
    if "lazy_heartbeat" in wanted:
        # What-if: the heartbeat thread builds its HTTP client after its first sleep,
        # not while the entry imports and runs (an httpx.Client costs ~20 ms of CPU).
        def beat_forever(url: str, token: str, job_id: int, attempt: int, interval: float) -> None:
            import time as _time

            _time.sleep(interval)
            original_beat(url, token, job_id, attempt, interval)

        original_beat = heartbeat._beat_forever
        heartbeat._beat_forever = beat_forever
    if "early_exit" in wanted:
        # What-if: the attempt reports its own end (exit status) on the executor's event
        # pipe before os._exit, so the server need not wait for the kernel to tear down the
        # forked address space and the zygote to reap it.
        import json

        events = os.dup(1)
        run_attempt = child.run_attempt

        def report_then_exit(spec: dict[str, Any]) -> int:
            code = run_attempt(spec)
            event = {
                "ev": "exited",
                "job_id": int(spec["job_id"]),
                "attempt": int(spec["attempt"]),
                "pid": os.getpid(),
                "returncode": code,
            }
            os.write(events, (json.dumps(event) + "\n").encode())
            mark("child.reported_exit")
            return code

        child.run_attempt = report_then_exit


if getattr(sys.modules.get("__main__"), "Zygote", None) is not None:
    install_zygote()
