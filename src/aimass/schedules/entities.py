"""Re-exports :mod:`aimass.entities.schedules` (kept below the store)."""

from __future__ import annotations

from aimass.entities.schedules import (
    Schedule,
    ScheduleCreate,
    ScheduleUpdate,
)

__all__ = [
    "Schedule",
    "ScheduleCreate",
    "ScheduleUpdate",
]
