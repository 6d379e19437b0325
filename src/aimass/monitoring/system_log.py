"""System logs: every ``aimass.*`` log record as one JSON line, searchable, with retention.

``JsonLogHandler`` writes ``{"time", "level", "component", "node", "pid",
"request_id", "message"}`` (and ``"exc"`` with a traceback) to
``<home>/logs/system/<YYYY-MM-DD>.jsonl``: one file a day (UTC) shared by the
server's processes (each line is one ``O_APPEND`` write, so workers do not
interleave within a line); files older than ``retention_days`` are deleted when
a new day starts. ``search`` reads them back filtered by time, level,
component, request id and text. Job logs are not here: they are archived per
attempt in the artifact store (``aimass jobs logs``), and stay so.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aimass.entities.monitoring import LogRecord
from aimass.errors import InvalidInput

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
MAX_LINE = 16_384


class JsonLogHandler(logging.Handler):
    """Appends log records as JSON lines to the day's file under ``folder``."""

    def __init__(
        self,
        folder: Path,
        *,
        retention_days: float = 14,
        request_id: Callable[[], str] | None = None,
        node: str | None = None,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.retention_days = retention_days
        self.request_id = request_id
        self.node = node or socket.gethostname()
        self._day: date | None = None
        self._fd: int | None = None
        self._guard = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, day: date) -> int:
        if self._day != day or self._fd is None:
            if self._fd is not None:
                os.close(self._fd)
            path = self.folder / f"{day.isoformat()}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._day = day
            self._expire(day)
        return self._fd

    def _expire(self, today: date) -> None:
        oldest = today - timedelta(days=self.retention_days)
        for path in self.folder.glob("*.jsonl"):
            try:
                if date.fromisoformat(path.stem) < oldest:
                    path.unlink(missing_ok=True)
            except ValueError:
                continue

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` as one JSON line."""
        try:
            moment = datetime.fromtimestamp(record.created, UTC)
            entry = {
                "time": moment.isoformat(),
                "level": record.levelname.lower(),
                "component": record.name,
                "node": self.node,
                "pid": record.process,
                "request_id": getattr(record, "request_id", None)
                or (self.request_id() if self.request_id else "-"),
                "message": record.getMessage()[:MAX_LINE],
            }
            if record.exc_info:
                entry["exc"] = logging.Formatter().formatException(record.exc_info)[:MAX_LINE]
            line = (json.dumps(entry, default=str) + "\n").encode()
            with self._guard:
                os.write(self._file(moment.date()), line)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the day's file."""
        with self._guard:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        super().close()


def install(handler: JsonLogHandler, level: int = logging.INFO) -> None:
    """Send the ``aimass`` loggers' records (and uvicorn's errors) to ``handler``."""
    for name in ("aimass", "uvicorn.error"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        logger.addHandler(handler)


def search(
    folder: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    level: str | None = None,
    component: str | None = None,
    request_id: str | None = None,
    text: str | None = None,
    limit: int = 200,
) -> list[LogRecord]:
    """The newest ``limit`` records matching every filter given, oldest first."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    if level is not None and level.lower() not in _LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(_LEVELS)}")
    floor = _LEVELS[level.lower()] if level else 0
    since = since.astimezone(UTC) if since and since.tzinfo else since and since.replace(tzinfo=UTC)
    until = until.astimezone(UTC) if until and until.tzinfo else until and until.replace(tzinfo=UTC)
    found: list[LogRecord] = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if (since and day < since.date()) or (until and day > until.date()):
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = LogRecord.model_validate_json(line)
                except ValueError:
                    continue  # a torn or foreign line
                if _LEVELS.get(entry.level, 0) < floor:
                    continue
                if (since and entry.time < since) or (until and entry.time >= until):
                    continue
                if component and not entry.component.startswith(component):
                    continue
                if request_id and entry.request_id != request_id:
                    continue
                if text and text.lower() not in entry.message.lower():
                    continue
                found.append(entry)
    return found[-limit:]
