"""Allocating the next version number under concurrent writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from aimass.errors import Conflict
from aimass.store.db import Database
from aimass.store.orm import DatasetRow, ModelRow, ProjectRow
from aimass.store.projects import read_project_row

E = TypeVar("E")
MAX_RETRIES = 8


def insert_next_version(
    db: Database,
    version_column: InstrumentedAttribute[int],
    parent_column: InstrumentedAttribute[int],
    parent_id: int,
    build: Callable[[Session, int], E],
) -> E:
    """Run ``build(session, next_number)`` in a transaction, retrying if the number is taken.

    The (parent, version) unique constraint makes two writers that read the same
    maximum collide; the loser retries with the next number.
    """
    for _ in range(MAX_RETRIES):
        try:
            with db.session() as session:
                latest = session.scalar(
                    select(func.max(version_column)).where(parent_column == parent_id)
                )
                return build(session, (latest or 0) + 1)
        except IntegrityError:
            continue
    raise Conflict("could not allocate a version number under contention; try again")


def ensure_parent(
    db: Database, row_type: type[ModelRow | DatasetRow], project: str, name: str
) -> int:
    """The id of the project's model or dataset called ``name``, created when missing.

    Two uploads that create the same parent at once meet the (project, name)
    unique constraint; the loser reads the winner's row.
    """
    lookup = (
        select(row_type.id)
        .join(ProjectRow)
        .where(ProjectRow.name == project, row_type.name == name)
    )
    with db.session() as session:
        found = session.scalars(lookup).first()
        if found is not None:
            return found
    try:
        with db.session() as session:
            row = row_type(project_id=read_project_row(session, project).id, name=name)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        with db.session() as session:
            return session.scalars(lookup).one()
