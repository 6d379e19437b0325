"""The queue's head and the running attempts as placement reads them: the columns it needs.

Placement runs on every start and every end of an attempt, and each pass reads
up to ``queue_scan`` queued jobs. Loading them as ORM rows and full ``Job``
entities (params, outputs, every time stamp, the project by relationship) was
the largest part of a pass on a long queue; ``QueuedJob`` carries what
``scheduler.placement.place`` and the waiting reasons use, from one SELECT
joined with the project's name. A job that starts is read in full then, by
``service.start_attempts``. ``running_attempts`` does the same for the running
jobs each pass reads (free capacity, leases and timeouts to enforce, lost processes).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from aimass.jobs.entities import Resources
from aimass.store.orm import JobRow, ProjectRow, aware_utc

# Core statements on the tables: rows as tuples, without the ORM's per-row loading.
JOBS = cast("Table", JobRow.__table__)
PROJECTS = cast("Table", ProjectRow.__table__)
J = JOBS.c
P = PROJECTS.c


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A queued job as placement sees it."""

    id: int
    project: str
    project_id: int
    priority: int
    created_at: datetime
    next_attempt_at: datetime | None
    reason: str | None
    resources: Resources


def queue_head(session: Session, limit: int) -> list[QueuedJob]:
    """The first ``limit`` queued jobs in scheduling order: priority (higher first), then
    first come first served."""
    rows = session.execute(
        select(
            J.id,
            P.name,
            J.project_id,
            J.priority,
            J.created_at,
            J.next_attempt_at,
            J.reason,
            J.cpu,
            J.gpu,
            J.memory_mb,
            J.custom_resources,
        )
        .select_from(JOBS.join(PROJECTS, P.id == J.project_id))
        .where(J.state == "queued")
        .order_by(J.priority.desc(), J.created_at, J.id)
        .limit(limit)
    )
    return [
        QueuedJob(
            id=row.id,
            project=row.name,
            project_id=row.project_id,
            priority=row.priority,
            created_at=aware_utc(row.created_at),
            next_attempt_at=aware_utc(row.next_attempt_at) if row.next_attempt_at else None,
            reason=row.reason,
            # Stored by submit_job from a validated Resources: no need to validate again.
            resources=Resources.model_construct(
                cpu=row.cpu, gpu=row.gpu, memory_mb=row.memory_mb, custom=row.custom_resources or {}
            ),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A running attempt as placement sees it."""

    id: int
    project: str
    attempt: int
    node: str | None
    priority: int
    created_at: datetime
    next_attempt_at: datetime | None
    started_at: datetime | None
    timeout_s: float | None
    lease_expires_at: datetime | None
    resources: Resources


def _when(value: datetime | None) -> datetime | None:
    return aware_utc(value) if value is not None else None


def running_attempts(session: Session) -> list[RunningJob]:
    """Every running attempt, on any node, by job id."""
    rows = session.execute(
        select(
            J.id,
            P.name,
            J.attempt,
            J.node,
            J.priority,
            J.created_at,
            J.next_attempt_at,
            J.started_at,
            J.timeout_s,
            J.lease_expires_at,
            J.cpu,
            J.gpu,
            J.memory_mb,
            J.custom_resources,
        )
        .select_from(JOBS.join(PROJECTS, P.id == J.project_id))
        .where(J.state == "running")
        .order_by(J.id)
    )
    return [
        RunningJob(
            id=row.id,
            project=row.name,
            attempt=row.attempt,
            node=row.node,
            priority=row.priority,
            created_at=aware_utc(row.created_at),
            next_attempt_at=_when(row.next_attempt_at),
            started_at=_when(row.started_at),
            timeout_s=row.timeout_s,
            lease_expires_at=_when(row.lease_expires_at),
            resources=Resources.model_construct(
                cpu=row.cpu, gpu=row.gpu, memory_mb=row.memory_mb, custom=row.custom_resources or {}
            ),
        )
        for row in rows
    ]


def cancels_requested(session: Session, job_ids: Collection[int]) -> list[int]:
    """Which of these jobs are running with a cancel requested."""
    if not job_ids:
        return []
    return list(
        session.scalars(
            select(J.id).where(J.id.in_(job_ids), J.state == "running", J.cancel_requested)
        )
    )
