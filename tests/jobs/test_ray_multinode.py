"""Jobs on a Ray cluster of two worker nodes (Ray's own multi-node test cluster).

One cluster for the module (``ray_cluster.two_node_cluster``): a head with no
CPUs and two worker raylets with 2 logical CPUs each, labelled ``node-a`` and
``node-b``. Both share this machine's two cores, so the jobs are tiny. The
node-loss test removes a node: it runs last.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ray_cluster
from aimass.config import Settings
from conftest import LiveServer
from jobs.conftest import submit_script, wait_for
from ray_cluster import client as _client
from ray_cluster import label as node_label
from ray_cluster import ray_server, two_node_cluster

ray = pytest.importorskip("ray")

# A cluster of three raylets and a second server process start slowly on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.backend("postgresql"), pytest.mark.timeout(360)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray head (0 CPUs) and two worker nodes (2 CPUs each), this process its driver."""
    with two_node_cluster() as cluster:
        yield cluster


@pytest.fixture
def server(cluster: Any, settings: Settings) -> Iterator[LiveServer]:
    """A server in this process whose jobs run on the module's cluster (its Ray driver)."""
    # A long lease: a loaded machine's slow heartbeats requeue nothing here, and a lost node
    # must be noticed from Ray's own word (NodeDiedError) well before the lease would.
    yield from ray_server(settings, job_lease_s=120.0)


@pytest.fixture
def second_server(cluster: Any, server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """A second ``aimass server`` process on the same database and artifacts, its own Ray
    driver on the cluster; its URL (the first server's admin token works on it)."""
    yield from ray_cluster.second_server(cluster, server, tmp_path / "home-2")


def _runs_on(api: httpx.Client, job_id: int) -> dict[int, str]:
    """Each attempt's Ray node, from the job's events (``attempt N runs on <node>``)."""
    events = api.get(f"/api/v1/jobs/{job_id}/events").json()
    return {
        e["attempt"]: e["reason"].split(" runs on ", 1)[1]
        for e in events
        if " runs on " in (e["reason"] or "")
    }


def test_four_long_jobs_run_at_once_two_per_node(
    cluster: Any, server: LiveServer, second_server: str
) -> None:
    alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    assert len(alive) == 2, "two worker nodes"
    with (
        _client(server.url, server.admin_token) as one,
        _client(second_server, server.admin_token) as two,
    ):
        jobs = [
            submit_script(api, "held.py", resources={"cpu": 1}, params={"hold_s": 240})
            for api in (one, two, one, two)
        ]
        # All four hold until released: seen running together, each on a named Ray node.
        running = [
            wait_for(
                one,
                job["id"],
                lambda j: (
                    j["state"] != "queued"
                    and "scratch" in j["outputs"]
                    and (j["node"] or "").startswith("ray:")
                ),
                timeout=180,
            )
            for job in jobs
        ]
        assert [j["state"] for j in running] == ["running"] * 4, running
        labels = sorted(node_label(j["node"]) for j in running)
        assert labels == ["node-a", "node-a", "node-b", "node-b"], running
        for job in running:
            (Path(job["outputs"]["scratch"]) / "release").touch()
        done = [wait_for(two, job["id"], timeout=120) for job in jobs]
        assert [j["state"] for j in done] == ["succeeded"] * 4, done
        assert all(j["outputs"]["released"] for j in done), done
        # Once ended, the events still say which node ran each.
        ran = [_runs_on(two, job["id"]) for job in jobs]
        assert [list(r) for r in ran] == [[1]] * 4, ran
        assert sorted(node_label(r[1]) for r in ran) == ["node-a", "node-a", "node-b", "node-b"]
        assert {r[1] for r in ran} == {j["node"] for j in running}


def test_a_job_asking_for_a_nodes_label_runs_on_that_node(cluster: Any, server: LiveServer) -> None:
    with _client(server.url, server.admin_token) as api:
        jobs = [
            submit_script(api, "held.py", resources={"cpu": 1, "custom": {label: 1}},
                          params={"hold_s": 0})
            for label in ("node-b", "node-a", "node-b")
        ]  # fmt: skip
        done = [wait_for(api, job["id"], timeout=120) for job in jobs]
        assert [j["state"] for j in done] == ["succeeded"] * 3, done
        assert [j["resources"]["custom"] for j in done] == [
            {"node-b": 1}, {"node-a": 1}, {"node-b": 1}
        ]  # fmt: skip
        # The job's record names the node each attempt ran on (an event, kept once it ended).
        ran = [_runs_on(api, job["id"]) for job in jobs]
        assert [node_label(r[1]) for r in ran] == ["node-b", "node-a", "node-b"], ran
        # Ray's own resource names are refused at submit, by name (use cpu, gpu, memory_mb).
        bad = api.post("/api/v1/jobs", json={"kind": "train", "entry": "x",
                                             "resources": {"custom": {"CPU": 1}}})  # fmt: skip
        assert bad.status_code in (400, 422), bad.text
        assert "custom resource 'CPU'" in bad.text


def test_losing_the_worker_node_resumes_the_attempt_on_the_other_node(
    cluster: Any, server: LiveServer
) -> None:
    with _client(server.url, server.admin_token) as api:
        job = submit_script(api, "resumable.py", params={"steps": 10, "pause": 0.5})
        checkpoints = f"/api/v1/jobs/{job['id']}/checkpoints"
        running = wait_for(
            api,
            job["id"],
            lambda j: (
                (j["node"] or "").startswith("ray:") and len(api.get(checkpoints).json()) >= 2
            ),
            timeout=120,
        )
        label = node_label(running["node"])
        short = running["node"].removeprefix("ray:").split("@")[0]
        [node] = [n for n in cluster.worker_nodes if n.node_id.startswith(short)]
        cluster.remove_node(node, allow_graceful=False)  # its raylet and workers SIGKILLed

        done = wait_for(api, job["id"], timeout=100)  # less than the lease
        assert done["state"] == "succeeded", done
        assert done["attempt"] == 2 and done["retries_used"] == 0, done
        assert done["outputs"]["start_2"] >= 2, "attempt 2 resumed from the checkpoint"
        ran = _runs_on(api, job["id"])
        assert node_label(ran[1]) == label and node_label(ran[2]) != label, ran
        events = api.get(f"/api/v1/jobs/{job['id']}/events").json()
        [requeued] = [e for e in events if e["state"] == "queued" and e["attempt"] == 1]
        assert "NodeDiedError" in requeued["reason"], requeued
        assert "infrastructure failure" in requeued["reason"], requeued
