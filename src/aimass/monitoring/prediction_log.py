"""Prediction logging: a bounded queue off the inference path, batched into Parquet files.

``PredictionLog.answered`` is what the inference path calls after it answered: it
samples (per deployment rate), reads one clock and appends a tuple of references
(the deployment and version objects that served, the request's input and output
arrays) to a bounded queue, nothing more (no copy, no look-up, no encoding, no
I/O, never a wait); the writer reads what those objects mean, once per batch.
When the queue is full the record is dropped and counted
(``aimass_prediction_log_dropped_total``) rather than growing memory
(kserve#6167) or slowing the answer.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

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

    Compared by identity. The writer makes one per batch and version from the
    serving objects the records name; ``PredictionLog.record`` takes one directly.
    """

    project: str
    deployment: str
    model: str
    version: int
    signature: Signature | None
    predict_output: str
    proba_output: str


class ServingDeployment(Protocol):
    """What the log reads of the deployment that answered (``serving.ServedDeployment``)."""

    @property
    def name(self) -> str: ...

    @property
    def project(self) -> str: ...


class _Outputs(Protocol):
    @property
    def predict_output(self) -> str: ...

    @property
    def proba_output(self) -> str: ...


class ServingVersion(Protocol):
    """What the log reads of the version that answered (``serving.ServedVersion``)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def signature(self) -> Signature | None: ...

    @property
    def runner(self) -> _Outputs: ...


#: (answered, started: ``perf_counter`` seconds, request id, the deployment or None,
#: the version (a ``Served`` when the deployment is None), inputs, outputs).
_Record = tuple[
    float, float, str, Any, "ServingVersion | Served", Mapping[str, Any], Mapping[str, Any]
]


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

    def answered(
        self,
        deployment: ServingDeployment,
        version: ServingVersion,
        request_id: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        started: float,
    ) -> None:
        """Queue one request answered by ``version`` of ``deployment`` (the inference path's call).

        ``started`` is the request's ``time.perf_counter()``. Sampled; dropped and
        counted when the queue is full. Only references are queued: what the
        deployment and version objects mean is read by the writer, once per batch.
        """
        if self._admitted(deployment.name):
            self._queue.append(
                (perf_counter(), started, request_id, deployment, version, inputs, outputs)
            )

    def record(
        self,
        served: Served,
        request_id: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        latency_s: float,
    ) -> None:
        """Queue one answered request of a ``Served`` (sampled); drop and count it when full."""
        if self._admitted(served.deployment):
            now = perf_counter()
            self._queue.append((now, now - latency_s, request_id, None, served, inputs, outputs))

    def _admitted(self, deployment: str) -> bool:
        """Whether a record of ``deployment`` is sampled in and has room (a full queue counts)."""
        rate = self.rates.get(deployment, self.sample)
        if rate <= 0.0 or (rate < 1.0 and self._random.random() >= rate):
            return False
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.dropped.inc()
            return False
        return True

    @property
    def depth(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    def drain(self, limit: int | None = None) -> list[_Record]:
        """Take up to ``limit`` queued records (all when None), oldest first."""
        queue = self._queue
        popleft = queue.popleft
        with self._lock:
            # Pops, not a copy and a clear: a record appended meanwhile (from another
            # thread) stays queued instead of being cleared unseen.
            count = len(queue) if limit is None else min(limit, len(queue))
            return [popleft() for _ in range(count)]


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


def _tensors(
    served: Served, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
) -> list[tuple[str, list[Any], list[str] | None]]:
    """Each tensor of a group of records: its label, arrays and column names.

    Raises ``KeyError`` when the records' tensor names differ.
    """
    specs = {s.name: s for s in served.signature.inputs} if served.signature else {}
    for maps in (inputs, outputs):
        if set(map(len, maps)) != {len(maps[0])}:
            raise KeyError("the records' tensor names differ")
    tensors = []
    for name in inputs[0]:
        spec = specs.get(name)
        tensors.append((name, list(map(itemgetter(name), inputs)), spec.columns if spec else None))
    for name in outputs[0]:
        tensors.append((_label(served, name), list(map(itemgetter(name), outputs)), None))
    return tensors


def _stacked(
    served: Served, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
) -> tuple[NDArray[Any], dict[str, Any]] | None:
    """The group's rows per record and its columns, each one concatenation across records.

    None when its records do not line up (tensor names that differ, a tensor whose
    rank or width changes from record to record, or shorter than the record's other
    tensors): those take the record-by-record way, which leaves such a tensor out of
    the record it does not fit.
    """
    blocks: list[tuple[str, NDArray[Any], list[str] | None]] = []
    lengths: list[int | NDArray[Any]] = []  # each tensor's rows: one number when all agree
    try:
        tensors = _tensors(served, inputs, outputs)
    except KeyError:  # the records' tensor names differ
        return None
    for label, arrays, names in tensors:
        if np.ndim(arrays[0]) not in (1, 2):
            if any(np.ndim(a) in (1, 2) for a in arrays):
                return None
            continue  # a scalar or a higher-rank tensor in every record: not logged
        try:
            joined = np.concatenate(arrays)
        except (ValueError, TypeError):  # ranks, widths or kinds differ from record to record
            return None
        if joined.ndim == 2 and joined.shape[1] == 0:
            continue
        sizes = set(map(len, arrays))  # a third of np.fromiter's time; usually {1}
        if len(sizes) == 1:
            lengths.append(sizes.pop())
        else:
            lengths.append(np.fromiter(map(len, arrays), np.int64, len(arrays)))
        blocks.append((label, joined, names))
    if not blocks:
        return np.zeros(len(inputs), dtype=np.int64), {}
    if all(isinstance(n, int) for n in lengths) and len(set(lengths)) == 1:  # a few tensors
        rows = np.full(len(inputs), lengths[0], dtype=np.int64)
    else:
        counts = np.vstack([np.broadcast_to(n, len(inputs)) for n in lengths])
        rows = counts.max(axis=0)
        if not (counts == rows).all():
            return None
    columns: dict[str, Any] = {}
    for label, array, names in blocks:
        columns.update(_columns(label, array, names))
    return rows, columns


def _one(served: Served, record: _Record) -> dict[str, Any]:
    """The columns of one record alone: its tensors as long as its longest (the others left out)."""
    data: dict[str, Any] = {}
    for label, arrays, names in _tensors(served, [record[5]], [record[6]]):
        data.update(_columns(label, np.asarray(arrays[0]), names))
    rows = max((len(v) for v in data.values()), default=0)
    return {k: v for k, v in data.items() if len(v) == rows}


def _table(
    served: Served,
    records: Sequence[_Record],
    rows: NDArray[Any],
    columns: dict[str, Any],
    offset: float,
) -> pa.Table:
    """An Arrow table: the meta columns (repeated over each record's rows), then ``columns``.

    ``offset`` turns the records' ``perf_counter`` times into Unix times.
    """
    import pyarrow as pa

    n = len(records)
    answered = np.fromiter(map(itemgetter(0), records), np.float64, n)
    started = np.fromiter(map(itemgetter(1), records), np.float64, n)
    total = int(rows.sum())
    repeat = total != len(records) or not (rows == 1).all()

    def meta(values: Any) -> Any:
        return np.repeat(values, rows) if repeat else values

    row = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(rows) - rows, rows)
    request_ids = pa.array(list(map(itemgetter(2), records)), pa.large_string())
    if repeat:
        request_ids = request_ids.take(pa.array(np.repeat(np.arange(len(records)), rows)))
    arrays = {
        "_request_id": request_ids,
        "_row": row,
        "_time": pa.array(
            meta(((answered + offset) * 1e6).astype(np.int64)), pa.timestamp("us", tz="UTC")
        ),
        "_model": pa.repeat(pa.scalar(served.model, pa.large_string()), total),
        "_version": np.full(total, served.version, dtype=np.int64),
        "_latency_ms": meta((answered - started) * 1000.0),
    }
    arrays.update(columns)
    return pa.table(arrays)


def _served(record: _Record) -> Served:
    """The ``Served`` of a record: the version it names, or read from its serving objects."""
    deployment, version = record[3], record[4]
    if isinstance(version, Served):
        return version
    runner = version.runner
    return Served(
        deployment.project, deployment.name, version.model, version.version,
        version.signature, runner.predict_output, runner.proba_output,
    )  # fmt: skip


_Group = tuple[Served, list[_Record]]


def _groups(records: list[_Record]) -> list[_Group]:
    """Records grouped by the deployment and version objects that answered them.

    Usually every record of a batch has the same: checked with C-level passes over
    the batch (``list.count`` compares by identity first), grouping record by record
    only when they differ. Tensor names are checked when a group is stacked.
    """
    if not records:
        return []
    deployments = list(map(itemgetter(3), records))
    versions = list(map(itemgetter(4), records))
    if deployments.count(deployments[0]) == len(records) == versions.count(versions[0]):
        by_version = [records]
    else:
        grouped: dict[tuple[int, int], list[_Record]] = {}
        for record in records:
            grouped.setdefault((id(record[3]), id(record[4])), []).append(record)
        by_version = list(grouped.values())
    # The records hold the objects whose ids key the groups: no id is reused meanwhile.
    return [(_served(group[0]), group) for group in by_version]


def _tables(groups: list[_Group], offset: float) -> list[pa.Table]:
    """The tables of record groups: one, or one per differing column type."""
    import pyarrow as pa

    tables = []
    for served, group in groups:
        inputs, outputs = list(map(itemgetter(5), group)), list(map(itemgetter(6), group))
        stacked = _stacked(served, inputs, outputs)
        if stacked is not None:
            rows, columns = stacked
            if columns:
                tables.append(_table(served, group, rows, columns, offset))
            continue
        by_columns: dict[tuple[str, ...], tuple[list[_Record], list[dict[str, Any]]]] = {}
        for record in group:
            data = _one(served, record)
            if data:
                kept, datas = by_columns.setdefault(tuple(data), ([], []))
                kept.append(record)
                datas.append(data)
        for kept, datas in by_columns.values():
            rows = np.array([len(next(iter(d.values()))) for d in datas], dtype=np.int64)
            joined = {k: np.concatenate([d[k] for d in datas]) for k in datas[0]}
            tables.append(_table(served, kept, rows, joined, offset))
    if len(tables) < 2:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return tables


def to_tables(records: list[_Record]) -> list[pa.Table]:
    """One row per predicted row: meta columns, inputs by feature, ``prediction``, ``proba_<j>``.

    One table, or one per version and tensor names when a column's type differs
    between them (a version whose ``prediction`` is a label, another's a number).

    Records are grouped by the version that answered and tensor names, and each
    column of a group is one ``np.concatenate`` across its records, never a frame
    or a dict per record: the writer shares the GIL with the event loop that
    serves requests, so its cost per record is what logging costs them.
    """
    return _tables(_groups(records), time.time() - perf_counter())


def _by_partition(
    records: list[_Record], offset: float
) -> dict[tuple[str, str, int], list[_Group]]:
    """Record groups by (project, deployment, hour since the epoch)."""
    parts: dict[tuple[str, str, int], list[_Group]] = {}
    for served, group in _groups(records):
        answered = np.fromiter(map(itemgetter(0), group), np.float64, len(group))
        hours = ((answered + offset) // 3600).astype(np.int64)
        low, high = int(hours.min()), int(hours.max())
        pieces = [(low, group)] if low == high else [
            (int(h), [r for r, x in zip(group, hours, strict=True) if x == h])
            for h in np.unique(hours)
        ]  # fmt: skip
        for hour, piece in pieces:
            parts.setdefault((served.project, served.deployment, hour), []).append((served, piece))
    return parts


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
        """Write what is queued now, off the event loop: one batch, more only while full.

        Records queued while a batch is written wait for the next tick: draining
        until the queue was empty made the writer chase the traffic under load
        with files of a few dozen records, whose fixed cost per file is several
        times a record's (its CPU a record 9.0 µs in the server, 3.8 µs now).
        """
        while True:
            records = self.queue.drain(self.batch)
            count = len(records)
            if records:
                await asyncio.to_thread(self._write_and_free, records)
            if count < self.batch:
                break
        if self.queue.metrics is not None:
            self.queue.metrics.depth.set(self.queue.depth)

    def _write_and_free(self, records: list[_Record]) -> int:
        """``write``, then free the records in this thread rather than on the event loop.

        A record's objects have gone cold in the second it waited: freeing a batch
        of them costs about a microsecond each, a ~10 ms stall of the loop per
        10,000 records when they were freed there (the GIL is held either way).
        Without the ``clear``, the thread that drops the last reference wins a
        race: the executor's worker deleting its work item, or ``run_once``.
        """
        try:
            return self.write(records)
        finally:
            records.clear()

    def write(self, records: list[_Record]) -> int:
        """Write ``records`` as Parquet, one file per deployment and hour; the records written."""
        import pyarrow.parquet as pq

        offset = time.time() - perf_counter()  # the records' perf_counter times to Unix times
        written = 0
        for (project, deployment, hour), groups in _by_partition(records, offset).items():
            folder = hour_folder(datetime.fromtimestamp(hour * 3600, UTC))
            for table in _tables(groups, offset):
                buffer = io.BytesIO()
                # Dictionary pages only where values repeat: per-request ids and
                # measurements would only be hashed for nothing (3x the write time).
                pq.write_table(table, buffer, use_dictionary=_repeating(table))
                name = self.store.new_key(PREFIX, project, deployment, folder)
                self.store.put(name, [buffer.getvalue()])
            written += sum(len(group) for _, group in groups)
        self.queue.written += written
        if self.queue.metrics is not None:
            self.queue.metrics.written.inc(written)
        return written

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, then write what is still queued (and what is answered meanwhile)."""
        await super().stop(timeout)
        try:
            while self.queue.depth:
                await self.run_once()
        except Exception:
            log.exception("the last prediction-log write failed")
