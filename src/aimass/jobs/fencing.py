"""Fenced writes: every write from an attempt matches only while that attempt is current.

``claim`` is a conditional UPDATE on ``(id, attempt, state='running')``; it takes
the row's write lock in the same statement, so a late writer from a superseded
attempt is refused even with concurrent writers on PostgreSQL.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from aimass.errors import Conflict, NotFound
from aimass.store.orm import JobRow


def conditional(session: Session, job_id: int, *where: Any, **values: Any) -> bool:
    """UPDATE jobs SET values WHERE id = job_id AND where...; True if a row matched."""
    result = session.execute(
        update(JobRow).where(JobRow.id == job_id, *where).values(**values),
        execution_options={"synchronize_session": False},
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def conditional_row(session: Session, job_id: int, *where: Any, **values: Any) -> JobRow | None:
    """``conditional``, returning the updated row (UPDATE ... RETURNING), or None if none matched.

    One round trip where ``conditional`` then ``reload`` take two.
    """
    stmt = (
        update(JobRow)
        .where(JobRow.id == job_id, *where)
        .values(**values)
        .returning(JobRow)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt, execution_options={"synchronize_session": False}).one_or_none()


def reload(session: Session, job_id: int) -> JobRow:
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return row


def claim(session: Session, job_id: int, attempt: int) -> JobRow:
    """Lock the job for a write from ``attempt``; Conflict unless it is current and running.

    The check and the lock are one statement, so on PostgreSQL a concurrent
    writer that ends the attempt either commits first (and this matches no row)
    or waits until this transaction ends.
    """
    locked = conditional_row(
        session,
        job_id,
        JobRow.attempt == attempt,
        JobRow.state == "running",
        attempt=JobRow.attempt,
    )
    if locked is not None:
        return locked
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None:
        raise NotFound(f"job {job_id} not found")
    if row.attempt != attempt:
        raise Conflict(
            f"attempt {attempt} is no longer current for job {job_id} "
            f"(attempt {row.attempt} is); its writes are refused"
        )
    raise Conflict(
        f"attempt {attempt} is no longer current for job {job_id}: the job is {row.state}"
    )
