"""Projects: the tenants that own models and datasets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.errors import Conflict, NotFound
from aimass.store.orm import ProjectRow, aware_utc

DEFAULT_PROJECT = "default"


class Project(BaseModel):
    """A tenant; every model and dataset belongs to one."""

    name: str
    created_at: datetime


def read_project_row(session: Session, name: str) -> ProjectRow:
    """The project's row, or NotFound."""
    row = session.scalars(select(ProjectRow).where(ProjectRow.name == name)).first()
    if row is None:
        raise NotFound(f"project {name!r} not found")
    return row


def list_projects(session: Session) -> list[Project]:
    """Every project, by name."""
    rows = session.scalars(select(ProjectRow).order_by(ProjectRow.name))
    return [Project(name=r.name, created_at=aware_utc(r.created_at)) for r in rows]


def create_project(session: Session, name: str) -> Project:
    """Create a project; Conflict if the name is taken."""
    validate_name(name, "project name")
    row = ProjectRow(name=name)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"project {name!r} already exists") from exc
    return Project(name=row.name, created_at=aware_utc(row.created_at))
