"""The job state machine: submit, read, cancel, retry, and fenced attempt writes.

queued → running → succeeded | failed | cancelled. A failed or lost attempt
may go back to queued for another attempt. Every write that carries an attempt
number goes through ``_claim``: a conditional UPDATE that matches only while
that attempt is current and running. It takes the row's write lock in the same
statement, so a late writer from a superseded attempt is refused even with
concurrent writers on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import JsonValue, ValidationError
from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from aimass.auth.service import delete_job_tokens
from aimass.errors import Conflict, NotFound, Unprocessable
from aimass.jobs.attempts import EVENTS, JOBS, succeed_attempt
from aimass.jobs.attempts import start_attempt as start_attempt
from aimass.jobs.attempts import start_attempts as start_attempts
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import (
    Job,
    JobCreate,
    JobEvent,
    JobKind,
    JobState,
    Outcome,
    StoredSource,
)
from aimass.jobs.fencing import claim, conditional, reload
from aimass.store.orm import (
    DatasetRow,
    DatasetVersionRow,
    JobEventRow,
    JobRow,
    ProjectRow,
    aware_utc,
    utcnow,
)
from aimass.store.orm.jobs import job_entity
from aimass.store.projects import read_project_row

#: Checks and normalises an entry's params; raises ``Unprocessable`` naming the bad field.
ParamsValidator = Callable[[dict[str, JsonValue]], dict[str, JsonValue]]

#: What ``submit_job`` checks entries against: the catalogue, or name → validator (tests).
Entries = EntryCatalog | Mapping[str, ParamsValidator | None]

#: A job lost this many times to the infrastructure fails instead of looping forever.
MAX_INFRA_REQUEUES = 10
#: Backoff before retry n (1-based) of a failed attempt: base * 2**(n-1), capped.
RETRY_BACKOFF_BASE_S = 2.0
RETRY_BACKOFF_MAX_S = 300.0


def _validate_params(spec: JobCreate, known_entries: Entries) -> dict[str, JsonValue]:
    if isinstance(known_entries, EntryCatalog):
        params = known_entries.check(spec.kind, spec.entry, dict(spec.params))
        entry = known_entries.get(spec.entry)
        if entry is not None and entry.needs_dataset and spec.dataset is None:
            raise Unprocessable(f"dataset: entry {spec.entry!r} needs a dataset to work on")
        return params
    if spec.entry not in known_entries:
        known = ", ".join(sorted(known_entries)) or "none"
        raise Unprocessable(f"entry: unknown entry {spec.entry!r} (known: {known})")
    validator = known_entries[spec.entry]
    if validator is None:
        return dict(spec.params)
    try:
        return validator(dict(spec.params))
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise Unprocessable(f"entry {spec.entry!r}: {problems}") from exc
    except ValueError as exc:
        raise Unprocessable(f"entry {spec.entry!r}: params: {exc}") from exc


def _check_dataset(session: Session, project_id: int, spec: JobCreate) -> None:
    if spec.dataset is None:
        if spec.dataset_version is not None:
            raise Unprocessable("dataset_version: given without a dataset")
        return
    dataset = session.scalars(
        select(DatasetRow).where(
            DatasetRow.project_id == project_id, DatasetRow.name == spec.dataset
        )
    ).first()
    if dataset is None:
        raise NotFound(f"dataset: {spec.dataset!r} not found")
    if spec.dataset_version is not None:
        found = session.scalar(
            select(DatasetVersionRow.id).where(
                DatasetVersionRow.dataset_id == dataset.id,
                DatasetVersionRow.version == spec.dataset_version,
            )
        )
        if found is None:
            raise NotFound(
                f"dataset_version: dataset {spec.dataset!r} has no version {spec.dataset_version}"
            )


def _event(
    session: Session, row: JobRow, state: JobState, reason: str | None, now: datetime
) -> None:
    session.add(JobEventRow(job_id=row.id, at=now, state=state, attempt=row.attempt, reason=reason))


def submit_job(
    session: Session,
    project: str,
    spec: JobCreate,
    known_entries: Entries,
    now: datetime | None = None,
    source: StoredSource | None = None,
) -> Job:
    """Validate and queue a job; an unknown entry, bad params or dataset queue nothing."""
    now = now or utcnow()
    project_row = read_project_row(session, project)
    params = _validate_params(spec, known_entries)
    _check_dataset(session, project_row.id, spec)
    if spec.parent_id is not None:
        parent = session.get(JobRow, spec.parent_id)
        if parent is None or parent.project_id != project_row.id:
            raise NotFound(f"parent_id: job {spec.parent_id} not found")
    # A Core INSERT ... RETURNING (no ORM unit of work): every submission pays for it.
    row = session.execute(
        insert(JOBS)
        .values(
            project_id=project_row.id,
            kind=spec.kind,
            entry=spec.entry,
            params=params,
            dataset=spec.dataset,
            dataset_version=spec.dataset_version,
            cpu=spec.resources.cpu,
            gpu=spec.resources.gpu,
            memory_mb=spec.resources.memory_mb,
            custom_resources=dict(spec.resources.custom) or None,
            priority=spec.priority,
            state="queued",
            attempt=0,
            retries_used=0,
            max_retries=spec.max_retries,
            infra_requeues=0,
            timeout_s=spec.timeout_s,
            cancel_requested=False,
            parent_id=spec.parent_id,
            outputs={},
            source_key=source.key if source else None,
            source_sha256=source.sha256 if source else None,
            source_name=source.name if source else None,
            created_at=now,
            queued_at=now,
        )
        .returning(*JOBS.c)
    ).one()
    session.execute(
        insert(EVENTS).values(job_id=row.id, at=now, state="queued", attempt=0, reason=None)
    )
    return job_entity(row, project_row.name)


def _row(session: Session, job_id: int, project: str | None = None) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None or (project is not None and row.project.name != project):
        raise NotFound(f"job {job_id} not found")
    return row


def read_job(session: Session, job_id: int, project: str | None = None) -> Job:
    """The job; NotFound if it does not exist (or is not in ``project`` when given)."""
    return _row(session, job_id, project).to_entity()


def list_jobs(
    session: Session,
    project: str,
    state: JobState | None = None,
    kind: JobKind | None = None,
    limit: int = 100,
    offset: int = 0,
    parent_id: int | None = None,
    entry: str | None = None,
    after: int | None = None,
) -> list[Job]:
    """A project's jobs, newest first, optionally of one state, kind, entry or parent.

    ``after`` pages by keyset: only jobs older than the job with that id (the last
    one of the previous page), which an index answers however deep the page is.
    """
    # The project is compared as a value (a scalar subquery), not joined: with the join,
    # SQLite's planner loops over projects first and sorts every one of the project's
    # jobs to find the newest 50 (a temporary B-tree, ~40-200 ms at 100,000 jobs); as a
    # value it walks a (project_id, [filter,] id) index backwards and stops at the limit.
    project_id = select(ProjectRow.id).where(ProjectRow.name == project).scalar_subquery()
    stmt = select(JobRow).where(JobRow.project_id == project_id)
    if state is not None:
        stmt = stmt.where(JobRow.state == state)
    if kind is not None:
        stmt = stmt.where(JobRow.kind == kind)
    if entry is not None:
        stmt = stmt.where(JobRow.entry == entry)
    if parent_id is not None:
        stmt = stmt.where(JobRow.parent_id == parent_id)
    if after is not None:
        stmt = stmt.where(JobRow.id < after)
    stmt = stmt.order_by(JobRow.id.desc()).limit(limit).offset(offset)
    return [r.to_entity() for r in session.scalars(stmt)]


def list_job_events(session: Session, job_id: int) -> list[JobEvent]:
    """The job's state history, oldest first."""
    _row(session, job_id)
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    )
    return [r.to_entity() for r in rows]


def read_source(session: Session, job_id: int, project: str) -> StoredSource | None:
    """Where a script job's uploaded code is stored, or None for other jobs."""
    row = _row(session, job_id, project)
    if row.source_key is None or row.source_sha256 is None:
        return None
    return StoredSource(key=row.source_key, sha256=row.source_sha256, name=row.source_name or "")


def cancel_job(session: Session, job_id: int, project: str | None = None) -> Job:
    """Cancel: a queued job at once; a running one is marked and its executor ends it.

    The job's unfinished children (a tuning job's trials) are cancelled with it.
    """
    children = session.scalars(
        select(JobRow.id).where(JobRow.parent_id == job_id, JobRow.state.in_(("queued", "running")))
    ).all()
    for child in children:
        cancel_job(session, child)
    return _cancel_one(session, job_id, project)


def _cancel_one(session: Session, job_id: int, project: str | None) -> Job:
    now = utcnow()
    row = _row(session, job_id, project)
    if conditional(
        session,
        job_id,
        JobRow.state == "queued",
        state="cancelled",
        finished_at=now,
        reason="cancelled by request",
        next_attempt_at=None,
    ):
        row = reload(session, job_id)
        _event(session, row, "cancelled", "cancelled by request", now)
        return row.to_entity()
    if conditional(
        session,
        job_id,
        JobRow.state == "running",
        cancel_requested=True,
        reason="cancel requested; stopping the running attempt",
    ):
        return reload(session, job_id).to_entity()
    row = reload(session, job_id)
    if row.state == "cancelled":
        return row.to_entity()
    raise Conflict(f"job {job_id} already {row.state}; there is nothing to cancel")


def retry_job(session: Session, job_id: int, project: str | None = None) -> Job:
    """Put a failed or cancelled job back in the queue with a fresh retry budget."""
    now = utcnow()
    _row(session, job_id, project)
    if not conditional(
        session,
        job_id,
        JobRow.state.in_(("failed", "cancelled")),
        state="queued",
        queued_at=now,
        finished_at=None,
        next_attempt_at=None,
        lease_expires_at=None,
        retries_used=0,
        infra_requeues=0,
        cancel_requested=False,
        node=None,
        reason="retried by request",
    ):
        row = reload(session, job_id)
        raise Conflict(f"job {job_id} is {row.state}; only failed or cancelled jobs can be retried")
    row = reload(session, job_id)
    _event(session, row, "queued", "retried by request", now)
    return row.to_entity()


def record_node(
    session: Session, job_id: int, attempt: int, node: str, now: datetime | None = None
) -> bool:
    """The running attempt landed on ``node`` (a Ray node): the job names it, an event keeps it.

    False (and nothing written) when that attempt is no longer the one running.
    """
    now = now or utcnow()
    if not conditional(
        session, job_id, JobRow.attempt == attempt, JobRow.state == "running", node=node
    ):
        return False
    _event(session, reload(session, job_id), "running", f"attempt {attempt} runs on {node}", now)
    return True


def renew_lease(
    session: Session, job_id: int, attempt: int, lease_s: float, now: datetime | None = None
) -> Job:
    """Extend the attempt's lease; the returned job says whether a cancel was requested."""
    now = now or utcnow()
    if not conditional(
        session,
        job_id,
        JobRow.attempt == attempt,
        JobRow.state == "running",
        lease_expires_at=now + timedelta(seconds=lease_s),
    ):
        claim(session, job_id, attempt)  # raises the precise Conflict or NotFound
    return reload(session, job_id).to_entity()


def extend_lease(
    session: Session, job_id: int, attempt: int, lease_s: float, now: datetime | None = None
) -> bool:
    """``renew_lease`` without reading the job back: False when the attempt is not current."""
    now = now or utcnow()
    return conditional(
        session,
        job_id,
        JobRow.attempt == attempt,
        JobRow.state == "running",
        lease_expires_at=now + timedelta(seconds=lease_s),
    )


def _backoff(retry: int) -> float:
    return float(min(RETRY_BACKOFF_BASE_S * 2 ** (retry - 1), RETRY_BACKOFF_MAX_S))


def _end_attempt(row: JobRow, now: datetime) -> None:
    row.lease_expires_at = None
    row.node = None


def _requeue(session: Session, row: JobRow, reason: str, now: datetime, delay_s: float) -> None:
    _end_attempt(row, now)
    row.state = "queued"
    row.queued_at = now
    row.next_attempt_at = now + timedelta(seconds=delay_s) if delay_s > 0 else None
    row.reason = reason
    _event(session, row, "queued", reason, now)


def _finish(
    session: Session, row: JobRow, state: JobState, reason: str | None, now: datetime
) -> None:
    _end_attempt(row, now)
    row.state = state
    row.finished_at = now
    row.next_attempt_at = None
    row.reason = reason
    _event(session, row, state, reason, now)
    delete_job_tokens(session, row.id)


def _fail_attempt(session: Session, row: JobRow, reason: str, infra: bool, now: datetime) -> None:
    """End a running attempt that did not succeed: cancel, requeue or fail."""
    if row.cancel_requested:
        _finish(session, row, "cancelled", "cancelled by request", now)
    elif infra:
        row.infra_requeues += 1
        if row.infra_requeues > MAX_INFRA_REQUEUES:
            _finish(
                session,
                row,
                "failed",
                f"{reason}; gave up after {MAX_INFRA_REQUEUES} infrastructure failures",
                now,
            )
        else:
            _requeue(
                session,
                row,
                f"requeued after attempt {row.attempt}: {reason} "
                "(an infrastructure failure; the retry budget is untouched)",
                now,
                0.0,
            )
    elif row.retries_used < row.max_retries:
        row.retries_used += 1
        delay = _backoff(row.retries_used)
        _requeue(
            session,
            row,
            f"retry {row.retries_used} of {row.max_retries} in {delay:g} s after attempt "
            f"{row.attempt} failed: {reason}",
            now,
            delay,
        )
    else:
        _finish(session, row, "failed", reason, now)


def finish_attempt(
    session: Session,
    job_id: int,
    attempt: int,
    outcome: Outcome,
    reason: str | None = None,
    infra: bool = False,
    outputs: Mapping[str, JsonValue] | None = None,
    now: datetime | None = None,
) -> Job:
    """End the running attempt; exactly one finish per attempt wins, later ones get Conflict.

    A failure of the job's own code (``infra=False``) uses the retry budget and
    requeues with exponential backoff; an infrastructure failure requeues at
    once without using it. A job whose cancel was requested ends cancelled.
    """
    end_attempt(session, job_id, attempt, outcome, reason, infra, outputs, now)
    return reload(session, job_id).to_entity()


def end_attempt(
    session: Session,
    job_id: int,
    attempt: int,
    outcome: Outcome,
    reason: str | None = None,
    infra: bool = False,
    outputs: Mapping[str, JsonValue] | None = None,
    now: datetime | None = None,
) -> None:
    """``finish_attempt`` without reading the job back (the scheduler's exits)."""
    now = now or utcnow()
    if outcome == "succeeded":
        succeed_attempt(session, job_id, attempt, outputs, now)
        return
    row = claim(session, job_id, attempt)
    if outputs:
        row.outputs = {**(row.outputs or {}), **outputs}
    _fail_attempt(session, row, reason or "the attempt failed", infra, now)
    session.flush()


#: (job id, attempt, lease_expires_at) of a running attempt.
Lease = tuple[int, int, datetime | None]
#: (job id, attempt, started_at, timeout_s) of a running attempt.
Deadline = tuple[int, int, datetime | None, float | None]


def expire_leases(
    session: Session, now: datetime | None = None, running: Sequence[Lease] | None = None
) -> list[int]:
    """Requeue running jobs whose lease ran out (infrastructure failures); their ids.

    A job out of infrastructure requeues fails instead, and one whose cancel
    was requested ends cancelled; both are in the returned ids too, since the
    attempt is over either way. ``running``: the running attempts, when the
    caller has just read them (placement); each is checked again as it is ended.
    """
    now = now or utcnow()
    if running is None:
        expired = [
            (r.id, r.attempt, r.lease_expires_at)
            for r in session.execute(
                select(JobRow.id, JobRow.attempt, JobRow.lease_expires_at).where(
                    JobRow.state == "running", JobRow.lease_expires_at < now
                )
            )
        ]
    else:
        expired = [r for r in running if r[2] is not None and aware_utc(r[2]) < now]
    ended: list[int] = []
    for job_id, attempt, lease_expires_at in expired:
        if not conditional(
            session,
            job_id,
            JobRow.attempt == attempt,
            JobRow.state == "running",
            JobRow.lease_expires_at < now,
            attempt=JobRow.attempt,
        ):
            continue  # renewed or finished meanwhile
        row = reload(session, job_id)
        since = aware_utc(lease_expires_at or now).strftime("%H:%M:%S UTC")
        _fail_attempt(
            session, row, f"lost its lease (no heartbeat; it ran out at {since})", True, now
        )
        ended.append(job_id)
    session.flush()
    return ended


def abandon_attempts(
    session: Session, attempts: list[tuple[int, int]], reason: str, now: datetime | None = None
) -> list[int]:
    """End attempts whose process is known to be gone (its server died): requeue them now.

    An infrastructure failure, like a lost lease, but without waiting for the
    lease to run out. Attempts that are no longer current are left alone.
    """
    now = now or utcnow()
    ended: list[int] = []
    for job_id, attempt in attempts:
        try:
            row = claim(session, job_id, attempt)
        except (Conflict, NotFound):
            continue
        _fail_attempt(session, row, reason, True, now)
        ended.append(job_id)
    session.flush()
    return ended


def enforce_timeouts(
    session: Session, now: datetime | None = None, running: Sequence[Deadline] | None = None
) -> list[int]:
    """Fail running attempts past their job's ``timeout_s`` (a failure of the job's own).

    ``running``: the running attempts, when the caller has just read them.
    """
    now = now or utcnow()
    candidates: Sequence[Deadline] = running or []
    if running is None:
        candidates = [
            (r.id, r.attempt, r.started_at, r.timeout_s)
            for r in session.execute(
                select(JobRow.id, JobRow.attempt, JobRow.started_at, JobRow.timeout_s).where(
                    JobRow.state == "running", JobRow.timeout_s.is_not(None)
                )
            )
        ]
    ended: list[int] = []
    for job_id, attempt, started_at, timeout_s in candidates:
        if started_at is None or timeout_s is None:
            continue
        if now < aware_utc(started_at) + timedelta(seconds=timeout_s):
            continue
        try:
            row = claim(session, job_id, attempt)
        except Conflict:
            continue
        _fail_attempt(session, row, f"timed out after {timeout_s:g} s", False, now)
        ended.append(job_id)
    session.flush()
    return ended


def set_waiting_reasons(session: Session, reasons: Mapping[int, str]) -> int:
    """Record why queued jobs wait, one statement per distinct reason; only changes are written.

    Returns how many jobs' reasons changed.
    """
    by_reason: dict[str, list[int]] = {}
    for job_id, reason in reasons.items():
        by_reason.setdefault(reason, []).append(job_id)
    changed = 0
    for reason, ids in by_reason.items():
        jobs = JOBS.c  # a Core UPDATE: no ORM entity to synchronise
        result = session.execute(
            update(JOBS)
            .where(
                jobs.id.in_(ids),
                jobs.state == "queued",
                jobs.reason.is_(None) | (jobs.reason != reason),
            )
            .values(reason=reason)
        )
        changed += cast("CursorResult[Any]", result).rowcount
    return changed
