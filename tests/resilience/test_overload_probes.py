"""The probe port answers /v2/health/live and /ready while the serving loop cannot."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, serve_app

from aimass.api.probes import ProbeListener
from aimass.api.server import check_free, prepare
from aimass.config import Settings
from aimass.platform import Platform

STALL_S = 5.0


@pytest.fixture
def probed(settings: Settings) -> Iterator[tuple[str, str, Any]]:
    """A server with a probe port (live says 503 after the loop stalls STALL_S)."""
    from aimass.api.app import create_app

    settings = settings.model_copy(update={"probe_port": free_port(), "probe_stall_s": STALL_S})
    prepare(settings)
    app = create_app(Platform.from_settings(settings))
    with serve_app(settings, app) as url:
        yield url, f"http://127.0.0.1:{settings.probe_port}", app.control.state.probes


@pytest.mark.backend("sqlite")
def test_the_probe_port_answers_while_the_serving_loop_is_blocked(
    probed: tuple[str, str, Any],
) -> None:
    main, probes, listener = probed
    for base in (main, probes):  # the same answers on both ports while all is well
        assert httpx.get(f"{base}/v2/health/live", timeout=10).status_code == 200
        assert httpx.get(f"{base}/v2/health/ready", timeout=10).status_code == 200
    wrong = httpx.get(f"{probes}/v2/models", timeout=10)
    assert wrong.status_code == 404 and "/v2/health/live" in wrong.json()["error"]
    assert httpx.post(f"{probes}/v2/health/live", timeout=10).status_code == 405

    release = threading.Event()
    blocked = threading.Event()

    def block() -> None:  # what a model call that never yields does to the serving loop
        blocked.set()
        release.wait(60)

    listener.serving.call_soon_threadsafe(block)
    try:
        assert blocked.wait(10)
        live = httpx.get(f"{probes}/v2/health/live", timeout=5)
        ready = httpx.get(f"{probes}/v2/health/ready", timeout=5)
        assert (live.status_code, ready.status_code) == (200, 200)
        with pytest.raises(httpx.TimeoutException):  # the main port cannot answer meanwhile
            httpx.get(f"{main}/v2/health/live", timeout=1)
        # Blocked past the stall limit: live says so (an orchestrator restarts a wedged
        # server), while ready still reads the readiness state.
        deadline = time.monotonic() + STALL_S + 20
        while (live := httpx.get(f"{probes}/v2/health/live", timeout=5)).status_code == 200:
            assert time.monotonic() < deadline, "live never said the loop stalled"
            time.sleep(0.2)
        assert live.status_code == 503
        assert "serving loop has not turned" in live.json()["error"]
        assert live.headers["x-content-type-options"] == "nosniff"
    finally:
        release.set()
    deadline = time.monotonic() + 20
    while httpx.get(f"{probes}/v2/health/live", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "live did not recover with the loop"
        time.sleep(0.2)
    assert httpx.get(f"{main}/v2/health/live", timeout=10).status_code == 200


def test_ready_on_the_probe_port_reads_the_readiness_state() -> None:
    state = {"ready": False}
    listener = ProbeListener("127.0.0.1", 0, lambda: state["ready"])
    head = b"GET /v2/health/ready HTTP/1.1\r\nHost: pod\r\n\r\n"

    async def main() -> list[bytes]:
        await listener.start()
        try:
            answers = []
            for ready in (False, True):
                state["ready"] = ready
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                writer.write(head)
                answers.append(await reader.read())
                writer.close()
            return answers
        finally:
            await listener.stop()

    loading, ready = asyncio.run(main())
    assert loading.startswith(b"HTTP/1.1 503") and b"still loading" in loading
    assert ready.startswith(b"HTTP/1.1 200")
    assert listener.answer(b"junk\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_a_taken_probe_port_is_one_line_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit, match="choose another --probe-port"):
            check_free("127.0.0.1", taken.getsockname()[1])
