"""/api/v1/jobs/{id}/attempts/{n}/...: what a running attempt writes (``aimass.runtime``).

Every write names its attempt and is refused with 409 once that attempt is no
longer the job's current one. Only the token minted for an attempt writes as it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import JsonValue
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from aimass.api.deps import Ctx, editor
from aimass.api.ids import Id, Step
from aimass.api.uploads import SPOOL
from aimass.artifacts.names import validate_filename
from aimass.artifacts.store import out_of_space, store_full
from aimass.entities.evaluation import Evaluation, EvaluationCreate
from aimass.entities.jobs import (
    AttemptLease,
    JobArtifact,
    JobOutputs,
    LogsAppended,
    MetricBatch,
    MetricsRecorded,
)
from aimass.errors import Forbidden
from aimass.jobs import attempt_files, records, service
from aimass.jobs.entities import JobCheckpoint
from aimass.registry import evaluations

router = APIRouter(prefix="/api/v1/jobs/{job_id}/attempts/{attempt}", tags=["job runtime"])
Editor = Annotated[Ctx, Depends(editor)]


def _own(ctx: Ctx, job_id: int, attempt: int) -> None:
    """Only the token minted for this very attempt writes as it (with auth on).

    A person's token, even an admin's, may not forge a running job's metrics,
    logs or checkpoints; a job's token may not write as another job or attempt.
    """
    principal = ctx.principal
    if ctx.platform.settings.auth:
        if principal.job_id is None:
            raise Forbidden(
                f"only the token of job {job_id}'s attempt {attempt} may write as that "
                "attempt; people's tokens may read the job, not write its records"
            )
        if principal.job_id != job_id or principal.job_attempt != attempt:
            raise Forbidden(
                f"this token belongs to job {principal.job_id} attempt {principal.job_attempt}, "
                f"not job {job_id} attempt {attempt}"
            )
    with ctx.platform.db.session() as session:
        service.read_job(session, job_id, ctx.project)


@router.post("/heartbeat")
def heartbeat(job_id: Id, attempt: Id, ctx: Editor) -> AttemptLease:
    """Renew the attempt's lease; says whether a cancel was requested."""
    _own(ctx, job_id, attempt)
    with ctx.platform.db.session() as session:
        job = service.renew_lease(session, job_id, attempt, ctx.platform.settings.job_lease_s)
    return AttemptLease(
        lease_expires_at=job.lease_expires_at, cancel_requested=job.cancel_requested
    )


@router.post("/metrics")
def log_metrics(job_id: Id, attempt: Id, body: MetricBatch, ctx: Editor) -> MetricsRecorded:
    """Record step metrics."""
    _own(ctx, job_id, attempt)
    points = [(m.name, m.value, m.step) for m in body.metrics]
    with ctx.platform.db.session() as session:
        return MetricsRecorded(recorded=records.record_metrics(session, job_id, attempt, points))


@router.post("/outputs")
def merge_outputs(job_id: Id, attempt: Id, body: dict[str, JsonValue], ctx: Editor) -> JobOutputs:
    """Merge named outputs (and ``params``) into the job's outputs; the merged outputs."""
    _own(ctx, job_id, attempt)
    with ctx.platform.db.session() as session:
        return JobOutputs(outputs=records.merge_outputs(session, job_id, attempt, body))


@asynccontextmanager
async def _spooled(request: Request, ctx: Ctx) -> AsyncIterator[Path]:
    """The raw body in a spool file, removed afterwards."""
    path = ctx.platform.settings.spool_dir / uuid.uuid4().hex
    try:
        try:
            with path.open("xb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
        except OSError as exc:
            if out_of_space(exc):
                raise store_full(SPOOL) from exc
            raise
        yield path
    finally:
        path.unlink(missing_ok=True)


@router.put("/checkpoint")
async def save_checkpoint(
    job_id: Id,
    attempt: Id,
    request: Request,
    ctx: Editor,
    step: Step = 0,
) -> JobCheckpoint:
    """Save the raw body as a checkpoint at ``step``; the next attempt resumes from it."""
    p = ctx.platform
    await run_in_threadpool(_own, ctx, job_id, attempt)
    # Refuse a stale attempt before taking its bytes.
    await run_in_threadpool(attempt_files.claim_attempt, p.db, job_id, attempt)
    async with _spooled(request, ctx) as body:
        return await run_in_threadpool(
            attempt_files.keep_checkpoint, p.db, p.store, job_id, attempt, step, body
        )


@router.post("/artifacts/{name}")
async def log_artifact(
    job_id: Id, attempt: Id, name: str, request: Request, ctx: Editor
) -> JobArtifact:
    """Keep the raw body as a file of the job, listed in its outputs' ``artifacts``."""
    validate_filename(name)
    p = ctx.platform
    await run_in_threadpool(_own, ctx, job_id, attempt)
    async with _spooled(request, ctx) as body:
        item = await run_in_threadpool(
            attempt_files.keep_artifact, p.db, p.store, job_id, attempt, name, body
        )
    return JobArtifact.model_validate(item)


@router.post("/logs")
async def ship_logs(job_id: Id, attempt: Id, request: Request, ctx: Editor) -> LogsAppended:
    """Append log bytes shipped from a remote node (the Ray executor) to the attempt's log."""
    p = ctx.platform
    await run_in_threadpool(_own, ctx, job_id, attempt)
    data = await request.body()
    await run_in_threadpool(
        attempt_files.append_shipped_log, p.db, p.settings.job_log_dir, job_id, attempt, data
    )
    return LogsAppended(appended=len(data))


@router.post("/evaluations", status_code=201)
def report_evaluation(job_id: Id, attempt: Id, body: EvaluationCreate, ctx: Editor) -> Evaluation:
    """Store an evaluation report on a version, with lineage to this job and its dataset."""
    _own(ctx, job_id, attempt)

    def guard(session: Session) -> tuple[int, int | None]:
        _, dataset_version_id = records.attempt_lineage(session, job_id=job_id, attempt=attempt)
        return job_id, dataset_version_id

    with ctx.platform.db.session() as session:
        return evaluations.record_evaluation(session, ctx.project, body, guard)
