"""``RayProcessExecutor``: the Ray driver in a child process, so a lost Ray head ends only it.

Ray 2.60 gives a driver no word when its head goes away: ``ray.wait`` keeps
answering "nothing ready" and later Ray may end the whole process. Holding the
driver (a ``RayExecutor``) in the server's own process would let a lost head
take the server down. Here a child process (``spawn``) holds it; this process
talks to it over a pipe (submit, cancel, close one way; started, placed, exits
the other) and keeps the attempts it handed over.

The child probes the head (a TCP connect to its GCS address every second); after
``head_lost_s`` with no answer it exits. Then, and whenever the child dies, every
attempt it held is reported ended by signal (-9): an infrastructure failure the
scheduler requeues without using the job's retry budget (the attempt's node may
still be running it a little longer; its heartbeats are then refused and it stops
itself). Until a new child has connected, ``unavailable`` says why, so the leader
starts nothing and queued jobs wait with that reason: they are never left
``running``. A new child tries to connect every ``reconnect_s``; once the head is
back the jobs start again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aimass.executors.base import AttemptExit, AttemptSpec, Executor, NodeCapacity

log = logging.getLogger("aimass.executors.ray")

#: The child's exit status when it gave up on the head.
_HEAD_LOST = 3
_SUBMIT_TIMEOUT_S = 60.0


@dataclass
class _Held:
    spec: AttemptSpec
    acked: bool = False
    placed: bool = False
    cancelled: bool = False


def _probe(address: str, timeout: float) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _watch_head(address: str, lost_after_s: float, conn_lock: threading.Lock) -> None:
    """In the child: exit once the head's GCS has not answered for ``lost_after_s``."""
    last_ok = time.monotonic()
    while True:
        time.sleep(1.0)
        if _probe(address, timeout=min(2.0, lost_after_s)):
            last_ok = time.monotonic()
        elif time.monotonic() - last_ok >= lost_after_s:
            with conn_lock:  # not in the middle of a message
                os._exit(_HEAD_LOST)


def _child(conn: Connection, options: dict[str, Any], head_lost_s: float) -> None:
    """The child process: a ``RayExecutor`` driven over ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the parent's
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    try:
        from aimass.executors.ray import RayExecutor, _ray, ray_capacity

        executor = RayExecutor(**options)
        address = str(_ray().get_runtime_context().gcs_address)
        send(("ready", ray_capacity(), address))
    except Exception as exc:
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    executor.on_exit = lambda exit_: send(("exit", exit_))
    executor.on_placed = lambda job_id, attempt, node: send(("placed", job_id, attempt, node))
    watcher = threading.Thread(
        target=_watch_head, args=(address, head_lost_s, lock), name="ray-head", daemon=True
    )
    watcher.start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone: Ray ends its driver's tasks
            os._exit(0)
        op = message[0]
        if op == "submit":
            try:
                executor.submit(message[2])
                send(("reply", message[1], None))
            except Exception as exc:
                send(("reply", message[1], str(exc)))
        elif op == "cancel":
            executor.cancel(message[1])
        elif op == "close":
            executor.close()
            send(("closed",))
            return


class RayProcessExecutor(Executor):
    """A ``RayExecutor`` (same ``options``) run in a child process that may die alone.

    ``head_lost_s``: how long the head may not answer before its attempts are given up;
    ``reconnect_s``: how often a new driver tries to connect meanwhile. The first
    connection is waited for (``start_timeout_s``) and raises if it fails, as an
    in-process driver would. ``capacity`` is the cluster's at that connection.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        head_lost_s: float = 5.0,
        reconnect_s: float = 2.0,
        start_timeout_s: float = 180.0,
        **options: Any,
    ) -> None:
        super().__init__()
        self._options: dict[str, Any] = {"targets": dict(targets), **options}
        self.head_lost_s = head_lost_s
        self.reconnect_s = reconnect_s
        self._context = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._held: dict[tuple[int, int], _Held] = {}
        self._replies: dict[int, str | None] = {}
        self._next_id = 0
        self._closed = False
        self._conn: Connection | None = None
        self._proc: Any = None
        self._send_lock = threading.Lock()
        self._down: str | None = "connecting to Ray"
        self.capacity = NodeCapacity(cpu=0.0)
        #: The connected cluster's GCS address (None until the driver first connects).
        self.address: str | None = None
        self._first = threading.Event()
        self._first_error: str | None = None
        self._thread = threading.Thread(target=self._supervise, name="ray-driver", daemon=True)
        self._thread.start()
        if not self._first.wait(start_timeout_s):
            self._closed = True
            raise RuntimeError(f"Ray did not connect within {start_timeout_s:g} s")
        if self._first_error is not None:
            self._closed = True
            raise RuntimeError(f"cannot connect to Ray: {self._first_error}")

    # -- the executor ---------------------------------------------------------

    def submit(self, attempt: AttemptSpec) -> None:
        """Hand the attempt to the driver; raises if no driver is connected."""
        key = (attempt.job_id, attempt.attempt)
        with self._cond:
            if self._closed:
                raise RuntimeError("the Ray executor is closed")
            if self._down is not None or self._conn is None:
                raise RuntimeError(f"the Ray cluster is unavailable: {self._down}")
            if key in self._held:
                raise RuntimeError(f"job {key[0]} attempt {key[1]} already runs here")
            self._next_id += 1
            request = self._next_id
            held = _Held(attempt)
            self._held[key] = held
            conn = self._conn
        error: str | None = "the Ray driver did not answer"
        try:
            with self._send_lock:
                conn.send(("submit", request, attempt))
            with self._cond:
                self._cond.wait_for(
                    lambda: request in self._replies or self._conn is not conn, _SUBMIT_TIMEOUT_S
                )
                if request in self._replies:
                    error = self._replies.pop(request)
                if error is None and self._conn is not conn:  # accepted, then the driver died
                    error = "the Ray driver was lost"
                if error is None:
                    held.acked = True
                elif self._held.get(key) is held:
                    del self._held[key]
        except (OSError, ValueError) as exc:
            error = f"the Ray driver is gone: {exc}"
            with self._cond:
                if self._held.get(key) is held:
                    del self._held[key]
        if error is not None:
            raise RuntimeError(error)

    def cancel(self, job_id: int) -> None:
        """Ask the driver to end the job's attempts (lost ones were reported already)."""
        with self._cond:
            held = [h for (j, _), h in self._held.items() if j == job_id]
            for h in held:
                h.cancelled = True
            conn = self._conn
        if held and conn is not None:
            with contextlib.suppress(OSError, ValueError), self._send_lock:
                conn.send(("cancel", job_id))

    def close(self) -> None:
        """Close the driver (it ends every attempt and reports each), then stop the child."""
        with self._cond:
            self._closed = True
            self.address = None  # nothing joins a cluster through a closed driver
            conn, proc = self._conn, self._proc
            self._cond.notify_all()
        if conn is not None:
            with contextlib.suppress(OSError, ValueError), self._send_lock:
                conn.send(("close",))
        if proc is not None:
            proc.join(timeout=float(self._options.get("kill_grace_s", 3.0)) + 30.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._thread.join(timeout=10)
        self._lose_all("lost at close")

    def active(self) -> list[tuple[int, int]]:
        """The attempts the driver holds (queued in Ray or running)."""
        with self._cond:
            return list(self._held)

    def waiting(self) -> list[tuple[int, int]]:
        """The attempts whose task has not started on a node yet."""
        with self._cond:
            return [k for k, h in self._held.items() if not h.placed and not h.cancelled]

    def unavailable(self) -> str | None:
        """Why nothing can start now (the head is unreachable), or None."""
        with self._cond:
            return None if self._closed else self._down

    # -- the child ------------------------------------------------------------

    def _supervise(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
            reason = self._run_child()
            with self._cond:
                if self._closed:
                    return
                self._down = reason
                self._cond.notify_all()
            if not self._first.is_set():
                self._first_error = reason
                self._first.set()
                return
            self._lose_all(reason)
            with self._cond:
                self._cond.wait_for(lambda: self._closed, self.reconnect_s)

    def _run_child(self) -> str:
        """Start a driver and serve its messages until it ends; why it ended."""
        ours, theirs = self._context.Pipe()
        proc = self._context.Process(
            target=_child,
            args=(theirs, self._options, self.head_lost_s),
            name="aimass-ray-driver",
            daemon=True,
        )
        proc.start()
        theirs.close()
        with self._cond:
            self._proc = proc
        reason = "the Ray driver process ended"
        try:
            while True:
                message = ours.recv()
                if message[0] == "ready":
                    self._connected(ours, message[1], message[2])
                elif message[0] == "failed":
                    reason = f"cannot connect: {message[1]}"
                    break
                else:
                    self._handle(message)
        except (EOFError, OSError):
            pass
        proc.join(timeout=5)
        if proc.exitcode == _HEAD_LOST:
            reason = f"the Ray head did not answer for {self.head_lost_s:g} s"
        with self._cond:
            self._conn = None
            self._proc = None
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            ours.close()
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        return reason

    def _connected(self, conn: Connection, capacity: NodeCapacity, address: str) -> None:
        with self._cond:
            self._conn = conn
            self._down = None
            self.address = address
            if not self._first.is_set():
                self.capacity = capacity
            self._cond.notify_all()
        if self._first.is_set():
            log.warning("reconnected to the Ray head at %s", address)
        self._first.set()

    def _handle(self, message: tuple[Any, ...]) -> None:
        op = message[0]
        if op == "reply":
            with self._cond:
                self._replies[message[1]] = message[2]
                self._cond.notify_all()
        elif op == "placed":
            with self._cond:
                held = self._held.get((message[1], message[2]))
                if held is not None:
                    held.placed = True
            self._placed(message[1], message[2], message[3])
        elif op == "exit":
            exit_: AttemptExit = message[1]
            with self._cond:
                known = self._held.pop((exit_.job_id, exit_.attempt), None) is not None
            if known:
                self._report(exit_)

    def _lose_all(self, reason: str) -> None:
        """Report every attempt the dead driver held as ended by the platform's fault."""
        with self._cond:
            lost = [h for h in self._held.values() if h.acked]
            for h in lost:
                del self._held[(h.spec.job_id, h.spec.attempt)]
        if lost:
            log.warning("lost %d Ray attempt(s): %s", len(lost), reason)
        for h in lost:
            self._report(
                AttemptExit(
                    job_id=h.spec.job_id,
                    attempt=h.spec.attempt,
                    returncode=-signal.SIGKILL,
                    cancelled=h.cancelled,
                    error=None if h.cancelled else f"Ray driver lost: {reason}",
                )
            )
