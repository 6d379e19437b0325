"""Large job writes: a script source over 1 MiB, a 50 MB checkpoint and a 50 MB artifact.

They go through their own limit, ``AIMASS_MAX_JOB_FILE_BYTES`` (4 GiB by
default), not the 1 MiB cap of JSON bodies, and a body over it is a 413 that
names that setting. The test plays the attempt itself: it starts attempt 1 of a
queued job in the database, mints its token, and writes through the runtime's
own ``JobContext`` (the path a job's code takes), so no job process is needed;
tracemalloc shows that neither side holds a body in memory (about 3 MB at peak
for two 50 MB writes, the server included: it runs in this process).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aimass.auth.service import create_job_token
from aimass.config import Settings
from aimass.jobs import service
from aimass.runtime.context import JobContext
from aimass.store.db import Database
from conftest import LiveServer, free_port, start_server
from resilience.resa_jobs import submit_script

BIG = 50 * 1000 * 1000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the default limits (jobs off: the test is the attempt)."""
    tmp = tmp_path_factory.mktemp("large-writes")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'meta.db'}",  # the start migrates it
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=False,
    )
    yield from start_server(settings)


def _sha256(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _declared(live: LiveServer, method: str, path: str, length: int, token: str) -> tuple[int, str]:
    """Send only the headers of a request declaring ``length`` bytes; the status and body."""
    with socket.create_connection(("127.0.0.1", live.settings.port), timeout=30) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_a_50_mb_checkpoint_and_artifact_are_kept_and_a_413_names_its_setting(
    live: LiveServer, tmp_path: Path
) -> None:
    api = httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {live.admin_token}"}, timeout=60
    )
    source = b"def main(params):\n    return {}\n" + b"#" * (2 * 1024 * 1024) + b"\n"
    job = submit_script(api, "big_source.py", {}, source=source)  # over the 1 MiB JSON cap
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/source") as response:
        assert _sha256(response.iter_bytes()) == hashlib.sha256(source).hexdigest()

    db = Database(live.settings.resolved_database_url)
    with db.session() as session:
        started = service.start_attempt(session, job["id"], "test", 60.0)
        token = create_job_token(session, job["id"], started.attempt, "default")
    db.close()
    ctx = JobContext(
        {
            "AIMASS_JOB_ID": str(job["id"]),
            "AIMASS_JOB_ATTEMPT": str(started.attempt),
            "AIMASS_URL": live.url,
            "AIMASS_TOKEN": token,
            "AIMASS_SCRATCH_DIR": str(tmp_path),
        }
    )
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(BIG))
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()

    tracemalloc.start()  # the server runs in this process: its allocations count too
    try:
        with ctx.client:
            ctx.save_checkpoint(weights, step=1)  # streamed from the file
            ctx.log_artifact(weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BIG // 4, f"{peak:,} bytes held at once: the body was buffered"
    kept = api.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()
    assert [(c["step"], c["sha256"]) for c in kept] == [(1, expected)]
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/checkpoints/latest") as response:
        assert _sha256(response.iter_bytes()) == expected
    (artifact,) = api.get(f"/api/v1/jobs/{job['id']}/artifacts").json()
    assert (artifact["name"], artifact["size"]) == ("weights.bin", BIG)
    assert artifact["sha256"] == expected

    attempt_path = f"/api/v1/jobs/{job['id']}/attempts/{started.attempt}"
    over = live.settings.max_job_file_bytes + 1
    for method, path in (
        ("PUT", f"{attempt_path}/checkpoint?step=2"),
        ("POST", f"{attempt_path}/artifacts/huge.bin"),
        ("POST", "/api/v1/jobs/script"),
    ):
        status, body = _declared(live, method, path, over, token)
        assert status == 413, body
        assert "AIMASS_MAX_JOB_FILE_BYTES" in body
    api.close()
