"""``aimass server --workers 2``: the workers serving an ONNX deployment share its weight pages."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.flavors.test_onnx_mapped import mlp

import aimass
from aimass.flavors._onnx_mapped import DATA
from conftest import start_server_process, worker_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("sqlite"),
    pytest.mark.timeout(300),  # two workers start on a busy machine
]
HIDDEN = 1024  # a 4 MB weight: prepacked, then mapped


def shared_mappings(folder: Path) -> dict[int, dict[str, int]]:
    """Per process, Rss and Shared (kB) of its mapping of a mapped-weights file under ``folder``."""
    found: dict[int, dict[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = (entry / "smaps").read_text().splitlines()
        except OSError:
            continue
        current: dict[str, int] | None = None
        for line in lines:
            words = line.split()
            if not words[0].endswith(":"):  # a mapping's header: address range ... path
                path = words[5] if len(words) == 6 else ""
                inside = path.startswith(str(folder)) and "/.mapped-" in path
                current = (
                    found.setdefault(int(entry.name), {"Rss": 0, "Shared": 0})
                    if (inside and path.endswith(f"/{DATA}"))
                    else None
                )
            elif current is not None and words[0] == "Rss:":
                current["Rss"] += int(words[1])
            elif current is not None and words[0] in ("Shared_Clean:", "Shared_Dirty:"):
                current["Shared"] += int(words[1])
    return found


def wait_until(check: Callable[[], bool], timeout: float, message: str) -> None:
    """Call ``check`` until it returns True; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def test_two_workers_map_one_copy_of_a_deployments_weights(tmp_path: Path) -> None:
    import onnxruntime as ort

    model_file = mlp(tmp_path / "mlp.onnx", hidden=HIDDEN)
    home = tmp_path / "home"
    settings = worker_settings(tmp_path)
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    expected = ort.InferenceSession(str(model_file)).run(None, {"x": x})[0]
    body = {"inputs": [{"name": "x", "shape": [4, 8], "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip
    server = start_server_process(settings, timeout_s=240)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        with aimass.Client(url=url) as client:
            client.models.upload("mlp", model_file)
            client.deployments.create("mlp", version=1)
            wait_until(
                lambda: (
                    [r.state for r in client.deployments.get("mlp").replica_status]
                    == ["ready", "ready"]
                ),
                timeout=120,
                message="the deployment is not ready on both workers",
            )

        def both_workers_use_the_mapped_weights() -> bool:
            # A new connection each time: the kernel spreads them over the two workers.
            with httpx.Client(base_url=url, timeout=60) as http:
                answer = http.post("/v2/models/mlp/infer", json=body)
            assert answer.status_code == 200, answer.text
            got = np.asarray(answer.json()["outputs"][0]["data"]).reshape(4, 3)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
            mapped = shared_mappings(home)
            # Both touched the prepacked weight (4 MB): its pages are shared, not copied.
            return len(mapped) == 2 and all(
                m["Rss"] >= HIDDEN * HIDDEN * 4 // 1024 and m["Shared"] >= m["Rss"] * 0.9
                for m in mapped.values()
            )

        wait_until(
            both_workers_use_the_mapped_weights,
            timeout=120,
            message="the two workers do not share the mapped weights",
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
