"""Attempts starting and succeeding: the two writes every job makes, in few statements.

Placement starts every job it chose in one tick with one conditional UPDATE
(``WHERE id IN (...) AND state = 'queued'``), reads their projects' names in
one SELECT and inserts their events in one batch: the statements of a tick do
not grow with the number of jobs it starts. These are Core statements on the
tables (no ORM entity in them, a fraction of the ORM's cost per statement); a
row of the job this session already holds is expired, so it is read afresh.

An attempt that succeeds ends with one conditional UPDATE on
``(id, attempt, state='running')`` (the fence of ``fencing.claim``, which takes
the row's write lock in the same statement), its event and the delete of its
tokens; no ORM unit of work, no reload. A failure (retry, requeue, cancel) goes
through ``service.finish_attempt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import JsonValue
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from aimass.auth.service import delete_job_tokens
from aimass.errors import Conflict
from aimass.jobs.entities import Job
from aimass.jobs.fencing import claim, conditional, reload
from aimass.store.orm import JobEventRow, JobRow, ProjectRow, utcnow
from aimass.store.orm.jobs import job_entity

#: The tables, for Core statements (no ORM entity in them: a fraction of the ORM's cost).
JOBS = cast("Table", JobRow.__table__)
EVENTS = cast("Table", JobEventRow.__table__)
PROJECTS = cast("Table", ProjectRow.__table__)


def start_attempts(
    session: Session,
    job_ids: Sequence[int],
    node: str,
    lease_s: float,
    now: datetime | None = None,
) -> list[Job]:
    """queued → running as each job's next attempt, with a lease of ``lease_s`` seconds.

    Jobs no longer queued (cancelled meanwhile) are skipped; the others come
    back in the order of ``job_ids``. Three statements however many jobs start.
    """
    if not job_ids:
        return []
    now = now or utcnow()
    jobs = JOBS.c
    rows = session.execute(
        update(JOBS)
        .where(jobs.id.in_(job_ids), jobs.state == "queued")
        .values(
            state="running",
            attempt=jobs.attempt + 1,
            node=node,
            started_at=now,
            finished_at=None,
            next_attempt_at=None,
            lease_expires_at=now + timedelta(seconds=lease_s),
            reason=None,
        )
        .returning(*JOBS.c)
    ).all()
    if not rows:
        return []
    _forget(session, {r.id for r in rows})
    named = select(PROJECTS.c.id, PROJECTS.c.name).where(
        PROJECTS.c.id.in_({r.project_id for r in rows})
    )
    names: dict[int, str] = {pid: name for pid, name in session.execute(named)}
    session.execute(
        insert(EVENTS),
        [
            {
                "job_id": r.id,
                "at": now,
                "state": "running",
                "attempt": r.attempt,
                "reason": f"attempt {r.attempt} on {node}",
            }
            for r in rows
        ],
    )
    by_id = {r.id: r for r in rows}
    return [job_entity(by_id[i], names[by_id[i].project_id]) for i in job_ids if i in by_id]


def _forget(session: Session, job_ids: set[int]) -> None:
    """Expire these jobs' rows this session holds: Core writes do not refresh them."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, JobRow) and obj.id in job_ids:
            session.expire(obj)


def start_attempt(
    session: Session, job_id: int, node: str, lease_s: float, now: datetime | None = None
) -> Job:
    """queued → running as the next attempt, holding a lease for ``lease_s`` seconds."""
    started = start_attempts(session, [job_id], node, lease_s, now)
    if not started:
        state = reload(session, job_id).state
        raise Conflict(f"job {job_id} is {state}, not queued; it cannot start")
    return started[0]


def succeed_attempt(
    session: Session,
    job_id: int,
    attempt: int,
    outputs: Mapping[str, JsonValue] | None = None,
    now: datetime | None = None,
) -> None:
    """running → succeeded for ``attempt``; Conflict (or NotFound) unless it is current.

    One conditional UPDATE ends it and locks the row; the outputs, when there
    are any, are merged into the stored ones under that lock.
    """
    now = now or utcnow()
    jobs = JOBS.c
    ended = session.execute(
        update(JOBS)
        .where(jobs.id == job_id, jobs.attempt == attempt, jobs.state == "running")
        .values(
            state="succeeded",
            finished_at=now,
            next_attempt_at=None,
            reason=None,
            lease_expires_at=None,
            node=None,
        )
        .returning(jobs.outputs)
    ).first()
    if ended is None:
        claim(session, job_id, attempt)  # raises the precise Conflict or NotFound
        raise Conflict(f"attempt {attempt} of job {job_id} is no longer running")  # not reached
    _forget(session, {job_id})
    if outputs:
        merged: dict[str, Any] = {**(ended.outputs or {}), **outputs}
        conditional(session, job_id, outputs=merged)
    session.execute(
        insert(EVENTS).values(
            job_id=job_id, at=now, state="succeeded", attempt=attempt, reason=None
        )
    )
    delete_job_tokens(session, job_id)
