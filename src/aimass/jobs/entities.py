"""Re-exports :mod:`aimass.entities.jobs` (kept below the store)."""

from __future__ import annotations

from aimass.entities.jobs import (
    TERMINAL_STATES,
    Job,
    JobCheckpoint,
    JobCreate,
    JobEvent,
    JobKind,
    JobMetric,
    JobState,
    Outcome,
    Resources,
    StoredSource,
)

__all__ = [
    "TERMINAL_STATES",
    "Job",
    "JobCheckpoint",
    "JobCreate",
    "JobEvent",
    "JobKind",
    "JobMetric",
    "JobState",
    "Outcome",
    "Resources",
    "StoredSource",
]
