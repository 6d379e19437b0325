"""Starting and stopping this process's scheduler and executor (``Settings.jobs``)."""

from __future__ import annotations

import asyncio
import glob
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from aimass.api.state import AppState
from aimass.config import Settings
from aimass.errors import Unavailable
from aimass.executors.base import Executor
from aimass.jobs import service as jobs_service
from aimass.jobs.entities import Job, JobCreate
from aimass.jobs.logs import archive_log
from aimass.pipelines.runner import PipelineRunner
from aimass.sandbox import Sandbox, bwrap_path, safe_env
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler, local_capacity
from aimass.schedules.runner import ScheduleRunner

#: Imported once in the local executor's zygote, so a job's process starts warm.
PRELOAD = ("aimass.runtime", "aimass.client", "httpx", "numpy", "pandas", "sklearn")


def check_job_sandbox(settings: Settings) -> None:
    """Refuse to start jobs unsandboxed by accident: bubblewrap must exist when asked for."""
    if settings.jobs and settings.job_sandbox == "bwrap" and bwrap_path() is None:
        raise Unavailable(
            "jobs run in a bubblewrap sandbox and bubblewrap is not installed: "
            "apt-get install -y bubblewrap, or start with --job-sandbox none (unsafe: "
            "job code can then read the server's database, token and artifacts)"
        )


def job_sandbox(settings: Settings) -> Sandbox | None:
    """The sandbox every job attempt runs in (issue 9 item 5), or None when turned off.

    Job code reaches the platform only over HTTP with its attempt token, so it
    sees none of the server's home (database, token file, artifacts, spool),
    the OS user's home, a local artifact root or SQLite folder elsewhere, nor
    the server's environment; it may write only the scratch and log folders.
    """
    if settings.job_sandbox == "none":
        return None
    check_job_sandbox(settings)
    hidden = [settings.home, Path.home()]
    artifacts = settings.resolved_artifacts
    if artifacts.startswith("file://"):
        artifacts = artifacts.removeprefix("file://")
    if "://" not in artifacts:
        hidden.append(Path(artifacts))
    database = _sqlite_path(settings.resolved_database_url)
    if database is not None:
        hidden.append(database.parent)
    # "/" or a system folder would hide the interpreter itself; the sandbox never shows those.
    safe = [p.resolve() for p in hidden if p.is_dir() and len(p.resolve().parts) > 1]
    return Sandbox(
        hidden=sorted(set(safe)),
        writable=[settings.scratch_root, settings.job_log_dir],
        env=safe_env(),
        network=True,  # attempts talk HTTP to this server
        devices=sorted(glob.glob("/dev/nvidia*")),
    )


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def _executor(state: AppState) -> tuple[Executor, NodeCapacity]:
    settings = state.settings
    targets = state.catalog.targets()
    sandbox = job_sandbox(settings)
    if settings.job_executor == "ray":
        from aimass.executors.ray import RayExecutor, ray_capacity

        ray_executor = RayExecutor(
            targets,
            address=settings.ray_address,
            log_dir=settings.job_log_dir,
            sandbox=sandbox,
            temp_dir=settings.home / "ray",
        )
        return ray_executor, ray_capacity()
    from aimass.executors.local import LocalExecutor, detect_gpus

    gpus = detect_gpus()
    local = LocalExecutor(
        targets, gpus=gpus, log_dir=settings.job_log_dir, preload=PRELOAD, sandbox=sandbox
    )
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
