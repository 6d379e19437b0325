"""Allocating the next version number under concurrent writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from aimass.errors import Conflict
from aimass.store.db import Database

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
