"""A PostgreSQL outage under load: 503 + Retry-After, inference on known tokens, no job lost.

The test starts its own PostgreSQL cluster (initdb/pg_ctl on a free port; the
machine's own server on 5432 is never touched), serves one aimass on it with
jobs on and a model deployed, then stops the cluster for a few seconds while a
job writes metrics and another job ends, and starts it again.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from aimass.api.server import prepare
from aimass.config import Settings
from aimass.platform import Platform
from conftest import IN_CI, LiveServer, free_port, start_server
from resilience.resa_jobs import submit_script, wait_job
from tests_support import deploy, oip_json, upload


class Cluster:
    """A throw-away PostgreSQL cluster run by ``pg_ctl`` (as ``postgres`` when we are root)."""

    def __init__(self, bin_dir: Path, data: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.data = data
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """Create the cluster: trust auth, no fsync (a test's data is thrown away)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Stop it at once (``-m fast``: every connection is cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or (os.geteuid() == 0 and shutil.which("runuser") is None):
        return None
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A migrated PostgreSQL cluster of our own on a free port."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("initdb (/usr/lib/postgresql/*/bin) is required in CI")
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    base = Path(tempfile.mkdtemp(prefix="aimass-pg-"))
    data = base / "data"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    found = Cluster(bin_dir, data, free_port())
    try:
        found.init()
        found.start()
        yield found  # the server's start migrates it
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(data),
             "-m", "immediate", "stop"] if os.geteuid() == 0 else
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Served:
    """The live server and its platform (to watch its scheduler)."""

    live: LiveServer
    platform: Platform


@pytest.fixture(scope="module")
def server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One aimass server on the cluster, with jobs on (a 30 s lease)."""
    tmp = tmp_path_factory.mktemp("outage")
    settings = Settings(
        home=tmp / "home",
        database_url=cluster.url,
        artifacts=str(tmp / "artifacts"),
        port=free_port(),
        tune_gc=False,
        jobs=True,
        job_slots=2.0,
    )
    prepare(settings)
    platform = Platform.from_settings(settings)
    for live in start_server(settings, platform):
        yield Served(live, platform)


def _api(server: Served, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    error = response.json()["error"]
    message = error if isinstance(error, str) else error["message"]  # /v2: an OIP string
    assert "database" in message
    if isinstance(error, dict):
        assert error["code"] == "unavailable"
        assert error["request_id"] == response.headers["x-request-id"] != "-"


def _tiny_onnx(path: Path) -> Path:
    """An ONNX model that adds one to two floats (made in milliseconds, loaded at once)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones(2, dtype=np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "one"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.timeout(300)  # a zygote warming up on a loaded CI machine, two jobs, an outage
def test_a_database_restart_is_503_with_retry_after_and_loses_no_job(
    cluster: Cluster, server: Served, tmp_path: Path
) -> None:
    api = _api(server, server.live.admin_token)
    writer = submit_script(api, "outage_writer.py", {"max_seconds": 120})
    sleeper = submit_script(api, "outage_sleeper.py", {"max_seconds": 120})
    upload(api, "outage", _tiny_onnx(tmp_path / "tiny.onnx"))  # while the jobs start
    deploy(api, {"name": "outage", "model": "outage", "version": 1})
    body = oip_json([[1.0, 2.0]])
    fresh = api.post("/api/v1/tokens", json={"name": "late", "role": "viewer"})
    late = _api(server, fresh.json()["secret"])  # verified by nobody's inference yet
    for job in (writer, sleeper):
        wait_job(api, job["id"], lambda j: j["outputs"].get("started") is True, timeout=120)
    scheduler = server.platform.scheduler
    assert api.post("/v2/models/outage/infer", json=body).status_code == 200  # token cached

    cluster.stop()
    stopped = time.monotonic()
    try:
        _assert_503(api.get("/api/v1/jobs"))
        _assert_503(api.get(f"/api/v1/jobs/{writer['id']}"))
        source = {"source": ("x.py", b"def main(params):\n    return {}\n", "text/x-python")}
        spec = {"spec": '{"kind": "script", "entry": "x.py:main"}'}
        _assert_503(api.post("/api/v1/jobs/script", files=source, data=spec))
        time.sleep(2.1)  # past the 2 s auth cache: the grace period answers now
        assert api.post("/v2/models/outage/infer", json=body).status_code == 200
        _assert_503(late.post("/v2/models/outage/infer", json=body))
        # The sleeper ends while the database is down: its exit waits, it is not lost.
        deadline = time.monotonic() + 20
        while scheduler.pending_exits == 0:
            assert time.monotonic() < deadline, "the sleeper did not end"
            time.sleep(0.05)
        outage = time.monotonic() - stopped
    finally:
        cluster.start()

    # Back: reads, submissions and new tokens work again, and every job ends once.
    deadline = time.monotonic() + 15
    while api.get("/api/v1/jobs").status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.05)
    assert late.post("/v2/models/outage/infer", json=body).status_code == 200
    after = submit_script(api, "outage_sleeper.py", {"max_seconds": 0})
    for job in (writer, sleeper, after):
        done = wait_job(api, job["id"], timeout=60)
        assert done["state"] == "succeeded", done
        assert (done["attempt"], done["retries_used"], done["infra_requeues"]) == (1, 0, 0)
    steps = {m["step"] for m in api.get(f"/api/v1/jobs/{writer['id']}/metrics").json()}
    finished = api.get(f"/api/v1/jobs/{writer['id']}").json()["outputs"]
    assert finished["waited_at"] is not None  # one write waited the outage out, and went on
    assert steps == set(range(1, finished["steps"] + 1))  # no write lost
    assert api.get(f"/api/v1/jobs/{sleeper['id']}").json()["outputs"]["saw_outage"] is True
    assert outage > 2
    api.close()
    late.close()


def test_the_auth_grace_is_bounded_and_only_for_tokens_already_verified() -> None:
    import asyncio

    from aimass.auth.cache import AuthCache
    from aimass.entities.auth import Principal
    from aimass.errors import DatabaseUnavailable

    known = Principal(token_id=1, name="known", role="viewer")
    database_up = True

    def authenticate(secret: str | None) -> Principal:
        if not database_up:
            raise DatabaseUnavailable("down", retry_after=2)
        return known

    async def scenario() -> None:
        nonlocal database_up
        cache = AuthCache(authenticate, ttl_s=0.01, grace_s=0.3)
        assert await cache.principal("known") == known
        database_up = False
        await asyncio.sleep(0.05)  # the check expired: the grace answers
        assert await cache.principal("known") == known
        with pytest.raises(DatabaseUnavailable):
            await cache.principal("never-seen")
        await asyncio.sleep(0.35)  # past the grace: refused until the database is back
        with pytest.raises(DatabaseUnavailable):
            await cache.principal("known")
        database_up = True
        assert await cache.principal("known") == known

    asyncio.run(scenario())


def test_only_connection_failures_become_503s(tmp_path: Path) -> None:
    from aimass.errors import DatabaseUnavailable
    from aimass.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    with pytest.raises(Exception) as bug, db.session() as session:
        session.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(bug.value, DatabaseUnavailable)  # a bug stays a 500
    db.close()
    down = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(DatabaseUnavailable) as refused, down.session() as session:
        session.execute(text("SELECT 1"))
    assert refused.value.retry_after is not None
    down.close()
