"""An attempt's heartbeat stops it once no beat was accepted for a whole lease.

The attempt's process is played by a child Python running ``_beat_forever``
against a local socket: one that never answers (a server cut off from its
database, or paused), one that answers 503, and one that refuses (409).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aimass.runtime.heartbeat import EXIT_SUPERSEDED

INTERVAL = 0.3  # the lease is three beats: 0.9 s


def _beat(url: str) -> tuple[int, float, str]:
    """Run a heartbeat against ``url`` until it ends the process: (status, seconds, stderr)."""
    code = (
        "from aimass.runtime.heartbeat import _beat_forever\n"
        f"_beat_forever({url!r}, 'tok', 'default', 1, 1, {INTERVAL})\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    return done.returncode, time.monotonic() - started, done.stderr.decode()


@pytest.fixture
def silent() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _answering(status: int) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b'{"error": {"message": "attempt 1 is no longer current"}}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_never_answers_stops_the_attempt_at_the_end_of_its_lease(
    silent: str,
) -> None:
    status, took, stderr = _beat(silent)
    assert status == EXIT_SUPERSEDED, stderr
    assert "no heartbeat accepted for 0.9 s, the lease ran out" in stderr
    # Not before the lease ran out (it counts from the process start, before the first beat).
    assert took >= 3 * INTERVAL


def test_503s_for_a_whole_lease_stop_the_attempt() -> None:
    for url in _answering(503):
        status, _, stderr = _beat(url)
        assert status == EXIT_SUPERSEDED, stderr
        assert "HTTP 503" in stderr and "the lease ran out" in stderr


def test_a_refused_beat_stops_the_attempt_at_once() -> None:
    for url in _answering(409):
        status, _, stderr = _beat(url)
        assert status == EXIT_SUPERSEDED, stderr
        assert "heartbeat refused (attempt 1 is no longer current)" in stderr
