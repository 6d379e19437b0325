"""Two servers as separate hosts: network namespaces on a bridge, PostgreSQL reached over it.

The module makes two namespaces joined to a bridge (``ha/netns.py``), starts a
PostgreSQL of its own on the bridge's address, and one ``aimass server`` in
each namespace on its own address (leader lease 2 s, job lease 5 s). Then: a
server cut off from PostgreSQL (its link taken down inside its namespace), a
paused leader, and a small chaos run. Needs root for ``ip netns``; skipped
with the reason otherwise. The 1,000-job chaos run is ``benchmarks/ha/chaos.py``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimass.sandbox import host_pid
from ha.chaos import IDENTITY_ONNX, run_chaos
from ha.cluster import Cluster, noop, wait_job
from ha.netns import Network, hosts, netns_unavailable
from jobs.conftest import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPTS = Path(__file__).parent / "scripts"
JOB_LEASE_S = 5.0


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Cluster]]:
    """Two hosts and a server on each, both started; all removed after the module."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"separate hosts need network namespaces: {reason}")
    root = tmp_path_factory.mktemp("netns")
    with hosts() as (net, url):
        cluster = Cluster(url, root, overrides={"job_lease_s": JOB_LEASE_S}, network=net)
        try:
            cluster.start_all()
            yield net, cluster
        finally:
            cluster.close()


def _roles(cluster: Cluster) -> tuple[int, int]:
    leader = cluster.wait_for_leader()
    return leader, 1 - leader


def _node_of(cluster: Cluster, job: dict[str, Any]) -> int:
    pid = int(job["node"].rsplit(":", 1)[1])
    return [n.pid for n in cluster.nodes].index(pid)


def _holder(api: httpx.Client, model: str, hold: float, register_first: bool = False) -> int:
    params = {"model": model, "hold": hold, "onnx": IDENTITY_ONNX, "register_first": register_first}
    body = {"kind": "script", "entry": "holder.py:main", "params": params}
    answer = api.post(
        "/api/v1/jobs/script",
        files={"source": ("holder.py", (SCRIPTS / "holder.py").read_bytes(), "text/x-python")},
        data={"spec": json.dumps(body)},
    )
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


def _first_pid(api: httpx.Client, cluster: Cluster, job_id: int) -> int:
    """Attempt 1's process, as this machine sees it (it reports its sandbox's pid)."""
    job = wait_job(api, job_id, lambda j: "pid_1" in j["outputs"], timeout=30)
    node = cluster.nodes[_node_of(cluster, job)]
    deadline = time.monotonic() + 5
    while (pid := host_pid(job["outputs"]["pid_1"], node.pid)) is None:
        assert time.monotonic() < deadline, "attempt 1's process is not under its server"
        time.sleep(0.05)
    return pid


def _once(api: httpx.Client, job_id: int, model: str) -> tuple[dict[str, Any], list[str]]:
    """The ended job, its event states; checks it succeeded once and made one version."""
    job = wait_job(api, job_id, timeout=120)
    assert job["state"] == "succeeded", job
    states = [e["state"] for e in api.get(f"/api/v1/jobs/{job_id}/events").json()]
    assert states.count("succeeded") == 1 and states.count("running") == job["attempt"], states
    versions = api.get(f"/api/v1/models/{model}/versions").json()
    assert [v["lineage"]["job_id"] for v in versions] == [str(job_id)], versions
    return job, states


def test_the_servers_are_separate_hosts(network: tuple[Network, Cluster]) -> None:
    """Each server listens on its own namespace's address; PostgreSQL is across the bridge."""
    net, cluster = network
    for i, node in enumerate(cluster.nodes):
        assert node.settings.host == net.address(i)
        assert os.readlink(f"/proc/{node.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        with node.api() as api:
            assert api.get("/api/v1/whoami").json()["role"] == "admin"
    assert f"@{net.gateway}:" in cluster.database_url


def test_a_server_cut_off_from_postgresql_stops_its_attempt_and_the_job_runs_elsewhere(
    network: tuple[Network, Cluster],
) -> None:
    """Link down in the leader's namespace while its attempt runs: the attempt stops within
    the job lease, the other server takes the lead and runs attempt 2, which registers the
    only version; once the link is back, the cut-off server's late writes change nothing."""
    net, cluster = network
    leader, other = _roles(cluster)
    _, epoch = cluster.lease()
    with cluster.nodes[other].api() as api:
        job_id = _holder(api, "cutoff", hold=120)
        running = wait_job(api, job_id, lambda j: j["state"] == "running", timeout=30)
        assert _node_of(cluster, running) == leader  # the local executor runs on the leader
        first = _first_pid(api, cluster, job_id)
        time.sleep(JOB_LEASE_S / 3 + 0.2)  # one heartbeat went through: the lease is fresh
        net.cut(leader)
        cut = time.monotonic()
        try:
            while pid_alive(first):
                assert time.monotonic() - cut < JOB_LEASE_S + 3, "the cut-off attempt ran on"
                time.sleep(0.05)
            stopped = time.monotonic() - cut
            assert cluster.wait_for_leader(timeout=30, other_than=leader) == other
            assert cluster.lease()[1] == epoch + 1
            moved = wait_job(api, job_id, lambda j: j["attempt"] == 2, timeout=30)
            assert _node_of(cluster, moved) == other
            job, states = _once(api, job_id, "cutoff")
            assert job["attempt"] == 2
        finally:
            net.mend(leader)
        time.sleep(JOB_LEASE_S)  # the cut-off server reconnects and records what it kept
        assert cluster.lease() == (other, epoch + 1)
        again, states_after = _once(api, job_id, "cutoff")
        assert states_after == states and again["finished_at"] == job["finished_at"]
    # Stopped by its own heartbeat once no beat was accepted for a lease: not after the cut
    # was mended, and not later than the lease the other server waits for.
    assert stopped <= JOB_LEASE_S + 0.5, stopped
    with cluster.nodes[leader].api() as api:  # the cut-off server serves again, as a follower
        job_id = noop(api, sleep_s=0.2)
        ran = wait_job(api, job_id)
        assert ran["state"] == "succeeded" and ran["attempt"] == 1


def test_a_leader_paused_past_its_lease_loses_it_and_nothing_runs_twice(
    network: tuple[Network, Cluster],
) -> None:
    """SIGSTOP the leading server while its attempt runs, past both leases; SIGCONT.

    Attempt 1 registered its model before the pause: attempt 2 gets that version
    back instead of registering a second one (one version per job, however often
    it runs)."""
    _, cluster = network
    leader, other = _roles(cluster)
    _, epoch = cluster.lease()
    with cluster.nodes[other].api() as api:
        job_id = _holder(api, "paused", hold=120, register_first=True)
        running = wait_job(api, job_id, lambda j: j["state"] == "running", timeout=30)
        assert _node_of(cluster, running) == leader
        first = _first_pid(api, cluster, job_id)
        cluster.signal(leader, signal.SIGSTOP)
        try:
            assert cluster.wait_for_leader(timeout=30, other_than=leader) == other
            assert cluster.lease()[1] == epoch + 1
            moved = wait_job(api, job_id, lambda j: j["attempt"] == 2, timeout=30)
            assert _node_of(cluster, moved) == other
            # Its server paused, attempt 1 heard no answer to its heartbeats and stopped.
            deadline = time.monotonic() + JOB_LEASE_S
            while pid_alive(first):
                assert time.monotonic() < deadline, "the paused server's attempt ran on"
                time.sleep(0.05)
            _, states = _once(api, job_id, "paused")
        finally:
            cluster.signal(leader, signal.SIGCONT)
        time.sleep(2.0)  # the resumed server runs its loops: it finds the lead gone
        assert cluster.lease() == (other, epoch + 1)
        again, states_after = _once(api, job_id, "paused")
        assert states_after == states and again["attempt"] == 2


def test_chaos_every_job_succeeds_once_and_cron_fires_once_per_tick(
    network: tuple[Network, Cluster],
) -> None:
    """A small chaos run (the 1,000-job one is benchmarks/ha/chaos.py)."""
    _, cluster = network
    report = run_chaos(cluster, jobs=60, faults=5, gap_s=3.0, seed=16, say=print)
    print(report.summary())
    assert report.problems == [], report.problems[:10]
    assert report.states == {"succeeded": 60}
    assert report.versions == 60
    assert len(report.faults) == 5
