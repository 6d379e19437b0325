"""``ScheduleRunner``: the loop that fires due schedules (safe in every server process)."""

from __future__ import annotations

from datetime import datetime

from aimass.errors import StaleLeadership
from aimass.jobs.submitting_loop import SubmittingLoop
from aimass.schedules.service import fire_due
from aimass.store.orm import utcnow


class ScheduleRunner(SubmittingLoop):
    """Fires due schedules every ``interval`` seconds (1 s; cron has minute resolution).

    ``notify`` is called once a tick that fired something has committed (the app
    wakes its scheduler and pipeline runner there).
    """

    name = "schedule-runner"
    default_interval = 1.0

    def tick(self, now: datetime | None = None) -> list[int]:
        """Fire what is due now; the ids of the schedules fired."""
        try:
            with self.db.session() as session:
                self.fenced(session)  # cron fires on exactly one node: the current leader
                return fire_due(session, now or utcnow(), self.submit)
        except StaleLeadership:
            return []
