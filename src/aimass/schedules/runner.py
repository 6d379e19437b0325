"""``ScheduleRunner``: the loop that fires due schedules (safe in every server process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from aimass.loop_service import LoopService
from aimass.schedules.service import SubmitJob, fire_due
from aimass.store.db import Database
from aimass.store.orm import utcnow


class ScheduleRunner(LoopService):
    """Fires due schedules every ``interval`` seconds (cron has minute resolution).

    ``submit`` queues a job (the app's wraps ``jobs.service.submit_job`` with its
    catalogue); ``notify`` is called on the event loop once a tick that fired
    something has committed (the app wakes its scheduler and pipeline runner).
    """

    name = "schedule-runner"

    def __init__(
        self,
        db: Database,
        submit: SubmitJob,
        notify: Callable[[], None] | None = None,
        interval: float = 1.0,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.submit = submit
        self.notify = notify

    def tick(self, now: datetime | None = None) -> list[int]:
        """Fire what is due now; the ids of the schedules fired."""
        with self.db.session() as session:
            return fire_due(session, now or utcnow(), self.submit)

    async def run_once(self) -> None:
        """One tick in a worker thread (the database calls block), then ``notify`` here."""
        if await asyncio.to_thread(self.tick) and self.notify is not None:
            self.notify()
