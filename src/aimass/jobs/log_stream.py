"""Reading a job's logs: one attempt's whole text, or a live follow of every attempt.

``follow_job_log`` is what ``GET /api/v1/jobs/{id}/logs?follow=true`` streams:
it yields ``(event, data)`` pairs (``attempt`` when an attempt's log starts,
``log`` for each line, ``ping`` after ten quiet seconds, ``end`` with the job
once it has finished). An attempt running on another node is read from the
chunks it ships to the database (``jobs/log_chunks``), then from the artifact
store once archived, all by byte offset. Every database or file read runs in a worker thread, so
a follower never blocks the event loop that also serves inference.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aimass.artifacts.store import ArtifactStore
from aimass.errors import NotFound
from aimass.jobs import service
from aimass.jobs.entities import TERMINAL_STATES, Job
from aimass.jobs.log_chunks import read_chunks
from aimass.jobs.logs import CHUNK, log_path, read_from, read_log
from aimass.store.db import Database

#: Seconds without a line after which the follower yields a ``ping``.
PING_AFTER_S = 10.0


def read_job(db: Database, job_id: int, project: str) -> Job:
    """The project's job, or NotFound."""
    with db.session() as session:
        return service.read_job(session, job_id, project)


def read_attempt_log(
    db: Database,
    store: ArtifactStore,
    log_dir: Path,
    job_id: int,
    project: str,
    attempt: int | None = None,
) -> str:
    """An attempt's whole log as text (default: the latest; empty before the first)."""
    job = read_job(db, job_id, project)
    number = attempt or job.attempt
    if number > job.attempt:
        raise NotFound(f"job {job_id} has no attempt {number} (it has had {job.attempt})")
    if not number:
        return ""
    text = read_log(store, log_dir, job_id, number)
    if not text:  # running on another node: what it has shipped so far
        text = _shipped(db, job_id, number, 0, limit=1 << 62)
    return text.decode(errors="replace")


def _shipped(db: Database, job_id: int, attempt: int, offset: int, limit: int = CHUNK) -> bytes:
    with db.session() as session:
        return read_chunks(session, job_id, attempt, offset, limit)


async def follow_job_log(
    db: Database,
    store: ArtifactStore,
    log_dir: Path,
    job_id: int,
    project: str,
    poll_s: float = 0.2,
) -> AsyncIterator[tuple[str, str]]:
    """Yield the job's log events until it has finished (see the module docstring)."""
    attempt, offset, partial = 0, 0, b""
    started = last_sent = time.monotonic()

    def look() -> tuple[Job, bytes]:
        job = read_job(db, job_id, project)
        if not attempt:
            return job, b""
        if log_path(log_dir, job_id, attempt).is_file():  # this node runs (or ran) it
            return job, read_from(log_dir, job_id, attempt, offset)
        # Another node's attempt: the bytes it shipped, then (once it ended) the archive.
        data = _shipped(db, job_id, attempt, offset)
        if not data and (job.attempt > attempt or job.state in TERMINAL_STATES):
            data = read_log(store, log_dir, job_id, attempt)[offset:]
        return job, data

    while True:
        job, data = await asyncio.to_thread(look)
        if data:
            offset += len(data)
            # SSE ends a line at CR too: progress bars' carriage returns become lines.
            text = (partial + data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, partial = text.split(b"\n")
            for line in lines:
                yield "log", line.decode(errors="replace")
            continue
        if job.attempt > attempt:
            if partial:
                yield "log", partial.decode(errors="replace")
            attempt, offset, partial = attempt + 1, 0, b""
            yield "attempt", json.dumps({"attempt": attempt})
            continue
        if job.state in TERMINAL_STATES:
            if partial:
                yield "log", partial.decode(errors="replace")
            yield "end", job.model_dump_json()
            return
        if time.monotonic() - last_sent > PING_AFTER_S:
            last_sent = time.monotonic()
            yield "ping", ""
        # Short jobs are watched closely; after a few seconds, a look every poll_s is enough.
        await asyncio.sleep(0.02 if time.monotonic() - started < 5 else poll_s)
