"""Each server process keeps its loaded models in line with the deployments table."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aimass.artifacts.store import ArtifactStore
from aimass.deployments import service
from aimass.deployments.entities import DesiredDeployment, ReplicaState, ResolvedVersion
from aimass.devices import assigned_gpus, detect_gpus
from aimass.errors import AimassError, InvalidInput, Unavailable
from aimass.flavors.base import Predictor
from aimass.flavors.registry import FlavorRegistry
from aimass.flavors.signature import Signature
from aimass.loop_service import LoopService
from aimass.serving import ray_replicas
from aimass.serving.ensemble import EnsembleMember, EnsembleRunner
from aimass.serving.gpu_placement import device_status, gpu_need, place_gpus
from aimass.serving.model_cache import local_copy
from aimass.serving.ray_replicas import RayAddress, RayReplicas, ReplicaSpec, ReplicasPending
from aimass.serving.replica_pool import ReplicaPool
from aimass.serving.repository import (
    BatchingConfig,
    ModelRepository,
    ServedDeployment,
    ServedVersion,
)
from aimass.serving.runner import ModelRunner, Runner
from aimass.store.db import Database

if TYPE_CHECKING:
    from aimass.plugins.registry import Registry
    from aimass.plugins.slots import FusionStrategy

log = logging.getLogger("aimass.deployments")
#: A replica's report: state, reason, versions and, after a passing failure, when it retries.
#: And, with runner "ray", each actor replica's (version, index, state, node); then the
#: device its model runs on.
_Placement = tuple[tuple[int, int, str, str | None], ...]
_Status = tuple[
    ReplicaState,
    str | None,
    tuple[int, ...],
    datetime | None,
    str | None,
    _Placement | None,
    str | None,
]
#: A deployment that failed to load is tried again after this, doubling up to RETRY_MAX_S.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
#: Ray actors a deployment no longer names (another version, replicas scaled away) end
#: this long after this server switched, so that the other servers have switched too.
STALE_ACTORS_GRACE_S = 30.0
#: Every this many ticks each status is written again, well inside the staleness window.
HEARTBEAT_TICKS = 20


def replica_id() -> str:
    """This process's name as a replica: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


#: Flavors that load in this process by default and that a runner process can serve
#: (``runner: "process"``); the code-bearing ones always run in a host process.
PROCESS_FLAVORS = frozenset({"onnx", "sklearn"})


class DeploymentReconciler(LoopService):
    """Loads, swaps and unloads deployments in this process to match the database.

    A swap builds the new deployment's runners first and then replaces the old
    one atomically, so requests in flight finish on the old runners. A model that
    fails to load marks its deployment failed with the reason, and the rest keep
    serving. A passing failure (not an ``AimassError``, or ``Unavailable``: a file
    not there yet, a host that went away) is tried again after 1 s, 2 s, 4 s ... up
    to a minute, and reported with the time of the next try (``retry_at``); a
    final one (a checksum mismatch, a model that may not load untrusted) is reported
    without one, so that ``Client.deployments.wait_ready`` gives up on it and waits
    through the others; it is still checked again on the same backoff (stored bytes
    restored from a backup bring the deployment up without a change).
    """

    name = "deployment-reconciler"

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        flavors: FlavorRegistry,
        repository: ModelRepository,
        cache_dir: Path,
        interval: float = 0.5,
        freeze_gc: bool = False,
        combiners: Registry[FusionStrategy] | None = None,
        max_queue_wait_s: float | None = None,
        ray_namespace: str = ray_replicas.RAY_NAMESPACE,
        shared_weights: bool = True,
        ray_address: RayAddress = ray_replicas.no_cluster,
        runner_own_cores: bool = False,
        gpus: list[str] | None = None,
    ) -> None:
        super().__init__(interval)
        #: Where this installation's Ray replica actors live (runner "ray").
        self.ray_namespace = ray_namespace
        #: Where the Ray cluster is that this process joins for replica actors (when the
        #: process is not on one yet); the Platform asks its jobs' Ray driver.
        self.ray_address = ray_address
        #: Load cached models in the form the node's processes share (``Flavor.load_cached``).
        self.shared_weights = shared_weights
        self.runner_own_cores = runner_own_cores
        #: A request that waited longer for its model's batch is refused (429), not run.
        self.max_queue_wait_s = max_queue_wait_s
        #: The fusion strategies an ensemble deployment may name.
        self.combiners = combiners
        self.freeze_gc = freeze_gc
        self.db = db
        self.store = store
        self.flavors = flavors
        self.repository = repository
        self.cache_dir = cache_dir
        self.replica = replica_id()
        #: The GPUs of this node (a deployment asking for more stays pending).
        self.gpus = detect_gpus() if gpus is None else gpus
        #: Each GPU deployment's GPUs on this node, or why it has none (``gpu_placement``).
        self._gpus_of: dict[int, tuple[str, ...] | str] = {}
        self._loaded: dict[int, tuple[object, ...]] = {}
        self._keys: dict[int, tuple[str, str]] = {}
        self._status: dict[int, _Status] = {}
        self._retry: dict[int, tuple[float, float]] = {}  # id -> (when, current backoff)
        #: Deployments served by Ray actor replicas (runner "ray"): their versions' routers.
        self._ray: dict[int, list[RayReplicas]] = {}
        self._reported: dict[int, tuple[object, ...]] = {}
        #: Deployments that may have Ray actors (loaded, or tried, with runner "ray").
        self._ray_ids: set[int] = set()
        self._ending: set[asyncio.Task[None]] = set()
        self._ticks = 0
        #: True once a pass has loaded (or failed) every deployment that was desired then.
        self.synced = False

    def _mark(self, item: DesiredDeployment) -> tuple[object, ...]:
        """What a loaded deployment was loaded as: a change in it (or in its GPUs) reloads it."""
        return (*item.fingerprint(), self._gpus_of.get(item.id))

    def _read_desired(self) -> list[DesiredDeployment]:
        with self.db.session() as session:
            return service.desired_deployments(session)

    async def run_once(self) -> None:
        """Compare desired and loaded deployments and act on the difference."""
        desired = await asyncio.to_thread(self._read_desired)
        wanted = {d.id: d for d in desired}
        removed = [i for i in self._loaded if i not in wanted]
        for deployment_id in list(self._loaded):
            if deployment_id not in wanted:
                project, name = self._keys.pop(deployment_id)
                self._loaded.pop(deployment_id)
                self._status.pop(deployment_id, None)
                self._retry.pop(deployment_id, None)
                self._reported.pop(deployment_id, None)
                self.repository.remove(name, project)
                self._ray.pop(deployment_id, None)
                if deployment_id in self._ray_ids:
                    self._ray_ids.discard(deployment_id)
                    await asyncio.to_thread(
                        ray_replicas.kill_actors, self.ray_namespace, deployment_id
                    )
                log.info("unloaded deployment %s/%s", project, name)
        needs = [need for need in map(gpu_need, desired) if need is not None]
        self._gpus_of = place_gpus(needs, self.gpus)
        now = time.monotonic()
        changed = [
            item
            for item in desired
            if self._loaded.get(item.id) != self._mark(item)
            or (item.id in self._retry and now >= self._retry[item.id][0])
        ]
        for item in desired:  # autoscaling settings apply without a reload
            self._set_autoscaling(item)
        # Load side by side: a slow model (or a slow library import) does not hold up the rest.
        await asyncio.gather(*(self._load(item) for item in changed))
        if changed and self.freeze_gc:
            gc.freeze()  # loaded models join the permanent generation: no rescans per GC
        if changed or removed:
            await asyncio.to_thread(_trim_heap)
        for item in changed:
            self._loaded[item.id] = self._mark(item)
            self._keys[item.id] = (item.project, item.name)
        self._ticks += 1
        self.synced = True
        if self._ticks % HEARTBEAT_TICKS == 0:  # rewrite reports so they do not go stale
            self._reported.clear()
        await asyncio.to_thread(self._report_all)

    async def _load(self, item: DesiredDeployment) -> None:
        gpus = self._gpus_of.get(item.id, ())
        if isinstance(gpus, str):
            # Never over-commit: a model that needs a GPU this node lacks (or has given to
            # an older deployment) waits, saying why.
            reason = gpus
            self.repository.remove(item.name, item.project)  # what it served before the change
            self.repository.set_state(item.name, item.project, "pending", reason)
            self._retry.pop(item.id, None)
            self._keys[item.id] = (item.project, item.name)
            self._remember(item.id, "pending", reason, [])
            return
        if not item.versions:
            self.repository.set_state(item.name, item.project, "failed", "no version to serve")
            self._remember(item.id, "failed", "no version to serve", [])
            return
        if self.repository.get(item.name, item.project) is None:
            self.repository.set_state(item.name, item.project, "loading")
        self._keys[item.id] = (item.project, item.name)
        self._remember(item.id, "loading", None, [v.version for v in item.versions])
        await asyncio.to_thread(self._report, item.id)
        batching = BatchingConfig(
            max_batch_size=item.batching.max_batch_size,
            max_delay_ms=item.batching.max_delay_ms,
            max_queue=item.batching.max_queue,
        )
        served: list[ServedVersion] = []
        try:
            for version in item.versions:
                first = await self._start_runner(version, item, batching)
                signature = first.signature
                runner: Runner = first
                if item.autoscaling is not None and _in_runner_process(first):
                    # (A flavor that cannot run in a runner process is not copied per worker.)
                    runner = await self._pool(version, item, batching, first)
                served.append(
                    ServedVersion(
                        model=version.model,
                        version=version.version,
                        weight=version.weight,
                        runner=runner,
                        signature=signature,
                        flavor=version.flavor,
                    )
                )
            if item.combiner is not None:
                served = [self._ensemble(item, served)]
        except ReplicasPending as exc:
            # Ray cannot run it now (no Ray, or no room): pending, looked at again later.
            for loaded in served:
                await loaded.runner.close()
            self.repository.set_state(item.name, item.project, "pending", exc.message)
            self._retry_later(item.id)
            self._remember(item.id, "pending", exc.message, [v.version for v in item.versions])
            return
        except Exception as exc:
            for loaded in served:  # the versions loaded before the failure: stop their hosts
                await loaded.runner.close()
            reason = exc.message if isinstance(exc, AimassError) else type(exc).__name__
            log.warning("deployment %s/%s failed to load: %s", item.project, item.name, reason)
            self.repository.set_state(item.name, item.project, "failed", reason)
            versions = [v.version for v in item.versions]
            backoff = self._retry_later(item.id)
            if isinstance(exc, AimassError) and not isinstance(exc, Unavailable):
                # Final for the user (no retry_at: wait_ready gives up), yet checked again
                # with the same backoff: restored bytes or a trust change bring it up.
                self._remember(item.id, "failed", reason, versions)
                return
            retry_at = datetime.now(UTC) + timedelta(seconds=backoff)
            self._remember(item.id, "failed", reason, versions, retry_at)
            return
        self.repository.put(
            ServedDeployment(
                name=item.name,
                project=item.project,
                versions=served,
                state="ready",
                reason=None,
            )
        )
        self._retry.pop(item.id, None)
        await self._track_ray(item, served)
        self._remember(
            item.id, "ready", None, [v.version for v in item.versions], runner=_runner(served),
            device=device_status(_predictors(served), self._replica_gpus(item, 0)),
        )  # fmt: skip
        log.info("deployment %s/%s ready", item.project, item.name)

    def _retry_later(self, deployment_id: int) -> float:
        """Schedule the next load of a deployment that failed or waits; return the backoff."""
        _, backoff = self._retry.get(deployment_id, (0.0, RETRY_FIRST_S / 2))
        backoff = min(backoff * 2, RETRY_MAX_S)
        self._retry[deployment_id] = (time.monotonic() + backoff, backoff)
        return backoff

    async def _track_ray(self, item: DesiredDeployment, served: list[ServedVersion]) -> None:
        """Remember a deployment's Ray routers; end the actors it no longer uses (another
        version's, replicas scaled away, all of them when it left runner "ray")."""
        routers = [p for p in _predictors(served) if isinstance(p, RayReplicas)]
        self._ray.pop(item.id, None)
        if routers:
            self._ray[item.id] = routers
        if item.id not in self._ray_ids:
            return
        if item.resources.runner != "ray":
            self._ray_ids.discard(item.id)
        task = asyncio.get_running_loop().create_task(self._end_stale(item.id))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end_stale(self, deployment_id: int, grace_s: float = STALE_ACTORS_GRACE_S) -> None:
        """After the grace, end the deployment's actors this server does not route to."""
        await asyncio.sleep(grace_s)
        keep = {name for r in self._ray.get(deployment_id, []) for name in r.spec.actor_names()}
        try:
            await asyncio.to_thread(
                ray_replicas.kill_actors, self.ray_namespace, deployment_id, keep
            )
        except Exception:
            log.exception("ending the stale Ray actors of deployment %d failed", deployment_id)

    async def _start_runner(
        self,
        version: ResolvedVersion,
        item: DesiredDeployment,
        batching: BatchingConfig,
        replica: int = 0,
    ) -> ModelRunner:
        """Load the version (replica ``replica``'s runner process) behind its batcher."""
        predictor, signature = await asyncio.to_thread(self._load_predictor, version, item, replica)
        # An ensemble batches once for all its members: they need no batcher.
        size = 1 if item.combiner is not None else batching.max_batch_size
        # Ray replicas take several batches at once (a few per live actor); others one.
        concurrency = predictor.batches_in_flight if isinstance(predictor, RayReplicas) else 1
        return ModelRunner(
            predictor,
            signature,
            size,
            batching.max_delay_ms,
            max_queue=batching.max_queue,
            max_wait_s=self.max_queue_wait_s,
            in_flight=self.repository.in_flight(item.name, item.project),
            max_concurrent_batches=concurrency,
        )

    async def _pool(
        self,
        version: ResolvedVersion,
        item: DesiredDeployment,
        batching: BatchingConfig,
        first: ModelRunner,
    ) -> ReplicaPool:
        """The version's replicas, autoscaled; ``min_replicas`` of them loaded before it serves."""
        assert item.autoscaling is not None

        async def spawn(index: int) -> ModelRunner:
            return await self._start_runner(version, item, batching, index)

        pool = ReplicaPool(first, spawn, name=f"{item.name}:{version.version}")
        pool.autoscaling = item.autoscaling
        pool.scale_key = "|".join((str(self.cache_dir), item.project, item.name))
        for _ in range(item.autoscaling.min_replicas - 1):
            if not await pool.grow():
                await pool.close()
                raise Unavailable(f"replica {pool.replicas} of {item.name} failed to start")
        return pool

    def _ensemble(self, item: DesiredDeployment, members: list[ServedVersion]) -> ServedVersion:
        """The members as one served version (numbered by the deployment's revision)."""
        combiner = item.combiner
        assert combiner is not None
        strategy = None
        if combiner.strategy not in ("stacking", "sequence"):
            if self.combiners is None:
                raise InvalidInput("this server has no fusion strategies")
            strategy = self.combiners.get(combiner.strategy)
        runner = EnsembleRunner(
            [
                EnsembleMember(m.model, m.version, m.weight, m.runner)
                for m in members
                if isinstance(m.runner, ModelRunner)
            ],
            strategy=strategy,
            meta=combiner.meta,
            sequence=combiner.strategy == "sequence",
            max_batch_size=item.batching.max_batch_size,
            max_delay_ms=item.batching.max_delay_ms,
            name=item.name,
            max_queue=item.batching.max_queue,
            max_wait_s=self.max_queue_wait_s,
            in_flight=self.repository.in_flight(item.name, item.project),
        )
        return ServedVersion(
            model=item.name,
            version=item.revision,
            weight=1.0,
            runner=runner,
            signature=runner.signature,
            flavor=f"ensemble:{combiner.strategy}",
        )

    def _load_predictor(
        self, version: ResolvedVersion, item: DesiredDeployment, replica: int = 0
    ) -> tuple[Predictor, Signature | None]:
        mode = item.resources.runner
        if mode == "ray":
            spec = ReplicaSpec(
                item.id, item.project, item.name, version, item.resources, item.replicas,
                self.ray_namespace,
            )  # fmt: skip
            flavor = self.flavors.get(version.flavor)
            self._ray_ids.add(item.id)  # from here on it may have actors to end
            router = ray_replicas.connect(
                spec, self.store, flavor, self.cache_dir, self.ray_address
            )
            return router, (
                Signature.model_validate(version.signature) if version.signature else None
            ) or router.signature
        with assigned_gpus(self._replica_gpus(item, replica)):  # the model goes there
            predictor = self._load_here(version, item, replica)
        signature = (
            Signature.model_validate(version.signature) if version.signature else None
        ) or predictor.signature
        return predictor, signature

    def _replica_gpus(self, item: DesiredDeployment, replica: int) -> tuple[str, ...]:
        """The node's GPUs given to one replica of the deployment (none: the CPU)."""
        gpus = self._gpus_of.get(item.id, ())
        if isinstance(gpus, str) or not item.resources.gpu:
            return ()
        each = item.resources.gpu
        return gpus[replica * each : (replica + 1) * each]

    def _load_here(
        self, version: ResolvedVersion, item: DesiredDeployment, replica: int
    ) -> Predictor:
        """Load the version in this worker, or start (or join) the node's runner process
        for it. A GPU deployment on ``auto`` runs in a runner process where its flavor can:
        one copy on its GPU per node, not one per worker."""
        mode = item.resources.runner
        if mode == "auto" and item.resources.gpu and version.flavor in PROCESS_FLAVORS:
            mode = "process"
        path = self._local_copy(version)
        flavor = self.flavors.get(version.flavor)
        load = flavor.load_cached if self.shared_weights else flavor.load
        if mode == "in_process":
            predictor = load(path, version.trusted)
        else:
            # One runner process per node for this model, whichever worker starts it: the
            # flavors that run in a host join it; "process" moves the others there too.
            from aimass.flavors.base import replica_threads
            from aimass.flavors.sandboxed import runner_folder, shared_runner, start_host

            key = "|".join(
                (str(self.cache_dir), item.project, item.name, version.model,
                 str(version.version), version.sha256, str(version.trusted))
            ) + (f"|replica{replica}" if replica else "")  # fmt: skip
            # The runner is the replica's own process: its CPU share sizes the model's pools.
            threads = replica_threads(item.resources.cpu)
            with shared_runner(runner_folder(), key, threads, own_cores=self.runner_own_cores):
                if mode == "process" and version.flavor in PROCESS_FLAVORS:
                    predictor = start_host(version.flavor, path, version.trusted)
                else:
                    predictor = load(path, version.trusted)
        return predictor

    def _set_autoscaling(self, item: DesiredDeployment) -> None:
        served = self.repository.get(item.name, item.project)
        if served is None or item.autoscaling is None:
            return
        for version in served.versions:
            if isinstance(version.runner, ReplicaPool):
                version.runner.autoscaling = item.autoscaling

    def _scale(self, deployment_id: int) -> tuple[int, int] | None:
        """(replicas taking traffic, replicas wanted) of an autoscaled deployment, else None."""
        key = self._keys.get(deployment_id)
        served = self.repository.get(key[1], key[0]) if key is not None else None
        pools = [
            v.runner
            for v in (served.versions if served else [])
            if isinstance(v.runner, ReplicaPool)
        ]
        if not pools:
            return None
        live = max(p.replicas for p in pools)
        desired = [p.desired for p in pools if p.desired is not None]
        return live, max(desired) if desired else live

    def _local_copy(self, version: ResolvedVersion) -> Path:
        """The verified bytes in a local cache keyed by checksum (shared by versions)."""
        return local_copy(self.store, self.cache_dir, version)

    def _remember(
        self,
        deployment_id: int,
        state: ReplicaState,
        reason: str | None,
        versions: list[int],
        retry_at: datetime | None = None,
        runner: str | None = None,
        device: str | None = None,
    ) -> None:
        self._status[deployment_id] = (
            state, reason, tuple(versions), retry_at, runner, self._placement(deployment_id),
            device,
        )  # fmt: skip

    def _placement(self, deployment_id: int) -> _Placement | None:
        routers = self._ray.get(deployment_id)
        if routers is None:
            return None
        return tuple((p.version, p.index, p.state, p.node) for r in routers for p in r.placement())

    def _report_all(self) -> None:
        """Write each deployment's status when it changed (and now and then, as a heartbeat)."""
        for deployment_id in list(self._status):
            current = self._status[deployment_id]
            if deployment_id in self._ray and current[0] == "ready":
                # Ray actors move and restart on their own: report what the probes saw.
                placement = self._placement(deployment_id)
                self._status[deployment_id] = (*current[:5], placement, current[6])
            self._report(deployment_id)

    def _report(self, deployment_id: int) -> None:
        status = self._status.get(deployment_id)
        if status is None:
            return
        scale = self._scale(deployment_id)
        current = (*status, scale)
        if self._reported.get(deployment_id) == current:
            return
        state, reason, versions, retry_at, runner, placement, device = status
        places: list[dict[str, object]] | None = None
        if placement is not None:
            places = [
                {"version": version, "index": index, "state": where, "node": node}
                for version, index, where, node in placement
            ]
        with self.db.session() as session:
            service.report_replica(
                session, deployment_id, self.replica, state, reason, list(versions), retry_at,
                runner, places, scale, device,
            )  # fmt: skip
        self._reported[deployment_id] = current


def _predictors(served: list[ServedVersion]) -> list[object]:
    """The predictors behind the served versions (an ensemble's: its members')."""
    found: list[object] = []
    for version in served:
        runner = version.runner
        members = getattr(getattr(runner, "ensemble", None), "members", None)
        if members:
            found.extend(m.runner.predictor for m in members)
        else:
            found.append(getattr(runner, "predictor", None))
    return found


def _in_runner_process(runner: ModelRunner) -> bool:
    """True when the runner's model lives in a runner process of the node (it can scale)."""
    from aimass.flavors.sandboxed import SandboxedPredictor, SharedHost

    predictor = runner.predictor
    return isinstance(predictor, SandboxedPredictor) and isinstance(predictor.host, SharedHost)


def _trim_heap() -> None:
    """Give the heap's free pages back to the system: glibc keeps what a load freed (the
    parsed protobuf, onnxruntime's temporary copies), ~100 MB per 100 MB model otherwise."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def _runner(served: list[ServedVersion]) -> str:
    """Where this replica runs the deployment's models (the first one that is not here)."""
    from aimass.flavors.sandboxed import SandboxedPredictor, SharedHost

    predictors = _predictors(served)
    if any(isinstance(p, RayReplicas) for p in predictors):
        return "ray"
    where = "in_process"
    for predictor in predictors:
        if isinstance(predictor, SandboxedPredictor):
            if isinstance(predictor.host, SharedHost):
                return "process"
            where = "worker_process"
    return where
