"""The in-flight cap's count, and the connections it holds back while the cap is full.

A worker admits at most ``cap`` inference requests at once (``AdmittedCount``).
Past it, a request is refused with 503 + Retry-After written straight to the
socket (``busy_answer``: no task, no app), and its connection is *parked*: the
worker stops reading it (``transport.pause_reading``), so its client's next
request waits in the kernel's socket buffer, held back by TCP flow control,
instead of costing the event loop a read and a refusal on every turn. Under a
crowd of thousands that re-send at once, those refusals were most of the loop's
work, and what was admitted waited behind them.

An admitted request answered 429 or 503 (its deployment's queue is full) parks
its connection the same way. A parked connection is read again (FIFO) when an
admitted request is served (one per request served, so the cap refills from the
parked crowd in turn), and every ``SWEEP_S`` as many as the cap has room for.
One that waited ``PARK_S`` (the refusal's Retry-After) is held until there is
room rather than read and refused again, except ``MARGIN`` a sweep, so that a
crowd held back by a stuck model still hears 503s, oldest first. A sweep reads
at most ``SLICE`` connections a loop turn: under a crowd of thousands, reading
all that waited ``PARK_S`` at once made loop turns of over a second, and the
accepts and answers waited behind them.
A new connection is never parked before its first request is read: a probe on
its own connection is always answered, and the probes are never refused. A
connection is parked only after an inference request (refused, or answered while
the cap was full), so clients of the other routes are not held back.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from aimass.api.edge import error_code
from aimass.api.middleware import SECURITY_HEADERS

#: The longest a parked connection waits before its next request is read: the
#: Retry-After its refusal gave (a client that honours it loses nothing).
PARK_S = 1.0
#: How often the parked connections are checked for age and room.
SWEEP_S = 0.05
#: The most parked connections read again in one loop turn (the rest on the next).
SLICE = 64
#: How many connections that waited ``PARK_S`` a sweep reads again past the cap's
#: room (each is refused again at once): the rest wait for room, oldest first.
MARGIN = 16
#: A parked connection that waited this long is logged: past ``PARK_S`` it waits for
#: room (or its turn in ``MARGIN``), so this long means the crowd outruns the cap.
STALL_S = 3 * PARK_S
#: A sweep this late (s past its timer) is logged, the latest of each second at most:
#: the loop's turns are that long.
LATE_S = 0.25
#: The statuses of an admitted request refused by its deployment (a full queue, no model).
SHED = frozenset({429, 503})
log = logging.getLogger(__name__)
_MESSAGE = "the server is at its in-flight request limit; try again soon"


class Parkable(Protocol):
    """A connection the gate can stop and start reading."""

    def unpark(self) -> bool:
        """Read this connection again; False if it is gone or already read."""


class AdmittedCount:
    """How many admitted inference requests a worker is running, and who waits to be read.

    ``n`` is the count the in-flight cap compares with ``cap`` (0: no cap).
    ``counted(app)`` wraps an admitted request's app so the count drops when it
    returns; ``park(connection)`` holds a connection back until ``PARK_S`` passes or
    an admitted request finishes.
    """

    def __init__(self, cap: int = 0) -> None:
        self.n = 0
        self.cap = cap
        self._parked: deque[tuple[float, Parkable]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Handle | None = None
        #: The longest a parked connection has waited (s), and the latest sweep's lateness
        #: (s past its ``SWEEP_S`` timer: how long the loop's turns are), since start.
        self.longest_wait_s = 0.0
        self.longest_late_s = 0.0
        self._due = 0.0
        self._warned = 0.0
        self._warned_late = 0.0
        self._late_window = 0.0  # the latest sweep since the last lateness warning

    @property
    def full(self) -> bool:
        """Whether a new inference request would be refused now."""
        return bool(self.cap) and self.n >= self.cap

    @property
    def parked(self) -> int:
        """How many connections wait to be read (closed ones included until swept)."""
        return len(self._parked)

    def oldest_wait_s(self) -> float:
        """How long the connection parked longest has waited (0: none parked)."""
        if not self._parked or self._loop is None:
            return 0.0
        return self._loop.time() - self._parked[0][0]

    def counted(self, app: Any, shed: Callable[[], None]) -> Any:
        """``app`` for one admitted request: the count drops when it returns (or fails).

        An answer of 429 or 503 (a full queue, an unready model) calls ``shed`` as it
        starts, so the caller can park the connection as for a refusal, and reads no
        parked connection when it ends: it made no room where the crowd waits.
        """

        async def run(scope: Any, receive: Any, send: Any) -> None:
            served = True

            async def watched(message: Any) -> None:
                nonlocal served
                if message["type"] == "http.response.start" and message["status"] in SHED:
                    served = False
                    shed()
                await send(message)

            try:
                await app(scope, receive, watched)
            finally:
                self.finished(served)

        return run

    def finished(self, served: bool) -> None:
        """An admitted request has ended: the count drops; if it was served (not answered
        429 or 503), the connection parked longest is read again."""
        self.n -= 1
        if served:
            self._resume(1)

    def park(self, connection: Parkable, loop: asyncio.AbstractEventLoop) -> None:
        """Hold ``connection`` back (its reading is paused already by the caller)."""
        self._parked.append((loop.time(), connection))
        self._loop = loop
        if self._sweeper is None:
            self._due = loop.time() + SWEEP_S
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)

    def _resume(self, count: int) -> None:
        """Read again the ``count`` connections parked longest."""
        while count > 0 and self._parked:
            if self._parked.popleft()[1].unpark():
                count -= 1

    def _sweep(self) -> None:
        """Every ``SWEEP_S``: read again as many as the cap has room for, plus ``MARGIN``
        of those that waited ``PARK_S`` (refused again at once if the cap is still full).

        The rest wait their turn: each request served reads the one parked longest, so
        the oldest are read first and none waits for ever. The budget is spent
        ``SLICE`` connections a loop turn (``_read_some``), not all in one.
        """
        self._sweeper = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        self._watch(now)
        self._read_some(max(self.cap - self.n, 0), MARGIN, now - PARK_S)

    def _read_some(self, room: int, margin: int, oldest: float) -> None:
        """Read again up to ``SLICE`` parked connections, then go on next turn or sweep."""
        loop = self._loop
        if loop is None:
            return
        self._sweeper = None
        seen = 0
        while self._parked and seen < SLICE:
            if room > 0:
                room -= self._parked.popleft()[1].unpark()
            elif margin > 0 and self._parked[0][0] <= oldest:
                margin -= self._parked.popleft()[1].unpark()
            else:
                break
            seen += 1
        if not self._parked:
            return
        if seen == SLICE:  # more to read: after this turn's other work
            self._sweeper = loop.call_soon(self._read_some, room, margin, oldest)
        else:
            self._due = loop.time() + SWEEP_S
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)

    def _watch(self, now: float) -> None:
        """Record the oldest parked connection's wait and the loop's lateness; log a stall."""
        late = now - self._due
        waited = now - self._parked[0][0] if self._parked else 0.0
        self.longest_late_s = max(self.longest_late_s, late)
        self._late_window = max(self._late_window, late)
        self.longest_wait_s = max(self.longest_wait_s, waited)
        if waited > STALL_S and now - self._warned > 1.0:
            self._warned = now
            log.warning(
                "a parked connection has waited %.1f s to be read (%d parked, in flight %d "
                "of %d, this sweep %.2f s late)",
                waited, len(self._parked), self.n, self.cap, late,
            )  # fmt: skip
        elif self._late_window > LATE_S and now - self._warned_late > 1.0:
            self._warned_late = now
            log.warning(
                "the parked connections' sweep ran %.2f s late: the event loop's turns are "
                "long (%d parked, oldest waited %.2f s, in flight %d of %d)",
                self._late_window, len(self._parked), waited, self.n, self.cap,
            )  # fmt: skip
            self._late_window = 0.0


def busy_answer(path: str, *, head_only: bool, close: bool) -> bytes:
    """The whole 503 + Retry-After answer to an inference request past the in-flight cap."""
    request_id = uuid.uuid4().hex
    error: object
    if path.startswith(("/api/", "/v1/")):
        error = {"code": error_code(503), "message": _MESSAGE, "request_id": request_id}
    else:
        error = _MESSAGE
    return raw_error_answer(
        b"503 Service Unavailable", error, request_id,
        close=close, head_only=head_only, retry_after=True,
    )  # fmt: skip


def raw_error_answer(
    status: bytes,
    error: object,
    request_id: str,
    *,
    close: bool,
    head_only: bool = False,
    retry_after: bool = False,
) -> bytes:
    """A whole HTTP/1.1 JSON error answer (``{"error": error}``), written by the protocol
    without the app: the edge's security headers, the request id, Retry-After when asked."""
    body = orjson.dumps({"error": error})
    lines = [
        b"HTTP/1.1 " + status,
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        *([b"retry-after: 1"] if retry_after else []),
        b"x-request-id: " + request_id.encode(),
        b"x-content-type-options: nosniff",
        *(name + b": " + value for name, value in SECURITY_HEADERS),
    ]
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)
