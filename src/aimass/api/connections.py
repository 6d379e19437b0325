"""Connections that cannot lock other clients out: a header-read deadline and a connection cap.

uvicorn times out idle keep-alive connections but not a request whose headers
never finish (slow loris), and its ``limit_concurrency`` counts idle sockets, so
a crowd of idle connections turns every real client away. This protocol gives
each request ``header_timeout_s`` to send its headers (then a 408 and the socket
is closed), and refuses a connection past ``max_connections`` at once with a
503, so the server keeps file descriptors for the clients that talk. The body's
own deadline lives in the ASGI guard (``api.middleware``), which can answer it.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# File descriptors kept for everything but client sockets: the database pool,
# logs, model files, job pipes.
FD_RESERVE = 256


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
    max_connections: int = 2000


class ServerConfig(uvicorn.Config):
    """uvicorn's config plus the connection limits, carried to every worker process."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.limits = limits


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a cap on open connections."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = getattr(config, "limits", None) or ConnectionLimits()
        self._header_timeout_s = limits.header_timeout_s
        self._max_connections = limits.max_connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it past the cap, else start the header deadline."""
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            # Refused now, so its descriptor comes back at once and the ones in use keep
            # working; idle ones free their places when their own deadline passes.
            transport.write(_BUSY)
            transport.close()
            return
        self._arm()

    def on_message_begin(self) -> None:
        """A request starts: its headers must be complete within the deadline."""
        super().on_message_begin()
        self._in_headers = True
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        """Headers in: the deadline is met (the body has its own, in the ASGI guard)."""
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

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


def connection_limits(header_timeout_s: float, max_connections: int) -> ConnectionLimits:
    """Limits for this process: the cap is kept below the open-file limit (raised first)."""
    soft = raise_fd_limit()
    room = max(16, soft - FD_RESERVE)
    return ConnectionLimits(header_timeout_s, min(max_connections, room))
