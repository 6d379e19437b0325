"""A running attempt's log, readable on every server: its node ships new bytes to the database.

Why the database and not a proxy to the owning node: every server already
reads it (no node addresses, no server-to-server auth, nothing to open in a
firewall), the bytes outlive a node that dies mid-attempt (the next attempt,
elsewhere, follows on with no gap), and a follower reads by byte offset, so it
moves from the local file to shipped chunks to the archived copy without a
duplicate or a hole. The cost is one small insert per running attempt and
``interval`` while it writes; the chunks go once the log is archived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from aimass.jobs.logs import CHUNK, log_path
from aimass.loop_service import LoopService
from aimass.store.db import Database
from aimass.store.orm import JobLogChunkRow

log = logging.getLogger("aimass.jobs")


def shipped_size(session: Session, job_id: int, attempt: int) -> int:
    """How many bytes of the attempt's log are in the database (from offset 0)."""
    end = session.scalar(
        select(func.max(JobLogChunkRow.offset + func.length(JobLogChunkRow.data))).where(
            JobLogChunkRow.job_id == job_id, JobLogChunkRow.attempt == attempt
        )
    )
    return int(end or 0)


def read_chunks(
    session: Session, job_id: int, attempt: int, offset: int, limit: int = CHUNK
) -> bytes:
    """Shipped bytes of the attempt's log from ``offset`` (at most about ``limit``)."""
    rows = session.scalars(
        select(JobLogChunkRow)
        .where(JobLogChunkRow.job_id == job_id, JobLogChunkRow.attempt == attempt)
        .where(JobLogChunkRow.offset + func.length(JobLogChunkRow.data) > offset)
        .order_by(JobLogChunkRow.offset)
        .limit(16)
    )
    out = bytearray()
    for row in rows:
        if row.offset > offset + len(out):
            break  # a hole (should not happen): stop where the bytes are contiguous
        out += row.data[offset + len(out) - row.offset :]
        if len(out) >= limit:
            break
    return bytes(out)


def drop_chunks(session: Session, job_id: int, attempt: int) -> None:
    """Forget the attempt's shipped bytes (its whole log is archived now)."""
    chunks = cast("Table", JobLogChunkRow.__table__)  # Core: no ORM entity to synchronise
    session.execute(delete(chunks).where(chunks.c.job_id == job_id, chunks.c.attempt == attempt))


class LogShipper(LoopService):
    """Every process: ships the new bytes of its running attempts' logs to the database."""

    name = "log-shipper"

    def __init__(
        self,
        db: Database,
        log_dir: Path,
        active: Callable[[], Iterable[tuple[int, int]]],
        interval: float = 0.5,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.log_dir = log_dir
        self.active = active
        self._shipped: dict[tuple[int, int], int] = {}

    async def run_once(self) -> None:
        """Ship in a worker thread (file and database reads block)."""
        await asyncio.to_thread(self.ship)

    def ship(self) -> int:
        """One pass: insert each active attempt's new bytes; the number of bytes shipped."""
        active = set(self.active())
        for gone in set(self._shipped) - active:
            del self._shipped[gone]
        total = 0
        for job_id, attempt in sorted(active):
            path = log_path(self.log_dir, job_id, attempt)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            with self.db.session() as session:
                offset = self._shipped.get((job_id, attempt))
                if offset is None:
                    offset = shipped_size(session, job_id, attempt)
                if size <= offset:
                    self._shipped[(job_id, attempt)] = offset
                    continue
                with path.open("rb") as src:
                    src.seek(offset)
                    data = src.read(min(size - offset, 4 * CHUNK))
                session.add(
                    JobLogChunkRow(job_id=job_id, attempt=attempt, offset=offset, data=data)
                )
            self._shipped[(job_id, attempt)] = offset + len(data)
            total += len(data)
        return total
