"""Two ``aimass server`` processes on one PostgreSQL: wake-ups, logs, tokens, fencing, failover.

One cluster for the module (two processes on loopback, not separate network
namespaces), leader lease 2 s, job lease 5 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PG_ADMIN_URL, _with_db
from ha.cluster import Cluster, free_port, noop, wait_job
from tests_support import deploy, oip_json, upload

pytestmark = [pytest.mark.slow]

SCRIPTS = Path(__file__).parent / "scripts"
HAPROXY_CFG = Path(__file__).parents[2] / "deploy" / "haproxy" / "aimass.cfg"


@pytest.fixture(scope="module")
def pg_url(pg_template: str | None) -> Iterator[str]:
    """A fresh migrated PostgreSQL database for the module's cluster."""
    if pg_template is None:
        pytest.skip("PostgreSQL unreachable at " + PG_ADMIN_URL)
    import psycopg

    name = f"aimass_ha_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _with_db(PG_ADMIN_URL, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two servers on ``pg_url``, both started; stopped after the module."""
    cluster = Cluster(pg_url, tmp_path_factory.mktemp("ha"))
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


def _roles(cluster: Cluster) -> tuple[int, int]:
    leader = cluster.wait_for_leader()
    return leader, 1 - leader


def _ran_on(cluster: Cluster, job: dict[str, Any], api: httpx.Client | None = None) -> int:
    """Which node runs (or ran) the job: its record names the node (host:pid) while it
    runs; once it ended, its last "running" event does ("attempt N on host:pid")."""
    node = job["node"]
    if node is None and api is not None:  # a noop can end before the first poll sees it
        events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
        node = [e["reason"] for e in events if e["state"] == "running"][-1].rsplit(" ", 1)[1]
    assert node, job
    pid = int(node.rsplit(":", 1)[1])
    return [n.pid for n in cluster.nodes].index(pid)


def _succeeded_once(api: httpx.Client, job_id: int) -> dict[str, Any]:
    job = wait_job(api, job_id)
    assert job["state"] == "succeeded", job
    events = api.get(f"/api/v1/jobs/{job_id}/events").json()
    assert [e["state"] for e in events].count("running") == job["attempt"]
    assert [e["state"] for e in events].count("succeeded") == 1, events
    return job


def test_the_second_server_got_its_own_admin_token(cluster: Cluster) -> None:
    """No secret was copied: each home holds a different token, both valid on the database."""
    first, second = cluster.nodes
    assert first.token and second.token and first.token != second.token
    for node in cluster.nodes:
        for other in cluster.nodes:
            with httpx.Client(
                base_url=other.url, headers={"Authorization": f"Bearer {node.token}"}
            ) as api:
                assert api.get("/api/v1/whoami").json()["role"] == "admin"
    with second.api() as api:
        names = [t["name"] for t in api.get("/api/v1/tokens").json()]
    assert "admin" in names and any(n.startswith("admin-node-") for n in names)


def test_a_submit_on_the_follower_starts_at_once_on_the_leader(cluster: Cluster) -> None:
    """NOTIFY wakes the leader's placement: well under its 1 s polling tick."""
    leader, follower = _roles(cluster)
    delays = []
    with cluster.nodes[follower].api() as api:
        for _ in range(5):
            submitted = time.monotonic()
            job_id = noop(api)
            started = wait_job(api, job_id, lambda j: j["state"] != "queued", timeout=10)
            delays.append(time.monotonic() - submitted)
            assert _ran_on(cluster, started, api) == leader
            _succeeded_once(api, job_id)
    # Each delay includes the test's own polling (10 ms) and two HTTP round trips.
    assert sorted(delays)[2] < 0.4, delays


def test_a_running_jobs_log_is_followed_live_through_the_follower(
    cluster: Cluster, pg_url: str
) -> None:
    leader, follower = _roles(cluster)
    with cluster.nodes[follower].api(timeout=60) as api:
        path = SCRIPTS / "ticker.py"
        body = {"kind": "script", "entry": "ticker.py:main", "params": {"lines": 12, "pause": 0.25}}
        answer = api.post(
            "/api/v1/jobs/script",
            files={"source": (path.name, path.read_bytes(), "text/x-python")},
            data={"spec": json.dumps(body)},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        running = wait_job(api, job_id, lambda j: j["state"] == "running", timeout=20)
        assert _ran_on(cluster, running) == leader
        lines: list[tuple[float, str]] = []
        with api.stream("GET", f"/api/v1/jobs/{job_id}/logs", params={"follow": "true"}) as sse:
            event = ""
            for raw in sse.iter_lines():
                if raw.startswith("event: "):
                    event = raw.removeprefix("event: ")
                elif raw.startswith("data: ") and event == "log":
                    lines.append((time.monotonic(), raw.removeprefix("data: ")))
                elif raw.startswith("data: ") and event == "end":
                    ended = time.monotonic()
                    break
        _succeeded_once(api, job_id)
    ticks = [text for _, text in lines if text.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(12)], lines
    # Live, not replayed at the end: the first line came well before the job ended.
    assert ended - lines[0][0] > 1.5, "the lines arrived while the job ran"
    with cluster.nodes[follower].api() as api:
        text = api.get(f"/api/v1/jobs/{job_id}/logs").text
    assert "tick 11" in text
    # The shipped chunks went in the transaction that recorded the end (the log is archived).
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM job_log_chunks WHERE job_id = %s", (job_id,))
        assert row.fetchone() == (0,)


def test_a_paused_leader_loses_the_lead_and_writes_nothing_after_it_resumes(
    cluster: Cluster,
) -> None:
    """SIGSTOP past the leader lease: the follower takes over (higher epoch), runs the job once."""
    leader, follower = _roles(cluster)
    _, epoch = cluster.lease()
    cluster.signal(leader, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        assert cluster.wait_for_leader(timeout=10, other_than=leader) == follower
        took_over = time.monotonic() - stopped
        assert cluster.lease()[1] == epoch + 1
        with cluster.nodes[follower].api() as api:
            job_id = noop(api, sleep_s=0.5)
            started = wait_job(api, job_id, lambda j: j["state"] != "queued")
            assert _ran_on(cluster, started, api) == follower
            _succeeded_once(api, job_id)
    finally:
        cluster.signal(leader, signal.SIGCONT)
    assert 1.0 < took_over < 6.0, took_over  # the lease (2 s) ran out first: not at once
    time.sleep(1.2)  # the resumed process runs its loops (lease keeper: 0.67 s): it lost the lead
    assert cluster.lease() == (follower, epoch + 1)
    with cluster.nodes[leader].api() as api:  # it still serves, as a follower
        job_id = noop(api, sleep_s=0.5)
        started = wait_job(api, job_id, lambda j: j["state"] != "queued")
        assert _ran_on(cluster, started, api) == follower
        assert _succeeded_once(api, job_id)["attempt"] == 1


class Balancer:
    """Debian's HAProxy on ``deploy/haproxy/aimass.cfg`` in front of the cluster."""

    def __init__(self, cluster: Cluster, root: Path) -> None:
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            pytest.skip("haproxy is missing: apt-get install -y haproxy (make install does)")
        self.socket = root / "haproxy.sock"
        self.port = free_port()
        env = {
            **os.environ,
            "AIMASS_LB_BIND": f"127.0.0.1:{self.port}",
            "AIMASS_LB_SOCKET": str(self.socket),
            "AIMASS_NODE1": f"127.0.0.1:{cluster.nodes[0].settings.port}",
            "AIMASS_NODE2": f"127.0.0.1:{cluster.nodes[1].settings.port}",
        }
        self.process = subprocess.Popen(
            [haproxy, "-db", "-f", str(HAPROXY_CFG)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_up(("node1", "node2"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        """One admin-socket command; its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stat(self, server: str) -> dict[str, str]:
        """The ``show stat`` row of a server of the aimass backend."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "aimass" and row.get("svname") == server:
                return row
        raise AssertionError(f"no server {server} in {lines}")

    def wait_up(self, servers: tuple[str, ...], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if all(self.stat(s)["status"] == "UP" for s in servers):
                    return
            assert time.monotonic() < deadline, "HAProxy did not see the servers up"
            time.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Load:
    """Inference requests through the balancer from a thread, counting what failed."""

    def __init__(self, url: str, token: str, body: dict[str, Any]) -> None:
        self.url, self.token, self.body = url, token, body
        self.ok = 0
        self.failed: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/v2/models/cancer/infer", json=self.body)
                    if answer.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append((time.monotonic(), f"{answer.status_code}"))
                except httpx.HTTPError as exc:
                    self.failed.append((time.monotonic(), repr(exc)))
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def test_a_rolling_restart_behind_haproxy_fails_no_request(
    cluster: Cluster, model_files: Any, tmp_path: Path
) -> None:
    """Drain, restart, ready: one server after the other, under inference load."""
    with cluster.nodes[0].api() as api:
        upload(api, "cancer", model_files.onnx)
        deploy(api, {"name": "cancer", "model": "cancer", "version": 1}, timeout=60)
    body = oip_json(model_files.x[:2])
    for node in cluster.nodes:  # every server holds every deployment
        with node.api() as api:
            deadline = time.monotonic() + 30
            while api.post("/v2/models/cancer/infer", json=body).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    balancer = Balancer(cluster, tmp_path)
    load = Load(balancer.url, cluster.nodes[0].token, body)
    try:
        for i, name in enumerate(("node1", "node2")):
            balancer.command(f"set server aimass/{name} state drain")
            deadline = time.monotonic() + 10
            while balancer.stat(name)["scur"] != "0":
                assert time.monotonic() < deadline, "the drained server kept its sessions"
                time.sleep(0.05)
            cluster.stop(i)
            served = load.ok
            cluster.start(i)
            balancer.command(f"set server aimass/{name} state ready")
            balancer.wait_up((name,))
            assert load.ok > served, "the other server answered while this one restarted"
    finally:
        load.stop()
        balancer.close()
    assert load.failed == [], load.failed[:5]
    assert load.ok > 50


def test_kill_9_of_the_leader_the_survivor_schedules_within_seconds(
    cluster: Cluster, model_files: Any, tmp_path: Path
) -> None:
    """Three kills; each time a job queued on the survivor starts; none runs twice.

    Inference load runs through HAProxy all along: requests fail only within
    5 s of a kill (in flight on the killed server, non-idempotent retry refused).
    """
    took: list[float] = []
    balancer = Balancer(cluster, tmp_path)
    load = Load(balancer.url, cluster.nodes[0].token, oip_json(model_files.x[:2]))
    kills: list[float] = []
    for round_ in range(3):
        balancer.wait_up(("node1", "node2"))
        leader, survivor = _roles(cluster)
        with cluster.nodes[leader].api() as api:
            running = noop(api, sleep_s=30)  # killed with its server, then run elsewhere
            wait_job(api, running, lambda j: j["state"] == "running")
        with cluster.nodes[survivor].api() as api:
            killed = time.monotonic()
            cluster.signal(leader, signal.SIGKILL)
            job_id = noop(api)
            started = wait_job(api, job_id, lambda j: j["state"] != "queued", timeout=20)
            took.append(time.monotonic() - killed)
            assert _ran_on(cluster, started, api) == survivor
            assert _succeeded_once(api, job_id)["attempt"] == 1
            moved = wait_job(api, running, lambda j: j["attempt"] == 2 and j["state"] == "running")
            assert _ran_on(cluster, moved) == survivor
            api.post(f"/api/v1/jobs/{running}/cancel")
            wait_job(api, running)
        kills.append(killed)
        if round_ < 2:
            cluster.start(leader)
    load.stop()
    balancer.close()
    # Every failed request (the whole test long, restarts included) came within 5 s of a kill.
    late = [(at, why) for at, why in load.failed if not any(0 <= at - k <= 5.0 for k in kills)]
    assert late == [], late[:5]
    windows = [
        max((at - k for at, _ in load.failed if 0 <= at - k <= 5.0), default=0.0) for k in kills
    ]
    print(f"survivor scheduled after {took} s; requests failed until {windows} s after the kills")
    assert max(took) < 5.0, took
    assert load.ok > 100, "the survivor answered through HAProxy"
