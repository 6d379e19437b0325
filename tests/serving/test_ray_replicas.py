"""Deployment replicas as Ray actors (``resources.runner: "ray"``) on a two-node Ray cluster.

Two aimass servers on one PostgreSQL join the cluster (``ray_cluster``): the test
process's own (it is the Ray driver) and a second ``aimass server`` process. A
deployment of 2 replicas with 1 CPU each is placed one per node, both servers
answer through the same actors, and a replica killed (``ray.kill``, then another's
worker process by SIGKILL) is restarted while traffic moves to the live one, no
request failing. A batch that every replica has failed waits for Ray to restart one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import ray_cluster
from aimass.config import Settings
from conftest import LiveServer, ModelFiles
from ray_cluster import client as _client
from ray_cluster import label, ray_server, two_node_cluster
from tests_support import oip_json, upload, wait_state

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.backend("postgresql"), pytest.mark.timeout(300)]
NAMESPACE = "aimass-serving"
#: Actors start Ray workers that import aimass and onnxruntime: slow on a loaded machine.
WAIT_S = 120.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray head (0 CPUs) and two worker nodes (2 CPUs each), this process its driver."""
    with two_node_cluster() as cluster:
        yield cluster


@pytest.fixture
def server(cluster: Any, settings: Settings) -> Iterator[LiveServer]:
    """A server in this process on the module's cluster (the test's Ray driver)."""
    yield from ray_server(settings)


@pytest.fixture
def second_server(cluster: Any, server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """A second ``aimass server`` process on the same database, artifacts and Ray cluster."""
    yield from ray_cluster.second_server(cluster, server, tmp_path / "home-2")


@pytest.fixture
def ends_actors(cluster: Any) -> Iterator[None]:
    """After the test, end the replica actors it left (it failed before deleting its
    deployment): the next test's deployment, on a fresh database, may reuse its id."""
    yield
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == NAMESPACE:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(entry["name"], namespace=NAMESPACE), no_restart=True)


def _placement(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    """The Ray replicas as the freshest server report saw them."""
    found = api.get(f"/api/v1/deployments/{name}").json()
    reports = [s for s in found["replica_status"] if s.get("placement")]
    if not reports:
        return []
    latest = max(reports, key=lambda s: s["updated_at"])
    placement: list[dict[str, Any]] = latest["placement"]
    return placement


def _wait_placed(api: httpx.Client, name: str, replicas: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        placement = _placement(api, name)
        if len(placement) == replicas and all(p["state"] == "alive" for p in placement):
            return placement
        assert time.monotonic() < deadline, placement
        time.sleep(0.2)


def _actors(deployment_id: int) -> list[str]:
    prefix = f"aimass/d{deployment_id}/"
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NAMESPACE and a["name"].startswith(prefix)
    )


def _wait_every_server_sees(api: httpx.Client, name: str, replicas: int) -> None:
    """Until every server's report shows ``replicas`` alive (its probe saw each back)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = api.get(f"/api/v1/deployments/{name}").json()
        reports = [s["placement"] for s in found["replica_status"] if s.get("placement")]
        if len(reports) >= 2 and all(
            len(places) == replicas and all(p["state"] == "alive" for p in places)
            for places in reports
        ):
            return
        assert time.monotonic() < deadline, reports
        time.sleep(0.2)


def _kill(name: str, how: Any) -> float:
    """Kill a replica ``how(actor, pid)``; return when, once Ray restarted it.

    Not once every server sees it back: a server may still route around it (marked down,
    or its death noticed late, as a server's view lags Ray's) when the other replica dies,
    and must then try it anyway rather than answer 503.
    """
    actor = ray.get_actor(name, namespace=NAMESPACE)
    before = ray.get(actor.info.remote())
    killed_at = time.monotonic()
    how(actor, before["pid"])
    deadline = time.monotonic() + WAIT_S
    while True:  # the same named actor answers again, from a new process
        with contextlib.suppress(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if ray.get(actor.info.remote(), timeout=10)["pid"] != before["pid"]:
                break
        assert time.monotonic() < deadline, f"the killed replica {name} did not come back"
        time.sleep(0.2)
    return killed_at


def _wait_answered(load: Load, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(load.results) < count:
        assert time.monotonic() < deadline, load.results[-5:]
        time.sleep(0.05)


class Load:
    """Clients sending requests in a loop (one thread per server), each result timed."""

    def __init__(self, urls: list[str], token: str, body: dict[str, Any]) -> None:
        self.results: list[tuple[float, float, int | str]] = []  # (sent, answered, status)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(url, token, body), daemon=True) for url in urls
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, token: str, body: dict[str, Any]) -> None:
        with _client(url, token) as http:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = http.post("/v2/models/cancer/infer", json=body)
                    # A failure keeps its body: the assertion then says why it failed.
                    status: int | str = answer.status_code
                    if status != 200:
                        status = f"{status} {answer.text}"
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.results.append((sent, time.monotonic(), status))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_two_replicas_one_per_node_serve_both_servers_and_survive_a_killed_actor(
    server: LiveServer, second_server: str, model_files: ModelFiles, ends_actors: None
) -> None:
    body = oip_json(np.asarray(model_files.x)[:3])
    with (
        _client(server.url, server.admin_token) as one,
        _client(second_server, server.admin_token) as two,
    ):
        upload(one, "cancer", model_files.onnx)
        created = one.post(
            "/api/v1/deployments",
            json={
                "name": "cancer",
                "model": "cancer",
                "version": 1,
                "replicas": 2,
                "resources": {"cpu": 1, "runner": "ray"},
            },
        )
        assert created.status_code == 201, created.text
        deployment_id = created.json()["id"]
        ready = wait_state(one, "cancer", "ready", timeout=WAIT_S)
        assert {s["runner"] for s in ready["replica_status"]} == {"ray"}, ready

        # Ray placed one replica per node (SPREAD), as every server reports.
        placement = _wait_placed(one, "cancer", 2)
        assert sorted(label(p["node"]) for p in placement) == ["node-a", "node-b"], placement
        names = _actors(deployment_id)
        assert len(names) == 2, names

        # Either server answers, through the same two actors (none of its own).
        for api in (one, two):
            deadline = time.monotonic() + WAIT_S
            while (answer := api.post("/v2/models/cancer/infer", json=body)).status_code != 200:
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.2)
            outputs = {o["name"]: o for o in answer.json()["outputs"]}
            assert outputs["label"]["shape"][0] == 3, outputs
        assert _actors(deployment_id) == names

        # Kill one replica's actor (ray.kill), then the other's worker process (SIGKILL),
        # under load: Ray restarts each, and traffic moves to the live one meanwhile.
        load = Load([server.url, second_server], server.admin_token, body)
        try:
            _wait_answered(load, 20)
            kills = [
                _kill(names[0], lambda actor, _pid: ray.kill(actor, no_restart=False)),
                _kill(names[1], lambda _actor, pid: os.kill(pid, signal.SIGKILL)),
            ]
            _wait_answered(load, len(load.results) + 20)
        finally:
            load.stop()
        # None failed, not even one in flight on a replica as it died: its batch moved on.
        failed = [r for r in load.results if r[2] != 200]
        assert failed == [], failed
        for killed_at in kills:
            after_kill = [r for r in load.results if r[0] > killed_at]
            in_flight = [r for r in load.results if r[0] <= killed_at < r[1]]
            print(
                f"requests {len(load.results)}, after the kill {len(after_kill)}, "
                f"in flight at the kill {len(in_flight)}"
            )
        # Each server's probe saw both restarted replicas back.
        _wait_every_server_sees(one, "cancer", 2)

        # Deleting the deployment ends its actors.
        assert one.delete("/api/v1/deployments/cancer").status_code == 204
        deadline = time.monotonic() + WAIT_S
        while _actors(deployment_id):
            assert time.monotonic() < deadline, _actors(deployment_id)
            time.sleep(0.2)


def _connect(
    model_files: ModelFiles, tmp_path: Path, deployment_id: int, name: str, **options: Any
) -> tuple[Any, Any, Any, Any]:
    """Two 1-CPU replicas of the ONNX model routed by this process without a server, once
    both answer: (router, its spec, flavor, signature)."""
    from aimass.artifacts.store import ArtifactStore
    from aimass.deployments.entities import ResolvedVersion, Resources
    from aimass.plugins import default_registries
    from aimass.serving.ray_replicas import ReplicaSpec, connect, kill_actors

    store = ArtifactStore(str(tmp_path / "artifacts"))
    with model_files.onnx.open("rb") as src:
        stored = store.put_file("models/cancer/1", src)
    flavor = default_registries().flavors.get("onnx")
    signature = flavor.inspect(model_files.onnx, False)
    assert signature is not None
    version = ResolvedVersion(
        model="cancer", version=1, weight=100.0, flavor="onnx", filename="model.onnx",
        artifact_key=stored.key, sha256=stored.sha256, trusted=False,
        signature=signature.model_dump(),
    )  # fmt: skip
    spec = ReplicaSpec(deployment_id, "default", name, version, Resources(cpu=1, runner="ray"), 2)
    router = connect(spec, store, flavor, tmp_path / "cache", ready_timeout_s=WAIT_S, **options)
    try:
        deadline = time.monotonic() + WAIT_S
        while router.batches_in_flight() < 4:  # the second replica may answer later
            assert time.monotonic() < deadline, router.placement()
            time.sleep(0.1)
    except BaseException:
        router.close()
        kill_actors(spec.namespace, spec.deployment_id)
        raise
    return router, spec, flavor, signature


def test_one_server_keeps_two_batches_per_live_replica_in_flight_each_answered_right(
    cluster: Any, model_files: ModelFiles, tmp_path: Path
) -> None:
    from aimass.serving.ray_replicas import kill_actors
    from aimass.serving.runner import ModelRunner

    router, spec, flavor, signature = _connect(model_files, tmp_path, 9001, "inflight")
    try:
        assert router.batches_in_flight() == 4  # two per live replica
        assert {label(p.node or "") for p in router.placement()} == {"node-a", "node-b"}
        # Each 1-CPU actor sized its model's pools to 1 thread (onnxruntime read it back).
        infos = [
            ray.get(ray.get_actor(n, namespace=NAMESPACE).info.remote()) for n in _actors(9001)
        ]
        assert [i["threads"] for i in infos] == [1, 1], infos

        x = np.asarray(model_files.x, dtype=np.float32)
        name = signature.inputs[0].name
        local = ModelRunner(flavor.load(model_files.onnx, False), signature, 1, 0.0)
        routed = ModelRunner(
            router, signature, 8, 2.0, max_concurrent_batches=router.batches_in_flight
        )

        async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            expected = await local.infer({name: x})
            # One request a row, all at once: batches of up to 8 go out four at a time.
            rows = [routed.infer({name: x[i : i + 1]}) for i in range(len(x))]
            answers = await asyncio.gather(*rows)
            await routed.close()
            await local.close()
            return expected, list(answers)

        expected, answers = asyncio.run(main())
        for output, array in expected.items():
            # Rows batched differently round differently (float32): the same to 1e-6.
            got = np.concatenate([answer[output] for answer in answers])
            np.testing.assert_allclose(got, array, rtol=1e-5, atol=1e-6, err_msg=output)
        assert routed.stats.requests == len(x) and routed.stats.largest_batch <= 8
    finally:
        router.close()
        kill_actors(spec.namespace, spec.deployment_id)


def test_a_batch_every_replica_failed_is_answered_once_ray_restarted_one(
    cluster: Any, model_files: ModelFiles, tmp_path: Path
) -> None:
    """Replica 1 ends for good and replica 0's worker is killed just before a batch: both
    fail it, and it waits for Ray to restart replica 0 (the probe sees it back) rather than
    answer 503."""
    from aimass.serving.ray_replicas import kill_actors
    from aimass.serving.runner import ModelRunner

    # A restart on a loaded machine starts a Ray worker that imports aimass and onnxruntime.
    router, spec, flavor, signature = _connect(
        model_files, tmp_path, 9002, "comeback", restart_wait_s=WAIT_S
    )
    try:
        actors = [ray.get_actor(n, namespace=NAMESPACE) for n in spec.actor_names()]
        ray.kill(actors[1], no_restart=True)
        deadline = time.monotonic() + WAIT_S
        while True:  # until Ray reports it dead (ray.kill only asks for it)
            try:
                ray.get(actors[1].info.remote(), timeout=10)
            except ray.exceptions.RayActorError:
                break
            except ray.exceptions.GetTimeoutError:
                pass
            assert time.monotonic() < deadline, "the killed replica still answers"
            time.sleep(0.1)

        x = np.asarray(model_files.x, dtype=np.float32)[:5]
        name = signature.inputs[0].name
        local = ModelRunner(flavor.load(model_files.onnx, False), signature, 8, 0.0)
        routed = ModelRunner(router, signature, 8, 0.0)
        pid = ray.get(actors[0].info.remote())["pid"]

        async def main() -> tuple[dict[str, Any], dict[str, Any]]:
            expected = await local.infer({name: x})
            os.kill(pid, signal.SIGKILL)  # no replica left that could answer right now
            answer = await routed.infer({name: x})
            await routed.close()
            await local.close()
            return expected, answer

        expected, answer = asyncio.run(main())
        for output, array in expected.items():
            np.testing.assert_allclose(answer[output], array, rtol=1e-5, atol=1e-6)
        # Replica 0 answered from its new worker; this server sees it back, replica 1 down.
        assert ray.get(actors[0].info.remote())["pid"] != pid
        deadline = time.monotonic() + WAIT_S
        while [p.state for p in router.placement()] != ["alive", "restarting"]:
            assert time.monotonic() < deadline, router.placement()
            time.sleep(0.1)
    finally:
        router.close()
        kill_actors(spec.namespace, spec.deployment_id)


def test_a_replica_no_node_can_hold_is_pending_with_the_reason(
    server: LiveServer, model_files: ModelFiles
) -> None:
    with _client(server.url, server.admin_token) as api:
        upload(api, "big", model_files.onnx)
        created = api.post(
            "/api/v1/deployments",
            json={"model": "big", "version": 1, "resources": {"cpu": 64, "runner": "ray"}},
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + WAIT_S
        while not (reports := api.get("/api/v1/deployments/big").json()["replica_status"]):
            assert time.monotonic() < deadline, "no replica reported"
            time.sleep(0.1)
        assert [s["state"] for s in reports] == ["pending"], reports
        [reason] = {s["reason"] for s in reports}
        assert "64 CPU" in reason and "no Ray node" in reason, reason
        assert api.post("/v2/models/big/infer", json=oip_json([[0.0] * 30])).status_code == 503
        assert _actors(created.json()["id"]) == []


def test_runner_ray_is_refused_on_a_server_without_ray(
    http: httpx.Client, model_files: ModelFiles
) -> None:
    upload(http, "cancer", model_files.onnx)
    answer = http.post(
        "/api/v1/deployments",
        json={"model": "cancer", "version": 1, "resources": {"runner": "ray"}},
    )
    assert answer.status_code == 400, answer.text
    assert "Ray cluster" in answer.json()["error"]["message"], answer.text
