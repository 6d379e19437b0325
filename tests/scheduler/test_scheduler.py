"""The Scheduler end to end with the LocalExecutor and real processes, on both backends."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aimass.executors.local import LocalExecutor
from aimass.jobs import service
from aimass.jobs.entities import Job, JobCreate
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Placement, Scheduler
from aimass.store.db import Database

pytestmark = pytest.mark.slow

TARGETS_DIR = Path(__file__).parents[1] / "executors"
TARGETS = {name: f"job_targets:{name}" for name in ("noop", "fail", "sleep")}
ENTRIES = dict.fromkeys(TARGETS)


@pytest.fixture
def scheduler(db: Database, tmp_path: Path) -> Iterator[Scheduler]:
    executor = LocalExecutor(TARGETS, gpus=[], python_path=[TARGETS_DIR])
    scheduler = Scheduler(
        db,
        executor,
        NodeCapacity(cpu=2, gpu=0),
        scratch_root=tmp_path / "scratch",
        lease_s=30,
        interval=5.0,
    )
    yield scheduler
    # The leader holds its own database connection: closed here, not by a later test's GC.
    scheduler.leadership.release()
    executor.close()


def _submit(db: Database, entry: str, **fields: object) -> int:
    spec = JobCreate.model_validate({"kind": "train", "entry": entry, **fields})
    with db.session() as s:
        return service.submit_job(s, "default", spec, ENTRIES).id


def _job(db: Database, job_id: int) -> Job:
    with db.session() as s:
        return service.read_job(s, job_id)


async def _until(
    db: Database, job_id: int, check: Callable[[Job], bool], timeout: float = 20.0
) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(db, job_id)
        if check(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck: {job.state} {job.reason}"
        await asyncio.sleep(0.02)


def _run(scheduler: Scheduler, body: Callable[[], object]) -> None:
    async def main() -> None:
        scheduler.start()
        try:
            await body()  # type: ignore[misc]
        finally:
            await scheduler.stop()

    asyncio.run(main())


def test_two_cpu_slots_run_three_jobs_two_at_a_time(db: Database, scheduler: Scheduler) -> None:
    ids = [_submit(db, "sleep", params={"seconds": 0.5}) for _ in range(3)]
    gpu_job = _submit(db, "noop", resources={"gpu": 1})

    async def body() -> None:
        scheduler.wake()
        jobs = [await _until(db, i, lambda j: j.state == "succeeded") for i in ids]
        spans = sorted((float(j.outputs["start"]), float(j.outputs["end"])) for j in jobs)  # type: ignore[arg-type]
        for moment, _ in spans:
            assert sum(start <= moment < end for start, end in spans) <= 2
        assert spans[1][0] < spans[0][1], "two jobs should have run side by side"
        assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.05
        waiting = _job(db, gpu_job)
        assert waiting.state == "queued"
        assert waiting.reason == "waiting: needs 1 GPU; no node has one"

    _run(scheduler, body)


def test_kill_9_requeues_without_using_the_budget(db: Database, scheduler: Scheduler) -> None:
    job_id = _submit(db, "sleep", params={"seconds": 1.0})
    executor = scheduler.executor
    assert isinstance(executor, LocalExecutor)

    async def body() -> None:
        scheduler.wake()
        await _until(db, job_id, lambda j: j.state == "running")
        while (pid := executor.pid_of(job_id)) is None:  # the DB says running a bit first
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        job = await _until(db, job_id, lambda j: j.state == "succeeded")
        assert job.attempt == 2 and job.retries_used == 0 and job.infra_requeues == 1
        with db.session() as s:
            reasons = [e.reason or "" for e in service.list_job_events(s, job_id)]
        assert any("killed by SIGKILL" in r for r in reasons)

    _run(scheduler, body)


def test_a_code_failure_fails_with_its_reason(db: Database, scheduler: Scheduler) -> None:
    job_id = _submit(db, "fail", params={"x": 7})

    async def body() -> None:
        scheduler.wake()
        job = await _until(db, job_id, lambda j: j.state == "failed")
        assert job.reason == "ValueError: bad input 7" and job.attempt == 1

    _run(scheduler, body)


def test_cancel_and_timeout_end_running_jobs(db: Database, scheduler: Scheduler) -> None:
    cancelled = _submit(db, "sleep", params={"seconds": 60})
    timed_out = _submit(db, "sleep", params={"seconds": 60}, timeout_s=0.5)
    executor = scheduler.executor
    assert isinstance(executor, LocalExecutor)

    async def body() -> None:
        scheduler.wake()
        await _until(db, cancelled, lambda j: j.state == "running")
        while (pid := executor.pid_of(cancelled)) is None:  # the DB says running a bit first
            await asyncio.sleep(0.01)
        with db.session() as s:
            service.cancel_job(s, cancelled)
        scheduler.wake()
        start = time.monotonic()
        job = await _until(db, cancelled, lambda j: j.state == "cancelled", timeout=5)
        assert time.monotonic() - start < 5 and job.reason == "cancelled by request"
        assert not Path(f"/proc/{pid}").exists()
        job = await _until(db, timed_out, lambda j: j.state == "failed", timeout=10)
        assert job.reason == "timed out after 0.5 s"

    _run(scheduler, body)


def test_only_the_leader_places_jobs(db: Database, scheduler: Scheduler, tmp_path: Path) -> None:
    # Long enough to still run when its node is read (an ended job's node is cleared).
    job_id = _submit(db, "sleep", params={"seconds": 30})
    other_executor = LocalExecutor(TARGETS, gpus=[], python_path=[TARGETS_DIR])
    other = Scheduler(db, other_executor, NodeCapacity(cpu=2), scratch_root=tmp_path / "other")
    try:
        assert scheduler.tick().leader
        report = other.tick()
        assert not report.leader and report.started == []
        assert _job(db, job_id).node == scheduler.node
    finally:
        other.leadership.release()
        scheduler.leadership.release()
        other_executor.close()


def test_with_its_placement_loop_the_scheduler_keeps_only_its_own_attempts(
    db: Database, scheduler: Scheduler
) -> None:
    """The platform's split: the "every process" half places nothing; ``Placement`` does."""
    placement = Placement(scheduler)
    job_id = _submit(db, "noop")

    async def main() -> None:
        await scheduler.run_once()
        assert _job(db, job_id).state == "queued", "the scheduler's own half places nothing"
        await placement.run_once()
        done = await _until(db, job_id, lambda j: j.state == "succeeded")
        assert done.attempt == 1

    try:
        asyncio.run(main())
    finally:
        scheduler.leadership.release()


class _ClusterAway(LocalExecutor):
    """An executor whose cluster is unreachable until ``back`` is set (as Ray's head lost)."""

    back = False

    def unavailable(self) -> str | None:
        return None if self.back else "the Ray head did not answer for 10 s"


def test_nothing_starts_while_the_executor_is_unavailable(db: Database, tmp_path: Path) -> None:
    executor = _ClusterAway(TARGETS, gpus=[], python_path=[TARGETS_DIR])
    scheduler = Scheduler(db, executor, NodeCapacity(cpu=2), scratch_root=tmp_path / "scratch")
    try:
        job_id = _submit(db, "noop")
        assert scheduler.tick().started == []
        waiting = _job(db, job_id)
        assert waiting.state == "queued" and waiting.attempt == 0
        assert waiting.reason == "waiting: the Ray head did not answer for 10 s"
        executor.back = True
        assert scheduler.tick().started == [job_id]
        asyncio.run(_until(db, job_id, lambda j: j.state == "succeeded"))
    finally:
        scheduler.leadership.release()
        executor.close()
