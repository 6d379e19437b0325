"""How many SQL statements placement takes: a tick that starts N jobs costs the same as one
that starts one (one UPDATE for all of them, one batch of events), on both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from aimass.executors.local import LocalExecutor
from aimass.jobs import service
from aimass.jobs.entities import JobCreate
from aimass.scheduler.placement import NodeCapacity
from aimass.scheduler.scheduler import Scheduler
from aimass.store.db import Database

pytestmark = pytest.mark.slow

TARGETS_DIR = Path(__file__).parents[1] / "executors"
TARGETS = {"sleep": "job_targets:sleep"}


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The statements this thread sends while the block runs (not the executor's threads)."""
    seen: list[str] = []
    me = threading.get_ident()

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == me:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _tick_starting(db: Database, tmp_path: Path, n: int) -> tuple[list[str], list[int]]:
    """A first placement tick over ``n`` queued jobs that all fit: its statements, the started."""
    spec = JobCreate.model_validate({"kind": "train", "entry": "sleep", "params": {"seconds": 5}})
    with db.session() as s:
        ids = [service.submit_job(s, "default", spec, {"sleep": None}).id for _ in range(n)]
    executor = LocalExecutor(TARGETS, gpus=[], python_path=[TARGETS_DIR])
    scheduler = Scheduler(
        db, executor, NodeCapacity(cpu=n, gpu=0), scratch_root=tmp_path / f"scratch-{n}"
    )
    try:
        scheduler.leadership.try_acquire()  # taking the lease is not placement's cost
        with _statements(db) as seen:
            report = scheduler.place()
        with db.session() as s:
            for job_id in ids:  # started, each with its event, before anything ran
                job = service.read_job(s, job_id)
                assert (job.state, job.attempt) == ("running", 1)
                running = [e for e in service.list_job_events(s, job_id) if e.state == "running"]
                assert [e.attempt for e in running] == [1]
            for job_id in ids:  # ended here: they hold no capacity in the next tick
                service.finish_attempt(s, job_id, 1, "succeeded")
        return seen, report.started
    finally:
        scheduler.leadership.release()
        executor.close()


def test_a_tick_that_starts_six_jobs_takes_as_many_statements_as_one_that_starts_one(
    db: Database, tmp_path: Path
) -> None:
    one, started_one = _tick_starting(db, tmp_path, 1)
    six, started_six = _tick_starting(db, tmp_path, 6)
    assert len(started_one) == 1
    assert len(started_six) == 6
    assert len(six) == len(one), "\n".join(six)
    # And few: the fence, the running attempts, the queue's head, the starts (UPDATE, their
    # projects, their events), the waiting reasons at most.
    assert len(one) <= 8, "\n".join(one)


def test_a_success_is_recorded_in_four_statements_with_its_outputs_event_and_tokens_gone(
    db: Database,
) -> None:
    from aimass.auth.service import authenticate, create_job_token
    from aimass.errors import Conflict, Unauthenticated
    from aimass.jobs.records import merge_outputs

    spec = JobCreate.model_validate({"kind": "train", "entry": "sleep"})
    with db.session() as s:
        job_id = service.submit_job(s, "default", spec, {"sleep": None}).id
        attempt = service.start_attempt(s, job_id, "node-a", 30.0).attempt
        secret = create_job_token(s, job_id, attempt, "default")
    with db.session() as s:  # reported by the runtime while it ran
        merge_outputs(s, job_id, attempt, {"early": 1})
    with _statements(db) as seen, db.session() as s:
        service.end_attempt(s, job_id, attempt, "succeeded", outputs={"accuracy": 0.9})
    # The fenced UPDATE, the merged outputs, the event, the tokens' delete.
    assert len(seen) <= 4, "\n".join(seen)
    with db.session() as s:
        job = service.read_job(s, job_id)
        assert job.state == "succeeded"
        assert job.outputs == {"early": 1, "accuracy": 0.9}
        assert [e.state for e in service.list_job_events(s, job_id)][-1] == "succeeded"
    with pytest.raises(Unauthenticated), db.session() as s:  # its token went with it
        authenticate(s, secret)
    with pytest.raises(Conflict), db.session() as s:  # a second end of it is refused
        service.end_attempt(s, job_id, attempt, "failed", reason="late")
