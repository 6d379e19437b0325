"""Pipeline runs advanced step by step against real job rows, on SQLite and PostgreSQL.

The jobs' states are driven through ``jobs.service`` (start_attempt /
finish_attempt with outputs), as an executor would, so no executor is needed.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from aimass.jobs import service as jobs
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import Outcome
from aimass.jobs.submitting_loop import SubmitJob
from aimass.pipelines import service
from aimass.pipelines.entities import PipelineCreate, PipelineRun
from aimass.pipelines.runner import PipelineRunner, advance_run
from aimass.registry import service as registry
from aimass.store.db import Database
from pipelines.conftest import PROMOTE

TRAIN = {"name": "train", "job": {"kind": "train", "entry": "toy.train"}}
EVALUATE = {
    "name": "evaluate",
    "needs": ["train"],
    "job": {
        "kind": "evaluate",
        "entry": "toy.evaluate",
        "params": {"model_version": {"from": "steps.train.outputs.model_version"}},
    },
}
ANNOUNCE = {
    "name": "announce",
    "needs": ["promote"],
    "job": {"kind": "train", "entry": "toy.train", "params": {"C": 2.0}},
}


def _start(db: Database, catalog: EntryCatalog, *steps: dict[str, Any]) -> int:
    spec = PipelineCreate.model_validate({"name": "nightly", "steps": list(steps)})
    with db.session() as session:
        service.create_pipeline(session, "default", spec, catalog)
        return service.start_run(session, "default", "nightly").id


def _advance(db: Database, run_id: int, submit: SubmitJob) -> list[int]:
    with db.session() as session:
        return advance_run(session, run_id, submit)


def _run(db: Database, run_id: int) -> PipelineRun:
    with db.session() as session:
        return service.read_run(session, run_id)


def _states(run: PipelineRun) -> dict[str, str]:
    return {s.name: s.state for s in run.steps}


def _finish(db: Database, job_id: int, outcome: Outcome = "succeeded", **outputs: Any) -> None:
    with db.session() as session:
        attempt = jobs.start_attempt(session, job_id, "node-a", 30.0).attempt
        jobs.finish_attempt(
            session,
            job_id,
            attempt,
            outcome,
            reason="boom",
            outputs=outputs,
        )


def _drive(db: Database, submit: SubmitJob, run_id: int, f1: float) -> PipelineRun:
    (train_job,) = _advance(db, run_id, submit)
    assert _advance(db, run_id, submit) == []  # nothing moves while the job runs
    _finish(db, train_job, model_version=2)
    (evaluate_job,) = _advance(db, run_id, submit)
    with db.session() as session:
        assert jobs.read_job(session, evaluate_job).params["model_version"] == 2
    _finish(db, evaluate_job, metrics={"f1": f1})
    _advance(db, run_id, submit)
    return _run(db, run_id)


def test_train_evaluate_promote_moves_the_alias_when_f1_beats_it(
    iris: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    run_id = _start(iris, catalog, TRAIN, EVALUATE, PROMOTE, ANNOUNCE)
    assert _run(iris, run_id).state == "pending"
    run = _drive(iris, submit, run_id, f1=0.95)
    assert _states(run) == {
        "train": "succeeded",
        "evaluate": "succeeded",
        "promote": "succeeded",
        "announce": "running",
    }
    promote = run.steps[2]
    assert promote.reason == "condition true: 0.95 > 0.9"
    assert promote.outputs == {"model": "iris", "alias": "production", "version": 2}
    assert run.steps[1].outputs == {"metrics": {"f1": 0.95}}
    with iris.session() as session:
        assert registry.read_model(session, "default", "iris").aliases["production"] == 2
    announce_job = run.steps[3].job_id
    assert announce_job is not None
    _finish(iris, announce_job)
    _advance(iris, run_id, submit)
    run = _run(iris, run_id)
    assert run.state == "succeeded" and run.finished_at is not None


def test_a_false_condition_skips_the_step_and_its_dependents(
    iris: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    run_id = _start(iris, catalog, TRAIN, EVALUATE, PROMOTE, ANNOUNCE)
    run = _drive(iris, submit, run_id, f1=0.8)
    assert run.state == "succeeded"
    assert _states(run)["promote"] == "skipped"
    assert run.steps[2].reason == "condition false: 0.8 > 0.9"
    assert _states(run)["announce"] == "skipped"
    assert run.steps[3].reason == "step 'promote' it needs was skipped"
    with iris.session() as session:
        assert registry.read_model(session, "default", "iris").aliases["production"] == 1


def test_without_the_alias_the_default_decides(
    iris: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    with iris.session() as session:
        registry.delete_alias(session, "default", "iris", "production")
    run = _drive(iris, submit, _start(iris, catalog, TRAIN, EVALUATE, PROMOTE), f1=0.1)
    assert run.state == "succeeded"
    assert run.steps[2].reason == "condition true: 0.1 > 0.0"
    with iris.session() as session:
        assert registry.read_model(session, "default", "iris").aliases["production"] == 2


def test_a_failed_job_fails_the_run_and_cancels_the_rest(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    side = {"name": "side", "job": {"kind": "train", "entry": "toy.train"}}
    run_id = _start(db, catalog, TRAIN, side, EVALUATE)
    train_job, side_job = _advance(db, run_id, submit)
    _finish(db, train_job, "failed")
    _advance(db, run_id, submit)
    run = _run(db, run_id)
    assert run.state == "failed"
    assert run.reason is not None and run.reason.startswith("step 'train' failed: job")
    assert "boom" in run.reason
    assert _states(run) == {"train": "failed", "side": "cancelled", "evaluate": "cancelled"}
    with db.session() as session:
        assert jobs.read_job(session, side_job).state == "cancelled"


def test_a_bad_output_fails_the_step_with_the_reason(
    iris: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    run_id = _start(iris, catalog, TRAIN, EVALUATE, PROMOTE)
    (train_job,) = _advance(iris, run_id, submit)
    _finish(iris, train_job, version=2)  # not the key the next step reads
    assert _advance(iris, run_id, submit) == []
    run = _run(iris, run_id)
    assert run.state == "failed"
    assert "steps.train.outputs.model_version: no 'model_version' there" in (
        run.steps[1].reason or ""
    )


def test_cancelling_a_run_cancels_its_running_jobs(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    run_id = _start(db, catalog, TRAIN, EVALUATE)
    (train_job,) = _advance(db, run_id, submit)
    with db.session() as session:
        jobs.start_attempt(session, train_job, "node-a", 30.0)
        run = service.cancel_run(session, run_id, "default")
    assert run.state == "cancelled"
    assert _states(run) == {"train": "cancelled", "evaluate": "cancelled"}
    with db.session() as session:
        assert jobs.read_job(session, train_job).cancel_requested
    assert _advance(db, run_id, submit) == []


def test_two_processes_advancing_one_run_submit_each_job_once(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    run_id = _start(db, catalog, TRAIN)
    other: list[list[int]] = []
    with db.session() as first:
        mine = advance_run(first, run_id, submit)
        # A second process arrives while the first has not committed: it must wait, then
        # see the step already running.
        racer = threading.Thread(target=lambda: other.append(_advance(db, run_id, submit)))
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive()  # blocked on the run's row lock
    racer.join(timeout=30)
    assert len(mine) == 1 and other == [[]]
    with db.session() as session:
        assert len(jobs.list_jobs(session, "default")) == 1


def test_the_runner_loop_ticks_every_active_run_and_notifies(
    db: Database, catalog: EntryCatalog, submit: SubmitJob
) -> None:
    first = _start(db, catalog, TRAIN)
    with db.session() as session:
        second = service.start_run(session, "default", "nightly").id
    woken: list[int] = []
    runner = PipelineRunner(db, submit, notify=lambda: woken.append(1))
    asyncio.run(runner.run_once())
    assert woken == [1]
    asyncio.run(runner.run_once())
    assert woken == [1]  # nothing moved: no one to wake
    assert runner.tick() == []
    assert {_run(db, first).state, _run(db, second).state} == {"running"}


@pytest.mark.parametrize("bad", [{"version": 99}, {"version_from": "steps.train.outputs.v"}])
def test_an_action_that_cannot_be_done_fails_its_step(
    iris: Database, catalog: EntryCatalog, submit: SubmitJob, bad: dict[str, Any]
) -> None:
    action = {"kind": "set_alias", "model": "iris", "alias": "staging", **bad}
    run_id = _start(iris, catalog, TRAIN, {"name": "tag", "needs": ["train"], "action": action})
    (train_job,) = _advance(iris, run_id, submit)
    _finish(iris, train_job, v="two")
    _advance(iris, run_id, submit)
    run = _run(iris, run_id)
    assert run.state == "failed" and _states(run)["tag"] == "failed"
    assert "99" in (run.steps[1].reason or "") or "'two' is not a version" in (
        run.steps[1].reason or ""
    )
