"""Resource-aware placement: which queued jobs start now, and why the others wait.

Pure functions over data: no database, no clock, no processes. The queue is
taken in priority order (higher first), first come first served within a
priority. A job that fits the node but not its free resources right now holds
back every job after it (no backfill), so a big job is never starved by a
stream of small ones. Jobs that can never fit, jobs in retry backoff and jobs
over their project's limit do not hold anyone back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from aimass.executors.base import NodeCapacity
from aimass.jobs.entities import Resources

__all__ = ["NodeCapacity", "Placeable", "Placement", "never_fits", "place"]


class Placeable(Protocol):
    """What placement reads of a job: a ``Job``, or the queue's lighter ``QueuedJob``."""

    @property
    def id(self) -> int: ...
    @property
    def project(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def resources(self) -> Resources: ...


J = TypeVar("J", bound=Placeable)

#: Free capacity below this counts as none (float sums of fractional CPUs).
_EPSILON = 1e-9


@dataclass
class Placement(Generic[J]):
    """The outcome of one placement pass."""

    start: list[J] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)


def _plural(n: float, word: str) -> str:
    shown = f"{n:g}"
    return f"{shown} {word}" if shown == "1" else f"{shown} {word}s"


def _needs(resources: Resources) -> str:
    parts = [_plural(resources.cpu, "CPU")]
    if resources.gpu:
        parts.append(_plural(resources.gpu, "GPU"))
    if resources.memory_mb is not None:
        parts.append(f"{resources.memory_mb} MB of memory")
    return ", ".join(parts)


def never_fits(resources: Resources, capacity: NodeCapacity) -> str | None:
    """Why a job can never run on this node, or None if an idle node could run it."""
    if resources.gpu > capacity.gpu:
        if capacity.gpu == 0:
            return f"waiting: needs {_plural(resources.gpu, 'GPU')}; no node has one"
        return (
            f"waiting: needs {_plural(resources.gpu, 'GPU')}; the largest node has {capacity.gpu}"
        )
    if resources.cpu > capacity.cpu + _EPSILON:
        return (
            f"waiting: needs {_plural(resources.cpu, 'CPU')}; the largest node has {capacity.cpu:g}"
        )
    if capacity.custom is not None:
        for name, amount in sorted(resources.custom.items()):
            if amount > capacity.custom.get(name, 0.0) + _EPSILON:
                return (
                    f"waiting: needs custom resource {name!r} ({amount:g}); the local executor "
                    "offers none (custom resources label Ray nodes: run jobs with --executor ray)"
                )
    if (
        resources.memory_mb is not None
        and capacity.memory_mb is not None
        and resources.memory_mb > capacity.memory_mb
    ):
        return (
            f"waiting: needs {resources.memory_mb} MB of memory; "
            f"the largest node has {capacity.memory_mb} MB"
        )
    return None


@dataclass
class _Free:
    cpu: float
    gpu: int
    memory_mb: float

    def fits(self, r: Resources) -> bool:
        memory = r.memory_mb or 0
        return r.cpu <= self.cpu + _EPSILON and r.gpu <= self.gpu and memory <= self.memory_mb

    def take(self, r: Resources) -> None:
        self.cpu -= r.cpu
        self.gpu -= r.gpu
        self.memory_mb -= r.memory_mb or 0


def place(
    capacity: NodeCapacity,
    running: Sequence[Placeable],
    queue: Sequence[J],
    now: datetime,
    project_limits: Mapping[str, int] | None = None,
    default_project_limit: int | None = None,
) -> Placement[J]:
    """Choose the queued jobs to start now without over-committing CPU, GPU or memory."""
    limits = project_limits or {}
    free = _Free(
        cpu=capacity.cpu,
        gpu=capacity.gpu,
        memory_mb=math.inf if capacity.memory_mb is None else float(capacity.memory_mb),
    )
    for job in running:
        free.take(job.resources)
    per_project = Counter(job.project for job in running)
    ordered = sorted(queue, key=lambda j: (-j.priority, j.created_at, j.id))
    result: Placement[J] = Placement()
    blocker: J | None = None  # the first job that fits the node but not what is free
    for job in ordered:
        impossible = never_fits(job.resources, capacity)
        if impossible is not None:
            result.waiting[job.id] = impossible
            continue
        if job.next_attempt_at is not None and job.next_attempt_at > now:
            when = job.next_attempt_at.strftime("%H:%M:%S UTC")
            result.waiting[job.id] = f"waiting: retry backoff until {when}"
            continue
        limit = limits.get(job.project, default_project_limit)
        if limit is not None and per_project[job.project] >= limit:
            result.waiting[job.id] = (
                f"waiting: project {job.project!r} already runs "
                f"{_plural(per_project[job.project], 'job')} (its limit is {limit})"
            )
            continue
        if blocker is not None:
            # Worded without counts so a long queue's reasons do not change every tick.
            result.waiting[job.id] = "waiting: queued behind earlier or higher-priority jobs"
            continue
        if not free.fits(job.resources):
            result.waiting[job.id] = (
                f"waiting: needs {_needs(job.resources)}; {_free_words(free, capacity)} free"
            )
            blocker = job
            continue
        free.take(job.resources)
        per_project[job.project] += 1
        result.start.append(job)
    return result


def _free_words(free: _Free, capacity: NodeCapacity) -> str:
    parts = [f"{max(free.cpu, 0):g} of {capacity.cpu:g} CPUs"]
    if capacity.gpu:
        parts.append(f"{free.gpu} of {capacity.gpu} GPUs")
    if capacity.memory_mb is not None:
        parts.append(f"{max(free.memory_mb, 0):g} of {capacity.memory_mb} MB")
    return ", ".join(parts)
