"""The probe listener: the health probes on a port of their own, off the serving loop.

A server's one event loop reads every client socket; under a crowd of thousands
a probe on the main port waits for that loop like every request, and an
orchestrator restarts a server exactly when it is busiest. ``ProbeListener``
answers the two probes from its own thread and event loop on
``Settings.probe_port``, so a probe costs a few GIL hand-overs, not a place in
the crowd's queue. What it answers is what the main port answers: ready is the
same readiness state (``ready()``), live is 200 while the serving loop still
turns. A serving loop that has not run a timer for ``stall_s`` (a model call
that blocks it, a deadlock) answers live with 503, so a wedged server is still
restarted, only not a merely busy one. The probes need no token, as on the main
port, and reveal nothing but up or not.

Several workers each bind the port with ``SO_REUSEPORT``: the kernel spreads
probes over the live ones. Imports nothing from the rest of aimass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable

log = logging.getLogger("aimass.server")

#: How often the serving loop marks that it turns.
BEAT_S = 0.5
#: How long a probe connection may take to send its request head.
HEAD_TIMEOUT_S = 2.0
_MAX_HEAD = 8192
_UNAVAILABLE = b"503 Service Unavailable"


def _answer(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n"
        b"x-content-type-options: nosniff\r\ncache-control: no-store\r\n"
        b"x-request-id: " + uuid.uuid4().hex.encode() + b"\r\n\r\n" + body
    )


def _error(status: bytes, message: str) -> bytes:
    return _answer(status, b'{"error":"' + message.encode() + b'"}')


def bind_probe_socket(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    """A listening socket for the probes on ``host:port`` (``OSError`` if it is taken)."""
    sock = socket.socket(family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


class ProbeListener:
    """Answers the health probes on its own port from its own thread; ``start``/``stop``.

    ``start()`` is awaited on the serving loop: it binds (raising ``OSError`` if the
    port is taken), starts the thread and the serving loop's heartbeat. Live is
    200 while that heartbeat is younger than ``stall_s``, else 503; ready is 200
    while ``ready()`` holds, else 503 (``ready`` is called from the probe thread:
    it must only read state). Other paths get 404, other methods 405, bodies say
    what is wrong as on the main port's /v2 routes.
    """

    def __init__(
        self, host: str, port: int, ready: Callable[[], bool] | None, stall_s: float = 30.0
    ) -> None:
        self.host = host
        self.port = port
        self.ready = ready
        self.stall_s = stall_s
        self._beat = time.monotonic()
        self._beater: asyncio.TimerHandle | None = None
        #: The serving loop whose turns live reports (set by ``start``).
        self.serving: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    async def start(self) -> None:
        """Bind the port, start the probe thread and the serving loop's heartbeat."""
        sock = bind_probe_socket(self.host, self.port)
        self.port = sock.getsockname()[1]  # the one chosen, when 0 was asked for
        self.serving = asyncio.get_running_loop()
        self._tick()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, started), name="aimass-probes", daemon=True
        )
        self._thread.start()
        started.wait(10)

    async def stop(self) -> None:
        """Stop answering and close the port."""
        if self._beater is not None:
            self._beater.cancel()
            self._beater = None
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            with contextlib.suppress(RuntimeError):  # its loop ended already
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    def live(self) -> tuple[bool, float]:
        """Whether the serving loop turned within ``stall_s``, and how long ago it did."""
        since = time.monotonic() - self._beat
        return since < self.stall_s, since

    def _tick(self) -> None:
        self._beat = time.monotonic()
        assert self.serving is not None
        self._beater = self.serving.call_later(BEAT_S, self._tick)

    def _run(self, sock: socket.socket, started: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            server = await asyncio.start_server(self._handle, sock=sock, backlog=256)
            started.set()
            async with server:
                await self._stopped.wait()

        try:
            asyncio.run(main())
        except Exception:
            log.exception("the probe listener on port %d stopped", self.port)
        finally:
            started.set()
            sock.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            writer.write(self.answer(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sends no request, or too much of one, gets nothing
        finally:
            writer.close()

    def answer(self, head: bytes) -> bytes:
        """The whole HTTP answer to a request ``head`` (request line and headers)."""
        line = head[: head.find(b"\r\n")] if len(head) <= _MAX_HEAD else b""
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _error(b"400 Bad Request", "send an HTTP/1.x request")
        method, target = parts[0], parts[1].split(b"?", 1)[0].rstrip(b"/")
        if target not in (b"/v2/health/live", b"/v2/health/ready"):
            return _error(
                b"404 Not Found", "no such route; this port answers /v2/health/live and /ready"
            )
        if method != b"GET":
            return _error(b"405 Method Not Allowed", "use GET")
        if target.endswith(b"/live"):
            alive, since = self.live()
            if not alive:
                return _error(
                    _UNAVAILABLE,
                    f"the serving loop has not turned for {since:.0f} s",
                )
        elif self.ready is not None and not self.ready():
            return _error(_UNAVAILABLE, "this server is still loading its deployments")
        return _answer(b"200 OK", b"")
