"""Schedules fire each due time exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aimass.errors import Conflict, InvalidInput, NotFound, Unprocessable
from aimass.jobs import service as jobs
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.submitting_loop import SubmitJob
from aimass.pipelines import service as pipelines
from aimass.pipelines.entities import PipelineCreate
from aimass.schedules import service
from aimass.schedules.entities import Schedule, ScheduleCreate, ScheduleUpdate
from aimass.schedules.runner import ScheduleRunner
from aimass.store.db import Database

T0 = datetime(2026, 1, 15, 10, 2, 30, tzinfo=UTC)  # a winter Thursday
JOB = {"kind": "train", "entry": "toy.train", "params": {"C": 0.5}}


def _create(db: Database, catalog: EntryCatalog, now: datetime = T0, **fields: Any) -> Schedule:
    spec = ScheduleCreate.model_validate(
        {"name": "every-5", "cron": "*/5 * * * *", "job": JOB, **fields}
    )
    with db.session() as session:
        return service.create_schedule(session, "default", spec, catalog, now=now)


def _fire(db: Database, submit: SubmitJob, now: datetime) -> list[int]:
    with db.session() as session:
        return service.fire_due(session, now, submit)


def _read(db: Database, name: str = "every-5") -> Schedule:
    with db.session() as session:
        return service.read_schedule(session, "default", name)


def _jobs(db: Database) -> int:
    with db.session() as session:
        return len(jobs.list_jobs(session, "default"))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"cron": "*/5 * * *"}, r"cron: '\*/5 \* \* \*' has 4 field\(s\); write 5"),
        ({"cron": "0 */5 * * * *"}, "has 6 field"),
        ({"cron": "61 * * * *"}, "cron: '61 .*' is not a valid cron expression"),
        ({"cron": "0 0 31 2 *"}, "cron: .* never matches a date"),
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        ({"job": {"kind": "train", "entry": "toy.nope"}}, "job: entry: unknown entry 'toy.nope'"),
        ({"job": {**JOB, "params": {"C": "x"}}}, r"job: entry 'toy.train': params\.C"),
        ({"job": {**JOB, "dataset_version": 2}}, "job.dataset_version: given without a dataset"),
        ({"job": {"kind": "script", "entry": "train.py:main"}}, "job.kind: a script job"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(
    db: Database, catalog: EntryCatalog, fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(Unprocessable, match=words):
        _create(db, catalog, **fields)
    with db.session() as session:
        assert service.list_schedules(session, "default") == []


def test_a_template_naming_what_does_not_exist_is_refused(
    db: Database, catalog: EntryCatalog
) -> None:
    with pytest.raises(NotFound, match=r"job\.dataset: .*'iris'"):
        _create(db, catalog, job={**JOB, "dataset": "iris"})
    with pytest.raises(NotFound, match="pipeline 'nightly' not found"):
        _create(db, catalog, job=None, pipeline="nightly")
    with pytest.raises(InvalidInput, match="schedule name"):
        _create(db, catalog, name="a/b")
    _create(db, catalog)
    with pytest.raises(Conflict, match="already exists"):
        _create(db, catalog)


def test_a_due_schedule_fires_once_per_time_however_often_it_is_asked(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    created = _create(db, catalog)
    assert created.next_run_at == datetime(2026, 1, 15, 10, 5, tzinfo=UTC)
    assert _fire(db, submit, T0 + timedelta(minutes=2)) == []  # 10:04:30, not yet
    due = datetime(2026, 1, 15, 10, 5, tzinfo=UTC)
    assert _fire(db, submit, due) == [created.id]
    assert _fire(db, submit, due) == []  # the same time, asked again
    schedule = _read(db)
    assert schedule.next_run_at == datetime(2026, 1, 15, 10, 10, tzinfo=UTC)
    assert schedule.last_run_at == due and schedule.last_error is None
    assert schedule.last_job_id is not None and _jobs(db) == 1
    with db.session() as session:
        job = jobs.read_job(session, schedule.last_job_id)
    assert (job.entry, job.params, job.state) == ("toy.train", {"C": 0.5}, "queued")


def test_two_racing_callers_fire_a_time_once(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    created = _create(db, catalog)
    due = created.next_run_at
    assert due is not None
    other: list[list[int]] = []
    with db.session() as first:
        mine = service.fire_due(first, due, submit)
        racer = threading.Thread(target=lambda: other.append(_fire(db, submit, due)))
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive()  # the second caller waits on the first's claim
    racer.join(timeout=30)
    assert mine == [created.id] and other == [[]]
    assert _jobs(db) == 1


def test_a_missed_window_fires_once_not_once_per_tick(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    _create(db, catalog)
    back = datetime(2026, 1, 15, 13, 1, tzinfo=UTC)  # the server was down for three hours
    assert len(_fire(db, submit, back)) == 1
    assert _fire(db, submit, back + timedelta(minutes=3)) == []
    assert _read(db).next_run_at == datetime(2026, 1, 15, 13, 5, tzinfo=UTC)
    assert _jobs(db) == 1


def test_disabled_schedules_never_fire_and_enabling_does_not_backfill(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    created = _create(db, catalog, enabled=False)
    assert created.next_run_at is None
    assert _fire(db, submit, T0 + timedelta(days=2)) == []
    _create(db, catalog, name="on")
    with db.session() as session:
        off = service.update_schedule(
            session, "default", "on", ScheduleUpdate(enabled=False), catalog, now=T0
        )
    assert off.next_run_at is None
    assert _fire(db, submit, T0 + timedelta(days=2)) == [] and _jobs(db) == 0
    later = T0 + timedelta(days=3)
    with db.session() as session:
        on = service.update_schedule(
            session, "default", "on", ScheduleUpdate(enabled=True), catalog, now=later
        )
    assert on.next_run_at == datetime(2026, 1, 18, 10, 5, tzinfo=UTC)
    assert _fire(db, submit, later) == []


def test_a_cron_follows_its_time_zone_and_changes_take_effect(
    db: Database, catalog: EntryCatalog
) -> None:
    created = _create(db, catalog, cron="0 3 * * *", timezone="Europe/Paris")
    assert created.next_run_at == datetime(2026, 1, 16, 2, 0, tzinfo=UTC)  # 03:00 CET
    with db.session() as session:
        changed = service.update_schedule(
            session, "default", "every-5", ScheduleUpdate(cron=" 30  *  * * * "), catalog, now=T0
        )
        assert changed.cron == "30 * * * *"
        assert changed.next_run_at == datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
        with pytest.raises(Unprocessable, match="cron:"):
            service.update_schedule(
                session, "default", "every-5", ScheduleUpdate(cron="nope"), catalog
            )
        with pytest.raises(Unprocessable, match="job: entry"):
            bad = ScheduleUpdate.model_validate({"job": {"kind": "train", "entry": "x"}})
            service.update_schedule(session, "default", "every-5", bad, catalog)
        service.delete_schedule(session, "default", "every-5")
        with pytest.raises(NotFound):
            service.read_schedule(session, "default", "every-5")


def test_a_schedule_starts_a_pipeline_run_and_reports_a_template_gone_stale(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    pipeline = PipelineCreate.model_validate(
        {"name": "nightly", "steps": [{"name": "t", "job": JOB}]}
    )
    with db.session() as session:
        pipelines.create_pipeline(session, "default", pipeline, catalog)
    created = _create(db, catalog, job=None, pipeline="nightly")  # made at T0, long past
    woken: list[int] = []
    runner = ScheduleRunner(db, submit, notify=lambda: woken.append(1))
    asyncio.run(runner.run_once())  # its missed time fires once, at the real now
    assert woken == [1]
    asyncio.run(runner.run_once())  # nothing is due until the next 5 minutes
    assert woken == [1]
    schedule = _read(db)
    assert schedule.last_pipeline_run_id is not None
    with db.session() as session:
        run = pipelines.read_run(session, schedule.last_pipeline_run_id)
        assert (run.pipeline, run.trigger, run.state) == ("nightly", "schedule every-5", "pending")
        pipelines.cancel_run(session, run.id)
        pipelines.delete_pipeline(session, "default", "nightly")
    assert schedule.next_run_at is not None and created.next_run_at is not None
    assert schedule.next_run_at > created.next_run_at
    assert runner.tick(schedule.next_run_at) == [created.id]
    stale = _read(db)
    assert stale.last_error == "pipeline 'nightly' not found in project 'default'"
    assert stale.next_run_at is not None and stale.next_run_at > schedule.next_run_at
