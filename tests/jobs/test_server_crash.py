"""``kill -9`` of the server with jobs queued and running: after a restart none is lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.config import Settings
from conftest import free_port, start_server_process
from jobs.conftest import TERMINAL, host_pid, pid_alive, submit_script, wait_for

pytestmark = pytest.mark.backend("postgresql")  # slow end to end: one backend (tests/conftest.py)


@pytest.fixture
def server_settings(settings: Settings) -> Iterator[Settings]:
    yield settings.model_copy(
        update={"jobs": True, "job_slots": 2.0, "port": free_port(), "tune_gc": False}
    )


def test_kill_9_of_the_server_loses_no_job(server_settings: Settings) -> None:
    first = start_server_process(server_settings)
    try:
        token = server_settings.token_file.read_text().strip()
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{server_settings.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        jobs = [
            submit_script(api, "resumable.py", params={"steps": 8, "pause": 0.4}) for _ in range(3)
        ]
        running = [wait_for(api, j["id"], lambda j: "pid_1" in j["outputs"]) for j in jobs[:2]]
        pids = [host_pid(j["outputs"]["pid_1"]) for j in running]
        for job in jobs[:2]:  # each has saved a checkpoint to resume from
            wait_for(
                api, job["id"], lambda j: api.get(f"/api/v1/jobs/{j['id']}/checkpoints").json()
            )
        assert api.get(f"/api/v1/jobs/{jobs[2]['id']}").json()["state"] != "succeeded"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids), "attempts die with their server"

    second = start_server_process(server_settings)
    try:
        done = [wait_for(api, j["id"], timeout=40) for j in jobs]
        assert [j["state"] for j in done] == ["succeeded"] * 3, done
        for job in done[:2]:
            assert job["attempt"] == 2 and job["retries_used"] == 0
            assert job["outputs"]["start_2"] >= 1, "resumed from its checkpoint"
        assert all(j["state"] in TERMINAL for j in api.get("/api/v1/jobs").json())
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
        api.close()


def test_scratch_root_is_not_left_behind(server_settings: Settings, tmp_path: Path) -> None:
    server = start_server_process(server_settings)
    try:
        token = server_settings.token_file.read_text().strip()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server_settings.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as api:
            job = submit_script(api, "resumable.py", params={"steps": 2, "pause": 0.05})
            assert wait_for(api, job["id"])["state"] == "succeeded"
        scratch = server_settings.scratch_root
        assert not scratch.exists() or list(scratch.iterdir()) == []
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
