"""Servers that run jobs, and helpers to submit and watch them over HTTP."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimass.config import Settings
from conftest import LiveServer, start_server

SCRIPTS = Path(__file__).parent / "scripts"
TERMINAL = ("succeeded", "failed", "cancelled")


def job_settings(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with the scheduler on: two CPU slots and a 30 s lease unless changed."""
    return settings.model_copy(update={"jobs": True, "job_slots": 2.0, **changes})


@pytest.fixture
def jobs_server(settings: Settings) -> Iterator[LiveServer]:
    """A live server whose scheduler runs jobs on the local executor (two slots)."""
    yield from start_server(job_settings(settings))


@pytest.fixture
def api(jobs_server: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client with the admin token for ``jobs_server``."""
    with httpx.Client(
        base_url=jobs_server.url,
        headers={"Authorization": f"Bearer {jobs_server.admin_token}"},
        timeout=60,
    ) as c:
        yield c


def submit_script(
    api: httpx.Client, script: str, entry: str = "main", **spec: Any
) -> dict[str, Any]:
    """Submit ``tests/jobs/scripts/<script>`` as a script job; the created job."""
    body = {"kind": "script", "entry": f"{script}:{entry}", **spec}
    path = SCRIPTS / script
    response = api.post(
        "/api/v1/jobs/script",
        files={"source": (path.name, path.read_bytes(), "text/x-python")},
        data={"spec": json.dumps(body)},
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for(
    api: httpx.Client,
    job_id: int,
    until: Callable[[dict[str, Any]], bool] = lambda j: j["state"] in TERMINAL,
    timeout: float = 60.0,
    poll: float = 0.05,
) -> dict[str, Any]:
    """Poll the job until ``until`` holds; fail with its last state after ``timeout``.

    An answer other than 200 (a 503 while the database is away) is asked again.
    """
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/api/v1/jobs/{job_id}")
        if response.status_code == 200:
            job = response.json()
            if until(job):
                return job
        time.sleep(poll)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {job}")


def upload_iris(api: httpx.Client, tmp_path: Path, name: str = "iris") -> None:
    """Upload sklearn's bundled iris data set as a CSV dataset."""
    from sklearn.datasets import load_iris

    path = tmp_path / f"{name}.csv"
    load_iris(as_frame=True).frame.to_csv(path, index=False)
    with path.open("rb") as fh:
        response = api.post(f"/api/v1/datasets/{name}/versions", files={"file": (path.name, fh)})
    assert response.status_code == 201, response.text


def host_pid(job_pid: int) -> int:
    """The pid this machine knows a job's process by (jobs report their sandbox's own pids).

    Never signal a pid a job reported without this: in the sandbox's pid namespace
    it names another process out here.
    """
    from aimass.sandbox import host_pid as translate

    deadline = time.monotonic() + 5
    while (pid := translate(job_pid, os.getpid())) is None:
        assert time.monotonic() < deadline, f"no process of this test has sandbox pid {job_pid}"
        time.sleep(0.05)
    return pid


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
