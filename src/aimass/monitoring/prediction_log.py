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
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.loop_service import LoopService

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

    from aimass.artifacts.store import ArtifactStore
    from aimass.entities.signature import Signature
    from aimass.monitoring.metrics import PredictionLogMetrics

log = logging.getLogger("aimass.monitoring")

#: Where the logs live in the artifact store.
PREFIX = "predictions"
META = ("_request_id", "_row", "_time", "_model", "_version", "_latency_ms")


@dataclass(frozen=True, eq=False)
class Served:
    """What the log needs to know about the version that answered.

    Compared by identity: the writer groups records by it, and the inference path
    makes one per served version, not one per request.
    """

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
        self._served: dict[tuple[str, str, str, int], Served] = {}
        #: Its Prometheus metrics, once an HTTP app exports them.
        self.metrics: PredictionLogMetrics | None = None

    def rate(self, deployment: str) -> float:
        """The sampling rate of ``deployment`` (its own, else the default)."""
        return self.rates.get(deployment, self.sample)

    def served(
        self,
        project: str,
        deployment: str,
        model: str,
        version: int,
        signature: Signature | None,
        predict_output: str,
        proba_output: str,
    ) -> Served:
        """The ``Served`` of a deployment's version, made once and shared by its records."""
        key = (project, deployment, model, version)
        served = self._served.get(key)
        if served is None:
            if len(self._served) >= 10_000:  # deployments come and go; stay bounded
                self._served.clear()
            served = Served(
                project, deployment, model, version, signature, predict_output, proba_output
            )
            self._served[key] = served
        return served

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


def _label(served: Served, name: str) -> str:
    if name == served.predict_output:
        return "prediction"
    if name == served.proba_output:
        return "proba"
    return f"output.{name}"


def _columns(
    name: str, array: NDArray[Any], columns: list[str] | None
) -> Iterator[tuple[str, Any]]:
    if array.ndim == 1:
        yield name, array
    elif array.ndim == 2:
        width = array.shape[1]
        names = columns if columns is not None and len(columns) == width else None
        by_column = np.ascontiguousarray(array.T)  # one copy, then each column is contiguous
        for j in range(width):
            yield (names[j] if names else f"{name}_{j}"), by_column[j]
    # Higher-rank tensors (images, sequences) are not logged column by column.


def _tensors(records: list[_Record]) -> list[tuple[str, list[NDArray[Any]], list[str] | None]]:
    """Each tensor of a group of records (same names): its label, arrays and column names."""
    served = records[0][2]
    specs = {s.name: s for s in served.signature.inputs} if served.signature else {}
    inputs = list(map(itemgetter(4), records))
    outputs = list(map(itemgetter(5), records))
    tensors = []
    for name in inputs[0]:
        spec = specs.get(name)
        arrays = list(map(np.asarray, map(itemgetter(name), inputs)))
        tensors.append((name, arrays, spec.columns if spec else None))
    for name in outputs[0]:
        arrays = list(map(np.asarray, map(itemgetter(name), outputs)))
        tensors.append((_label(served, name), arrays, None))
    return tensors


def _stacked(records: list[_Record]) -> tuple[NDArray[Any], dict[str, Any]] | None:
    """The group's rows per record and its columns, each one concatenation across records.

    None when its records do not line up (a tensor whose rank or width changes from
    record to record, or shorter than the record's other tensors): those take the
    record-by-record way, which leaves such a tensor out of the record it does not fit.
    """
    blocks: list[tuple[str, NDArray[Any], list[str] | None]] = []
    lengths: list[list[int]] = []
    for label, arrays, names in _tensors(records):
        if arrays[0].ndim not in (1, 2):
            if any(a.ndim in (1, 2) for a in arrays):
                return None
            continue  # a scalar or a higher-rank tensor in every record: not logged
        try:
            joined = np.concatenate(arrays)
        except ValueError:  # ranks or widths differ from record to record
            return None
        if joined.ndim == 2 and joined.shape[1] == 0:
            continue
        lengths.append(list(map(len, arrays)))
        blocks.append((label, joined, names))
    if not blocks:
        return np.zeros(len(records), dtype=np.int64), {}
    counts = np.asarray(lengths, dtype=np.int64)
    rows = counts.max(axis=0)
    if not (counts == rows).all():
        return None
    columns: dict[str, Any] = {}
    for label, array, names in blocks:
        columns.update(_columns(label, array, names))
    return rows, columns


def _one(record: _Record) -> dict[str, Any]:
    """The columns of one record alone: its tensors as long as its longest (the others left out)."""
    data: dict[str, Any] = {}
    for label, arrays, names in _tensors([record]):
        data.update(_columns(label, arrays[0], names))
    rows = max((len(v) for v in data.values()), default=0)
    return {k: v for k, v in data.items() if len(v) == rows}


def _table(records: list[_Record], rows: NDArray[Any], columns: dict[str, Any]) -> pa.Table:
    """An Arrow table: the meta columns (repeated over each record's rows), then ``columns``."""
    import pyarrow as pa

    total = int(rows.sum())
    repeat = total != len(records) or not (rows == 1).all()

    def meta(values: Any) -> Any:
        return np.repeat(values, rows) if repeat else values

    row = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(rows) - rows, rows)
    ids = pa.array([r[1] for r in records], pa.large_string())
    models = pa.array([r[2].model for r in records], pa.large_string())
    if repeat:
        index = pa.array(np.repeat(np.arange(len(records)), rows))
        ids, models = ids.take(index), models.take(index)
    arrays = {
        "_request_id": ids,
        "_row": row,
        "_time": pa.array(
            meta((np.array([r[0] for r in records]) * 1e6).astype(np.int64)),
            pa.timestamp("us", tz="UTC"),
        ),
        "_model": models,
        "_version": meta(np.array([r[2].version for r in records], dtype=np.int64)),
        "_latency_ms": meta(np.array([r[3] for r in records]) * 1000.0),
    }
    arrays.update(columns)
    return pa.table(arrays)


def to_tables(records: list[_Record]) -> list[pa.Table]:
    """One row per predicted row: meta columns, inputs by feature, ``prediction``, ``proba_<j>``.

    One table, or one per version and tensor names when a column's type differs
    between them (a version whose ``prediction`` is a label, another's a number).

    Records are grouped by the version that answered (its ``Served``) and tensor
    names, and each column of a group is one ``np.concatenate`` across its records,
    never a frame or a dict per record: the writer shares the GIL with the event
    loop that serves requests, so its cost per record is what logging costs them.
    """
    import pyarrow as pa

    groups: dict[tuple[Any, ...], list[_Record]] = {}
    for record in records:
        key = (record[2], tuple(record[4]), tuple(record[5]))
        groups.setdefault(key, []).append(record)
    tables = []
    for group in groups.values():
        stacked = _stacked(group)
        if stacked is not None:
            rows, columns = stacked
            if columns:
                tables.append(_table(group, rows, columns))
            continue
        by_columns: dict[tuple[str, ...], tuple[list[_Record], list[dict[str, Any]]]] = {}
        for record in group:
            data = _one(record)
            if data:
                kept, datas = by_columns.setdefault(tuple(data), ([], []))
                kept.append(record)
                datas.append(data)
        for kept, datas in by_columns.values():
            rows = np.array([len(next(iter(d.values()))) for d in datas], dtype=np.int64)
            joined = {k: np.concatenate([d[k] for d in datas]) for k in datas[0]}
            tables.append(_table(kept, rows, joined))
    if len(tables) < 2:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return tables


def _repeating(table: pa.Table) -> list[str]:
    """The columns that dictionary encoding pays for: names, labels, versions."""
    import pyarrow as pa

    return [
        field.name
        for field in table.schema
        if field.name == "_version"
        or (field.name != "_request_id" and pa.types.is_large_string(field.type))
        or pa.types.is_string(field.type)
    ]


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

    def start(self) -> None:
        """Start the loop; when anything is to be logged, import pyarrow now, before traffic.

        Imported at the first write instead (pyarrow, and the pandas it loads on its
        first conversion), it would hold the GIL for a second or more in the
        writer's thread, stalling the event loop that serves requests.
        """
        if self.queue.sample > 0 or any(self.queue.rates.values()):
            import pyarrow as pa
            import pyarrow.parquet

            pa.array(["warm"])  # its first conversion of Python objects imports pandas

        super().start()

    async def run_once(self) -> None:
        """Write what is queued (in batches), off the event loop."""
        while self.queue.depth:
            records = self.queue.drain(self.batch)
            await asyncio.to_thread(self.write, records)
        if self.queue.metrics is not None:
            self.queue.metrics.depth.set(self.queue.depth)

    def write(self, records: list[_Record]) -> int:
        """Write ``records`` as Parquet, one file per deployment and hour; the records written."""
        import pyarrow.parquet as pq

        groups: dict[tuple[str, str, int], list[_Record]] = {}
        for record in records:
            served = record[2]
            key = (served.project, served.deployment, int(record[0] // 3600))
            groups.setdefault(key, []).append(record)
        written = 0
        for (project, deployment, hour), group in groups.items():
            folder = hour_folder(datetime.fromtimestamp(hour * 3600, UTC))
            for table in to_tables(group):
                buffer = io.BytesIO()
                # Dictionary pages only where values repeat: per-request ids and
                # measurements would only be hashed for nothing (3x the write time).
                pq.write_table(table, buffer, use_dictionary=_repeating(table))
                name = self.store.new_key(PREFIX, project, deployment, folder)
                self.store.put(name, [buffer.getvalue()])
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
