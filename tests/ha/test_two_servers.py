"""Two ``aimass server`` processes on one PostgreSQL: wake-ups, logs, tokens, fencing, failover.

One cluster for the module (two processes on loopback, not separate network
namespaces), leader lease 2 s, job lease 5 s.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import PG_ADMIN_URL, _with_db
from ha.cluster import Cluster, noop, wait_job

pytestmark = [pytest.mark.slow]

SCRIPTS = Path(__file__).parent / "scripts"


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


def _ran_on(cluster: Cluster, job: dict[str, Any]) -> int:
    """Which node runs the job (its record names the node: host and pid)."""
    assert job["node"], job
    pid = int(job["node"].rsplit(":", 1)[1])
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
            assert _ran_on(cluster, started) == leader
            _succeeded_once(api, job_id)
    # Each delay includes the test's own polling (10 ms) and two HTTP round trips.
    assert sorted(delays)[2] < 0.4, delays


def test_a_running_jobs_log_is_followed_live_through_the_follower(cluster: Cluster) -> None:
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
            assert _ran_on(cluster, started) == follower
            _succeeded_once(api, job_id)
    finally:
        cluster.signal(leader, signal.SIGCONT)
    assert 1.0 < took_over < 6.0, took_over  # the lease (2 s) ran out first: not at once
    time.sleep(2.0)  # the resumed process runs its loops: it finds it lost the lead
    assert cluster.lease() == (follower, epoch + 1)
    with cluster.nodes[leader].api() as api:  # it still serves, as a follower
        job_id = noop(api, sleep_s=0.5)
        started = wait_job(api, job_id, lambda j: j["state"] != "queued")
        assert _ran_on(cluster, started) == follower
        assert _succeeded_once(api, job_id)["attempt"] == 1


def test_kill_9_of_the_leader_the_survivor_schedules_within_seconds(cluster: Cluster) -> None:
    """Three kills; each time a job queued on the survivor starts; none runs twice."""
    took: list[float] = []
    for round_ in range(3):
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
            assert _ran_on(cluster, started) == survivor
            assert _succeeded_once(api, job_id)["attempt"] == 1
            moved = wait_job(api, running, lambda j: j["attempt"] == 2 and j["state"] == "running")
            assert _ran_on(cluster, moved) == survivor
            api.post(f"/api/v1/jobs/{running}/cancel")
            wait_job(api, running)
        if round_ < 2:
            cluster.start(leader)
    assert max(took) < 5.0, took
