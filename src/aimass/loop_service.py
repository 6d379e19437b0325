"""``LoopService``: a background reconciler that cannot die.

A subclass implements ``run_once``; a test calls it directly to run exactly one
tick. A tick that raises is logged and the loop goes on. Loops are started and
stopped by the platform (``aimass.platform.Services``), which also says where
each runs: a leader-only loop gets a ``gate`` that is True only on the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from aimass.errors import DatabaseUnavailable

log = logging.getLogger("aimass.loops")

#: Asked before each tick; the tick is skipped while it answers False.
Gate = Callable[[], Awaitable[bool]]


class LoopService(ABC):
    """Calls ``run_once`` every ``interval`` seconds, or sooner when ``wake()`` is called."""

    name = "loop"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Set by the platform for a leader-only loop; None runs every tick.
        self.gate: Gate | None = None

    @abstractmethod
    async def run_once(self) -> None:
        """One reconciliation tick."""

    def wake(self) -> None:
        """Run the next tick now rather than at the end of the interval (from any thread)."""
        loop = self._loop
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or loop is None or loop.is_closed():
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if self.gate is None or await self.gate():
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable:
                # An outage, not a bug: one line a tick, no traceback, until it is back.
                log.warning("%s tick skipped: the database is unreachable", self.name)
            except Exception:
                log.exception("%s tick failed; the loop goes on", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    def start(self) -> None:
        """Start the loop on the running event loop."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name=self.name)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current tick (cancelled only if it overruns ``timeout``).

        Letting the tick finish matters: a tick cancelled while its worker thread
        holds a database connection would leave that connection unreturned.
        """
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
