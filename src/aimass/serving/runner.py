"""One loaded model version behind a dynamic batcher: concatenate rows, predict once, split."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aimass.errors import InvalidInput, Overloaded
from aimass.serving.batcher import Batcher, BatcherClosed, CloseReason, InFlight, join_in_flight

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aimass.flavors.base import Predictor
    from aimass.flavors.signature import Signature, TensorSpec
    from aimass.serving.metrics import VersionMetrics

    Array = NDArray[Any]

#: Output names when the model has no signature to name them.
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"

# One request's work: its inputs and the outputs it wants (None: all of them).
_Item = tuple[dict[str, "Array"], frozenset[str] | None]

#: A lone request runs on the event loop's thread, not the runner's, when the model's predict
#: is measured to take less CPU than this: handing it to a thread and its answer back costs
#: tens of microseconds of CPU and two thread wake-ups, more than a tiny model's predict.
#: Batches of several requests keep the hop: while the runner's thread waits for the GIL,
#: more requests queue, and larger batches cost less per request than the hop saves (at
#: 64 connections, running them inline too answered 20 % fewer requests per CPU-second).
INLINE_PREDICT_S = 0.0002
#: ... and its fastest recent call at most this many times as long on the clock: a model
#: that waits (a GPU, a socket) takes far longer than its CPU time says on every call, and
#: must not hold the event loop.
INLINE_WAIT_RATIO = 10.0
#: Predict calls timed on the runner's thread before any batch may run inline.
TIMED_FIRST = 8
_SMOOTHING = 0.1
# How fast the fastest call's wall-clock time is forgotten: 5 % up per call.
_FLOOR_RISE = 1.05


class PredictClock:
    """How long the model's predict takes: moving means of the CPU seconds and the input
    elements of its calls, the wall-clock seconds of its fastest recent call, and whether a
    call is expected to be tiny.

    CPU time (the calling thread's) decides, and the clock only through the fastest
    recent call: on a busy machine a thread often waits for a core, and that wait says
    nothing of the model, whereas a model that waits for a device does so every call.
    """

    __slots__ = ("calls", "cpu", "elements", "wall")

    def __init__(self) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.wall = 0.0
        self.elements = 0.0

    def record(self, cpu: float, wall: float, elements: int) -> None:
        """Time one predict call on ``elements`` input elements."""
        if self.calls == 0:
            self.cpu, self.wall, self.elements = cpu, wall, float(elements)
        else:
            self.cpu += _SMOOTHING * (cpu - self.cpu)
            self.wall = min(wall, self.wall * _FLOOR_RISE)
            self.elements += _SMOOTHING * (elements - self.elements)
        self.calls += 1

    def tiny(self, elements: int) -> bool:
        """True when a call on ``elements`` is expected to take under ``INLINE_PREDICT_S``
        of CPU: calls have been timed, their mean is under it (and the fastest recent one
        took under ``INLINE_WAIT_RATIO`` times that on the clock), and this one is at most
        twice their mean size."""
        return (
            self.calls >= TIMED_FIRST
            and self.cpu < INLINE_PREDICT_S
            and self.wall < INLINE_PREDICT_S * INLINE_WAIT_RATIO
            and elements <= 2 * self.elements
        )


def _elements(items: list[_Item]) -> int:
    return sum(array.size for inputs, _ in items for array in inputs.values())


@dataclass
class RunnerStats:
    """Counters since the runner started: requests, batches, rows and time queued."""

    requests: int = 0
    batches: int = 0
    rows: int = 0
    queue_seconds: float = 0.0
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    #: Batches by what closed them (``serving.batcher.CloseReason``).
    closed_by: dict[str, int] = field(default_factory=dict)
    #: Predict calls run on the event loop's thread (a tiny model's; see ``PredictClock``).
    inline: int = 0

    def record(self, size: int, waits: Sequence[float], reason: str | None = None) -> None:
        """Count one batch of ``size`` requests that waited ``waits`` seconds each."""
        if reason is not None:
            self.closed_by[reason] = self.closed_by.get(reason, 0) + 1
        self.batches += 1
        self.requests += size
        self.queue_seconds += sum(waits)
        self.largest_batch = max(self.largest_batch, size)
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1


class Runner(Protocol):
    """What the inference path and the repository use of a served version's runner.

    A :class:`ModelRunner` (one model behind its batcher) or an
    ``serving.ensemble.EnsembleRunner`` (members behind theirs, fused).
    """

    name: str
    metrics: VersionMetrics | None
    predict_output: str
    proba_output: str
    output_specs: list[TensorSpec]

    async def infer(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> dict[str, Array]:
        """Predict for one request's rows and return its outputs by name."""
        ...

    def close_soon(self) -> None:
        """Refuse new requests; those already queued still run."""
        ...

    async def close(self) -> None:
        """Finish the queued requests and release what it holds."""
        ...


class ModelRunner:
    """Runs one predictor for concurrent requests, batching them when it can.

    ``infer`` takes arrays by input name, each with the request's rows along
    axis 0, and returns arrays by output name holding exactly those rows. With
    ``max_batch_size`` above 1 (and a signature whose inputs all have a variable
    first dimension), concurrent requests are concatenated into one predict call
    on a dedicated thread and the outputs are split back. Requests whose inputs
    differ in dtype or trailing shape are run as separate groups, and when a
    merged group fails each of its requests is retried alone, so one bad request
    fails only itself. Every predict call is timed (``clock``): once an in-process
    model's calls are measured to take under ``INLINE_PREDICT_S``, a lone request
    (a batch of one, at most twice the usual size) runs on the event loop's thread
    instead; batches of several, larger or slower calls stay on the runner's thread.
    A predictor with ``close()`` (its model lives in another process) always runs on
    the thread. Outputs are
    named from the signature (its first output is ``predict``, its second
    ``predict_proba``) or ``predict``/``predict_proba`` without one.
    ``max_concurrent_batches`` lets that many batches run at once (a predictor that
    spreads them over Ray replicas; such a runner never inlines). Call ``infer`` on
    the event loop.
    """

    def __init__(
        self,
        predictor: Predictor,
        signature: Signature | None,
        max_batch_size: int,
        max_delay_ms: float,
        *,
        name: str = "model",
        max_queue: int | None = None,
        max_wait_s: float | None = None,
        in_flight: InFlight | None = None,
        max_concurrent_batches: int | Callable[[], int] = 1,
    ) -> None:
        self.predictor = predictor
        #: Requests that may wait for the model before ``infer`` raises ``Overloaded``.
        self.max_queue = max_queue
        self._pending = 0  # requests on the unbatched path: waiting or running
        self.signature = signature
        self.name = name
        self.stats = RunnerStats()
        #: Per-version metrics, bound by the inference app on first use.
        self.metrics: VersionMetrics | None = None
        outputs = signature.outputs if signature is not None else []
        self.predict_output: str = outputs[0].name if outputs else PREDICT
        self.proba_output: str = outputs[1].name if len(outputs) > 1 else PREDICT_PROBA
        #: Predictors that name their outputs (ONNX, TorchScript) serve every declared one.
        self._named = getattr(predictor, "predict_named", None) if outputs else None
        self.output_specs: list[TensorSpec] = list(outputs if self._named else outputs[:2])
        self.input_names: tuple[str, ...] = (
            tuple(spec.name for spec in signature.inputs) if signature is not None else ()
        )
        #: The inputs that carry the request's rows: those whose first dimension is variable
        #: (a graph's ``edge_index`` [2, -1] is not rows); None: every input.
        self.row_inputs: frozenset[str] | None = (
            frozenset(s.name for s in signature.inputs if s.shape[:1] == [-1]) or None
            if signature is not None
            else None
        )
        batchable = signature is None or all(
            spec.shape and spec.shape[0] == -1 for spec in signature.inputs
        )
        self.max_batch_size = max_batch_size if batchable else 1
        #: The predict calls' timing, which decides whether a call may run inline.
        self.clock = PredictClock()
        # A model in another process (a sandbox's host) may block on it: never inline.
        self._may_inline = max_concurrent_batches == 1 and not callable(
            getattr(predictor, "close", None)
        )
        self._batcher: Batcher[_Item, Any] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        if self.max_batch_size > 1:
            self._batcher = Batcher(
                self._timed_batch,
                self.max_batch_size,
                max_delay_ms / 1000.0,
                name=f"aimass-batch-{name}",
                max_queue=max_queue,
                max_wait_s=max_wait_s,
                in_flight=in_flight,
                max_concurrent_batches=max_concurrent_batches,
            )
            self._batcher.observer = self._observe
            if self._may_inline:
                self._batcher.inline = self._inline

    @property
    def closed(self) -> bool:
        """True once ``close`` has begun."""
        return self._closed

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not those of the batch that runs)."""
        return len(self._batcher) if self._batcher is not None else 0

    @property
    def full(self) -> bool:
        """True while a request now would be refused (``Overloaded``): check before parsing."""
        if self.max_queue is None:
            return False
        if self._batcher is not None:
            return len(self._batcher) >= self.max_queue
        return self._pending > self.max_queue

    async def infer(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> dict[str, Array]:
        """Predict for one request's rows and return its outputs by name.

        ``outputs`` limits the answer (and the work) to those output names.
        """
        rows = _rows(inputs, self.row_inputs)
        wanted = None if outputs is None else frozenset(outputs)
        batcher = self._batcher
        if batcher is not None:
            result = await batcher.put((inputs, wanted))
        else:
            join_in_flight()
            if self._closed:
                raise BatcherClosed(f"runner {self.name} is closed")
            # One runs, the rest wait their turn on the thread: the same bound as a queue's.
            if self.max_queue is not None and self._pending > self.max_queue:
                raise Overloaded(f"{self.max_queue} requests are queued already; try again soon")
            item = (inputs, wanted)
            if self._pending == 0 and self._inline([item]):  # the thread is idle: no overlap
                result = self._timed_one(item)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"aimass-{self.name}")
                loop = asyncio.get_running_loop()
                self._pending += 1
                try:
                    result = await loop.run_in_executor(self._executor, self._timed_one, item)
                finally:
                    self._pending -= 1
            self._observe(1, (0.0,))
        return outputs_of(result, rows)

    def submit(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> Awaitable[dict[str, Array]]:
        """Queue the request now and return what ``infer`` would, to await later.

        An ensemble queues every member before awaiting any, with no task per member.
        """
        batcher = self._batcher
        if batcher is None:
            return asyncio.ensure_future(self.infer(inputs, outputs))
        rows = _rows(inputs, self.row_inputs)
        future = batcher.put((inputs, None if outputs is None else frozenset(outputs)))
        return self._result(future, rows)

    def enqueue(
        self, inputs: dict[str, Array], outputs: Collection[str] | None = None
    ) -> tuple[asyncio.Future[Any], int] | None:
        """Queue one request in the batcher now, with no task: its future and its row count,
        to read with ``outputs_of(future.result(), rows)`` once done; None for a runner
        without a batcher (then ``infer``). Raises at once what ``infer`` would on queueing
        (``BatcherClosed``, ``Overloaded``)."""
        batcher = self._batcher
        if batcher is None:
            return None
        rows = _rows(inputs, self.row_inputs)
        return batcher.put((inputs, None if outputs is None else frozenset(outputs))), rows

    async def _result(self, future: Awaitable[Any], rows: int) -> dict[str, Array]:
        return outputs_of(await future, rows)

    def close_soon(self) -> None:
        """Refuse new requests; those already queued still run. Safe from any thread."""
        self._closed = True
        if self._batcher is not None:
            self._batcher.close_soon()

    async def close(self) -> None:
        """Refuse new requests, finish the queued ones, stop the thread, close the predictor."""
        self._closed = True
        if self._batcher is not None:
            await self._batcher.close()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            # The request in flight finishes before the predictor (maybe a host process) closes.
            await asyncio.to_thread(executor.shutdown, True)
        close = getattr(self.predictor, "close", None)
        if callable(close):
            # A sandboxed predictor's close stops its host process.
            await asyncio.to_thread(close)

    def _observe(
        self, size: int, waits: Sequence[float], reason: CloseReason | None = None
    ) -> None:
        self.stats.record(size, waits, reason)
        metrics = self.metrics
        if metrics is not None:
            metrics.batch(size, waits, reason)

    def predict_batch(
        self, inputs: dict[str, Array], wanted: frozenset[str] | None = None
    ) -> dict[str, Array]:
        """Run the predictor on these rows now, in this thread (an ensemble's members)."""
        return self._predict(inputs, wanted)

    def _predict(self, inputs: dict[str, Array], wanted: frozenset[str] | None) -> dict[str, Array]:
        """Run the predictor once (on the runner's thread) and name its outputs."""
        batch: Any = inputs
        if not self.input_names and len(inputs) == 1:
            batch = next(iter(inputs.values()))
        result: dict[str, Array] = {}
        if self._named is not None:
            names = [s.name for s in self.output_specs if wanted is None or s.name in wanted]
            result = self._named(batch, names)
            if all(name in result for name in names):
                return result
            result = {}  # an output it cannot name (an ONNX map): the classic path
        if wanted is None or self.predict_output in wanted:
            result[self.predict_output] = np.asarray(self.predictor.predict(batch))
        if wanted is None or self.proba_output in wanted:
            proba = self.predictor.predict_proba(batch)
            if proba is not None:
                result[self.proba_output] = np.asarray(proba)
        return result

    def _inline(self, items: list[_Item]) -> bool:
        """Whether this call runs on the event loop's thread (the batcher asks, on the loop):
        a lone request to a tiny in-process model."""
        if len(items) == 1 and self._may_inline and self.clock.tiny(_elements(items)):
            self.stats.inline += 1
            return True
        return False

    def _timed_batch(self, items: list[_Item]) -> list[Any]:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return self._run_batch(items)
        finally:
            self.clock.record(
                time.thread_time() - cpu, time.perf_counter() - wall, _elements(items)
            )

    def _timed_one(self, item: _Item) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return self._run_one(item)
        finally:
            self.clock.record(
                time.thread_time() - cpu, time.perf_counter() - wall, _elements([item])
            )

    def _run_batch(self, items: list[_Item]) -> list[Any]:
        """Run a batch on the runner's thread: one predict per group of compatible requests."""
        if len(items) == 1:
            return [self._run_one(items[0])]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, (inputs, _wanted) in enumerate(items):
            key = tuple((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items())
            groups.setdefault(key, []).append(index)
        results: list[Any] = [None] * len(items)
        for indexes in groups.values():
            if len(indexes) == 1:
                results[indexes[0]] = self._run_one(items[indexes[0]])
                continue
            members = [items[i] for i in indexes]
            try:
                answers = self._run_merged(members)
            except Exception:
                # One bad request must not fail its neighbours: retry each alone.
                answers = [self._run_one(item) for item in members]
            for i, answer in zip(indexes, answers, strict=True):
                results[i] = answer
        return results

    def _run_one(self, item: _Item) -> Any:
        try:
            return self._predict(*item)
        except Exception as exc:
            return exc

    def _run_merged(self, members: list[_Item]) -> list[dict[str, Array]]:
        names = list(members[0][0])
        merged = {name: np.concatenate([inputs[name] for inputs, _ in members]) for name in names}
        wanted: frozenset[str] | None = frozenset()
        for _, want in members:
            if want is None:
                wanted = None
                break
            wanted = wanted | want  # type: ignore[operator]
        outputs = self._predict(merged, wanted)
        total = len(next(iter(merged.values())))
        for array in outputs.values():
            if array.ndim == 0 or array.shape[0] != total:
                raise RuntimeError("the model's output rows do not match its input rows")
        answers: list[dict[str, Array]] = []
        start = 0
        for inputs, want in members:
            stop = start + _rows(inputs)
            answers.append(
                {
                    name: array[start:stop]
                    for name, array in outputs.items()
                    if want is None or name in want
                }
            )
            start = stop
        return answers


def outputs_of(result: Any, rows: int) -> dict[str, Array]:
    """One request's outputs from what its batch gave it (a failure is raised), checked
    to hold exactly its ``rows`` rows."""
    if isinstance(result, BaseException):
        raise result
    for array in result.values():
        if array.shape[:1] != (rows,):
            raise RuntimeError(
                f"the model returned {array.shape[0] if array.ndim else 0} rows for {rows}"
            )
    return result  # type: ignore[no-any-return]


def _rows(inputs: dict[str, Array], only: frozenset[str] | None = None) -> int:
    """The request's row count: the first dimension of its row inputs (``only``, default
    all), which must agree."""
    rows = -1
    for name, array in inputs.items():
        if array.ndim == 0:
            raise InvalidInput(f"input {name!r} is a scalar; send rows along a first dimension")
        if only is not None and name not in only:
            continue
        if rows == -1:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            raise InvalidInput(
                f"inputs disagree on the number of rows: {name!r} has {array.shape[0]}, "
                f"others have {rows}"
            )
    if rows == -1:
        raise InvalidInput("the request has no inputs")
    return rows
