"""Helpers of the deep zoo entries' tests: read epoch metrics, kill an attempt mid-training."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from jobs.conftest import TERMINAL, host_pid, wait_for


def epoch_metric(api: httpx.Client, job_id: int, name: str) -> list[dict[str, Any]]:
    """The values of metric ``name`` the job logged, in order."""
    response = api.get(f"/api/v1/jobs/{job_id}/metrics", params={"name": name})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def kill_mid_training(api: httpx.Client, job_id: int, after_epochs: int) -> dict[str, Any]:
    """kill -9 attempt 1 once it has checkpointed ``after_epochs`` epochs; the finished job."""
    running = wait_for(api, job_id, lambda j: "pid_1" in j["outputs"] or j["state"] in TERMINAL)
    assert "pid_1" in running["outputs"], running
    wait_for(
        api,
        job_id,
        lambda j: len(api.get(f"/api/v1/jobs/{j['id']}/checkpoints").json()) >= after_epochs,
    )
    os.kill(host_pid(running["outputs"]["pid_1"]), signal.SIGKILL)
    return wait_for(api, job_id, timeout=90)
