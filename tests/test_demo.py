"""`aimass server --demo` starts with models registered, deployed and answering."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from tests.conftest import start_server

from tests_support import wait_state

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)


def test_demo_is_registered_deployed_and_answers(settings: Any) -> None:
    from aimass.api.server import prepare
    from aimass.demo import seed_demo

    settings = settings.model_copy(update={"jobs": True})
    prepare(settings)
    said = list(seed_demo(settings))
    assert any("iris-classifier" in line for line in said)
    assert list(seed_demo(settings)) == ["demo: model 'iris-classifier' already registered"]
    servers = start_server(settings)
    server = next(servers)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
        ) as http:
            names = {m["name"] for m in http.get("/api/v1/models").json()}
            assert {"iris-classifier", "breast-cancer-onnx"} <= names
            assert http.get("/api/v1/datasets/iris/versions/1").json()["num_rows"] == 150
            wait_state(http, "iris-classifier", "ready")
            answer = http.post(
                "/api/v1/deployments/iris-classifier/predict",
                json={"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == [0, 2]
            deadline = time.monotonic() + 60
            job = http.get("/api/v1/jobs/1").json()
            while job["state"] not in ("succeeded", "failed") and time.monotonic() < deadline:
                time.sleep(0.1)
                job = http.get("/api/v1/jobs/1").json()
            assert job["state"] == "succeeded", job
            trained = http.get("/api/v1/models/iris-sgd/versions/1").json()
            assert trained["lineage"]["dataset"] == "iris" and trained["metrics"]["accuracy"] > 0.8
    finally:
        servers.close()
