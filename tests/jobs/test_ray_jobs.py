"""The same training and evaluation jobs on the Ray executor (a real local Ray)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.config import Settings
from conftest import LiveServer, sqlite_url, start_server
from jobs.conftest import host_pid, job_settings, pid_alive, submit_script, upload_iris, wait_for
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


def test_a_paused_ray_attempt_past_its_lease_resumes_on_attempt_2(
    settings: Settings, tmp_path: Path
) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        changes = {"job_executor": "ray", "job_slots": None, "job_lease_s": 8.0}
        server = start_server(job_settings(settings, **changes))
        live = next(server)
        try:
            with httpx.Client(
                base_url=live.url,
                headers={"Authorization": f"Bearer {live.admin_token}"},
                timeout=60,
            ) as api:
                job = submit_script(api, "resumable.py", params={"steps": 6, "pause": 0.3})
                running = wait_for(api, job["id"], lambda j: "pid_1" in j["outputs"])
                checkpoints = f"/api/v1/jobs/{job['id']}/checkpoints"
                wait_for(api, job["id"], lambda j: len(api.get(checkpoints).json()) >= 2)
                pid = host_pid(running["outputs"]["pid_1"])
                os.kill(pid, signal.SIGSTOP)  # held past its 8 s lease
                try:
                    done = wait_for(api, job["id"])
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                assert done["state"] == "succeeded", done
                assert done["attempt"] == 2 and done["retries_used"] == 0, done
                assert done["outputs"]["start_2"] >= 2, "attempt 2 resumed from the checkpoint"
                events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
                assert any("lost its lease" in (e["reason"] or "") for e in events), events
                deadline = time.monotonic() + 20
                while pid_alive(pid):  # the stale task was cancelled, its tree ended
                    assert time.monotonic() < deadline, "the stale attempt outlived its lease"
                    time.sleep(0.05)
        finally:
            server.close()
    finally:
        ray.shutdown()
