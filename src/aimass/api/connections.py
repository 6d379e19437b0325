"""Connections that cannot lock other clients out: a header-read deadline and a connection cap.

uvicorn times out idle keep-alive connections but not a request whose headers
never finish (slow loris), and its ``limit_concurrency`` counts idle sockets, so
a crowd of idle connections turns every real client away. This protocol gives
each request ``header_timeout_s`` to send its headers (then a 408 and the socket
is closed), and refuses a connection past ``max_connections`` with a 503 as soon
as its request line is read (or after ``OVER_CAP_WAIT_S``), so the server keeps
file descriptors for the clients that talk; the health probes alone are still
answered past the cap, or a liveness probe would restart a server exactly when
it is busiest. A body
that stops arriving for ``body_timeout_s`` (while the app waits for it) gets a
408 with the request id and the socket is closed. The timers live here, not in
the ASGI guard, so a request whose body comes in one packet arms none.

The hot request of the serving path (a small JSON ``POST /v2/models/.../infer`` on a
keep-alive HTTP/1.1 connection) is held until its body is in and then answered by
``api.fastpath`` with the answer written straight to the socket (no ASGI cycle): where
it can, queued in its model's batcher right there and answered from the batch's
callback (no task at all), else in a task through the inference app; anything that
path does not take runs the normal ASGI cycle, body already read.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from aimass.api.admission import SHED, AdmittedCount, busy_answer, raw_error_answer
from aimass.api.edge import HEADERS_KEY, REQUEST_ID_KEY, Message, RequestHeaders, Scope
from aimass.api.fastpath import FastInfer, fast_candidate

log = logging.getLogger("aimass.api")
# File descriptors kept for everything but client sockets: the database pool,
# logs, model files, job pipes.
FD_RESERVE = 256
#: How long a connection past the cap may take to send its request line.
OVER_CAP_WAIT_S = 1.0
#: The paths answered past the connection cap: the probes, which cost nothing to answer.
_PROBES = (b"/v2/health/live", b"/v2/health/ready")
#: The paths the in-flight cap applies to: the inference routes (the probes excepted).
_INFERENCE = (b"/v2/models/", b"/v1/")
_PREDICT = (b"/api/v1/deployments/", b"/predict")


def _raw_answer(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n"
        b"x-content-type-options: nosniff\r\n\r\n" + message
    )


_TOO_SLOW = _raw_answer(
    b"408 Request Timeout", b"the request headers took too long; send them at once\n"
)
_BUSY = _raw_answer(b"503 Service Unavailable", b"too many open connections; try again soon\n")


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-server limits the protocol enforces (picklable: uvicorn workers receive them)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 16_384
    #: Inference requests this process runs at once; past it a new one is answered 503 with
    #: Retry-After before the app runs (0: no cap).
    max_inflight: int = 0


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus the connection limits, carried to every worker process.

    Once the app is loaded (in the worker), its ``count_refusal(reason)``, if it has
    one, is told of every request this layer refuses, so the refusals are metrics.
    """

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.limits = limits
        self.count_refusal: Callable[[str], None] = _uncounted
        #: The app's fast path for the hot /v2 infer request (``api.fastpath``), if it has one.
        self.fast_path: FastInfer | None = None
        #: The in-flight cap's count and parked connections, shared by this server's connections.
        self.admitted = AdmittedCount(limits.max_inflight)

    def load(self) -> None:
        """Load the app as uvicorn does, then find its refusal counter and fast path under
        the wrappers (uvicorn's own middleware wraps it in at most a few layers)."""
        super().load()
        app = self.loaded_app
        for _ in range(8):
            count = getattr(app, "count_refusal", None)
            if count is not None:
                self.count_refusal = count
                fast = getattr(app, "fast_path", None)
                self.fast_path = fast if isinstance(fast, FastInfer) else None
                return
            app = getattr(app, "app", None)
            if app is None:
                return


def _uncounted(reason: str) -> None:
    """Count nothing (an app without a refusal counter)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a cap on open connections."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = getattr(config, "limits", None) or ConnectionLimits()
        self._header_timeout_s = limits.header_timeout_s
        self._body_timeout_s = limits.body_timeout_s
        self._max_connections = limits.max_connections
        self._max_inflight = limits.max_inflight
        self._count_refusal: Callable[[str], None] = getattr(config, "count_refusal", _uncounted)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_pending = False
        self._body_seen = 0.0
        self._over_cap = False
        self._refused = False
        #: Inference requests this worker admitted and has not finished (refusals are not
        #: counted: uvicorn's task set holds them until the loop's next turn, and under a
        #: crowd each turn refuses thousands, which used to keep the count past the cap
        #: for good: no request admitted at all).
        self._admitted: AdmittedCount = getattr(config, "admitted", None) or AdmittedCount(
            self._max_inflight
        )
        #: The request being read was refused at the in-flight cap: its body is skipped.
        self._discarding = False
        #: The last request started on this connection was an inference request.
        self._inference = False
        #: Reading is paused until the in-flight cap lets this connection in again.
        self._parked = False
        #: The admitted request now answering was refused by its deployment (429/503).
        self._was_shed = False
        self._fast: FastInfer | None = getattr(config, "fast_path", None)
        #: The request whose headers are being handled goes to the fast path once read.
        self._fast_wanted = False
        self._fast_counted = False
        #: The headers of the request ``_fast_wanted`` holds, read once by the fast path.
        self._fast_seen: RequestHeaders | None = None
        #: The fast-path request waiting for its body: its cycle, its normal app (not yet
        #: wrapped by the in-flight count), and whether it holds a place in that count.
        self._fast_held: tuple[RequestResponseCycle, Any, bool] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it past the cap, else start the header deadline."""
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            # Refused once its request line shows it is not a probe (within a second), so
            # its descriptor comes back soon and the ones in use keep working; idle ones
            # free their places when their own deadline passes.
            self._over_cap = True
            self._count_refusal("connections")
            self._header_timer = self.loop.call_later(OVER_CAP_WAIT_S, self._refuse)
            return
        self._arm()

    def on_message_begin(self) -> None:
        """A request starts: its headers must be complete within the deadline."""
        super().on_message_begin()
        self._in_headers = True
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        """Headers in: their deadline is met; the body's starts (past the cap: probes only)."""
        self._in_headers = False
        self._disarm()
        if self._over_cap and self.url.split(b"?", 1)[0] not in _PROBES:
            self._refuse()
            return
        pipelined = self.cycle is not None and not self.cycle.response_complete
        path = self.url.split(b"?", 1)[0]
        self._inference = bool(self._max_inflight) and _is_inference(path)
        self._fast_wanted = not pipelined and self._takes_fast(path)
        try:
            if self._inference and not pipelined:  # (pipelined: starts once the one before
                if self._admitted.full:  # it is answered, so it is not counted)
                    self._refuse_inflight()
                else:
                    self._admitted.n += 1  # admitted now, so this turn's next request sees it
                    self._fast_counted = True
                    if self._fast_wanted:  # held; its app is wrapped only if it needs a task
                        super().on_headers_complete()
                    else:
                        self._run_with(self._admitted.counted(self.app, self._shed))
            else:
                self._fast_counted = False
                super().on_headers_complete()
        finally:
            self._fast_wanted = False
        self._body_pending = True
        self._body_seen = self.loop.time()

    def _takes_fast(self, path: bytes) -> bool:
        """Whether this request goes to the fast path: HTTP/1.1 keep-alive, no upgrade, no
        100-continue, and what ``api.fastpath`` takes (its headers included); never with
        uvicorn's ``limit_concurrency`` on (its refusal is the cycle's)."""
        fast = self._fast
        parser = self.parser
        self._fast_seen = (
            fast.fits(self.headers)
            if fast is not None
            and self.limit_concurrency is None
            and fast_candidate(parser.get_method(), path)
            and not self.expect_100_continue
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not parser.should_upgrade()
            else None
        )
        return self._fast_seen is not None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Start the ASGI cycle, or hold a fast-path request until its body is in."""
        if self._fast_wanted:
            self._fast_wanted = False
            cycle.scope[HEADERS_KEY] = self._fast_seen  # type: ignore[literal-required]
            self._fast_held = (cycle, app, self._fast_counted)
            return
        super()._start_asgi_task(cycle, app)

    def _release_held(self) -> tuple[RequestResponseCycle, Any, bool] | None:
        held, self._fast_held = self._fast_held, None
        return held

    def _answer_now(self, cycle: RequestResponseCycle, app: Any, counted: bool) -> bool:
        """Queue a held request with no task (``FastInfer.run_now``); False if it needs its
        task (then nothing is sent and its in-flight place is still held)."""
        fast = self._fast
        assert fast is not None

        def respond(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            served = True
            if counted and status in SHED:
                served = False
                self._shed()
            if self.flow.write_paused and not cycle.disconnected:  # the client reads slowly
                task = self.loop.create_task(self._write_later(cycle, status, headers, body))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
            else:
                self._write_whole_now(cycle, status, headers, body)
                if not cycle.response_complete and not cycle.disconnected:
                    self.transport.close()
            if counted:
                self._admitted.finished(served)

        try:
            return fast.run_now(cast(Scope, cycle.scope), bytes(cycle.body), respond)
        except Exception:
            log.exception("the direct answer of a request failed; it is answered the usual way")
            return False

    async def _write_later(
        self, cycle: RequestResponseCycle, status: int, headers: Any, body: bytes
    ) -> None:
        await self._write_whole(cycle, {"status": status, "headers": headers}, body)

    async def _serve_fast(self, cycle: RequestResponseCycle, app: Any, counted: bool) -> None:
        """Answer a held request on the fast path, or run its normal cycle if it is not taken."""
        fast = self._fast
        assert fast is not None
        served = True
        start: Message | None = None

        async def send(message: Message) -> None:
            nonlocal start, served
            if message["type"] == "http.response.start":
                start = message
                if counted and message["status"] in SHED:
                    served = False
                    self._shed()
                return
            if start is None or message.get("more_body", False) or cycle.response_complete:
                raise RuntimeError("the fast path answers with one whole body")
            await self._write_whole(cycle, start, message.get("body", b""))

        try:
            taken = await fast.run(cast(Scope, cycle.scope), bytes(cycle.body), send)
        except BaseException:
            if counted:
                self._admitted.finished(False)
            raise
        if not taken:  # the normal way (counted: the wrapper counts it out)
            await cycle.run_asgi(self._counted_app(app, counted))
            return
        if counted:
            self._admitted.finished(served)
        if not cycle.response_complete and not cycle.disconnected:
            self.transport.close()  # as uvicorn does for an app that left its answer unfinished

    async def _write_whole(self, cycle: RequestResponseCycle, start: Message, body: bytes) -> None:
        """Write a whole answer as uvicorn's cycle would, once the socket takes writes."""
        if self.flow.write_paused and not cycle.disconnected:
            await self.flow.drain()
        self._write_whole_now(cycle, start["status"], start.get("headers", ()), body)

    def _write_whole_now(
        self, cycle: RequestResponseCycle, status: int, headers: Any, body: bytes
    ) -> None:
        """Write a whole answer as uvicorn's cycle would (its default headers first, its
        keep-alive rules), in one write, and finish the cycle."""
        if cycle.disconnected:
            return
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        if cycle.access_log:  # the line uvicorn's cycle logs
            scope = cycle.scope
            cycle.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope), scope["method"], get_path_with_query_string(scope),
                scope["http_version"], status,
            )  # fmt: skip
        keep_alive = cycle.keep_alive
        closing = False
        content = [STATUS_LINE[status]]
        for name, value in (*cycle.default_headers, *headers):
            name = name.lower()
            if name == b"connection" and b"close" in [
                token.lower().strip() for token in value.split(b",")
            ]:
                keep_alive = False
                closing = True
            content += (name, b": ", value, b"\r\n")
        if not keep_alive and not closing:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        cycle.keep_alive = keep_alive
        self.transport.write(b"".join(content))
        cycle.response_complete = True
        cycle.message_event.set()
        if not keep_alive:
            self.transport.close()
        cycle.on_response()

    def _refuse_inflight(self) -> None:
        """Past the in-flight cap: 503 + Retry-After written at once, the body skipped.

        No task, no app, no edge: a refusal costs the loop one write, so what is
        admitted keeps its latency. The connection is parked once the request is in.
        """
        self._count_refusal("inflight")
        close = self.expect_100_continue or not self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0].decode("ascii", "replace")
        head_only = self.parser.get_method() == b"HEAD"
        self.transport.write(busy_answer(path, head_only=head_only, close=close))
        if close:  # (a body that waits for 100 Continue never comes: the parser would
            self._refused = True  # read the next request as this one's body)
            self.transport.close()
        else:
            self._discarding = True

    def _run_with(self, app: Any) -> None:
        """Start this request's cycle with ``app`` instead of the server's."""
        server_app, self.app = self.app, app
        try:
            super().on_headers_complete()
        finally:
            self.app = server_app

    def on_body(self, body: bytes) -> None:
        """A piece of the body: the client is still sending."""
        if self._refused or self._discarding:
            return
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The whole request is in: no deadline until the next one begins."""
        if self._refused:
            return
        self._body_pending = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._discarding:  # refused at the in-flight cap: read no more for now
            self._discarding = False
            self._park()
            return
        super().on_message_complete()
        held = self._release_held()
        if held is not None and not self._answer_now(*held):
            if self.config.reset_contextvars:  # as uvicorn starts its cycles' tasks
                task = self.loop.create_task(self._serve_fast(*held), context=contextvars.Context())
            else:
                task = self.loop.create_task(self._serve_fast(*held))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    def on_response_complete(self) -> None:
        """Answered: an inference client is parked if refused, or while the cap is full.

        (The finished request still counts here, so a full cap parks this connection
        at the back and its release reads the one parked longest: the cap goes round.)
        """
        super().on_response_complete()
        shed, self._was_shed = self._was_shed, False
        if self._inference and (shed or self._admitted.full) and self.cycle.response_complete:
            self._park()

    def _shed(self) -> None:
        """The admitted request is answered 429 or 503: park as after a refusal."""
        self._was_shed = True

    def _park(self) -> None:
        """Stop reading until the in-flight cap lets this connection in (admission.py)."""
        if self._parked or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()  # its next request may wait in the socket
        self.flow.pause_reading()
        self._parked = True
        self._admitted.park(self, self.loop)

    def unpark(self) -> bool:
        """Read again; False if the connection is gone or reads already."""
        if not self._parked:
            return False
        self._parked = False
        if self.transport.is_closing():
            return False
        self.flow.resume_reading()
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        return True

    def data_received(self, data: bytes) -> None:
        """Parse, then watch the body if this packet did not finish it."""
        super().data_received(data)
        if self._body_pending and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self._body_timeout_s, self._body_stalled)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadlines with the connection; a held request runs its normal cycle,
        which sees the client gone (as it would have, had it started at once)."""
        self._disarm()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)
        held = self._release_held()
        if held is not None:
            super()._start_asgi_task(held[0], self._counted_app(held[1], held[2]))

    def _counted_app(self, app: Any, counted: bool) -> Any:
        """A held request's app for its task: counted out of the in-flight cap when done."""
        return self._admitted.counted(app, self._shed) if counted else app

    def _body_stalled(self) -> None:
        self._body_timer = None
        if not self._body_pending or self.transport.is_closing():
            return
        idle = self.loop.time() - self._body_seen
        if idle < self._body_timeout_s or self.flow.read_paused:
            # Still arriving, or the app has not read what came (then it is not the client).
            wait = self._body_timeout_s - idle if idle < self._body_timeout_s else idle
            self._body_timer = self.loop.call_later(wait, self._body_stalled)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            request_id = str(self.scope.get(REQUEST_ID_KEY, "-"))  # set by the ASGI guard
            if self._fast_held is not None and self._fast is not None:  # (no guard ran yet)
                request_id = self._fast.request_id(self.headers)
            self.transport.write(_body_too_slow(request_id, self._body_timeout_s))
        self.transport.close()  # the app's receive() now says the client went away

    def _refuse(self) -> None:
        """Answer 503 (too many connections) and close, without running the app."""
        self._header_timer = None
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_BUSY)
            self.transport.close()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self._header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined request behind a running one: wait for that one first
            return
        if self._in_headers:
            self.transport.write(_TOO_SLOW)
        self.transport.close()


def _is_inference(path: bytes) -> bool:
    if path.startswith(_INFERENCE):
        return True
    return path.startswith(_PREDICT[0]) and path.rstrip(b"/").endswith(_PREDICT[1])


def _body_too_slow(request_id: str, timeout: float) -> bytes:
    message = (
        f"the request body stopped arriving for {timeout:g} s; send it at once "
        "(AIMASS_BODY_TIMEOUT_S sets the limit)"
    )
    error = {"code": "timeout", "message": message, "request_id": request_id}
    return raw_error_answer(b"408 Request Timeout", error, request_id, close=True)


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # some containers forbid it; keep what we have
    return soft


def connection_limits(
    header_timeout_s: float, body_timeout_s: float, max_connections: int, max_inflight: int = 0
) -> ConnectionLimits:
    """Limits for this process: the cap is kept below the open-file limit (raised first)."""
    soft = raise_fd_limit()
    room = max(16, soft - FD_RESERVE)
    return ConnectionLimits(
        header_timeout_s, body_timeout_s, min(max_connections, room), max_inflight
    )
