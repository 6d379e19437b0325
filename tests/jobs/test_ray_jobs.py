"""The same training and evaluation jobs on the Ray executor (a real local Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.config import Settings
from conftest import LiveServer, sqlite_url, start_server
from jobs.conftest import job_settings, upload_iris, wait_for
from jobs.test_local_jobs import _follow

ray = pytest.importorskip("ray")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the Ray path does not depend on the metadata store (one Ray start)."""
    return sqlite_url(tmp_path)


@pytest.fixture
def ray_server(settings: Settings) -> Iterator[LiveServer]:
    """A server whose jobs run as tasks on a local Ray instance with two CPUs."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield from start_server(job_settings(settings, job_executor="ray", job_slots=None))
    finally:
        ray.shutdown()


def test_train_and_evaluate_on_ray(ray_server: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(
        base_url=ray_server.url,
        headers={"Authorization": f"Bearer {ray_server.admin_token}"},
        timeout=60,
    ) as api:
        upload_iris(api, tmp_path)
        job = api.post(
            "/api/v1/jobs",
            json={
                "kind": "train",
                "entry": "sklearn.sgd_classifier",
                "dataset": "iris",
                "params": {"epochs": 6, "learning_rate": 0.05, "model_name": "iris-ray"},
            },
        ).json()
        lines, final = _follow(api, job["id"])
        assert final["state"] == "succeeded", final
        assert any("epoch 6/6" in line for line in lines), lines
        steps = [
            m["step"]
            for m in api.get(
                f"/api/v1/jobs/{job['id']}/metrics", params={"name": "accuracy"}
            ).json()
        ]
        assert steps == list(range(1, 7))
        version = api.get("/api/v1/models/iris-ray/versions/1").json()
        assert version["lineage"]["job_id"] == str(job["id"])
        assert version["lineage"]["dataset"] == "iris"

        evaluation = api.post(
            "/api/v1/jobs",
            json={
                "kind": "evaluate",
                "entry": "evaluate",
                "dataset": "iris",
                "params": {"model": "iris-ray"},
            },
        ).json()
        assert wait_for(api, evaluation["id"])["state"] == "succeeded"
        [report] = api.get("/api/v1/models/iris-ray/versions/1/evaluations").json()
        assert report["job_id"] == evaluation["id"] and report["metrics"]["accuracy"] >= 0.8
        metrics = api.get("/api/v1/models/iris-ray/versions/1").json()["metrics"]
        assert metrics["f1"] == report["metrics"]["f1"]
