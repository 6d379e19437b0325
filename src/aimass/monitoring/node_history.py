"""Node history: samples every few seconds in the database, downsampled, then deleted.

Raw samples (one per ``interval`` seconds) are kept ``raw_s`` (1 hour); older ones
are averaged into 1-minute rows, kept ``minute_s`` (1 day); older minutes into
1-hour rows, kept until ``retention_s`` (7 days by default). ``NodeMonitor`` is a
``LoopService`` in every process whose node it samples; the downsampling runs on
every tick but only touches what crossed an age limit.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import delete, func, select

from aimass.entities.monitoring import NodeSample, NodeStatus
from aimass.errors import InvalidInput
from aimass.loop_service import LoopService
from aimass.monitoring.node import gpu_samples
from aimass.store.orm import NodeSampleRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aimass.store.db import Database

_FIELDS = (
    "cpu_percent", "memory_used_bytes", "memory_total_bytes", "disk_used_bytes",
    "disk_total_bytes", "net_rx_bytes_per_s", "net_tx_bytes_per_s", "gpu_percent",
)  # fmt: skip


class NodeSampler:
    """Reads this node's figures with psutil (network as a rate since the last read)."""

    def __init__(self, node: str | None = None, mountpoint: str = "/") -> None:
        import psutil

        self.node = node or socket.gethostname()
        self.mountpoint = mountpoint
        psutil.cpu_percent(interval=None)  # the first call only starts the count
        counters = psutil.net_io_counters()
        self._net = (time.monotonic(), counters.bytes_recv, counters.bytes_sent)

    def sample(self, interval_s: int) -> NodeSample:
        """The node's figures now."""
        import psutil

        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self.mountpoint)
        counters = psutil.net_io_counters()
        now = time.monotonic()
        then, rx, tx = self._net
        span = max(now - then, 1e-6)
        self._net = (now, counters.bytes_recv, counters.bytes_sent)
        gpus = gpu_samples()
        return NodeSample(
            node=self.node,
            at=datetime.now(UTC),
            resolution_s=interval_s,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used_bytes=memory.total - memory.available,
            memory_total_bytes=memory.total,
            disk_used_bytes=disk.used,
            disk_total_bytes=disk.total,
            net_rx_bytes_per_s=max(counters.bytes_recv - rx, 0) / span,
            net_tx_bytes_per_s=max(counters.bytes_sent - tx, 0) / span,
            gpu_percent=sum(g["util"] for g in gpus) / len(gpus) if gpus else None,
        )


def record_sample(session: Session, sample: NodeSample) -> None:
    """Insert one sample."""
    session.add(NodeSampleRow(**sample.model_dump()))


def downsample(
    session: Session,
    now: datetime,
    *,
    raw_s: float = 3600,
    minute_s: float = 86400,
    retention_s: float = 7 * 86400,
) -> None:
    """Average rows past each age limit into the next resolution; delete past retention."""
    session.execute(
        delete(NodeSampleRow).where(NodeSampleRow.at < now - timedelta(seconds=retention_s))
    )
    for finer_than, bucket, age in ((60, 60, raw_s), (3600, 3600, minute_s)):
        cutoff = now - timedelta(seconds=age)
        rows = session.scalars(
            select(NodeSampleRow).where(
                NodeSampleRow.resolution_s < finer_than, NodeSampleRow.at < cutoff
            )
        ).all()
        groups: dict[tuple[str, float], list[NodeSampleRow]] = {}
        for row in rows:
            at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
            start = at.timestamp() // bucket * bucket
            groups.setdefault((row.node, start), []).append(row)
        for (node, start), members in groups.items():
            values: dict[str, float | None] = {}
            for name in _FIELDS:
                found = [getattr(m, name) for m in members if getattr(m, name) is not None]
                values[name] = sum(found) / len(found) if found else None
            session.add(
                NodeSampleRow(
                    node=node,
                    at=datetime.fromtimestamp(start, UTC),
                    resolution_s=bucket,
                    **values,
                )
            )
            for member in members:
                session.delete(member)


def list_nodes(session: Session, stale_s: float) -> list[NodeStatus]:
    """Each node's latest sample and whether it is down (no sample for ``stale_s``)."""
    latest = (
        select(NodeSampleRow.node, func.max(NodeSampleRow.at).label("at"))
        .group_by(NodeSampleRow.node)
        .subquery()
    )
    rows = session.scalars(
        select(NodeSampleRow).join(
            latest, (NodeSampleRow.node == latest.c.node) & (NodeSampleRow.at == latest.c.at)
        )
    ).all()
    now = datetime.now(UTC)
    found = [row.to_entity() for row in rows]
    return [
        NodeStatus(node=s.node, down=(now - s.at).total_seconds() > stale_s, latest=s)
        for s in sorted(found, key=lambda s: s.node)
    ]


def node_history(
    session: Session,
    node: str,
    *,
    since: datetime | None = None,
    limit: int = 2000,
) -> list[NodeSample]:
    """A node's samples (every resolution), oldest first."""
    if not 1 <= limit <= 100_000:
        raise InvalidInput("limit must be between 1 and 100000")
    query = select(NodeSampleRow).where(NodeSampleRow.node == node)
    if since is not None:
        query = query.where(NodeSampleRow.at >= since)
    query = query.order_by(NodeSampleRow.at.desc()).limit(limit)
    return [row.to_entity() for row in reversed(session.scalars(query).all())]


class NodeMonitor(LoopService):
    """Samples this node every ``interval`` seconds into the database and downsamples.

    It runs in every process, but with ``lock_file`` given only the process that
    holds that file's lock samples, so N workers on one node store one series.
    """

    name = "node-monitor"

    def __init__(
        self,
        db: Database,
        interval: float = 5.0,
        retention_s: float = 7 * 86400,
        lock_file: Path | None = None,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.retention_s = retention_s
        self.lock_file = lock_file
        self.sampler: NodeSampler | None = None
        self._lock: IO[bytes] | None = None

    def _holds_node(self) -> bool:
        if self.lock_file is None or self._lock is not None:
            return True
        import fcntl

        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_file.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle  # held (and released by the OS) for the process's life
        return True

    def tick(self) -> NodeSample | None:
        """One sample, stored, and the downsampling of what aged; None in a non-sampling worker."""
        if not self._holds_node():
            return None
        if self.sampler is None:
            self.sampler = NodeSampler()
        sample = self.sampler.sample(max(int(self.interval), 1))
        with self.db.session() as session:
            record_sample(session, sample)
            downsample(session, sample.at, retention_s=self.retention_s)
        return sample

    async def run_once(self) -> None:
        """One tick off the event loop."""
        await asyncio.to_thread(self.tick)

    def release(self) -> None:
        """Let another process of this node sample (closing the lock file)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, then release the node."""
        await super().stop(timeout)
        self.release()
