"""Deployment replicas as Ray actors (``resources.runner: "ray"``), shared by every server.

Ray Serve's replica actors are the anchor: each replica is one detached, named
actor hosting one model version, asking Ray for the deployment's ``num_cpus``,
``num_gpus`` and ``memory`` and placed by Ray with the ``SPREAD`` strategy (one
per node while nodes are free). Names are per (deployment, version, resources,
replica index) in one namespace, and actors are created with ``get_if_exists``,
so every aimass server on the cluster gets handles to the same actors instead of
creating its own. An actor loads its model from the artifact store into a cache
on its node, the way the in-process loader does, and Ray restarts it when it
dies (``max_restarts=-1``).

On each server the version's ``ModelRunner`` batches as usual and hands each
closed batch to :class:`RayReplicas`, its predictor, which sends it to one live
actor (fewest batches in flight from this server, ties in turn). The batcher keeps
up to ``DEPTH`` batches per live actor in flight (``batches_in_flight``), each on
its own thread, so one server's traffic uses every replica. A call that
fails because its actor died (``RayActorError``) marks that actor down and runs
the batch again on another one: Ray does not retry it itself
(``max_task_retries=0``), since waiting for the dead actor's restart (a model
load) would hold the batch longer than moving it. A probe thread asks each actor
every second where it runs (its Ray node) and brings a restarted one back into
rotation. A server's view lags Ray's (an actor may be back before its probe
says so, and another may die meanwhile), so a batch that the replicas believed
alive have failed tries those marked down too, and one that every replica has
failed waits up to ``RESTART_WAIT_S`` for the probe to see one come back before
the server answers 503. A deployment Ray cannot place anywhere (more CPUs, GPUs or memory per
replica than any node has), or whose actors Ray has not started within
``READY_TIMEOUT_S``, raises :class:`ReplicasPending` with the reason.
``kill_actors`` ends a deployment's actors when it is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.deployments.entities import (
    PlacementState,
    ReplicaPlacement,
    ResolvedVersion,
    Resources,
)
from aimass.errors import Unavailable
from aimass.flavors.signature import Signature
from aimass.serving.ray_actor import ReplicaActor

if TYPE_CHECKING:
    from aimass.artifacts.store import ArtifactStore
    from aimass.flavors.base import Array, Batch, Flavor

log = logging.getLogger("aimass.serving.ray")

#: The Ray namespace of the replica actors unless the settings name another.
RAY_NAMESPACE = "aimass-serving"
#: How long a load waits for Ray to start a first replica before calling the deployment pending.
READY_TIMEOUT_S = 60.0
#: After the first replica answers, how long the load waits for the others (they join later).
REST_TIMEOUT_S = 5.0
#: How often each server asks its replicas where they run and whether they answer.
PROBE_INTERVAL_S = 1.0
#: Batches one server keeps in flight per live replica: one runs while the next crosses.
DEPTH = 2
#: How long a batch that every replica has failed waits for one to come back (Ray restarts
#: them) before the server answers 503.
RESTART_WAIT_S = 10.0
_MIB = 1 << 20

#: Where the Ray cluster is that a server not on one yet joins for replica actors, or None.
RayAddress = Callable[[], "str | None"]


def no_cluster() -> str | None:
    """The ``RayAddress`` of a server that knows of no Ray cluster."""
    return None


class ReplicasPending(Exception):
    """Ray cannot run the replicas now (no Ray connection, or nowhere to place them)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ReplicaSpec:
    """What a deployment's Ray replicas of one version are: their names and resources."""

    deployment_id: int
    project: str
    name: str
    version: ResolvedVersion
    resources: Resources
    replicas: int
    namespace: str = RAY_NAMESPACE

    def actor_name(self, index: int) -> str:
        """The actor's name in ``RAY_NAMESPACE``; a change of resources makes new names."""
        res = self.resources
        shape = f"{res.cpu:g}|{res.gpu}|{res.memory_mb or 0}|{self.version.trusted}"
        tag = hashlib.sha256(shape.encode()).hexdigest()[:8]
        v = self.version
        return (
            f"{deployment_prefix(self.deployment_id)}{self.project}/{self.name}/"
            f"{v.model}/v{v.version}/{v.sha256[:12]}/{tag}/r{index}"
        )

    def actor_names(self) -> list[str]:
        """Every replica's actor name."""
        return [self.actor_name(i) for i in range(self.replicas)]

    def actor_options(self) -> dict[str, Any]:
        """``ActorClass.options`` for one replica: resources, placement, restarts, name."""
        res = self.resources
        options: dict[str, Any] = {
            "namespace": self.namespace,
            "lifetime": "detached",
            "get_if_exists": True,
            "num_cpus": res.cpu,
            "num_gpus": res.gpu,
            "scheduling_strategy": "SPREAD",
            "max_restarts": -1,
            "max_task_retries": 0,
        }
        if res.memory_mb is not None:
            options["memory"] = res.memory_mb * _MIB
        return options


def deployment_prefix(deployment_id: int) -> str:
    """The start of every actor name of one deployment."""
    return f"aimass/d{deployment_id}/"


@dataclass
class _Replica:
    index: int
    handle: Any
    state: PlacementState = "pending"
    node: str | None = None
    in_flight: int = 0
    probe: Any = None  # the info call not answered yet
    #: How many times the probe saw it come alive: a call that failed on an older
    #: incarnation says nothing about this one.
    generation: int = 0


class RayReplicas:
    """The predictor of a ``runner: "ray"`` version on one server: routes batches to actors.

    Called from the version's batch thread (``predict``...) and its own probe thread.
    """

    def __init__(
        self,
        spec: ReplicaSpec,
        handles: Sequence[Any],
        facts: Mapping[str, Any],
        ray: Any,
        restart_wait_s: float = RESTART_WAIT_S,
    ) -> None:
        from aimass.executors.ray_nodes import RayNodes

        self.spec = spec
        self._ray = ray
        self._nodes = RayNodes(ray)
        self._replicas = [_Replica(i, handle) for i, handle in enumerate(handles)]
        self._restart_wait_s = restart_wait_s
        self._lock = threading.Lock()
        #: Notified when a replica comes alive (or probing stops): batches wait on it.
        self._back = threading.Condition(self._lock)
        self._turn = 0
        raw = facts.get("signature")
        self.signature = None if raw is None else Signature.model_validate(raw)
        if facts.get("named"):
            self.predict_named = self._predict_named
        self._stop = threading.Event()
        self._prober = threading.Thread(
            target=self._probe_loop, name=f"aimass-ray-{spec.name}", daemon=True
        )

    def start(self, first: Mapping[int, Mapping[str, Any]]) -> None:
        """Record the replicas that answered during the load, then probe the rest."""
        for index, facts in first.items():
            self._alive(self._replicas[index], facts)
        self._prober.start()

    # -- the predictor ----------------------------------------------------------

    def predict(self, batch: Batch) -> Array:
        """The model's predict on one replica."""
        result: Array = self._call("predict", batch, None)
        return result

    def predict_proba(self, batch: Batch) -> Array | None:
        """The model's class probabilities on one replica (None when it has none)."""
        result: Array | None = self._call("predict_proba", batch, None)
        return result

    def _predict_named(self, batch: Batch, names: list[str]) -> dict[str, Array]:
        result: dict[str, Array] = self._call("predict_named", batch, list(names))
        return result

    def batches_in_flight(self) -> int:
        """How many batches this server may send at once: ``DEPTH`` per live replica
        (one for the restarting ones while none is live)."""
        with self._lock:
            live = sum(r.state == "alive" for r in self._replicas)
        return max(1, live * DEPTH)

    def close(self) -> None:
        """Stop probing; the actors stay for the other servers (``kill_actors`` ends them)."""
        self._stop.set()
        with self._back:
            self._back.notify_all()

    # -- status -----------------------------------------------------------------

    def placement(self) -> list[ReplicaPlacement]:
        """Each replica's state and node as this server last saw them."""
        with self._lock:
            return [
                ReplicaPlacement(
                    version=self.spec.version.version,
                    index=r.index,
                    state=r.state,
                    node=r.node,
                )
                for r in self._replicas
            ]

    # -- routing ----------------------------------------------------------------

    def _call(self, method: str, batch: Batch, names: list[str] | None) -> Any:
        """Run on one replica; when its actor died, on another one, until one answers.

        Inference has no side effect, so a batch whose actor died under it (even one that
        may have run it: ``ActorUnavailableError``) is safe to run again elsewhere. The
        replicas believed alive come first, then those marked down (Ray may have
        restarted one before the probe saw it). A replica that failed this batch is tried
        again only once the probe has seen it come back, and none after ``restart_wait_s``
        from the first failure (an actor may die in every call); then the server answers 503.
        """
        ray = self._ray
        failed: dict[int, int] = {}  # replica index: its generation when it failed the batch
        last: BaseException | None = None
        give_up = float("inf")
        while time.monotonic() < give_up:
            picked = self._pick(failed)
            if picked is None:
                give_up = min(give_up, time.monotonic() + self._restart_wait_s)
                if self._wait_for_one_back(failed, give_up):
                    continue
                break
            replica, generation = picked
            try:
                ok, value = ray.get(replica.handle.call.remote(method, batch, names))
            except ray.exceptions.RayActorError as exc:
                log.warning("Ray replica %s died in a call: %s", replica.index, exc)
                self._down(replica, generation)
                failed[replica.index] = generation
                last = exc
                give_up = min(give_up, time.monotonic() + self._restart_wait_s)
                continue
            finally:
                with self._lock:
                    replica.in_flight -= 1
            if not ok:
                raise value
            return value
        detail = f": {type(last).__name__}" if last is not None else ""
        raise Unavailable(
            f"no Ray replica of {self.spec.name!r} answers{detail}; they are restarting",
            retry_after=1,
        )

    def _untried(self, failed: Mapping[int, int]) -> list[_Replica]:
        """The replicas that may take the batch: placed by Ray, and not failed it in this
        incarnation (in turn order). Call with the lock held."""
        count = len(self._replicas)
        start = self._turn % count
        ordered = self._replicas[start:] + self._replicas[:start]
        return [
            r for r in ordered if r.state != "pending" and failed.get(r.index, -1) != r.generation
        ]

    def _pick(self, failed: Mapping[int, int]) -> tuple[_Replica, int] | None:
        """The live replica with the fewest batches in flight (ties in turn), else one that
        is restarting, with its generation; never one Ray has not placed, nor one that
        failed this batch and has not come back since."""
        with self._lock:
            fresh = self._untried(failed)
            self._turn += 1
            live = [r for r in fresh if r.state == "alive"]
            candidates = live or fresh
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: r.in_flight)
            chosen.in_flight += 1
            return chosen, chosen.generation

    def _wait_for_one_back(self, failed: Mapping[int, int], give_up: float) -> bool:
        """Wait until a replica that failed the batch comes back; False at ``give_up``
        or once probing stopped."""
        with self._back:
            while not self._untried(failed):
                left = give_up - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._back.wait(left)
            return True

    def _down(self, replica: _Replica, generation: int) -> None:
        """Mark the replica down, unless the failure was its previous incarnation's."""
        with self._lock:
            if replica.state == "alive" and replica.generation == generation:
                replica.state = "restarting"

    def _alive(self, replica: _Replica, facts: Mapping[str, Any]) -> None:
        node = self._nodes.node_name(str(facts["node"]))
        with self._back:
            if replica.state != "alive":
                replica.generation += 1
                self._back.notify_all()
            replica.state = "alive"
            replica.node = node

    # -- probing ----------------------------------------------------------------

    def _probe_loop(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            try:
                self._probe_once()
            except Exception:
                log.exception("probing the Ray replicas of %s failed", self.spec.name)

    def _probe_once(self) -> None:
        """Ask each replica where it runs; one call outstanding per replica at most."""
        ray = self._ray
        for replica in self._replicas:
            if replica.probe is None:
                replica.probe = replica.handle.info.remote()
        waiting = [r.probe for r in self._replicas]
        done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=PROBE_INTERVAL_S)
        finished = {ref.hex() for ref in done}
        for replica in self._replicas:
            if replica.probe is None or replica.probe.hex() not in finished:
                continue
            ref, replica.probe = replica.probe, None
            try:
                facts = ray.get(ref)
            except ray.exceptions.RayActorError:
                self._down(replica, replica.generation)
                continue
            self._alive(replica, facts)


def connect(
    spec: ReplicaSpec,
    store: ArtifactStore,
    flavor: Flavor,
    cache_dir: Path,
    address: RayAddress = no_cluster,
    ready_timeout_s: float = READY_TIMEOUT_S,
    restart_wait_s: float = RESTART_WAIT_S,
) -> RayReplicas:
    """Create (or join) the version's replica actors and wait for a first one to answer.

    A process not on a Ray cluster yet joins the one at ``address()`` first (the
    jobs' Ray driver runs in a child process, so the server itself joins only once
    it serves a ``runner: "ray"`` deployment). Raises ``ReplicasPending`` without a
    Ray connection, when no node could hold a replica, or when Ray has started none
    within ``ready_timeout_s``; a model that fails to load raises ``Unavailable``
    with the replica's reason.
    """
    ray = _connected_ray(address)
    reason = unplaceable(spec.resources, ray.nodes())
    if reason is not None:
        raise ReplicasPending(reason)
    actor_class = ray.remote(ReplicaActor)
    handles = [
        actor_class.options(name=spec.actor_name(i), **spec.actor_options()).remote(
            store, flavor, spec.version.model_dump(), str(cache_dir)
        )
        for i in range(spec.replicas)
    ]
    refs = [handle.info.remote() for handle in handles]
    started = time.monotonic()
    done, _ = ray.wait(refs, num_returns=1, timeout=ready_timeout_s)
    if done:
        rest = max(0.0, min(REST_TIMEOUT_S, ready_timeout_s - (time.monotonic() - started)))
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=rest)
    answered: dict[int, dict[str, Any]] = {}
    for index, ref in enumerate(refs):
        if ref in done:
            with contextlib.suppress(ray.exceptions.RayActorError):
                answered[index] = ray.get(ref)
    if not answered:
        raise ReplicasPending(
            f"Ray has started none of the {spec.replicas} replicas in {ready_timeout_s:g} s "
            f"(each needs {_needs(spec.resources)}); waiting for room on the cluster"
        )
    errors = [facts["error"] for facts in answered.values() if facts.get("error")]
    if errors:
        kill_actors(spec.namespace, spec.deployment_id, only=spec.actor_names())
        raise Unavailable(f"the Ray replica could not load the model: {errors[0]}")
    replicas = RayReplicas(spec, handles, next(iter(answered.values())), ray, restart_wait_s)
    replicas.start(answered)
    return replicas


def unplaceable(resources: Resources, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no alive Ray node could ever hold one replica, or None when one could."""
    need = {"CPU": resources.cpu, "GPU": float(resources.gpu)}
    if resources.memory_mb is not None:
        need["memory"] = float(resources.memory_mb * _MIB)
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    for held in alive:
        if all(held.get(key, 0.0) >= amount for key, amount in need.items() if amount > 0):
            return None
    if not alive:
        return "the Ray cluster has no live node"
    most_cpu = max(h.get("CPU", 0.0) for h in alive)
    most_gpu = max(h.get("GPU", 0.0) for h in alive)
    return (
        f"each replica needs {_needs(resources)}; no Ray node has that "
        f"(the largest has {most_cpu:g} CPUs, {most_gpu:g} GPUs)"
    )


def _needs(resources: Resources) -> str:
    parts = [f"{resources.cpu:g} CPU"]
    if resources.gpu:
        parts.append(f"{resources.gpu} GPU")
    if resources.memory_mb is not None:
        parts.append(f"{resources.memory_mb} MB")
    return ", ".join(parts)


# ``ray.init`` is per process: one join at a time.
_join_lock = threading.Lock()


def _connected_ray(address: RayAddress) -> Any:
    """The ``ray`` module, joined to the cluster at ``address()`` unless already on one."""
    try:
        import ray
    except ImportError as exc:
        raise ReplicasPending("runner 'ray' needs Ray: install aimass[ray]") from exc
    with _join_lock:
        where = None if ray.is_initialized() else address()
        if where is not None:
            try:
                ray.init(
                    address=where, ignore_reinit_error=True, log_to_driver=False,
                    include_dashboard=False,
                )  # fmt: skip
            except Exception as exc:  # the cluster went away meanwhile: wait and retry
                raise ReplicasPending(f"cannot join the Ray cluster at {where}: {exc}") from exc
    if not ray.is_initialized():
        raise ReplicasPending(
            "runner 'ray' needs a server connected to a Ray cluster (aimass server --executor ray)"
        )
    return ray


def kill_actors(
    namespace: str,
    deployment_id: int,
    keep: Collection[str] = (),
    only: Collection[str] | None = None,
) -> int:
    """End a deployment's replica actors in ``namespace`` (all, or ``only`` those), except
    those in ``keep``.

    Returns how many it killed; nothing without a Ray connection.
    """
    try:
        import ray
    except ImportError:
        return 0
    if not ray.is_initialized():
        return 0
    prefix = deployment_prefix(deployment_id)
    killed = 0
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry.get("name", "")
        if entry.get("namespace") != namespace or not name.startswith(prefix):
            continue
        if name in keep or (only is not None and name not in only):
            continue
        try:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        except ValueError:  # gone meanwhile
            continue
        killed += 1
    if killed:
        log.info("killed %d Ray replica actors of deployment %d", killed, deployment_id)
    return killed
