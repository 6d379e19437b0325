"""Overload: a full queue answers 429 + Retry-After at once, counted, while the probes answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.conftest import LiveServer, ModelFiles, start_server

from aimass import Client
from aimass.config import Settings
from aimass.platform import Platform

QUEUE = 4


@pytest.fixture
def held(settings: Settings, model_files: ModelFiles) -> Iterator[tuple[LiveServer, Any]]:
    """A server whose deployment ``slow`` (queue bound 4) runs its model only when released."""
    platform = Platform.from_settings(settings)
    server = start_server(settings, platform)
    live = next(server)
    with Client(url=live.url, token=live.admin_token) as client:
        client.models.upload("slow", model_files.onnx)
        client.deployments.create("slow", version=1, max_queue=QUEUE)
        client.deployments.wait_ready("slow")
    runner = platform.repository.get("slow", "default").versions[0].runner  # type: ignore[union-attr]
    entered, release = threading.Event(), threading.Event()
    predict = runner._predict

    def slow_predict(*args: Any) -> Any:  # the model, made slow: it waits to be released
        entered.set()
        release.wait(30)
        return predict(*args)

    runner._predict = slow_predict
    try:
        yield live, (entered, release)
    finally:
        release.set()
        server.close()


@pytest.mark.backend("sqlite")
def test_a_full_queue_is_refused_fast_with_retry_after_and_counted(
    held: tuple[LiveServer, Any], model_files: ModelFiles
) -> None:
    live, (entered, release) = held
    row = np.asarray(model_files.x)[:1].tolist()
    body = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": row}]}
    headers = {"Authorization": f"Bearer {live.admin_token}"}

    async def main() -> tuple[list[httpx.Response], list[float], list[float]]:
        async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as http:

            async def infer() -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await http.post("/v2/models/slow/infer", json=body)
                return response, time.monotonic() - started

            first = asyncio.create_task(infer())  # taken into a batch that the model holds
            await asyncio.to_thread(entered.wait, 30)
            crowd = [asyncio.create_task(infer()) for _ in range(10)]
            refused: list[float] = []
            while len(refused) < 10 - QUEUE:  # the 429s come back while the model still holds
                done, _ = await asyncio.wait(crowd, timeout=10, return_when="FIRST_COMPLETED")
                assert done, "no answer while the queue was full"
                refused = [t.result()[1] for t in crowd if t.done()]
            probes = []
            for path in ("/v2/health/live", "/v2/health/ready"):
                started = time.monotonic()
                assert (await http.get(path)).status_code == 200
                probes.append(time.monotonic() - started)
            release.set()
            answers = [t[0] for t in await asyncio.gather(first, *crowd)]
            return answers, refused, probes

    answers, refused, probes = asyncio.run(main())
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * (1 + QUEUE) + [429] * (10 - QUEUE), codes
    for response in answers:
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            assert "overloaded" in response.json()["error"]
    assert max(refused) < 1.0, refused  # refused at once, not after the held batch
    assert max(probes) < 1.0, probes
    metrics = httpx.get(f"{live.url}/metrics", headers=headers).text
    line = next(
        m for m in metrics.splitlines()
        if m.startswith("aimass_inference_rejected_total{") and 'deployment="slow"' in m
    )  # fmt: skip
    assert 'reason="queue_full"' in line and line.endswith(f" {10 - QUEUE:.1f}"), line
