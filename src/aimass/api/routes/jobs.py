"""/api/v1/jobs: submit, watch, cancel and retry jobs; their logs, metrics and files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from aimass.api.deps import Ctx, editor, global_admin, viewer
from aimass.api.downloads import stream_attachment
from aimass.api.ids import MAX_INT, Id, Offset, QueryId
from aimass.api.uploads import spooled_upload
from aimass.entities.catalog import EntryInfo
from aimass.entities.jobs import JobArtifact
from aimass.errors import NotFound
from aimass.jobs import log_stream, records, service, submission
from aimass.jobs.entities import (
    Job,
    JobCheckpoint,
    JobCreate,
    JobEvent,
    JobKind,
    JobMetric,
    JobState,
)
from aimass.validation import parse_json

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]
ScriptSubmitter = Annotated[Ctx, Depends(global_admin("submit script jobs"))]


def wake_scheduler(ctx: Ctx) -> None:
    """Let this process's scheduler act on a change now instead of at its next tick."""
    ctx.platform.notify("jobs")


def _job(ctx: Ctx, job_id: int) -> Job:
    with ctx.platform.db.session() as session:
        return service.read_job(session, job_id, ctx.project)


NO_SCHEDULER = (
    "no scheduler is running on this server (started with --no-jobs); "
    "it waits for a server that runs jobs on the same database"
)


def said_waiting(ctx: Ctx, job: Job) -> Job:
    """A queued job, in the answer of a server without a scheduler, says why it waits."""
    if ctx.platform.settings.jobs or job.state != "queued" or job.reason:
        return job
    return job.model_copy(update={"reason": NO_SCHEDULER})


@router.get("/entries")
def list_entries(ctx: Viewer) -> list[EntryInfo]:
    """What jobs can run by name: each entry's kinds, description and params schema."""
    return [EntryInfo.model_validate(entry.describe()) for entry in ctx.platform.catalog.all()]


@router.post("", status_code=201)
def submit_job(body: JobCreate, ctx: Editor) -> Job:
    """Queue a job of a catalogue entry; bad entries, params or datasets queue nothing."""
    p = ctx.platform
    job = submission.submit_entry_job(
        p.db, p.store, p.catalog, ctx.project, body, p.settings.spool_dir
    )
    wake_scheduler(ctx)
    return said_waiting(ctx, job)


@router.post("/script", status_code=201)
async def submit_script(request: Request, ctx: ScriptSubmitter) -> Job:
    """Queue your own code: multipart ``source`` (.py, .zip, .tar.gz) and ``spec`` (JobCreate).

    User code runs on the platform's nodes, so this needs an admin token valid on all projects.
    """
    p = ctx.platform
    async with spooled_upload(request, p.settings.spool_dir, "source", "spec") as upload:
        spec = parse_json(JobCreate, upload.meta, "spec")
        job = await run_in_threadpool(
            submission.submit_script_job,
            p.db,
            p.store,
            p.catalog,
            ctx.project,
            spec,
            upload.path,
            upload.filename,
            p.settings.spool_dir,
        )
    wake_scheduler(ctx)
    return said_waiting(ctx, job)


@router.get("")
def list_jobs(
    ctx: Viewer,
    response: Response,
    state: JobState | None = None,
    kind: JobKind | None = None,
    entry: Annotated[str | None, Query(max_length=256)] = None,
    parent_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    after: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT, description="keyset cursor: the X-Next-Cursor of the last page"),
    ] = None,
) -> list[Job]:
    """A project's jobs, newest first; a full page's ``X-Next-Cursor`` header asks for the next."""
    with ctx.platform.db.session() as session:
        jobs = service.list_jobs(
            session, ctx.project, state, kind, limit, offset, parent_id, entry, after
        )
    if len(jobs) == limit:
        response.headers["X-Next-Cursor"] = str(jobs[-1].id)
    return jobs


@router.get("/{job_id}")
def read_job(job_id: Id, ctx: Viewer) -> Job:
    """One job and where its state machine stands."""
    return said_waiting(ctx, _job(ctx, job_id))


@router.get("/{job_id}/events")
def list_events(job_id: Id, ctx: Viewer) -> list[JobEvent]:
    """The job's state history with reasons, oldest first."""
    _job(ctx, job_id)
    with ctx.platform.db.session() as session:
        return service.list_job_events(session, job_id)


@router.get("/{job_id}/metrics")
def list_metrics(
    job_id: Id,
    ctx: Viewer,
    name: str | None = None,
    max_points: Annotated[
        int | None, Query(ge=2, le=100_000, description="for charts: downsample each series")
    ] = None,
) -> list[JobMetric]:
    """The step metrics the job logged, over every attempt (``max_points``: a chart's share)."""
    _job(ctx, job_id)
    with ctx.platform.db.session() as session:
        if max_points is not None:
            return records.chart_metrics(session, job_id, max_points, name)
        return records.list_metrics(session, job_id, name)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(job_id: Id, ctx: Viewer) -> list[JobCheckpoint]:
    """The checkpoints the job saved, oldest first."""
    _job(ctx, job_id)
    with ctx.platform.db.session() as session:
        return records.list_checkpoints(session, job_id)


@router.get("/{job_id}/checkpoints/latest", response_class=StreamingResponse)
def download_latest_checkpoint(job_id: Id, ctx: Viewer) -> StreamingResponse:
    """The bytes of the checkpoint the next attempt resumes from."""
    _job(ctx, job_id)
    with ctx.platform.db.session() as session:
        checkpoint = records.latest_checkpoint(session, job_id)
    if checkpoint is None:
        raise NotFound(f"job {job_id} has no checkpoint")
    chunks = ctx.platform.store.open(checkpoint.artifact_key, checkpoint.sha256)
    return stream_attachment(chunks, f"checkpoint-{checkpoint.step}.bin", -1, checkpoint.sha256)


@router.get("/{job_id}/source", response_class=StreamingResponse)
def download_source(job_id: Id, ctx: Editor) -> StreamingResponse:
    """A script job's code, as uploaded (the runtime fetches it on the node)."""
    with ctx.platform.db.session() as session:
        found = service.read_source(session, job_id, ctx.project)
    if found is None:
        raise NotFound(f"job {job_id} has no uploaded code")
    chunks = ctx.platform.store.open(found.key, found.sha256)
    return stream_attachment(chunks, found.name, -1, found.sha256)


# Unset fields stay out of the answer: a file kept before ``at`` was recorded has none.
@router.get("/{job_id}/artifacts", response_model_exclude_unset=True)
def list_artifacts(job_id: Id, ctx: Viewer) -> list[JobArtifact]:
    """Files the job kept (``runtime.log_artifact``)."""
    artifacts = _job(ctx, job_id).outputs.get("artifacts")
    if not isinstance(artifacts, list):
        return []
    return [JobArtifact.model_validate(a) for a in artifacts if isinstance(a, dict)]


@router.get("/{job_id}/artifacts/{name}", response_class=StreamingResponse)
def download_artifact(job_id: Id, name: str, ctx: Viewer) -> StreamingResponse:
    """One file the job kept (its latest attempt's, when several attempts kept one)."""
    for item in reversed(list_artifacts(job_id, ctx)):
        if item.name == name:
            key = records.artifact_key(job_id, item.attempt, name)
            return stream_attachment(
                ctx.platform.store.open(key, item.sha256), name, -1, item.sha256
            )
    raise NotFound(f"job {job_id} kept no file named {name!r}")


@router.post("/{job_id}/cancel")
def cancel_job(job_id: Id, ctx: Editor) -> Job:
    """Cancel: a queued job at once, a running one within seconds (its whole process tree)."""
    with ctx.platform.db.session() as session:
        job = service.cancel_job(session, job_id, ctx.project)
    wake_scheduler(ctx)
    return job


@router.post("/{job_id}/retry")
def retry_job(job_id: Id, ctx: Editor) -> Job:
    """Queue a failed or cancelled job again, with a fresh retry budget."""
    with ctx.platform.db.session() as session:
        job = service.retry_job(session, job_id, ctx.project)
    wake_scheduler(ctx)
    return job


def _sse(event: str, data: str) -> bytes:
    if event == "ping":
        return b": keep-alive\n\n"
    lines = data.split("\n")
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def _sse_stream(events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[bytes]:
    async for event, data in events:
        yield _sse(event, data)


@router.get(
    "/{job_id}/logs",
    response_model=None,
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "the log as text; with follow=true, server-sent events",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
)
def read_logs(
    job_id: Id,
    ctx: Viewer,
    attempt: QueryId = None,
    follow: bool = False,
) -> PlainTextResponse | StreamingResponse:
    """An attempt's log as text (default: the latest), or ``follow=true`` for a live SSE stream.

    The stream sends ``attempt`` when an attempt's log starts, ``log`` for each
    line, and ``end`` with the job once it has finished.
    """
    p = ctx.platform
    if follow:
        _job(ctx, job_id)
        events = log_stream.follow_job_log(
            p.db, p.store, p.settings.job_log_dir, job_id, ctx.project
        )
        return StreamingResponse(
            _sse_stream(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    text = log_stream.read_attempt_log(
        p.db, p.store, p.settings.job_log_dir, job_id, ctx.project, attempt
    )
    return PlainTextResponse(text)
