"""Prometheus gauges of the job queue, read from the database (the system of record).

``aimass_jobs{project,state}``: jobs by project and state; and
``aimass_jobs_oldest_queued_seconds{project}``: how long the oldest queued job of
each project has waited (what a "queue stuck" alert watches). The counts are
global, whichever server or worker is scraped, so they are not summed across
workers; they are read at most once per ``ttl_s`` (a scrape inside that window
gets the last figures), with one grouped query each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from aimass.entities.jobs import JobState
from aimass.errors import AimassError
from aimass.store.orm import JobRow, ProjectRow, utcnow

if TYPE_CHECKING:
    from prometheus_client import Metric

    from aimass.store.db import Database

log = logging.getLogger("aimass.monitoring")

_Counts = dict[tuple[str, str], int]


class JobQueueCollector(Collector):
    """Collects ``aimass_jobs`` and ``aimass_jobs_oldest_queued_seconds`` from the database."""

    def __init__(self, db: Database, ttl_s: float = 5.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._read_at = float("-inf")
        self._counts: _Counts = {}
        self._oldest: dict[str, float] = {}

    def describe(self) -> Iterator[Metric]:
        """The families' names, without reading the database (asked when registered)."""
        yield GaugeMetricFamily("aimass_jobs", "", labels=["project", "state"])
        yield GaugeMetricFamily("aimass_jobs_oldest_queued_seconds", "", labels=["project"])

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self.ttl_s:
            return
        try:
            self._read()
        except (AimassError, SQLAlchemyError) as exc:
            # An outage (or a database not migrated yet) must not break the scrape of the
            # rest; the last figures stay, and the next scrape tries again.
            log.warning("job queue metrics not read: %s", exc)
        self._read_at = now

    def _read(self) -> None:
        with self.db.session() as session:
            rows = session.execute(
                select(ProjectRow.name, JobRow.state, func.count(), func.min(JobRow.created_at))
                .join(ProjectRow, ProjectRow.id == JobRow.project_id)
                .group_by(ProjectRow.name, JobRow.state)
            ).all()
        wall = utcnow()
        self._counts = {(project, state): count for project, state, count, _ in rows}
        self._oldest = {}
        for project, state, _, first in rows:
            if state == "queued" and first is not None:
                first = first if first.tzinfo else first.replace(tzinfo=wall.tzinfo)
                self._oldest[project] = max(0.0, (wall - first).total_seconds())

    def collect(self) -> Iterator[Metric]:
        """The gauges (every state of every project with jobs, zeros included)."""
        self._refresh()
        jobs = GaugeMetricFamily(
            "aimass_jobs", "Jobs by project and state.", labels=["project", "state"]
        )
        for project in sorted({p for p, _ in self._counts}):
            for state in get_args(JobState):
                jobs.add_metric([project, state], self._counts.get((project, state), 0))
        yield jobs
        oldest = GaugeMetricFamily(
            "aimass_jobs_oldest_queued_seconds",
            "Seconds the oldest queued job of the project has waited (0: none queued).",
            labels=["project"],
        )
        for project in sorted({p for p, _ in self._counts}):
            oldest.add_metric([project], self._oldest.get(project, 0.0))
        yield oldest
