"""The jobs side of a process: its sandbox, executor, scheduler and the job-submitting runners.

Built by ``Platform.start`` when ``Settings.jobs`` is on (the executor starts
processes, so nothing here runs before the platform starts).
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from aimass.artifacts.store import ArtifactStore
from aimass.config import Settings
from aimass.errors import Unavailable
from aimass.executors.base import Executor, NodeCapacity
from aimass.jobs import service as jobs_service
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import Job, JobCreate
from aimass.jobs.log_chunks import LogShipper
from aimass.jobs.logs import archive_log
from aimass.pipelines.runner import PipelineRunner
from aimass.sandbox import Sandbox, bwrap_path, safe_env
from aimass.scheduler.leader import Leadership
from aimass.scheduler.scheduler import Placement, Scheduler, local_capacity
from aimass.schedules.runner import ScheduleRunner
from aimass.store.db import Database

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


def build_executor(settings: Settings, catalog: EntryCatalog) -> tuple[Executor, NodeCapacity]:
    """The executor ``settings`` name (local or Ray) and the capacity it places into."""
    targets = catalog.targets()
    sandbox = job_sandbox(settings)
    if settings.job_executor == "ray":
        from aimass.executors.ray import joined_address
        from aimass.executors.ray_process import RayProcessExecutor

        ray_executor = RayProcessExecutor(
            targets,
            head_lost_s=settings.ray_head_lost_s,
            address=settings.ray_address or joined_address(),
            log_dir=settings.job_log_dir,
            sandbox=sandbox,
            temp_dir=settings.home / "ray",
        )
        return ray_executor, ray_executor.capacity
    from aimass.devices import detect_gpus
    from aimass.executors.local import LocalExecutor

    gpus = detect_gpus(settings.gpus)
    local = LocalExecutor(
        targets,
        gpus=gpus,
        log_dir=settings.job_log_dir,
        preload=PRELOAD,
        light=catalog.light(),
        sandbox=sandbox,
    )
    capacity = local_capacity(len(gpus))
    if settings.job_slots is not None:
        capacity = NodeCapacity(cpu=settings.job_slots, gpu=capacity.gpu, memory_mb=None)
    # No custom resources here: a job asking for one waits, saying it needs Ray.
    capacity = replace(capacity, custom={})
    return local, capacity


def _archive(store: ArtifactStore, log_dir: Path, job_id: int, attempt: int) -> None:
    """An attempt ended: archive its whole log (the scheduler then drops the chunks shipped
    while it ran, in the transaction that records the end)."""
    archive_log(store, log_dir, job_id, attempt)


@dataclass(frozen=True)
class JobServices:
    """The jobs side of one process, built together."""

    executor: Executor
    scheduler: Scheduler
    log_shipper: LogShipper
    placement: Placement
    pipeline_runner: PipelineRunner
    schedule_runner: ScheduleRunner


def build_jobs(
    settings: Settings,
    db: Database,
    store: ArtifactStore,
    catalog: EntryCatalog,
    leadership: Leadership,
    notify_jobs: Callable[[], None],
) -> JobServices:
    """Build the executor, the scheduler (sharing ``leadership``), its placement, the runners.

    ``notify_jobs`` is called after a runner's tick queued jobs (``notify("jobs")``).
    """
    executor, capacity = build_executor(settings, catalog)
    scheduler = Scheduler(
        db,
        executor,
        capacity,
        scratch_root=settings.scratch_root,
        lease_s=settings.job_lease_s,
        interval=1.0,
        leadership=leadership,
        heartbeat_children=False,  # the runtime in each job sends its own heartbeats
        server_url=settings.resolved_public_url,
        on_attempt_end=partial(_archive, store, settings.job_log_dir),
    )

    def submit(session: Session, project: str, spec: JobCreate) -> Job:
        return jobs_service.submit_job(session, project, spec, catalog)

    pipeline_runner = PipelineRunner(db, submit, notify=notify_jobs)
    schedule_runner = ScheduleRunner(db, submit, notify=notify_jobs)
    # Leader-only writes carry the leader's epoch: a superseded leader's tick changes nothing.
    pipeline_runner.fence = schedule_runner.fence = leadership.fence
    return JobServices(
        executor=executor,
        scheduler=scheduler,
        log_shipper=LogShipper(db, settings.job_log_dir, executor.active),
        placement=Placement(scheduler),
        pipeline_runner=pipeline_runner,
        schedule_runner=schedule_runner,
    )
