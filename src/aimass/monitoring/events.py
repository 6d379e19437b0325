"""Monitoring events: recorded in the database, listed newest first."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from aimass.entities.monitoring import AlertState, MonitoringEvent
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


def alert_states(session: Session, project: str, *, scan: int = 1000) -> list[AlertState]:
    """Each (rule, subject)'s latest state, from the newest ``scan`` alert events: firing first."""
    query = (
        select(MonitoringEventRow)
        .where(MonitoringEventRow.project == project, MonitoringEventRow.kind == "alert")
        .order_by(MonitoringEventRow.id.desc())
        .limit(scan)
    )
    latest: dict[tuple[str, str], AlertState] = {}
    for row in session.scalars(query):
        alert = row.details or {}
        labels = alert.get("labels") or {}
        key = (str(labels.get("alertname", "")), str(labels.get("subject", row.subject)))
        if key in latest or alert.get("status") not in ("firing", "resolved"):
            continue
        latest[key] = AlertState(
            rule=key[0],
            metric=str(labels.get("metric", "")),
            subject=key[1],
            severity=str(labels.get("severity", row.severity)),
            status=alert["status"],
            summary=str((alert.get("annotations") or {}).get("summary", row.message)),
            starts_at=str(alert.get("startsAt", "")),
            ends_at=alert.get("endsAt"),
            at=row.created_at,
        )
    return sorted(latest.values(), key=lambda a: (a.status != "firing", -a.at.timestamp()))
