"""A real server at 100 % sampling logs every request it answered, once, and drops none.

The short form of the soak in ``benchmarks/monitoring/logging_cost.py --rate``: an
``aimass server`` process serving an ONNX model in-process, a few thousand
requests from concurrent clients, then SIGTERM (the writer drains its queue) and
the Parquet log read back against the answers.
"""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest

import aimass
from aimass.artifacts.store import ArtifactStore
from aimass.config import Settings
from aimass.monitoring.predictions import read_log
from conftest import ModelFiles, start_server_process

pytestmark = [pytest.mark.slow, pytest.mark.backend("sqlite")]

REQUESTS = 3000
CLIENTS = 8
FEATURES = 30  # the breast-cancer model of conftest's model_files


async def _client(port: int, numbers: list[int], answered: dict[str, int]) -> None:
    """One keep-alive HTTP/1.1 connection sending its requests in turn.

    Plain asyncio streams: an async httpx pool itself slows down as connections are
    added (see benchmarks/monitoring/logging_cost.py), and the test is about the server.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in numbers:
            rows = 3 if i % 7 == 0 else 1  # some requests predict several rows
            body = json.dumps({"inputs": [[i / REQUESTS + j] * FEATURES for j in range(rows)]})
            writer.write(
                b"POST /api/v1/deployments/cancer/predict HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
                b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (port, len(body), body.encode())
            )
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
            reply = await reader.readexactly(int(headers["content-length"]))
            assert head[0].split()[1] == "200", reply
            answered[headers["x-request-id"]] = rows
    finally:
        writer.close()


async def _send(port: int) -> dict[str, int]:
    """Send REQUESTS predictions over CLIENTS connections; the rows of each request id."""
    answered: dict[str, int] = {}
    shares = [list(range(REQUESTS))[k::CLIENTS] for k in range(CLIENTS)]
    await asyncio.gather(*(_client(port, share, answered) for share in shares))
    return answered


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_every_answered_request_is_logged_once_and_none_dropped(
    settings: Settings, model_files: ModelFiles
) -> None:
    settings = settings.model_copy(
        update={"auth": False, "prediction_log_sample": 1.0, "prediction_log_flush_s": 0.2}
    )
    url = f"http://127.0.0.1:{settings.port}"
    process = start_server_process(settings)
    try:
        with aimass.Client(url=url) as client:
            client.models.upload("cancer", model_files.onnx)
            client.deployments.create("cancer", version=1)
            client.deployments.wait_ready("cancer", timeout=60)
        answered = asyncio.run(_send(settings.port))
        dropped = _metric(url, "aimass_prediction_log_dropped_total")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    frame = read_log(ArtifactStore(settings.artifacts), "default", "cancer")
    logged = frame.groupby("_request_id").size().to_dict()
    assert len(answered) == REQUESTS and dropped == 0
    assert logged == answered  # every answer, with all its rows, and nothing else
    assert frame["_row"].max() == 2 and {"X_0", "X_29", "prediction", "proba_1"} <= set(
        frame.columns
    )
