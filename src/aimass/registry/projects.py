"""Projects: the tenants that own models and datasets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_name
from aimass.entities.projects import Project
from aimass.errors import Conflict
from aimass.store.orm import ProjectRow, aware_utc
from aimass.store.projects import find_named_row, list_named_rows, read_project_row

DEFAULT_PROJECT = "default"
__all__ = [
    "DEFAULT_PROJECT",
    "Project",
    "create_project",
    "find_named_row",
    "list_named_rows",
    "list_projects",
    "read_project_row",
]


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
