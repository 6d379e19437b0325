"""``SubmittingLoop``: the base of the loops that submit jobs (pipeline and schedule runners)."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from sqlalchemy.orm import Session

from aimass.jobs.entities import Job, JobCreate
from aimass.loop_service import LoopService
from aimass.store.db import Database

#: Submits a job in the caller's transaction: ``jobs.service.submit_job`` with the catalogue.
SubmitJob = Callable[[Session, str, JobCreate], Job]

#: Opens a leader-only transaction (``Leadership.fence``): raises ``StaleLeadership`` when
#: this process lost its leadership, so the transaction writes nothing.
Fence = Callable[[Session], None]


class SubmittingLoop(LoopService):
    """A loop whose blocking ``tick`` submits jobs; ``notify`` follows a tick that did something.

    ``submit`` queues a job (the app's wraps ``jobs.service.submit_job`` with its
    catalogue). ``tick`` runs in a worker thread, as its database calls block;
    when it returns a non-empty list its transactions have committed, and
    ``notify`` is called on the event loop (the app wakes its scheduler there).
    """

    #: Seconds between ticks when the caller names none.
    default_interval: ClassVar[float] = 1.0

    def __init__(
        self,
        db: Database,
        submit: SubmitJob,
        notify: Callable[[], None] | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__(self.default_interval if interval is None else interval)
        self.db = db
        self.submit = submit
        self.notify = notify
        #: Set when the loop runs leader-only: each tick's transactions start with it.
        self.fence: Fence | None = None

    def fenced(self, session: Session) -> None:
        """Start a transaction of this tick: ``fence(session)`` when the loop is leader-only."""
        if self.fence is not None:
            self.fence(session)

    @abstractmethod
    def tick(self, now: datetime | None = None) -> list[int]:
        """One pass, in its own transactions; the ids of what it submitted or fired."""

    async def run_once(self) -> None:
        """One tick in a worker thread (the database calls block), then ``notify`` here."""
        if await asyncio.to_thread(self.tick) and self.notify is not None:
            self.notify()
