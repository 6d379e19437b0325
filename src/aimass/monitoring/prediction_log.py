"""Prediction logging: a bounded queue off the inference path, batched into Parquet files.

``PredictionLog.record`` is what the inference path calls after it answered: it
samples (per deployment rate), and appends a tuple of references to a bounded
queue, nothing more (no copy, no encoding, no I/O, never a wait). When the queue
is full the record is dropped and counted (``aimass_prediction_log_dropped_total``)
rather than growing memory (kserve#6167) or slowing the answer.

``PredictionLogWriter`` (a ``LoopService`` in every serving process) drains the
queue every ``flush_s`` seconds, turns the records into one row per predicted
row (inputs by feature name, ``prediction``, ``proba_<j>``) and writes one
Parquet file per deployment and hour under
``predictions/<project>/<deployment>/<YYYY-MM-DDTHH>/<uuid>.parquet`` in the
artifact store; the last drain runs when it stops, so a clean shutdown loses
nothing. Meta columns start with ``_`` (``_request_id``, ``_row``, ``_time``,
``_model``, ``_version``, ``_latency_ms``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.loop_service import LoopService

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

    from aimass.artifacts.store import ArtifactStore
    from aimass.entities.signature import Signature
    from aimass.monitoring.metrics import PredictionLogMetrics

log = logging.getLogger("aimass.monitoring")

#: Where the logs live in the artifact store.
PREFIX = "predictions"
META = ("_request_id", "_row", "_time", "_model", "_version", "_latency_ms")


@dataclass(frozen=True)
class Served:
    """What the log needs to know about the version that answered."""

    project: str
    deployment: str
    model: str
    version: int
    signature: Signature | None
    predict_output: str
    proba_output: str


_Record = tuple[float, str, Served, float, Mapping[str, Any], Mapping[str, Any]]


class PredictionLog:
    """The bounded, sampled queue of answered predictions of one process."""

    def __init__(
        self, sample: float = 0.0, rates: Mapping[str, float] | None = None, capacity: int = 100_000
    ) -> None:
        self.sample = sample
        self.rates = dict(rates or {})
        self.capacity = capacity
        self._queue: deque[_Record] = deque()
        self._random = random.Random()
        self.dropped = 0
        self.written = 0
        self.sampled_out = 0
        self._lock = threading.Lock()
        #: Its Prometheus metrics, once an HTTP app exports them.
        self.metrics: PredictionLogMetrics | None = None

    def rate(self, deployment: str) -> float:
        """The sampling rate of ``deployment`` (its own, else the default)."""
        return self.rates.get(deployment, self.sample)

    def record(
        self,
        served: Served,
        request_id: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        latency_s: float,
    ) -> None:
        """Queue one answered request (sampled); drop and count it when the queue is full."""
        rate = self.rates.get(served.deployment, self.sample)
        if rate <= 0.0 or (rate < 1.0 and self._random.random() >= rate):
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.dropped.inc()
            return
        self._queue.append((time.time(), request_id, served, latency_s, inputs, outputs))

    @property
    def depth(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    def drain(self, limit: int | None = None) -> list[_Record]:
        """Take up to ``limit`` queued records (all when None), oldest first."""
        taken: list[_Record] = []
        popleft = self._queue.popleft
        with self._lock:
            while self._queue and (limit is None or len(taken) < limit):
                taken.append(popleft())
        return taken


def _columns(
    name: str, array: NDArray[Any], columns: list[str] | None
) -> Iterator[tuple[str, Any]]:
    if array.ndim == 1:
        yield name, array
    elif array.ndim == 2:
        width = array.shape[1]
        names = columns if columns is not None and len(columns) == width else None
        for j in range(width):
            yield (names[j] if names else f"{name}_{j}"), array[:, j]
    # Higher-rank tensors (images, sequences) are not logged column by column.


def to_frame(records: list[_Record]) -> pd.DataFrame:
    """One row per predicted row: meta columns, inputs by feature, ``prediction``, ``proba_<j>``.

    Columns are gathered as arrays across records and made into one frame per
    column set (records of one version share it), never a frame per record: the
    writer shares the GIL with the event loop that serves requests.
    """
    import pandas as pd

    groups: dict[tuple[str, ...], tuple[list[Any], dict[str, list[Any]]]] = {}
    for record in records:
        _, _, served, _, inputs, outputs = record
        specs = {s.name: s for s in served.signature.inputs} if served.signature else {}
        data: dict[str, Any] = {}
        for name, value in inputs.items():
            spec = specs.get(name)
            data.update(_columns(name, np.asarray(value), spec.columns if spec else None))
        for name, value in outputs.items():
            label = (
                "prediction"
                if name == served.predict_output
                else "proba"
                if name == served.proba_output
                else f"output.{name}"
            )
            data.update(_columns(label, np.asarray(value), None))
        rows = max((len(v) for v in data.values()), default=0)
        if rows == 0:
            continue
        data = {k: v for k, v in data.items() if len(v) == rows}
        metas, columns = groups.setdefault(tuple(data), ([], {k: [] for k in data}))
        metas.append((record, rows))
        for key, array in data.items():
            columns[key].append(array)
    frames = []
    for metas, columns in groups.values():
        counts = np.array([rows for _, rows in metas])
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        joined: dict[str, Any] = {
            "_request_id": np.repeat(np.array([r[1] for r, _ in metas], dtype=object), counts),
            "_row": np.arange(int(counts.sum())) - starts,
            "_time": pd.to_datetime(
                np.repeat(np.array([int(r[0] * 1e6) for r, _ in metas]), counts),
                unit="us",
                utc=True,
            ),
            "_model": np.repeat(np.array([r[2].model for r, _ in metas], dtype=object), counts),
            "_version": np.repeat(np.array([r[2].version for r, _ in metas]), counts),
            "_latency_ms": np.repeat(np.array([r[3] * 1000.0 for r, _ in metas]), counts),
        }
        joined.update({k: np.concatenate(v) for k, v in columns.items()})
        frames.append(pd.DataFrame(joined))
    if not frames:
        return pd.DataFrame(columns=list(META))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def hour_folder(moment: datetime) -> str:
    """The partition folder of an hour: ``YYYY-MM-DDTHH`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


class PredictionLogWriter(LoopService):
    """Drains a ``PredictionLog`` into Parquet files in the artifact store, batch by batch."""

    name = "prediction-log-writer"

    def __init__(
        self, queue: PredictionLog, store: ArtifactStore, interval: float = 1.0, batch: int = 50_000
    ) -> None:
        super().__init__(interval)
        self.queue = queue
        self.store = store
        self.batch = batch

    async def run_once(self) -> None:
        """Write what is queued (in batches), off the event loop."""
        while self.queue.depth:
            records = self.queue.drain(self.batch)
            await asyncio.to_thread(self.write, records)
        if self.queue.metrics is not None:
            self.queue.metrics.depth.set(self.queue.depth)

    def write(self, records: list[_Record]) -> int:
        """Write ``records`` as Parquet, one file per deployment and hour; the rows written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        groups: dict[tuple[str, str, str], list[_Record]] = {}
        for record in records:
            served = record[2]
            hour = hour_folder(datetime.fromtimestamp(record[0], UTC))
            groups.setdefault((served.project, served.deployment, hour), []).append(record)
        written = 0
        for (project, deployment, hour), group in groups.items():
            frame = to_frame(group)
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
            self.store.put(
                self.store.new_key(PREFIX, project, deployment, hour), [buffer.getvalue()]
            )
            written += len(group)
        self.queue.written += written
        if self.queue.metrics is not None:
            self.queue.metrics.written.inc(written)
        return written

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, then write what is still queued."""
        await super().stop(timeout)
        try:
            await self.run_once()
        except Exception:
            log.exception("the last prediction-log write failed")
