"""What Ray replicas ask of Ray, and why a deployment stays pending (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimass.deployments.entities import ResolvedVersion, Resources
from aimass.serving import ray_replicas
from aimass.serving.ray_replicas import ReplicaSpec, ReplicasPending, connect, unplaceable

GIB = 1 << 30
NODES = [
    {"Alive": True, "Resources": {"CPU": 2.0, "memory": 4.0 * GIB, "node-a": 1.0}},
    {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0, "memory": 4.0 * GIB}},
    {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
]


def _spec(**resources: object) -> ReplicaSpec:
    version = ResolvedVersion(
        model="m",
        version=3,
        weight=100.0,
        flavor="onnx",
        filename="model.onnx",
        artifact_key="models/m/abc",
        sha256="ab" * 32,
        trusted=False,
    )
    return ReplicaSpec(7, "default", "m", version, Resources(runner="ray", **resources), 2)


def test_a_replica_fits_when_one_live_node_has_all_it_asks() -> None:
    assert unplaceable(Resources(cpu=2, gpu=1, memory_mb=1024), NODES) is None
    assert unplaceable(Resources(cpu=1), NODES) is None


def test_a_replica_no_live_node_holds_says_what_it_needs_and_what_there_is() -> None:
    reason = unplaceable(Resources(cpu=2, gpu=2), NODES)  # the dead node had 8 GPUs
    assert reason == (
        "each replica needs 2 CPU, 2 GPU; no Ray node has that (the largest has 2 CPUs, 1 GPUs)"
    )
    assert "8192 MB" in (unplaceable(Resources(memory_mb=8192), NODES) or "")
    assert unplaceable(Resources(), []) == "the Ray cluster has no live node"


def test_actor_names_are_per_deployment_version_resources_and_index() -> None:
    spec = _spec(cpu=1)
    names = spec.actor_names()
    assert len(set(names)) == 2 and all(n.startswith("aimass/d7/default/m/m/v3/") for n in names)
    assert names[1].endswith("/r1")
    assert _spec(cpu=2).actor_names()[0] != names[0]  # new resources: new actors
    options = spec.actor_options()
    assert options["scheduling_strategy"] == "SPREAD" and options["num_cpus"] == 1
    assert options["get_if_exists"] and options["lifetime"] == "detached"
    assert options["max_restarts"] == -1 and "memory" not in options
    assert _spec(memory_mb=512).actor_options()["memory"] == 512 << 20


def test_without_a_ray_connection_the_replicas_are_pending_with_the_reason(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("this process is on a Ray cluster")
    asked: list[str] = []

    def nowhere() -> str | None:  # a server whose jobs' Ray driver is not connected
        asked.append("address")
        return None

    with pytest.raises(ReplicasPending, match="needs a server connected to a Ray cluster"):
        connect(_spec(), None, None, tmp_path, nowhere)  # type: ignore[arg-type]
    assert asked == ["address"]  # the server's own provider, not state left by another
    with pytest.raises(ReplicasPending, match="needs a server connected to a Ray cluster"):
        connect(_spec(), None, None, tmp_path)  # type: ignore[arg-type]
    assert ray_replicas.no_cluster() is None
