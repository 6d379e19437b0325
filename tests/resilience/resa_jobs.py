"""Helpers for the fault tests' script jobs (database outage, full disk, large writes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SCRIPTS = Path(__file__).parent / "scripts"
TERMINAL = ("succeeded", "failed", "cancelled")


def submit_script(
    api: httpx.Client, script: str, params: dict[str, Any], source: bytes | None = None
) -> dict[str, Any]:
    """Submit ``scripts/<script>``'s ``main`` as a script job (``source`` replaces its text)."""
    body = {"kind": "script", "entry": f"{script}:main", "params": params}
    response = api.post(
        "/api/v1/jobs/script",
        files={"source": (script, source or (SCRIPTS / script).read_bytes(), "text/x-python")},
        data={"spec": json.dumps(body)},
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_job(
    api: httpx.Client,
    job_id: int,
    until: Callable[[dict[str, Any]], bool] = lambda j: j["state"] in TERMINAL,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the job until ``until`` holds; fail with its last state after ``timeout``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/v1/jobs/{job_id}")
        if response.status_code == 200:
            job = response.json()
            if until(job):
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {job}")
