"""The SDK's deployment calls and predict against a real server."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.conftest import LiveServer, ModelFiles

from aimass import Client
from aimass.client import DeploymentFailed, DeploymentTimeout, PredictResult
from aimass.errors import AimassError, InvalidInput, NotFound


@pytest.fixture
def cancer(client: Client, model_files: ModelFiles) -> Client:
    """Model ``cancer``: version 1 is ONNX, version 2 the same pipeline as skops."""
    client.models.upload("cancer", model_files.onnx)
    client.models.upload("cancer", model_files.skops)
    return client


def _sklearn_predictions(model_files: ModelFiles, rows: int) -> list[int]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(model_files.x)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(x, np.asarray(model_files.y))
    return [int(p) for p in model.predict(x[:rows])]


def test_deploy_wait_and_predict_match_sklearn(cancer: Client, model_files: ModelFiles) -> None:
    created = cancer.deployments.create("cancer", version=1, max_batch_size=16)
    assert created.name == "cancer"
    assert created.routes[0].version == 1
    assert created.batching.max_batch_size == 16
    ready = cancer.deployments.wait_ready("cancer", timeout=30)
    assert ready.state == "ready"
    assert all(1 in r.versions for r in ready.replica_status)

    x = np.asarray(model_files.x)[:40]
    result = cancer.predict("cancer", x)
    assert isinstance(result, PredictResult)
    assert (result.deployment, result.model, result.version) == ("cancer", "cancer", 1)
    assert len(result.predictions) == 40
    assert result.predictions == _sklearn_predictions(model_files, 40)
    assert result.probabilities is not None
    assert len(result.probabilities) == 40
    assert [m.name for m in cancer.deployments.list()] == ["cancer"]


def test_records_and_dataframes_predict_like_rows(cancer: Client) -> None:
    import pandas as pd

    cancer.deployments.create("cancer", name="records", version=1)
    cancer.deployments.wait_ready("records")
    rows = np.random.default_rng(0).normal(10, 5, size=(5, 30)).round(3)
    by_rows = cancer.predict("records", rows.tolist()).predictions
    columns = [f"f{i}" for i in range(30)]
    records = [dict(zip(columns, row, strict=True)) for row in rows.tolist()]
    assert cancer.predict("records", records).predictions == by_rows
    frame = pd.DataFrame(rows, columns=columns)
    assert cancer.predict("records", frame).predictions == by_rows


def test_update_switches_version_and_delete_stops_serving(
    cancer: Client, model_files: ModelFiles
) -> None:
    cancer.deployments.create("cancer", version=1)
    cancer.deployments.wait_ready("cancer")
    x = np.asarray(model_files.x)[:3]
    assert cancer.predict("cancer", x).version == 1

    updated = cancer.deployments.update("cancer", version=2, max_delay_ms=5.0)
    assert updated.revision == 2
    assert updated.routes[0].version == 2
    assert updated.batching.max_delay_ms == 5.0
    assert updated.batching.max_batch_size == 64  # kept, though the API replaces it whole
    cancer.deployments.wait_ready("cancer")
    answer = cancer.predict("cancer", x)
    assert answer.version == 2
    assert answer.predictions == _sklearn_predictions(model_files, 3)

    cancer.deployments.delete("cancer")
    with pytest.raises(NotFound):
        cancer.deployments.get("cancer")
    with pytest.raises(NotFound):
        cancer.predict("cancer", x)


def test_alias_and_traffic_routes(cancer: Client) -> None:
    cancer.models.set_alias("cancer", "canary", 2)
    by_alias = cancer.deployments.create("cancer", name="follows", alias="canary")
    assert by_alias.routes[0].alias == "canary"
    split = cancer.deployments.create(
        "cancer",
        name="split",
        traffic=[{"version": 1, "weight": 90}, {"alias": "canary", "weight": 10}],
    )
    assert [(r.version, r.alias, r.weight) for r in split.routes] == [
        (1, None, 90.0),
        (None, "canary", 10.0),
    ]
    ready = cancer.deployments.wait_ready("split")
    assert all({1, 2} <= set(r.versions) for r in ready.replica_status)
    assert cancer.deployments.wait_ready("follows").state == "ready"


def test_bad_requests_fail_before_or_at_the_server(cancer: Client) -> None:
    with pytest.raises(NotFound, match="version 9"):
        cancer.deployments.create("cancer", version=9)
    with pytest.raises(InvalidInput, match="exactly one"):
        cancer.deployments.create("cancer", version=1, alias="production")
    with pytest.raises(InvalidInput):
        cancer.deployments.create("cancer", traffic=[{"version": 1, "weight": -1}])
    with pytest.raises(NotFound):
        cancer.deployments.wait_ready("ghost")
    with pytest.raises(InvalidInput, match="rows"):
        cancer.predict("cancer", "not rows")  # type: ignore[arg-type]


def test_wait_ready_reports_a_load_failure(cancer: Client, live_server: LiveServer) -> None:
    # Corrupt version 2's stored bytes, so replicas fail its checksum when loading it.
    sha = cancer.models.get_version("cancer", 2).sha256
    stored = Path(live_server.settings.resolved_artifacts).rglob("*")
    target = next(p for p in stored if p.is_file() and _sha256(p) == sha)
    target.write_bytes(b"corrupt" + target.read_bytes()[7:])
    cancer.deployments.create("cancer", name="bad", version=2)
    with pytest.raises(DeploymentFailed) as info:
        cancer.deployments.wait_ready("bad", timeout=30)
    assert isinstance(info.value, AimassError)
    assert "'bad'" in info.value.message
    assert "checksum" in info.value.message
    assert "\n" not in info.value.message


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wait_ready_times_out_while_loading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        now = "2026-01-01T00:00:00Z"
        return httpx.Response(
            200,
            json={
                "id": 1,
                "project": "default",
                "name": "slow",
                "model": "slow",
                "routes": [{"version": 1, "weight": 100}],
                "replicas": 1,
                "batching": {"max_batch_size": 64, "max_delay_ms": 2},
                "resources": {"cpu": 1, "gpu": 0, "memory_mb": None},
                "revision": 1,
                "state": "loading",
                "replica_status": [],
                "created_at": now,
                "updated_at": now,
            },
        )

    transport = httpx.MockTransport(handler)
    with (
        Client(url="http://aimass.test", token="t", transport=transport) as client,
        pytest.raises(DeploymentTimeout, match="still loading") as info,
    ):
        client.deployments.wait_ready("slow", timeout=0.05, interval=0.01)
    assert isinstance(info.value, TimeoutError)


def test_a_deployment_needing_a_gpu_this_node_lacks_is_pending_with_the_reason(
    cancer: Client, live_server: LiveServer
) -> None:
    if Path("/proc/driver/nvidia/gpus").exists():
        pytest.skip("this node has a GPU")
    cancer.deployments.create("cancer", name="on-gpu", version=1, gpu=1)
    deadline = time.monotonic() + 30
    while not (found := cancer.deployments.get("on-gpu")).replica_status:
        assert time.monotonic() < deadline, found
        time.sleep(0.1)

    assert found.state == "pending"
    assert [r.reason for r in found.replica_status] == ["needs 1 GPU; this node has none"]
    answer = httpx.post(
        f"{live_server.url}/api/v1/deployments/on-gpu/predict",
        json={"inputs": [[0.0] * 30]},
        headers={"Authorization": f"Bearer {live_server.admin_token}"},
    )
    assert answer.status_code == 503
    assert "cannot be served here: needs 1 GPU" in answer.json()["error"]["message"]
    cancer.deployments.update("on-gpu", gpu=0)  # fits now: it loads and serves
    cancer.deployments.wait_ready("on-gpu", timeout=30)
