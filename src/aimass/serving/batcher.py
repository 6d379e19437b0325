"""Dynamic batching: one small queue that turns concurrent puts into batched handler calls."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, Token
from typing import Generic, Literal, TypeVar, cast

from aimass.errors import Overloaded

log = logging.getLogger("aimass.serving")

T = TypeVar("T")
R = TypeVar("R")

#: Async handler: takes a batch of items, returns one result per item, in order.
AsyncHandler = Callable[[list[T]], Awaitable[list[R]]]
#: Sync handler: the same, run in the batcher's own one-thread executor.
SyncHandler = Callable[[list[T]], list[R]]
#: What closed a batch: it was full; every request in flight for its deployment had joined
#: (``joined``); with no in-flight count, two passes of the event loop brought nothing
#: (``idle``); its ``max_delay`` ran out; ``closing`` (the batcher stops); ``nodelay``
#: (``max_delay_s`` 0: a batch takes what is queued).
CloseReason = Literal["full", "joined", "idle", "max_delay", "closing", "nodelay"]
#: Called on the event loop after each batch: its size, each item's wait in the queue, and
#: what closed it.
BatchObserver = Callable[[int, Sequence[float], CloseReason], None]
#: Asked on the event loop before a sync handler runs a batch: True runs it right there,
#: without the hop to the batcher's thread (for a handler known to take microseconds).
InlinePolicy = Callable[[list[T]], bool]

# Passes of the event loop with no new item after which a batch closes early. Two,
# because a request read from a socket in one pass reaches ``put`` in the next.
_IDLE_PASSES = 2
# Threads a sync handler may use with several batches in flight (made only as needed).
_MAX_THREADS = 32


class InFlight:
    """Requests admitted for one deployment that have not joined a batch yet.

    The inference path ``admit``s a request as soon as it knows the deployment
    (before reading its body or checking its token, which may wait), and the
    request joins when its item is ``put`` into a batcher (or when it fails
    before that). A batcher given this count closes its batch the moment the
    count is zero: every request that could still join it has, so waiting longer
    only delays them. Shared by the batchers of a deployment's versions; use it
    on the event loop's thread.
    """

    __slots__ = ("_listeners", "count")

    def __init__(self) -> None:
        self.count = 0
        self._listeners: set[Callable[[], None]] = set()

    def admit(self) -> Admission:
        """Count one request in flight until it joins a batch or leaves the ``with`` block.

        ``with in_flight.admit(): ...`` around reading, parsing and queueing the request:
        the ``put`` it reaches (in the same task) joins it.
        """
        return Admission(self)

    def _joined(self) -> None:
        self.count -= 1
        if self.count == 0:
            for listener in list(self._listeners):
                listener()


class Admission:
    """One admitted request: counted from ``__enter__`` until ``join`` (idempotent)."""

    __slots__ = ("_in_flight", "_token")

    def __init__(self, in_flight: InFlight) -> None:
        self._in_flight: InFlight | None = in_flight
        self._token: Token[Admission | None] | None = None

    def __enter__(self) -> Admission:
        if self._in_flight is not None:
            self._in_flight.count += 1
        self._token = _ADMISSION.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _ADMISSION.reset(self._token)
            self._token = None
        self.join()

    def join(self) -> None:
        """The request has joined a batch, or will not: stop counting it."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight._joined()


#: The admission of the request the running task serves, if any: ``put`` joins it.
_ADMISSION: ContextVar[Admission | None] = ContextVar("aimass_admission", default=None)


def join_in_flight() -> None:
    """The running request goes to its model without a batcher: it no longer counts as in
    flight (batches of the deployment's other versions need not wait for it)."""
    admission = _ADMISSION.get()
    if admission is not None:
        admission.join()


class BatcherClosed(RuntimeError):
    """Raised by ``put`` once ``close`` has begun."""


class Batcher(Generic[T, R]):
    """Collect items into batches and run ``handler`` on each batch, one batch at a time.

    ``put(item)`` returns a future for that item's result. A batch closes when it
    holds ``max_batch_size`` items or ``max_delay_s`` after its first item was put.
    With an ``in_flight`` count (its deployment's), it also closes as soon as
    every request admitted for the deployment has joined a batch: a lone request
    goes at once, and a burst whose bodies are still arriving is waited for.
    Without one, with ``close_when_idle`` (the default), it closes as soon as two
    passes of the event loop bring no new item. Items put while a batch runs wait
    for the next one, which is how batches grow under load: a compute-bound model
    takes, when it is free again, everything that queued while it ran.
    ``closed_by`` counts the batches by what closed them (:data:`CloseReason`).
    If the handler raises, or returns a list of another length, every
    future of that batch fails with the exception. ``close()`` refuses new items,
    runs every item already queued, then stops. With ``max_queue``, a ``put`` that
    finds that many items waiting raises ``Overloaded`` at once (the items of the
    batch that runs do not count). With ``max_wait_s``, an item that waited longer
    than that for its batch is not run: its future fails with ``Overloaded``
    (reason ``queue_wait``), so what does run waited at most that long. A sync handler runs in a
    dedicated single thread, so the event loop keeps serving while it works, unless ``inline``
    (an :data:`InlinePolicy`) says this batch is cheaper to run on the loop than to hand over.
    With ``max_concurrent_batches`` (a number, or a function asked before each
    batch: Ray replicas change how many answer), up to that many batches run at
    once (sync handlers on as many threads, as Ray Serve's ``max_concurrent_batches``);
    a batch still closes only when a slot is free, so batches grow while all run.
    The batcher starts lazily on the first ``put``, on that caller's event loop.
    """

    def __init__(
        self,
        handler: AsyncHandler[T, R] | SyncHandler[T, R],
        max_batch_size: int,
        max_delay_s: float,
        *,
        close_when_idle: bool = True,
        name: str = "batcher",
        max_queue: int | None = None,
        max_wait_s: float | None = None,
        in_flight: InFlight | None = None,
        max_concurrent_batches: int | Callable[[], int] = 1,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        if max_queue is not None and max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        if max_wait_s is not None and max_wait_s <= 0:
            raise ValueError("max_wait_s must be positive")
        self.max_wait_s = max_wait_s
        self.close_when_idle = close_when_idle
        self.in_flight = in_flight
        self.name = name
        self.observer: BatchObserver | None = None
        #: Which batches of a sync handler run on the event loop's thread; None: none do.
        self.inline: InlinePolicy[T] | None = None
        #: Batches so far by what closed them.
        self.closed_by: dict[CloseReason, int] = {}
        self._reason: CloseReason = "nodelay"
        self._is_async = inspect.iscoroutinefunction(handler)
        self._handler = handler
        self._queue: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wait_for_full = False
        self._closing = False
        self._concurrency = max_concurrent_batches
        self._running: set[asyncio.Task[None]] = set()

    @property
    def closed(self) -> bool:
        """True once ``close`` has begun; ``put`` then raises ``BatcherClosed``."""
        return self._closing

    def __len__(self) -> int:
        """The number of items waiting for a batch."""
        return len(self._queue)

    def put(self, item: T) -> asyncio.Future[R]:
        """Queue one item and return the future of its result; call it on the event loop."""
        if self._closing:
            raise BatcherClosed(f"{self.name} is closed")
        if self.max_queue is not None and len(self._queue) >= self.max_queue:
            raise Overloaded(f"{self.max_queue} requests are queued already; try again soon")
        loop = self._loop
        if loop is None:
            loop = self._start()
        future: asyncio.Future[R] = loop.create_future()
        queue = self._queue
        queue.append((item, future, loop.time()))
        waiter = self._waiter
        if (
            waiter is not None
            and not waiter.done()
            and (not self._wait_for_full or len(queue) >= self.max_batch_size)
        ):
            waiter.set_result(None)
        admission = _ADMISSION.get()
        if admission is not None:
            admission.join()  # its request is in the queue now: no longer in flight
        return future

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._task = loop.create_task(self._run(), name=self.name)
        return loop

    def close_soon(self) -> None:
        """Refuse new items and let the queued ones finish; safe from any thread."""
        self._closing = True
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    async def close(self) -> None:
        """Refuse new items, run every queued one, and wait until the batcher has stopped."""
        self.close_soon()
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)
        elif self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float | None) -> None:
        """Wait for a put (all of a batch with ``_wait_for_full``), close, or ``delay``."""
        waiter = loop.create_future()
        self._waiter = waiter
        handle = None if delay is None else loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            self._wait_for_full = False
            if handle is not None:
                handle.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._closing:
                        if self._running:
                            await asyncio.wait(self._running)
                        return
                    await self._sleep(loop, None)
                    continue
                if self._running and len(self._running) >= self._slots():
                    # Every slot busy: what queues meanwhile makes the next batch bigger.
                    await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    if self._closing:
                        self._reason = "closing"
                    elif len(queue) >= self.max_batch_size:
                        self._reason = "full"
                    elif self.max_delay_s > 0:
                        await self._fill(loop)
                    else:
                        self._reason = "nodelay"
                    if self._concurrency == 1:
                        await self._run_batch(loop)
                    elif (batch := self._take(loop)) is not None:
                        task = loop.create_task(self._execute(loop, *batch))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                except Exception:
                    # The loop must outlive any one batch, or every later put would hang.
                    log.exception("batch loop of %s failed; it goes on", self.name)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for more items until the batch is full, its delay is over, every request
        in flight has joined (or, with no in-flight count, the loop is idle); record why."""
        queue = self._queue
        deadline = queue[0][2] + self.max_delay_s
        in_flight = self.in_flight
        if in_flight is not None:
            await self._fill_in_flight(loop, in_flight, deadline)
        elif not self.close_when_idle:
            remaining = deadline - loop.time()
            if remaining > 0:
                self._wait_for_full = True
                await self._sleep(loop, remaining)
            self._reason = self._why("max_delay")
        else:
            self._reason = await self._fill_idle(loop, deadline)

    async def _fill_in_flight(
        self, loop: asyncio.AbstractEventLoop, in_flight: InFlight, deadline: float
    ) -> None:
        queue = self._queue
        listeners = in_flight._listeners
        wake = self._wake
        while True:
            if self._closing:
                self._reason = "closing"
                return
            if len(queue) >= self.max_batch_size:
                self._reason = "full"
                return
            if in_flight.count <= 0:
                self._reason = "joined"
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._reason = "max_delay"
                return
            # Woken when the batch is full, the last request in flight joins, or it is time.
            self._wait_for_full = True
            listeners.add(wake)
            try:
                await self._sleep(loop, remaining)
            finally:
                listeners.discard(wake)

    async def _fill_idle(self, loop: asyncio.AbstractEventLoop, deadline: float) -> CloseReason:
        queue = self._queue
        idle = 0
        while True:
            if self._closing:
                return "closing"
            if len(queue) >= self.max_batch_size:
                return "full"
            seen = len(queue)
            await asyncio.sleep(0)
            if len(queue) == seen:
                idle += 1
                if idle >= _IDLE_PASSES:
                    return "idle"
            else:
                idle = 0
            if loop.time() >= deadline:
                return self._why("max_delay")

    def _slots(self) -> int:
        wanted = self._concurrency
        return max(1, wanted() if callable(wanted) else wanted)

    def _why(self, late: CloseReason) -> CloseReason:
        if self._closing:
            return "closing"
        if len(self._queue) >= self.max_batch_size:
            return "full"
        return late

    async def _run_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._take(loop)
        if batch is not None:
            await self._execute(loop, *batch)

    def _take(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[list[T], list[asyncio.Future[R]], list[float], CloseReason] | None:
        """Pop the next batch off the queue (with the reason that closed it), if any."""
        queue = self._queue
        items: list[T] = []
        futures: list[asyncio.Future[R]] = []
        waits: list[float] = []
        now = loop.time()
        oldest = None if self.max_wait_s is None else now - self.max_wait_s
        while queue and len(items) < self.max_batch_size:
            item, future, queued_at = queue.popleft()
            if future.done():  # cancelled: its caller has gone away
                continue
            if oldest is not None and queued_at < oldest:
                # Its caller has waited past the bound: refuse it now rather than
                # answer it late, and keep the model for requests that can still be on time.
                future.set_exception(_waited_too_long(self.max_wait_s))
                continue
            items.append(item)
            futures.append(future)
            waits.append(now - queued_at)
        if not items:
            return None
        # The next batch may close (and set its own reason) while this one runs.
        return items, futures, waits, self._reason

    async def _execute(
        self,
        loop: asyncio.AbstractEventLoop,
        items: list[T],
        futures: list[asyncio.Future[R]],
        waits: list[float],
        reason: CloseReason,
    ) -> None:
        """Run the handler on one batch and settle its futures."""
        try:
            if self._is_async:
                handler = cast("AsyncHandler[T, R]", self._handler)
                results = await handler(items)
            else:
                sync_handler = cast("SyncHandler[T, R]", self._handler)
                inline = self.inline
                if inline is not None and inline(items):
                    results = sync_handler(items)
                else:
                    if self._executor is None:
                        threads = 1 if self._concurrency == 1 else _MAX_THREADS
                        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=self.name)
                    results = await loop.run_in_executor(self._executor, sync_handler, items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(items)} items"
                )
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            # Cancelled (the loop is going away): the callers are cancelled with it.
            for future in futures:
                future.cancel()
            raise
        else:
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)
        self.closed_by[reason] = self.closed_by.get(reason, 0) + 1
        observer = self.observer
        if observer is not None:
            try:
                observer(len(items), waits, reason)
            except Exception:
                log.exception("batch observer of %s failed", self.name)


def _waited_too_long(max_wait_s: float | None) -> Overloaded:
    return Overloaded(
        f"the request waited over {max_wait_s:g} s for the model; try again soon",
        reason="queue_wait",
    )


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
