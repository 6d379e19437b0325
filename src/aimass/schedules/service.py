"""Schedules: CRUD, cron validation, and ``fire_due``, which starts each due template once.

Firing claims a schedule with a conditional UPDATE of ``next_run_at`` (compare
and set on the value read), in the transaction that submits its job, so two
processes running the loop never fire one time twice: the second finds the
value changed and moves on. The next time is computed from *now*, so a window
missed while no server ran fires once, not once per missed tick.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.errors import AimassError, Conflict, NotFound, Unprocessable
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import JobCreate
from aimass.jobs.submitting_loop import SubmitJob
from aimass.pipelines import service as pipelines
from aimass.pipelines.templates import check_job_template
from aimass.registry.projects import find_named_row, list_named_rows, read_project_row
from aimass.schedules.entities import Schedule, ScheduleCreate, ScheduleUpdate
from aimass.store.orm import ScheduleRow, aware_utc, utcnow

log = logging.getLogger("aimass.schedules")

#: Schedules fired in one call at most; the rest fire on the next tick.
FIRE_BATCH = 100


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(
            f"timezone: unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None


def normalize_cron(expression: str) -> str:
    """The expression with single spaces; Unprocessable naming ``cron`` unless 5 valid fields."""
    fields = expression.split()
    if len(fields) != 5:
        raise Unprocessable(
            f"cron: {expression!r} has {len(fields)} field(s); write 5: "
            "minute hour day-of-month month day-of-week (for example '*/5 * * * *')"
        )
    text = " ".join(fields)
    from croniter import croniter  # where a schedule is checked, not at the server's start

    if not croniter.is_valid(text):
        raise Unprocessable(f"cron: {expression!r} is not a valid cron expression")
    return text


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` matches in ``timezone``, in UTC."""
    from croniter import CroniterError, croniter

    local = aware_utc(after).astimezone(_zone(timezone))
    try:
        found = croniter(normalize_cron(cron), local).get_next(datetime)
    except CroniterError:
        raise Unprocessable(f"cron: {cron!r} never matches a date") from None
    assert isinstance(found, datetime)
    return found.astimezone(UTC)


def _when(value: datetime | None) -> datetime | None:
    return aware_utc(value) if value is not None else None


def _entity(row: ScheduleRow) -> Schedule:
    return Schedule(
        id=row.id,
        project=row.project.name,
        name=row.name,
        cron=row.cron,
        timezone=row.timezone,
        job=JobCreate.model_validate(row.job) if row.job is not None else None,
        pipeline=row.pipeline,
        enabled=row.enabled,
        next_run_at=_when(row.next_run_at),
        last_run_at=_when(row.last_run_at),
        last_job_id=row.last_job_id,
        last_pipeline_run_id=row.last_pipeline_run_id,
        last_error=row.last_error,
        created_at=aware_utc(row.created_at),
        updated_at=aware_utc(row.updated_at),
    )


def _check_template(
    session: Session,
    project: str,
    job: JobCreate | None,
    pipeline: str | None,
    catalog: EntryCatalog,
) -> None:
    if job is not None:
        check_job_template(session, project, job, catalog)
    if pipeline is not None:
        pipelines.read_pipeline(session, project, pipeline)


def create_schedule(
    session: Session,
    project: str,
    spec: ScheduleCreate,
    catalog: EntryCatalog,
    now: datetime | None = None,
) -> Schedule:
    """Store a schedule; a bad cron, time zone or template is refused before anything is stored."""
    now = now or utcnow()
    name = validate_name(spec.name, "schedule name")
    cron = normalize_cron(spec.cron)
    first = next_run(cron, spec.timezone, now)
    project_row = read_project_row(session, project)
    _check_template(session, project, spec.job, spec.pipeline, catalog)
    if find_named_row(session, ScheduleRow, project, name) is not None:
        raise Conflict(f"schedule {name!r} already exists in project {project!r}")
    row = ScheduleRow(
        project_id=project_row.id,
        name=name,
        cron=cron,
        timezone=spec.timezone,
        job=spec.job.model_dump(mode="json") if spec.job else None,
        pipeline=spec.pipeline,
        enabled=spec.enabled,
        next_run_at=first if spec.enabled else None,
        created_at=now,
        updated_at=now,
    )
    row.project = project_row
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"schedule {name!r} already exists in project {project!r}") from exc
    return _entity(row)


def _row(session: Session, project: str, name: str) -> ScheduleRow:
    row = find_named_row(session, ScheduleRow, project, name)
    if row is None:
        raise NotFound(f"schedule {name!r} not found in project {project!r}")
    return row


def read_schedule(session: Session, project: str, name: str) -> Schedule:
    """One schedule and when it fires next."""
    return _entity(_row(session, project, name))


def list_schedules(session: Session, project: str) -> list[Schedule]:
    """A project's schedules by name."""
    return [_entity(r) for r in list_named_rows(session, ScheduleRow, project)]


def update_schedule(
    session: Session,
    project: str,
    name: str,
    spec: ScheduleUpdate,
    catalog: EntryCatalog,
    now: datetime | None = None,
) -> Schedule:
    """Enable, disable, or change the cron, time zone or template; the next time follows."""
    now = now or utcnow()
    row = _row(session, project, name)
    cron = normalize_cron(spec.cron) if spec.cron is not None else row.cron
    timezone = spec.timezone if spec.timezone is not None else row.timezone
    enabled = spec.enabled if spec.enabled is not None else row.enabled
    upcoming = next_run(cron, timezone, now)
    if spec.job is not None or spec.pipeline is not None:
        _check_template(session, project, spec.job, spec.pipeline, catalog)
        row.job = spec.job.model_dump(mode="json") if spec.job else None
        row.pipeline = spec.pipeline
    timing_changed = (cron, timezone, enabled) != (row.cron, row.timezone, row.enabled)
    row.cron, row.timezone, row.enabled = cron, timezone, enabled
    if not enabled:
        row.next_run_at = None
    elif timing_changed or row.next_run_at is None:
        row.next_run_at = upcoming
    row.updated_at = now
    session.flush()
    return _entity(row)


def delete_schedule(session: Session, project: str, name: str) -> None:
    """Delete a schedule; what it already started runs on."""
    session.delete(_row(session, project, name))
    session.flush()


def _claim(
    session: Session, schedule_id: int, seen: datetime | None, values: dict[str, Any]
) -> bool:
    """Move ``next_run_at`` on from the value read; False if another caller moved it first."""
    result = session.execute(
        update(ScheduleRow)
        .where(
            ScheduleRow.id == schedule_id,
            ScheduleRow.enabled.is_(True),
            ScheduleRow.next_run_at == seen,
        )
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def _start(session: Session, row: ScheduleRow, submit: SubmitJob, now: datetime) -> None:
    project = row.project.name
    try:
        if row.job is not None:
            row.last_job_id = submit(session, project, JobCreate.model_validate(row.job)).id
        elif row.pipeline is not None:
            trigger = f"schedule {row.name}"
            run = pipelines.start_run(session, project, row.pipeline, trigger, now)
            row.last_pipeline_run_id = run.id
        row.last_error = None
    except AimassError as exc:
        # The template stopped fitting (a dataset or pipeline deleted): say so, fire on time next.
        row.last_error = exc.message
        log.warning("schedule %s/%s started nothing: %s", project, row.name, exc.message)


def fire_due(session: Session, now: datetime, submit: SubmitJob) -> list[int]:
    """Start every enabled schedule due at ``now`` once; the ids of those this call fired."""
    due = session.execute(
        select(ScheduleRow.id, ScheduleRow.next_run_at, ScheduleRow.cron, ScheduleRow.timezone)
        .where(ScheduleRow.enabled.is_(True), ScheduleRow.next_run_at <= now)
        .order_by(ScheduleRow.next_run_at, ScheduleRow.id)
        .limit(FIRE_BATCH)
    ).all()
    fired: list[int] = []
    for schedule_id, seen, cron, timezone in due:
        try:
            upcoming: datetime | None = next_run(cron, timezone, now)
        except Unprocessable:
            upcoming = None  # cannot happen for a stored cron; never loop on it
        values = {"next_run_at": upcoming, "last_run_at": now, "updated_at": now}
        if not _claim(session, schedule_id, seen, values):
            continue  # another process fired this time, or it was disabled meanwhile
        row = session.get(ScheduleRow, schedule_id, populate_existing=True)
        assert row is not None
        _start(session, row, submit, now)
        fired.append(schedule_id)
    session.flush()
    return fired
