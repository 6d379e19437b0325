"""Losing the Ray head fails no job for good: the attempt is requeued, waits, then runs.

A Ray head of the test's own (``ray start --head`` on a free port, its session folder
in a temp dir, 2 CPUs: it is also the only worker node) and an aimass server in this
process on the Ray executor. The head's processes are killed by pid (never ``ray
stop``, which would stop every Ray on the machine), then started again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.api.server import prepare
from aimass.config import Settings
from conftest import LiveServer, free_port, start_server_process
from jobs.conftest import job_settings, submit_script, wait_for

pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.backend("sqlite"), pytest.mark.timeout(420)]


class Head:
    """A Ray head on ``port`` whose processes are found by their session folder."""

    def __init__(self) -> None:
        self.port = free_port()
        # Ray's unix sockets live under it: the path stays short.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="aimass-rh-", dir="/tmp"))
        self.address = f"127.0.0.1:{self.port}"
        # Its own token: ~/.ray/auth_token is shared with every other Ray on the machine.
        self.token = self.temp_dir / "auth_token"
        self.token.write_text(secrets.token_hex(32))
        self.env = {
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token),
        }

    def start(self) -> None:
        ray = Path(sys.executable).with_name("ray")
        env = {**os.environ, **self.env}  # on loopback, with its own token
        subprocess.run(
            [str(ray), "start", "--head", f"--port={self.port}", "--num-cpus=2",
             f"--temp-dir={self.temp_dir}", "--include-dashboard=false",
             "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180,
        )  # fmt: skip

    def pids(self) -> list[int]:
        """This head's processes: those whose command line names its session folder."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if str(self.temp_dir).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def kill(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def head() -> Iterator[Head]:
    head = Head()
    try:
        head.start()
        yield head
    finally:
        head.kill()
        shutil.rmtree(head.temp_dir, ignore_errors=True)


@pytest.fixture
def server(head: Head, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """An ``aimass server`` process on the Ray executor, its driver joined to ``head``."""
    # The head is on loopback (with Ray's cluster switch on, a driver would dial the machine's
    # own address instead) and has its own token: the server's Ray driver inherits both.
    for name, value in head.env.items():
        monkeypatch.setenv(name, value)
    settings = job_settings(
        settings,
        job_executor="ray",
        job_slots=None,
        ray_address=head.address,
        ray_head_lost_s=3.0,
        job_lease_s=60.0,  # the head's loss, not a lease, must end the attempt
    )
    prepare(settings)
    process = start_server_process(settings, timeout_s=180)
    try:
        token = settings.token_file.read_text().strip()
        yield LiveServer(f"http://127.0.0.1:{settings.port}", token, settings.home, settings)
        assert process.poll() is None, "the server exited"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_losing_the_ray_head_requeues_the_attempt_and_it_runs_once_the_head_is_back(
    head: Head, server: LiveServer
) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as api:
        job = submit_script(api, "first_holds.py")
        wait_for(api, job["id"], lambda j: j["state"] == "running" and j["node"], timeout=120)

        head.kill()
        # The server stays up and answers; the attempt is not left running: it is requeued
        # (an infrastructure failure, no retry used) and waits for the head, saying so.
        waiting = wait_for(
            api, job["id"], lambda j: j["state"] == "queued" and "Ray" in (j["reason"] or ""),
            timeout=60,
        )  # fmt: skip
        assert waiting["attempt"] == 1
        assert api.get("/v2/health/ready").status_code == 200

        head.start()
        done = wait_for(api, job["id"], timeout=180)
        assert done["state"] == "succeeded", done
        assert done["attempt"] == 2
        assert done["retries_used"] == 0  # the platform's fault, not the job's
        assert done["outputs"] == {"attempt": 2}
        events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
        assert any("Ray" in (e["reason"] or "") for e in events if e["attempt"] == 1), events
