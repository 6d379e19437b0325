"""The head of the queue as placement reads it: only the columns it needs, in one query.

Placement runs on every start and every end of an attempt, and each pass reads
up to ``queue_scan`` queued jobs. Loading them as ORM rows and full ``Job``
entities (params, outputs, every time stamp, the project by relationship) was
the largest part of a pass on a long queue; ``QueuedJob`` carries what
``scheduler.placement.place`` and the waiting reasons use, from one SELECT
joined with the project's name. A job that starts is read in full then, by
``service.start_attempt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.jobs.entities import Resources
from aimass.store.orm import JobRow, ProjectRow, aware_utc


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
            JobRow.id,
            ProjectRow.name,
            JobRow.project_id,
            JobRow.priority,
            JobRow.created_at,
            JobRow.next_attempt_at,
            JobRow.reason,
            JobRow.cpu,
            JobRow.gpu,
            JobRow.memory_mb,
            JobRow.custom_resources,
        )
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .where(JobRow.state == "queued")
        .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
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
