"""The metric series a job page draws: downsampled in the database, so a long run stays cheap."""

from __future__ import annotations

import pytest

from aimass.jobs import records, service
from aimass.jobs.entities import JobCreate
from aimass.store.db import Database

pytestmark = pytest.mark.backend("sqlite")  # slow end to end: one backend (tests/conftest.py)


def _running_job(db: Database) -> tuple[int, int]:
    spec = JobCreate.model_validate({"kind": "script", "entry": "script"})
    with db.session() as s:
        job_id = service.submit_job(s, "default", spec, {"script": None}).id
    with db.session() as s:
        return job_id, service.start_attempt(s, job_id, "node-a", 30.0).attempt


def test_a_long_series_comes_back_one_point_a_run_and_a_short_one_whole(db: Database) -> None:
    job_id, attempt = _running_job(db)
    loss = [("loss", float(step % 10), step) for step in range(1, 1001)]
    acc = [("acc", 0.5, step) for step in range(1, 4)]
    with db.session() as s:
        records.record_metrics(s, job_id, attempt, loss + acc)
    with db.session() as s:
        chart = records.chart_metrics(s, job_id, max_points=100)
        only_loss = records.chart_metrics(s, job_id, max_points=100, name="loss")
    long = [m for m in chart if m.name == "loss"]
    assert len(long) == 100
    assert [m.step for m in long] == list(range(1, 1001, 10))  # runs of 10 steps, the first
    assert all(m.value == 1.0 for m in long)  # each run's first point's value
    assert [(m.step, m.value) for m in chart if m.name == "acc"] == [(1, 0.5), (2, 0.5), (3, 0.5)]
    assert only_loss == long


def test_sparse_steps_and_a_second_name_keep_their_own_runs(db: Database) -> None:
    job_id, attempt = _running_job(db)
    sparse = [("lr", 0.1 * step, step) for step in range(0, 10_000, 7)]  # 1429 points
    with db.session() as s:
        records.record_metrics(s, job_id, attempt, [*sparse, ("acc", 0.9, 5)])
    with db.session() as s:
        chart = records.chart_metrics(s, job_id, max_points=50)
    lr = [m.step for m in chart if m.name == "lr"]
    assert 45 <= len(lr) <= 50 and lr == sorted(lr) and lr[0] == 0
    assert all(step % 7 == 0 for step in lr)  # real points, never made up
    assert [m.step for m in chart if m.name == "acc"] == [5]
