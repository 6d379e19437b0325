"""Monitoring events: recorded in the database, listed newest first."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from aimass.entities.monitoring import MonitoringEvent
from aimass.errors import InvalidInput
from aimass.store.orm import MonitoringEventRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def record_event(
    session: Session,
    *,
    project: str,
    kind: str,
    subject: str,
    message: str,
    severity: str = "warning",
    details: dict[str, Any] | None = None,
) -> MonitoringEvent:
    """Insert one event (the caller commits with its session)."""
    row = MonitoringEventRow(
        project=project,
        kind=kind,
        subject=subject,
        severity=severity,
        message=message,
        details=details or {},
    )
    session.add(row)
    session.flush()
    return row.to_entity()


def list_events(
    session: Session,
    project: str,
    *,
    kind: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[MonitoringEvent]:
    """A project's events, newest first, filtered by kind, subject and time."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    query = select(MonitoringEventRow).where(MonitoringEventRow.project == project)
    if kind is not None:
        query = query.where(MonitoringEventRow.kind == kind)
    if subject is not None:
        query = query.where(MonitoringEventRow.subject == subject)
    if since is not None:
        query = query.where(MonitoringEventRow.created_at >= since)
    query = query.order_by(MonitoringEventRow.id.desc()).limit(limit)
    return [row.to_entity() for row in session.scalars(query)]
