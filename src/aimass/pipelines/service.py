"""Pipelines: create or replace (validated as a DAG), read, delete; start, read and cancel runs.

A run copies the pipeline's steps when it starts, so replacing a pipeline
changes only later runs. Runs are advanced by ``pipelines.runner``; cancelling
one here is a conditional UPDATE on its state, like every write to a run.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.errors import Conflict, InvalidInput, NotFound
from aimass.jobs import service as jobs
from aimass.jobs.catalog import EntryCatalog
from aimass.pipelines._spec import validate_steps
from aimass.pipelines.conditions import deferred_params
from aimass.pipelines.entities import (
    Pipeline,
    PipelineCreate,
    PipelineRun,
    Step,
    StepRun,
)
from aimass.pipelines.templates import check_job_template
from aimass.registry.projects import find_named_row, list_named_rows, read_project_row
from aimass.store.orm import (
    PipelineRow,
    PipelineRunRow,
    PipelineStepRow,
    aware_utc,
    utcnow,
)

ACTIVE_RUN_STATES = ("pending", "running")
#: A name the API uses as a path segment (``/pipelines/runs/{id}``), so no pipeline takes it.
RESERVED_NAMES = frozenset({"runs"})


def _when(value: datetime | None) -> datetime | None:
    return aware_utc(value) if value is not None else None


def _entity(row: PipelineRow) -> Pipeline:
    return Pipeline(
        id=row.id,
        project=row.project.name,
        name=row.name,
        description=row.description,
        steps=[Step.model_validate(s) for s in row.spec],
        revision=row.revision,
        created_at=aware_utc(row.created_at),
        updated_at=aware_utc(row.updated_at),
    )


def run_entity(row: PipelineRunRow) -> PipelineRun:
    """The run with each step's state, in the order the steps run."""
    needs = {s["name"]: list(s.get("needs", [])) for s in row.spec}
    return PipelineRun.model_validate(
        {
            "id": row.id,
            "project": row.pipeline.project.name,
            "pipeline": row.pipeline.name,
            "revision": row.revision,
            "state": row.state,
            "reason": row.reason,
            "trigger": row.trigger,
            "created_at": aware_utc(row.created_at),
            "started_at": _when(row.started_at),
            "finished_at": _when(row.finished_at),
            "steps": [
                StepRun.model_validate(
                    {
                        "name": s.name,
                        "state": s.state,
                        "needs": needs.get(s.name, []),
                        "job_id": s.job_id,
                        "reason": s.reason,
                        "outputs": s.outputs or {},
                        "started_at": _when(s.started_at),
                        "finished_at": _when(s.finished_at),
                    }
                )
                for s in row.steps
            ],
        }
    )


def create_pipeline(
    session: Session, project: str, spec: PipelineCreate, catalog: EntryCatalog
) -> Pipeline:
    """Create a pipeline, or replace the steps of the one of that name (a new revision)."""
    name = validate_name(spec.name, "pipeline name")
    if name in RESERVED_NAMES:
        raise InvalidInput(f"pipeline name {name!r} is reserved; choose another")
    ordered = validate_steps(spec.steps)
    for i, step in enumerate(spec.steps):
        if step.job is not None:
            check_job_template(
                session, project, step.job, catalog, f"steps[{i}].job", deferred_params(step)
            )
    project_row = read_project_row(session, project)
    steps = [s.model_dump(mode="json", exclude_none=True) for s in ordered]
    row = find_named_row(session, PipelineRow, project, name)
    now = utcnow()
    if row is None:
        row = PipelineRow(
            project_id=project_row.id,
            name=name,
            description=spec.description,
            spec=steps,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        row.project = project_row
        session.add(row)
    else:
        row.description = spec.description
        row.spec = steps
        row.revision += 1
        row.updated_at = now
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"pipeline {name!r} was created at the same moment; try again") from exc
    return _entity(row)


def _row(session: Session, project: str, name: str) -> PipelineRow:
    row = find_named_row(session, PipelineRow, project, name)
    if row is None:
        raise NotFound(f"pipeline {name!r} not found in project {project!r}")
    return row


def read_pipeline(session: Session, project: str, name: str) -> Pipeline:
    """One pipeline with its steps in running order."""
    return _entity(_row(session, project, name))


def list_pipelines(session: Session, project: str) -> list[Pipeline]:
    """A project's pipelines by name."""
    return [_entity(r) for r in list_named_rows(session, PipelineRow, project)]


def delete_pipeline(session: Session, project: str, name: str) -> None:
    """Delete a pipeline and its finished runs; Conflict while a run is under way."""
    row = _row(session, project, name)
    active = session.scalar(
        select(PipelineRunRow.id).where(
            PipelineRunRow.pipeline_id == row.id, PipelineRunRow.state.in_(ACTIVE_RUN_STATES)
        )
    )
    if active is not None:
        raise Conflict(f"pipeline {name!r} has run {active} under way; cancel it first")
    session.delete(row)
    session.flush()


def start_run(
    session: Session, project: str, name: str, trigger: str = "manual", now: datetime | None = None
) -> PipelineRun:
    """Start a run of the pipeline as it is now: every step pending, the runner takes it on."""
    now = now or utcnow()
    pipeline = _row(session, project, name)
    run = PipelineRunRow(
        pipeline_id=pipeline.id,
        revision=pipeline.revision,
        spec=pipeline.spec,
        state="pending",
        trigger=trigger[:256],
        created_at=now,
        updated_at=now,
    )
    run.pipeline = pipeline
    run.steps = [
        PipelineStepRow(name=s["name"], position=i, state="pending", outputs={})
        for i, s in enumerate(pipeline.spec)
    ]
    session.add(run)
    session.flush()
    return run_entity(run)


def _run_row(session: Session, run_id: int, project: str | None) -> PipelineRunRow:
    row = session.get(PipelineRunRow, run_id)
    if row is None or (project is not None and row.pipeline.project.name != project):
        raise NotFound(f"pipeline run {run_id} not found")
    return row


def read_run(session: Session, run_id: int, project: str | None = None) -> PipelineRun:
    """One run with each step's state, job, outputs and reason."""
    return run_entity(_run_row(session, run_id, project))


def list_runs(session: Session, project: str, name: str, limit: int = 50) -> list[PipelineRun]:
    """A pipeline's runs, newest first."""
    pipeline = _row(session, project, name)
    rows = session.scalars(
        select(PipelineRunRow)
        .where(PipelineRunRow.pipeline_id == pipeline.id)
        .order_by(PipelineRunRow.id.desc())
        .limit(limit)
    )
    return [run_entity(r) for r in rows]


def active_run_ids(session: Session) -> list[int]:
    """Runs that are pending or running, oldest first (the runner's work list)."""
    return list(
        session.scalars(
            select(PipelineRunRow.id)
            .where(PipelineRunRow.state.in_(ACTIVE_RUN_STATES))
            .order_by(PipelineRunRow.id)
        )
    )


def lock_run(session: Session, run_id: int, now: datetime, **values: Any) -> bool:
    """Take the run's row lock while it is pending or running (setting ``values``); False if not.

    Every write to a run starts here, so two processes never act on one run at
    once: the second waits, then sees what the first did, or finds it finished.
    """
    result = session.execute(
        update(PipelineRunRow)
        .where(PipelineRunRow.id == run_id, PipelineRunRow.state.in_(ACTIVE_RUN_STATES))
        .values(updated_at=now, **values),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def stop_steps(session: Session, run: PipelineRunRow, reason: str, now: datetime) -> None:
    """Cancel every step not yet finished, and the jobs of those running."""
    for step in run.steps:
        if step.state not in ("pending", "running"):
            continue
        if step.state == "running" and step.job_id is not None:
            with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile, or is gone
                jobs.cancel_job(session, step.job_id)
        step.state = "cancelled"
        step.reason = reason
        step.finished_at = now


def cancel_run(session: Session, run_id: int, project: str | None = None) -> PipelineRun:
    """Cancel a run and the jobs of its running steps; Conflict once it has finished."""
    now = utcnow()
    _run_row(session, run_id, project)
    if lock_run(
        session, run_id, now, state="cancelled", finished_at=now, reason="cancelled by request"
    ):
        session.expire_all()  # read the steps as the lock holder sees them
        run = session.get(PipelineRunRow, run_id)
        assert run is not None
        stop_steps(session, run, "the run was cancelled", now)
        session.flush()
        return run_entity(run)
    run = session.get(PipelineRunRow, run_id, populate_existing=True)
    assert run is not None
    if run.state == "cancelled":
        return run_entity(run)
    raise Conflict(f"pipeline run {run_id} already {run.state}; there is nothing to cancel")
