"""What a running attempt records: metrics, checkpoints, outputs, lineage (fenced by attempt)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from pydantic import JsonValue
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session, aliased

from aimass.entities.auth import Principal
from aimass.entities.registry import JobAttemptRef
from aimass.errors import Forbidden, NotFound, Unprocessable
from aimass.jobs.entities import JobCheckpoint, JobMetric
from aimass.jobs.fencing import claim
from aimass.store.orm import (
    DatasetRow,
    DatasetVersionRow,
    JobCheckpointRow,
    JobMetricRow,
    JobRow,
    utcnow,
)


def _exists(session: Session, job_id: int) -> None:
    if session.get(JobRow, job_id) is None:
        raise NotFound(f"job {job_id} not found")


def record_metric(
    session: Session,
    job_id: int,
    attempt: int,
    name: str,
    value: float,
    step: int = 0,
    now: datetime | None = None,
) -> JobMetric:
    """Record one step metric from the current attempt (fenced)."""
    if not name or len(name) > 256:
        raise Unprocessable("name: a metric name has 1 to 256 characters")
    claim(session, job_id, attempt)
    row = JobMetricRow(
        job_id=job_id, attempt=attempt, name=name, step=step, value=float(value), at=now or utcnow()
    )
    session.add(row)
    session.flush()
    return row.to_entity()


def list_metrics(session: Session, job_id: int, name: str | None = None) -> list[JobMetric]:
    """The job's metrics over every attempt, by name, step and time."""
    _exists(session, job_id)
    stmt = select(JobMetricRow).where(JobMetricRow.job_id == job_id)
    if name is not None:
        stmt = stmt.where(JobMetricRow.name == name)
    stmt = stmt.order_by(JobMetricRow.name, JobMetricRow.step, JobMetricRow.id)
    return [r.to_entity() for r in session.scalars(stmt)]


def chart_metrics(
    session: Session, job_id: int, max_points: int, name: str | None = None
) -> list[JobMetric]:
    """The job's metrics for a chart: at most ``max_points`` a name.

    A longer series is cut into runs of equal step width and each run answers its
    first point, found by one index seek a run (a recursive CTE in one query), so a
    million points cost the database, the network and the browser a few thousand.
    """
    _exists(session, job_id)
    m = JobMetricRow
    out: list[JobMetric] = []
    for series in [name] if name is not None else _metric_names(session, job_id):
        where = (m.job_id == job_id, m.name == series)
        lo = session.scalar(select(func.min(m.step)).where(*where))
        hi = session.scalar(select(func.max(m.step)).where(*where))
        if lo is None or hi is None:
            continue
        if hi - lo < max_points:
            out.extend(list_metrics(session, job_id, series))
            continue
        width = -(-(hi - lo + 1) // max_points)
        runs = select(literal(0).label("k")).cte("runs", recursive=True)
        runs = runs.union_all(select(runs.c.k + 1).where(runs.c.k < max_points - 1))
        x = aliased(JobMetricRow)
        first = (
            select(x.id)
            .where(
                x.job_id == job_id,
                x.name == series,
                x.step >= lo + runs.c.k * width,
                x.step < lo + (runs.c.k + 1) * width,
            )
            .order_by(x.step)
            .limit(1)
            .correlate(runs)
            .scalar_subquery()
        )
        stmt = select(m).select_from(runs).join(m, m.id == first).order_by(m.step)
        out.extend(r.to_entity() for r in session.scalars(stmt))
    return out


def _metric_names(session: Session, job_id: int) -> list[str]:
    """The job's metric names, one index seek each (never a scan of its points)."""
    m = JobMetricRow
    names: list[str] = []
    while True:
        stmt = select(func.min(m.name)).where(m.job_id == job_id)
        if names:
            stmt = stmt.where(m.name > names[-1])
        found = session.scalar(stmt)
        if found is None:
            return names
        names.append(found)


def record_checkpoint(
    session: Session,
    job_id: int,
    attempt: int,
    step: int,
    artifact_key: str,
    sha256: str,
    now: datetime | None = None,
) -> JobCheckpoint:
    """Record a checkpoint the current attempt saved to the artifact store (fenced)."""
    claim(session, job_id, attempt)
    row = JobCheckpointRow(
        job_id=job_id,
        attempt=attempt,
        step=step,
        artifact_key=artifact_key,
        sha256=sha256,
        at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row.to_entity()


def latest_checkpoint(session: Session, job_id: int) -> JobCheckpoint | None:
    """The checkpoint the next attempt resumes from: the last one recorded, or None."""
    row = session.scalars(
        select(JobCheckpointRow)
        .where(JobCheckpointRow.job_id == job_id)
        .order_by(JobCheckpointRow.id.desc())
        .limit(1)
    ).first()
    return row.to_entity() if row else None


def record_metrics(
    session: Session, job_id: int, attempt: int, metrics: list[tuple[str, float, int]]
) -> int:
    """Record several ``(name, value, step)`` metrics from the current attempt at once (fenced)."""
    claim(session, job_id, attempt)
    now = utcnow()
    for name, value, step in metrics:
        if not name or len(name) > 256:
            raise Unprocessable("name: a metric name has 1 to 256 characters")
        session.add(
            JobMetricRow(
                job_id=job_id, attempt=attempt, name=name, step=step, value=float(value), at=now
            )
        )
    session.flush()
    return len(metrics)


def list_checkpoints(session: Session, job_id: int) -> list[JobCheckpoint]:
    """Every checkpoint of the job, oldest first."""
    _exists(session, job_id)
    rows = session.scalars(
        select(JobCheckpointRow)
        .where(JobCheckpointRow.job_id == job_id)
        .order_by(JobCheckpointRow.id)
    )
    return [r.to_entity() for r in rows]


def merge_outputs(
    session: Session, job_id: int, attempt: int, outputs: dict[str, JsonValue]
) -> dict[str, JsonValue]:
    """Merge keys into the job's outputs from the current attempt (fenced); the new outputs."""
    row = claim(session, job_id, attempt)
    merged: dict[str, JsonValue] = {**(row.outputs or {}), **outputs}
    row.outputs = merged
    session.flush()
    return merged


def add_to_output_list(
    session: Session, job_id: int, attempt: int, key: str, item: dict[str, JsonValue]
) -> None:
    """Append ``item`` to the list at ``outputs[key]`` (artifacts, models), fenced."""
    row = claim(session, job_id, attempt)
    current = dict(row.outputs or {})
    items = current.get(key)
    listed: list[JsonValue] = list(items) if isinstance(items, list) else []
    listed.append(item)
    current[key] = listed
    row.outputs = current
    session.flush()


def attempt_lineage(
    session: Session, *, job_id: int, attempt: int
) -> tuple[str | None, int | None]:
    """For a version the attempt registers: refuse a stale attempt, return its lineage.

    Returns the job id (as the registry stores it) and the id of the dataset
    version the job trained on (the one it named, else that dataset's latest).
    """
    row = claim(session, job_id, attempt)
    dataset_version_id = None
    if row.dataset is not None:
        stmt = (
            select(DatasetVersionRow.id)
            .join(DatasetRow, DatasetVersionRow.dataset_id == DatasetRow.id)
            .where(DatasetRow.project_id == row.project_id, DatasetRow.name == row.dataset)
        )
        if row.dataset_version is not None:
            stmt = stmt.where(DatasetVersionRow.version == row.dataset_version)
        dataset_version_id = session.scalar(stmt.order_by(DatasetVersionRow.version.desc()))
    return str(job_id), dataset_version_id


def lineage_guard(
    principal: Principal, ref: JobAttemptRef | None, *, auth: bool
) -> Callable[[Session], tuple[str | None, int | None]] | None:
    """The fence for a version being registered: which job attempt made it, if any.

    A job's token always registers as its own job and attempt, whatever the body's
    ``job`` says, so its versions carry lineage and a superseded attempt is refused.
    A person's token may not claim a job (only with auth off, where nobody has one).
    """
    if auth and principal.job_id is not None:
        job_id, attempt = principal.job_id, principal.job_attempt or 0
    elif ref is None:
        return None
    elif auth:
        raise Forbidden(f"only job {ref.id}'s own token may register a version from it")
    else:
        job_id, attempt = ref.id, ref.attempt
    return partial(attempt_lineage, job_id=job_id, attempt=attempt)


def artifact_key(job_id: int, attempt: int, name: str) -> str:
    """Where a file an attempt kept lives in the artifact store (``name`` already validated)."""
    return f"jobs/{job_id}/artifacts/attempt-{attempt}/{name}"
