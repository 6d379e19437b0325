"""Project-scoped row lookups: the project's row, and rows named uniquely within a project.

They live in the store (not in ``aimass.registry``) because the store's own
helpers need them and the store imports no domain package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.errors import NotFound
from aimass.store.orm import PipelineRow, ProjectRow, ScheduleRow


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
