"""Acting on the autoscaling policy: one decision per node, every worker follows it.

Every worker of the node runs an :class:`Autoscaler`. Each tick it writes its
ongoing requests for each autoscaled deployment (their mean since its last tick)
to a small file in the deployment's folder under the runner folder; the worker
that holds that folder's lock file is the node's leader for the deployment: it
sums the workers' fresh files, asks :func:`~aimass.serving.autoscale.decide` and
writes the count to ``desired``. Every worker (the leader too) then grows or
shrinks its :class:`~aimass.serving.replica_pool.ReplicaPool` to that count:
replica ``i`` of every worker is the same runner process, so the node runs that
many. A worker that ends drops the lock and the next one takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aimass.entities.deployments import Autoscaling
from aimass.loop_service import LoopService
from aimass.serving.autoscale import Sample, ScaleState, decide
from aimass.serving.replica_pool import ReplicaPool
from aimass.serving.repository import ModelRepository

log = logging.getLogger("aimass.serving")

#: A worker's sample older than this is not counted (the worker stopped).
SAMPLE_STALE_S = 3.0
#: Seconds before trying again to start a replica that failed to start.
GROW_RETRY_S = 5.0
#: A follower whose leader has not written ``desired`` for this long keeps its count.
DESIRED_STALE_S = 10.0


@dataclass
class _Lead:
    """This worker's part in one deployment's scaling on the node."""

    folder: Path
    lock: int | None = None  # the lock file's descriptor while this worker leads
    state: ScaleState = field(default_factory=ScaleState)
    desired: int | None = None
    last: tuple[float, float] | None = None  # (time, area) at the previous sample
    task: asyncio.Task[None] | None = None
    hold_until: float = 0.0  # after a replica failed to start: no new try before this


class NodeScale:
    """The files one node's workers share per autoscaled deployment (blocking I/O)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.sample_name = f"w{os.getpid()}"

    def folder_for(self, key: str) -> Path:
        """The deployment's folder (``key`` names it on the node), in the runner folder."""
        if self.folder is None:
            from aimass.flavors.sandboxed import runner_folder

            self.folder = runner_folder()
        return self.folder / f"scale-{hashlib.sha256(key.encode()).hexdigest()[:24]}"

    def exchange(self, lead: _Lead, config: Autoscaling, ongoing: float, current: int) -> int:
        """Publish this worker's ``ongoing``; lead if it can; return the node's count."""
        lead.folder.mkdir(mode=0o700, exist_ok=True)
        _write(lead.folder / self.sample_name, f"{ongoing:.6f}")
        if lead.lock is None:
            fd = os.open(lead.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lead.lock = fd
                lead.state = ScaleState()  # a new leader starts from what it sees now
                lead.desired = _read_desired(lead.folder) or current
            except BlockingIOError:
                os.close(fd)
        if lead.lock is not None:
            total = _sum_samples(lead.folder)
            count = lead.desired if lead.desired is not None else current
            lead.desired = decide(config, lead.state, count, Sample(time.monotonic(), total))
            _write(lead.folder / "desired", str(lead.desired))
            return lead.desired
        desired = _read_desired(lead.folder)
        return desired if desired is not None else current

    def forget(self, lead: _Lead) -> None:
        """Leave the deployment: drop the sample file and the lock."""
        with contextlib.suppress(OSError):
            (lead.folder / self.sample_name).unlink()
        if lead.lock is not None:
            os.close(lead.lock)
            lead.lock = None


class Autoscaler(LoopService):
    """Every tick: sample this worker's autoscaled pools, agree on counts, follow them."""

    name = "autoscaler"

    def __init__(
        self, repository: ModelRepository, folder: Path | None = None, interval: float = 0.5
    ) -> None:
        super().__init__(interval)
        self.repository = repository
        self.node = NodeScale(folder)
        self._leads: dict[str, _Lead] = {}

    def pools(self) -> dict[str, list[ReplicaPool]]:
        """This worker's autoscaled pools by the deployment's node-wide key."""
        found: dict[str, list[ReplicaPool]] = {}
        for deployment in self.repository.all():
            for served in deployment.versions:
                runner = served.runner
                if isinstance(runner, ReplicaPool) and runner.autoscaling is not None:
                    found.setdefault(runner.scale_key, []).append(runner)
        return found

    async def run_once(self) -> None:
        """One sample and decision per autoscaled deployment."""
        pools = self.pools()
        for key in [k for k in self._leads if k not in pools]:
            await asyncio.to_thread(self.node.forget, self._leads.pop(key))
        for key, group in pools.items():
            lead = self._leads.get(key)
            if lead is None:
                folder = await asyncio.to_thread(self.node.folder_for, key)
                lead = self._leads[key] = _Lead(folder)
            config = group[0].autoscaling
            assert config is not None
            ongoing = _mean_ongoing(lead, group)
            current = max(p.replicas + p.starting for p in group)
            desired = await asyncio.to_thread(self.node.exchange, lead, config, ongoing, current)
            for pool in group:
                pool.desired = desired
            if (lead.task is None or lead.task.done()) and time.monotonic() >= lead.hold_until:
                lead.task = asyncio.create_task(self._follow(lead, group, desired))

    async def _follow(self, lead: _Lead, pools: list[ReplicaPool], desired: int) -> None:
        """Grow (loading first) or shrink (draining) each pool to ``desired`` replicas; after a
        replica failed to start, wait ``GROW_RETRY_S`` before trying again."""
        for pool in pools:
            missing = desired - pool.replicas - pool.starting
            if missing > 0:
                started = await asyncio.gather(*(pool.grow() for _ in range(missing)))
                if not all(started):
                    lead.hold_until = time.monotonic() + GROW_RETRY_S
            while pool.replicas > max(desired, 1) and pool.starting == 0:
                pool.shrink()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and leave every deployment (the lock passes to another worker)."""
        await super().stop(timeout)
        for lead in self._leads.values():
            if lead.task is not None:
                lead.task.cancel()
            self.node.forget(lead)
        self._leads.clear()


def _mean_ongoing(lead: _Lead, pools: list[ReplicaPool]) -> float:
    """The pools' mean ongoing requests since the previous tick (the count now, the first time)."""
    now, area = 0.0, 0.0
    for pool in pools:
        now, part = pool.area()
        area += part
    last, lead.last = lead.last, (now, area)
    if last is None or now <= last[0] or area < last[1]:
        return float(sum(p.ongoing for p in pools))
    return (area - last[1]) / (now - last[0])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _sum_samples(folder: Path) -> float:
    total = 0.0
    now = time.time()
    for path in folder.glob("w*"):
        try:
            if now - path.stat().st_mtime > SAMPLE_STALE_S:
                continue
            total += float(path.read_text() or 0)
        except (OSError, ValueError):
            continue
    return total


def _read_desired(folder: Path) -> int | None:
    path = folder / "desired"
    try:
        if time.time() - path.stat().st_mtime > DESIRED_STALE_S:
            return None
        return int(path.read_text())
    except (OSError, ValueError):
        return None


class ReplicaCollector(Collector):
    """``aimass_deployment_replicas``: the runner processes each autoscaled deployment sends
    requests to on this node (and the count its autoscaler wants), read at scrape time.

    Every worker of a node follows the node's one decision, so the worker that answers
    the scrape speaks for the node (a machine collector: exported as it is).
    """

    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def collect(self) -> Iterator[Metric]:
        """One sample per autoscaled deployment this process serves."""
        live = GaugeMetricFamily(
            "aimass_deployment_replicas",
            "Replicas (runner processes) of an autoscaled deployment taking traffic on this node.",
            labels=["project", "deployment"],
        )
        wanted = GaugeMetricFamily(
            "aimass_deployment_replicas_desired",
            "Replicas the node's autoscaler wants for the deployment.",
            labels=["project", "deployment"],
        )
        for deployment in self.repository.all():
            pools = [v.runner for v in deployment.versions if isinstance(v.runner, ReplicaPool)]
            if not pools:
                continue
            labels = [deployment.project, deployment.name]
            count = max(p.replicas for p in pools)
            live.add_metric(labels, count)
            wanted.add_metric(labels, max(p.desired or count for p in pools))
        yield live
        yield wanted
