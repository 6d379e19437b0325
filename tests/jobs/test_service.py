"""The job state machine and fenced attempt writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pydantic import BaseModel, ConfigDict, JsonValue

from aimass.errors import Conflict, NotFound, Unprocessable
from aimass.jobs import records, service
from aimass.jobs.entities import JobCreate
from aimass.store.db import Database
from aimass.store.orm import utcnow


class _LogisticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = 1.0
    max_iter: int = 100


def _logistic(params: dict[str, JsonValue]) -> dict[str, JsonValue]:
    return _LogisticParams.model_validate(params).model_dump()


ENTRIES = {"script": None, "sklearn.logistic_regression": _logistic}


def _submit(db: Database, **fields: object) -> int:
    spec = JobCreate.model_validate({"kind": "script", "entry": "script", **fields})
    with db.session() as s:
        return service.submit_job(s, "default", spec, ENTRIES).id


def _start(db: Database, job_id: int, lease_s: float = 30.0) -> int:
    with db.session() as s:
        return service.start_attempt(s, job_id, "node-a", lease_s).attempt


def test_submit_validates_entry_params_and_dataset_and_queues_nothing(db: Database) -> None:
    bad = [
        ({"kind": "train", "entry": "no.such.model"}, Unprocessable, "unknown entry"),
        (
            {"kind": "train", "entry": "sklearn.logistic_regression", "params": {"C": "x"}},
            Unprocessable,
            "params.C",
        ),
        (
            {"kind": "train", "entry": "sklearn.logistic_regression", "params": {"depth": 3}},
            Unprocessable,
            "params.depth",
        ),
        ({"kind": "train", "entry": "script", "dataset": "missing"}, NotFound, "dataset"),
    ]
    for fields, error, words in bad:
        with pytest.raises(error, match=words), db.session() as s:
            service.submit_job(s, "default", JobCreate.model_validate(fields), ENTRIES)
    with db.session() as s:
        assert service.list_jobs(s, "default") == []
        job = service.submit_job(
            s,
            "default",
            JobCreate(kind="train", entry="sklearn.logistic_regression", params={"C": 0.5}),
            ENTRIES,
        )
    assert job.state == "queued" and job.attempt == 0
    assert job.params == {"C": 0.5, "max_iter": 100}


def test_a_job_runs_through_its_states_with_a_history(db: Database) -> None:
    job_id = _submit(db, params={"x": 1})
    attempt = _start(db, job_id)
    with db.session() as s:
        records.record_metric(s, job_id, attempt, "loss", 0.5, step=1)
        done = service.finish_attempt(s, job_id, attempt, "succeeded", outputs={"model": "m:1"})
    assert done.state == "succeeded" and done.attempt == 1 and done.outputs == {"model": "m:1"}
    assert done.finished_at is not None and done.lease_expires_at is None
    with db.session() as s:
        events = service.list_job_events(s, job_id)
        metrics = records.list_metrics(s, job_id)
        assert [j.id for j in service.list_jobs(s, "default", state="succeeded")] == [job_id]
        assert service.list_jobs(s, "default", state="queued") == []
    assert [e.state for e in events] == ["queued", "running", "succeeded"]
    assert [(m.name, m.step, m.value) for m in metrics] == [("loss", 1, 0.5)]


def test_a_superseded_attempt_cannot_write(db: Database) -> None:
    job_id = _submit(db, max_retries=0)
    first = _start(db, job_id, lease_s=1)
    with db.session() as s:
        assert service.expire_leases(s, utcnow() + timedelta(seconds=5)) == [job_id]
    with db.session() as s:
        requeued = service.read_job(s, job_id)
    assert requeued.state == "queued" and requeued.retries_used == 0
    assert requeued.infra_requeues == 1 and "lost its lease" in (requeued.reason or "")
    with pytest.raises(Conflict, match="attempt 1 is no longer current"), db.session() as s:
        service.renew_lease(s, job_id, first, 30)  # queued now: nobody's attempt is current
    second = _start(db, job_id)
    assert second == 2
    late_writes = [
        lambda s: records.record_metric(s, job_id, first, "loss", 9.0, step=1),
        lambda s: records.record_checkpoint(s, job_id, first, 5, "ckpt/late", "0" * 64),
        lambda s: service.renew_lease(s, job_id, first, 30),
        lambda s: service.finish_attempt(s, job_id, first, "succeeded"),
    ]
    for write in late_writes:
        with pytest.raises(Conflict, match="attempt 1 is no longer current"), db.session() as s:
            write(s)
    with db.session() as s:
        records.record_checkpoint(s, job_id, second, 7, "ckpt/7", "a" * 64)
        service.finish_attempt(s, job_id, second, "succeeded")
    with pytest.raises(Conflict), db.session() as s:
        service.finish_attempt(s, job_id, second, "failed", reason="late")
    with db.session() as s:
        job = service.read_job(s, job_id)
        checkpoint = records.latest_checkpoint(s, job_id)
        assert records.list_metrics(s, job_id) == []
    assert job.state == "succeeded" and job.retries_used == 0
    assert checkpoint is not None and (checkpoint.attempt, checkpoint.step) == (2, 7)


def test_exactly_one_concurrent_finish_wins(db: Database) -> None:
    job_id = _submit(db)
    attempt = _start(db, job_id)
    barrier = threading.Barrier(4)
    wins: list[str] = []
    conflicts: list[str] = []

    def finish(outcome: str) -> None:
        barrier.wait()
        try:
            with db.session() as s:
                service.finish_attempt(s, job_id, attempt, outcome)  # type: ignore[arg-type]
            wins.append(outcome)
        except Conflict:
            conflicts.append(outcome)

    threads = [
        threading.Thread(target=finish, args=(o,))
        for o in ("succeeded", "failed", "succeeded", "failed")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(conflicts) == 3
    with db.session() as s:
        job = service.read_job(s, job_id)
        events = service.list_job_events(s, job_id)
    assert job.state == wins[0]
    assert [e.state for e in events].count(wins[0]) == 1


def test_a_code_failure_uses_the_retry_budget_with_backoff(db: Database) -> None:
    job_id = _submit(db, max_retries=2)
    delays = []
    for expected_retry in (1, 2):
        attempt = _start(db, job_id)
        now = utcnow()
        with db.session() as s:
            job = service.finish_attempt(
                s, job_id, attempt, "failed", reason="ValueError: bad", now=now
            )
        assert job.state == "queued" and job.retries_used == expected_retry
        assert job.next_attempt_at is not None
        delays.append((job.next_attempt_at - now).total_seconds())
        assert f"retry {expected_retry} of 2" in (job.reason or "")
    assert delays == [service.RETRY_BACKOFF_BASE_S, service.RETRY_BACKOFF_BASE_S * 2]
    attempt = _start(db, job_id)
    with db.session() as s:
        job = service.finish_attempt(s, job_id, attempt, "failed", reason="ValueError: bad")
    assert job.state == "failed" and job.reason == "ValueError: bad" and job.attempt == 3


def test_infrastructure_failures_do_not_use_the_budget_but_are_capped(db: Database) -> None:
    job_id = _submit(db, max_retries=1)
    for _ in range(service.MAX_INFRA_REQUEUES):
        attempt = _start(db, job_id)
        with db.session() as s:
            job = service.finish_attempt(
                s, job_id, attempt, "failed", reason="killed by SIGKILL", infra=True
            )
        assert job.state == "queued" and job.retries_used == 0 and job.next_attempt_at is None
    attempt = _start(db, job_id)
    with db.session() as s:
        job = service.finish_attempt(s, job_id, attempt, "failed", reason="lost", infra=True)
    assert job.state == "failed"
    assert "gave up after 10 infrastructure failures" in (job.reason or "")


def test_a_running_job_past_its_timeout_fails(db: Database) -> None:
    job_id = _submit(db, timeout_s=5)
    other = _submit(db)
    _start(db, job_id)
    _start(db, other)
    with db.session() as s:
        started = service.read_job(s, job_id).started_at
        assert started is not None
        assert service.enforce_timeouts(s, started + timedelta(seconds=3)) == []
        assert service.enforce_timeouts(s, started + timedelta(seconds=6)) == [job_id]
        job = service.read_job(s, job_id)
        assert service.read_job(s, other).state == "running"
    assert job.state == "failed" and job.reason == "timed out after 5 s"


def test_cancel_and_retry(db: Database) -> None:
    queued = _submit(db)
    running = _submit(db)
    attempt = _start(db, running)
    with db.session() as s:
        assert service.cancel_job(s, queued).state == "cancelled"
        marked = service.cancel_job(s, running)
    assert marked.state == "running" and marked.cancel_requested
    with db.session() as s:
        # The executor killed it: whatever the exit looked like, it ends cancelled.
        job = service.finish_attempt(s, running, attempt, "failed", reason="SIGTERM", infra=True)
    assert job.state == "cancelled"
    with db.session() as s:
        retried = service.retry_job(s, running)
        assert retried.state == "queued" and not retried.cancel_requested
        assert retried.retries_used == 0 and retried.infra_requeues == 0
        with pytest.raises(Conflict, match="only failed or cancelled"):
            service.retry_job(s, running)
    attempt = _start(db, running)
    assert attempt == 2
    with db.session() as s:
        service.finish_attempt(s, running, attempt, "succeeded")
    with pytest.raises(Conflict, match="already succeeded"), db.session() as s:
        service.cancel_job(s, running)
    with pytest.raises(NotFound), db.session() as s:
        service.read_job(s, running, project="elsewhere")


def test_waiting_reasons_are_written_only_when_they_change(db: Database) -> None:
    job_id = _submit(db)
    with db.session() as s:
        other = service.submit_job(s, "default", JobCreate(kind="script", entry="script"), ENTRIES)
        assert service.set_waiting_reasons(s, {job_id: "waiting: a", other.id: "waiting: a"}) == 2
        assert service.set_waiting_reasons(s, {job_id: "waiting: a", other.id: "waiting: b"}) == 1
        assert service.set_waiting_reasons(s, {job_id: "waiting: a"}) == 0
        assert service.read_job(s, job_id).reason == "waiting: a"
        assert service.read_job(s, other.id).reason == "waiting: b"
