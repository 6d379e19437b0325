"""Autoscaling end to end: a client crowd raises the ongoing requests, the node's runner
processes go from 1 to 3; the crowd stops, they come back to 1. One server for the module.

The model is an ONNX MLP wide enough (4 x 2048) that a request's time goes to the model,
not to HTTP: ongoing requests at the model are what more runner processes relieve.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from benchmarks.serving.autoscale import slow_mlp
from tests.conftest import free_port, start_server_process

from aimass.config import Settings
from tests_support import deploy, oip_json, upload

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("sqlite"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="apt-get install -y bubblewrap"),
    pytest.mark.timeout(300),
]
WAIT_S = 90.0  # a runner process starts in ~1 s on a quiet machine; the load here is 10-40
CROWD = 16
SCALING = {
    "min_replicas": 1,
    "max_replicas": 3,
    "target_ongoing_requests": 2,
    "upscale_delay_s": 1.0,
    "downscale_delay_s": 3.0,
    "look_back_period_s": 2.0,
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("autoscaling")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    tmp = home
    # Two workers: one of them decides for the node, both follow (the same runner processes).
    settings = Settings(
        workers=2,
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'aimass.db'}",
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        auth=False,
        jobs=False,
        tune_gc=False,
    )
    process = start_server_process(settings, timeout_s=240)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def _until(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something true; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Crowd:
    """``CROWD`` httpx clients, each sending its next request once the last is answered."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.url = url
        self.body = body
        self.codes: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Crowd:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=CROWD)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as http:
            await asyncio.gather(*(self._client(http) for _ in range(CROWD)))

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            answer = await http.post("/v2/models/scaled/infer", json=self.body)
            self.codes[answer.status_code] += 1


def _scale(http: httpx.Client, count: int) -> bool:
    """True when both workers send to ``count`` runner processes and the node wants that many."""
    status = http.get("/api/v1/deployments/scaled").json()["replica_status"]
    return len(status) == 2 and all(
        (s.get("replicas"), s.get("desired_replicas")) == (count, count) for s in status
    )


def _runner_processes(under: Path) -> int:
    """The runner processes (the Python inside bubblewrap) serving a model file under ``under``."""
    found = 0
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            "bwrap" not in words[0]
            and "aimass.flavors._host" in words
            and "--listen" in words
            and any(str(under) in w for w in words)
        ):
            found += 1
    return found


def _metric(http: httpx.Client) -> float | None:
    text = http.get("/metrics").text
    found = re.search(r'^aimass_deployment_replicas\{[^}]*deployment="scaled"[^}]*\} (\S+)$',
                      text, re.M)  # fmt: skip
    return float(found.group(1)) if found else None


def test_load_scales_runner_processes_from_1_to_3_and_back(
    server: str, home: Path, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server, timeout=60) as http:
        upload(http, "scaled", slow_mlp(tmp_path / "mlp.onnx"))
        found = deploy(  # ready: every worker loaded it
            http,
            {
                "model": "scaled",
                "version": 1,
                "resources": {"runner": "process"},
                "autoscaling": SCALING,
            },
            timeout=WAIT_S,
        )
        assert found["autoscaling"]["max_replicas"] == 3
        _until("both workers at 1 replica", lambda: _scale(http, 1))
        assert _runner_processes(home) == 1
        assert _metric(http) == 1

        body = oip_json(np.ones((32, 30), dtype="float32"))
        with Crowd(server, body) as crowd:
            started = time.monotonic()
            _until("3 replicas under load", lambda: _scale(http, 3))
            up_s = time.monotonic() - started
            assert _metric(http) == 3
            # Replica i of each worker is the same runner process: 3 on the node, not 6.
            assert _runner_processes(home) == 3
            served = sum(crowd.codes.values())
            # The new replicas take traffic: more answers keep coming at 3.
            _until("answers at 3 replicas", lambda: sum(crowd.codes.values()) > served + 50)
        # Scale-up loads before it takes traffic: no request failed on the way.
        assert set(crowd.codes) == {200}, crowd.codes

        stopped = time.monotonic()
        _until("back to 1 replica", lambda: _scale(http, 1))
        down_s = time.monotonic() - stopped
        assert _metric(http) == 1
        # (The delays themselves are timed in test_autoscale_policy.py, on synthetic samples.)
        print(f"1 -> 3 in {up_s:.1f} s under load; 3 -> 1 in {down_s:.1f} s after it stopped")
        answer = http.post("/v2/models/scaled/infer", json=body)
        assert answer.status_code == 200, answer.text


def test_bad_autoscaling_settings_are_refused_with_the_reason(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as http:
        refused = http.post(
            "/api/v1/deployments",
            json={
                "model": "scaled",
                "name": "bad-scale",
                "version": 1,
                "resources": {"runner": "process"},
                "autoscaling": {"min_replicas": 3, "max_replicas": 2},
            },
        )
        assert refused.status_code == 422, refused.text
        assert "'max_replicas' (2) is below 'min_replicas' (3)" in refused.text
        no_runner = http.post(
            "/api/v1/deployments",
            json={"model": "scaled", "name": "bad-scale", "version": 1,
                  "autoscaling": {"max_replicas": 2}},
        )  # fmt: skip
        assert no_runner.status_code == 422, no_runner.text
        assert "resources.runner" in no_runner.text
