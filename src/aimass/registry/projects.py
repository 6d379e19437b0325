"""Projects: the tenants that own models and datasets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.errors import Conflict, NotFound
from aimass.store.orm import PipelineRow, ProjectRow, ScheduleRow, aware_utc

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


#: Rows named uniquely within their project. A constrained TypeVar rather than a
#: Protocol: mypy reads ``Mapped[int]`` on an instance as ``int``, so no Protocol
#: both matches the rows and lets ``row_type.name`` build SQL.
R = TypeVar("R", PipelineRow, ScheduleRow)


def find_named_row(session: Session, row_type: type[R], project: str, name: str) -> R | None:
    """The ``row_type`` row called ``name`` in ``project``, or None."""
    return session.scalars(
        select(row_type)
        .join(ProjectRow, row_type.project_id == ProjectRow.id)
        .where(ProjectRow.name == project, row_type.name == name)
    ).first()


def list_named_rows(session: Session, row_type: type[R], project: str) -> Sequence[R]:
    """The ``row_type`` rows in ``project``, by name."""
    return session.scalars(
        select(row_type)
        .join(ProjectRow, row_type.project_id == ProjectRow.id)
        .where(ProjectRow.name == project)
        .order_by(row_type.name)
    ).all()


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
