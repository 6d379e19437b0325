"""``Services``: the process's background loops, where each runs and in which order.

Every ``LoopService`` is registered once, in dependency order, as
``"every"`` (runs in every server process: it acts on what this process holds)
or ``"leader"`` (runs its ticks only while this process is the installation's
leader: it acts on shared state that one actor at a time must change). Start
goes in registration order, stop in reverse. High availability decides what
runs where here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aimass.loop_service import LoopService
from aimass.platform.notifier import Notifier, Topic
from aimass.scheduler.leader import Leadership
from aimass.store.db import Database

#: Where a background service runs: in every process, or only in the leader's.
Where = Literal["every", "leader"]


class SharedLeadership(Leadership):
    """One ``Leadership`` for the whole process, safe to check from several threads.

    The scheduler's placement and every leader-only service ask this one lock,
    so they always agree on who leads.
    """

    def __init__(self, db: Database, name: str = "aimass.scheduler", lease_s: float = 10.0) -> None:
        super().__init__(db, name, lease_s)
        self._guard = threading.Lock()

    def try_acquire(self, fresh: bool = True) -> bool:
        """Become (or stay) leader if nobody else is; never blocks on other processes."""
        with self._guard:
            return super().try_acquire(fresh)

    def release(self) -> None:
        """Stop being leader (idempotent)."""
        with self._guard:
            super().release()

    async def check(self, fresh: bool = False) -> bool:
        """``try_acquire`` on a worker thread (it may query the database): a loop's gate.

        A gate takes a follower's recent answer (``fresh=False``); ``LeaseKeeper`` competes.
        """
        known = None if self._in_memory() else self.known(fresh)
        if known is not None:
            return known  # no worker thread when the answer needs no query
        return await asyncio.to_thread(self.try_acquire, fresh)


class LeaseKeeper(LoopService):
    """Every process: renews the leader's lease, or competes for it, a few times per lease.

    Leader-only loops also check leadership on each tick, but their intervals
    may be longer than the lease; this loop keeps the lease alive and makes a
    follower take over within about a second of a leader's crash.
    """

    name = "leadership"

    def __init__(
        self, leadership: SharedLeadership, on_lead: Callable[[], None] | None = None
    ) -> None:
        super().__init__(min(1.0, leadership.lease_s / 3))
        self.leadership = leadership
        #: Called when this process has just become the leader (wakes the leader-only loops).
        self.on_lead = on_lead
        self._led = False

    async def run_once(self) -> None:
        """Renew or compete (a database round trip, on a worker thread)."""
        leads = await self.leadership.check(fresh=True)
        if leads and not self._led and self.on_lead is not None:
            self.on_lead()
        self._led = leads


@dataclass(frozen=True)
class Registration:
    """One registered service: the loop, where it runs, and the topics that wake it."""

    loop: LoopService
    where: Where
    topics: tuple[Topic, ...]

    @property
    def name(self) -> str:
        """The loop's name (``LoopService.name``)."""
        return self.loop.name


class Services:
    """The background services of one process, started in order and stopped in reverse."""

    def __init__(self, notifier: Notifier, leadership: SharedLeadership) -> None:
        self.notifier = notifier
        self.leadership = leadership
        self._registered: list[Registration] = []
        self._started: list[Registration] = []

    @property
    def registered(self) -> tuple[Registration, ...]:
        """Every registration, in start order."""
        return tuple(self._registered)

    def add(self, loop: LoopService, where: Where, topics: tuple[Topic, ...] = ()) -> None:
        """Register ``loop`` after the services it depends on; ``topics`` wake it."""
        if where not in ("every", "leader"):
            raise ValueError(f"a service runs in 'every' process or on the 'leader', not {where!r}")
        if any(r.loop is loop for r in self._registered):
            raise ValueError(f"{loop.name} is registered already")
        self._registered.append(Registration(loop, where, topics))
        for topic in topics:
            self.notifier.subscribe(topic, loop.wake)

    def start(self) -> None:
        """Start every service not yet started, in registration order (on the running loop)."""
        for registration in self._registered:
            if registration in self._started:
                continue
            if registration.where == "leader":
                registration.loop.gate = self.leadership.check
            registration.loop.start()
            self._started.append(registration)

    def wake_leader_services(self) -> None:
        """Wake every leader-only service (this process just became the leader)."""
        for registration in self._started:
            if registration.where == "leader":
                registration.loop.wake()

    async def stop(self) -> None:
        """Stop the started services in reverse order (each after its current tick)."""
        while self._started:
            await self._started.pop().loop.stop()
