"""Starting and stopping this process's scheduler and executor (``Settings.jobs``)."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.orm import Session

from aimass.api.state import AppState
from aimass.executors.base import Executor
from aimass.jobs import service as jobs_service
from aimass.jobs.entities import Job, JobCreate
from aimass.jobs.logs import archive_log
from aimass.pipelines.runner import PipelineRunner
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler, local_capacity
from aimass.schedules.runner import ScheduleRunner

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
    start_workflows(state)


def start_workflows(state: AppState) -> None:
    """Start the pipeline runner and the schedule runner (safe in every server process)."""
    catalog = state.catalog

    def submit(session: Session, project: str, spec: JobCreate) -> Job:
        return jobs_service.submit_job(session, project, spec, catalog)

    def notify() -> None:  # on the event loop, after the runner's tick committed
        if state.scheduler is not None:
            state.scheduler.wake()
        if state.pipeline_runner is not None:
            state.pipeline_runner.wake()

    state.pipeline_runner = PipelineRunner(state.db, submit, notify=notify)
    state.schedule_runner = ScheduleRunner(state.db, submit, notify=notify)
    state.pipeline_runner.start()
    state.schedule_runner.start()


async def stop_jobs(state: AppState) -> None:
    """Stop the runners and the scheduler, then end every attempt this process runs."""
    for loop in (state.schedule_runner, state.pipeline_runner):
        if loop is not None:
            await loop.stop()
    if state.scheduler is not None:
        await state.scheduler.stop()
    if state.executor is not None:
        await asyncio.to_thread(state.executor.close)
