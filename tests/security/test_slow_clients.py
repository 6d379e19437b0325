"""Slow and idle clients cannot lock others out (idle sockets, slow loris, stalled bodies).

Before: half-sent requests stayed open forever, and 1,100 idle connections used
up the 1,024 file descriptors so that every other client was refused.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.security._edge import platform, sqlite_settings

IDLE = 1200


@pytest.fixture(autouse=True)
def enough_descriptors() -> Iterator[None]:
    """Client and server share this process: room for both ends of every socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if wanted < 2 * IDLE + 512:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(True)
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bytes:
    """What the server sent before closing ``sock`` (fails if it stays open past ``within``)."""
    sock.settimeout(within)
    data = b""
    while True:
        chunk = sock.recv(4096)  # socket.timeout fails the test: the server kept it open
        if not chunk:
            return data
        data += chunk


def test_idle_connections_cannot_lock_out_clients(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, header_timeout_s=3.0, auth=False)
    with platform(settings) as (url, _app):
        port = settings.port
        idle: list[socket.socket] = []
        try:
            for _ in range(IDLE):
                idle.append(_connect(port))
            loris = _connect(port)
            idle.append(loris)
            loris.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            answered = 0
            with httpx.Client(base_url=url, timeout=5) as client:
                while time.monotonic() - started < 2.0:
                    loris.sendall(b"X-a: b\r\n")  # one header line now and then, never the end
                    response = client.get("/api/v1/models")
                    assert response.status_code == 200
                    answered += 1
                    time.sleep(0.1)
            assert answered >= 5
            # The slow loris gets a 408 and is closed once its headers are overdue ...
            assert _closed_by_server(loris, 5.0).startswith(b"HTTP/1.1 408")
            # ... and the idle sockets are closed too, giving their descriptors back.
            for sock in idle[:50]:
                assert _closed_by_server(sock, 5.0) == b""
            with httpx.Client(base_url=url, timeout=5) as client:
                assert client.get("/api/v1/models").status_code == 200
        finally:
            for sock in idle:
                sock.close()


def test_connections_past_the_cap_are_refused_at_once(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, max_connections=20, header_timeout_s=30.0, auth=False)
    with platform(settings) as (url, _app):
        held = [_connect(settings.port) for _ in range(20)]
        try:
            extra = _connect(settings.port)
            started = time.monotonic()
            answer = _closed_by_server(extra, 5.0)
            extra.close()
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert time.monotonic() - started < 2.0
            # Past the cap the probes alone are answered: a busy server is not a dead one.
            for path in (b"/v2/health/live", b"/v2/health/ready", b"/api/v1/models"):
                probe = _connect(settings.port)
                started = time.monotonic()
                probe.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                probe.settimeout(5.0)
                reply = probe.recv(4096)
                probe.close()
                expected = b"HTTP/1.1 503" if path.startswith(b"/api") else b"HTTP/1.1 200"
                assert reply.startswith(expected), (path, reply)
                assert time.monotonic() - started < 0.5
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        with httpx.Client(base_url=url, timeout=5) as client:
            while True:  # the server notices the closed sockets at once; allow it a moment
                try:
                    if client.get("/api/v1/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_stalled_body_is_answered_408_with_a_request_id(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, body_timeout_s=1.0, auth=False)
    with platform(settings):
        sock = _connect(settings.port)
        try:
            sock.sendall(
                b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                b"X-Request-ID: stalled-body-1\r\n\r\n"
                b'{"name": '
            )
            started = time.monotonic()
            answer = _closed_by_server(sock, 5.0)
            assert time.monotonic() - started < 4.0
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"x-request-id: stalled-body-1" in answer.lower()
    assert b'"request_id":"stalled-body-1"' in answer
    assert b"AIMASS_BODY_TIMEOUT_S" in answer
