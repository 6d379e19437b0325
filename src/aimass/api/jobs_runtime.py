"""Starting and stopping this process's scheduler and executor (``Settings.jobs``)."""

from __future__ import annotations

import asyncio
from functools import partial

from aimass.api.state import AppState
from aimass.executors.base import Executor
from aimass.jobs.logs import archive_log
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler, local_capacity

#: Imported once in the local executor's zygote, so a job's process starts warm.
PRELOAD = ("aimass.runtime", "aimass.client", "httpx", "numpy", "pandas", "sklearn")


def _executor(state: AppState) -> tuple[Executor, NodeCapacity]:
    settings = state.settings
    targets = state.catalog.targets()
    if settings.job_executor == "ray":
        from aimass.executors.ray import RayExecutor, ray_capacity

        ray_executor = RayExecutor(
            targets, address=settings.ray_address, log_dir=settings.job_log_dir
        )
        return ray_executor, ray_capacity()
    from aimass.executors.local import LocalExecutor, detect_gpus

    gpus = detect_gpus()
    local = LocalExecutor(targets, gpus=gpus, log_dir=settings.job_log_dir, preload=PRELOAD)
    capacity = local_capacity(len(gpus))
    if settings.job_slots is not None:
        capacity = NodeCapacity(cpu=settings.job_slots, gpu=capacity.gpu, memory_mb=None)
    return local, capacity


def start_jobs(state: AppState) -> None:
    """Start the executor and the scheduler loop (on the running event loop)."""
    settings = state.settings
    executor, capacity = _executor(state)
    state.executor = executor
    state.scheduler = Scheduler(
        state.db,
        executor,
        capacity,
        scratch_root=settings.scratch_root,
        lease_s=settings.job_lease_s,
        interval=1.0,
        heartbeat_children=False,  # the runtime in each job sends its own heartbeats
        server_url=settings.resolved_public_url,
        on_attempt_end=partial(archive_log, state.store, settings.job_log_dir),
    )
    state.scheduler.start()


async def stop_jobs(state: AppState) -> None:
    """Stop the scheduler, then end every attempt this process runs."""
    if state.scheduler is not None:
        await state.scheduler.stop()
    if state.executor is not None:
        await asyncio.to_thread(state.executor.close)
