"""What a running attempt sends as bytes: checkpoints, kept files and shipped log lines.

Each write is fenced: it names its attempt and is refused (Conflict) once that
attempt is no longer the job's current one. Bytes are stored before the record
that points at them, and deleted again when the record is refused, so a stale
attempt leaves nothing behind. The HTTP side spools the body to a file and calls
one of these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import JsonValue
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_filename
from aimass.artifacts.store import ArtifactStore
from aimass.jobs import records
from aimass.jobs.entities import JobCheckpoint
from aimass.jobs.fencing import claim
from aimass.jobs.logs import append_log
from aimass.store.db import Database
from aimass.store.orm import utcnow

T = TypeVar("T")


def claim_attempt(db: Database, job_id: int, attempt: int) -> None:
    """Conflict unless ``attempt`` is the job's current, running attempt."""
    with db.session() as session:
        claim(session, job_id, attempt)


def _fenced(db: Database, store: ArtifactStore, key: str, write: Callable[[Session], T]) -> T:
    """Run a fenced write; if it is refused, the bytes just stored go too."""
    try:
        with db.session() as session:
            return write(session)
    except BaseException:
        store.delete(key)
        raise


def keep_checkpoint(
    db: Database, store: ArtifactStore, job_id: int, attempt: int, step: int, body: Path
) -> JobCheckpoint:
    """Store the file at ``body`` as the attempt's checkpoint at ``step``."""
    key = store.new_key("jobs", str(job_id), "checkpoints")
    with body.open("rb") as src:
        stored = store.put_file(key, src)
    return _fenced(
        db,
        store,
        key,
        lambda s: records.record_checkpoint(s, job_id, attempt, step, key, stored.sha256),
    )


def keep_artifact(
    db: Database, store: ArtifactStore, job_id: int, attempt: int, name: str, body: Path
) -> dict[str, JsonValue]:
    """Store the file at ``body`` as the job's file ``name``; its entry in ``artifacts``."""
    validate_filename(name)
    key = records.artifact_key(job_id, attempt, name)
    with body.open("rb") as src:
        stored = store.put_file(key, src)
    item: dict[str, JsonValue] = {
        "name": name,
        "attempt": attempt,
        "size": stored.size,
        "sha256": stored.sha256,
        "at": utcnow().isoformat(),
    }
    _fenced(
        db, store, key, lambda s: records.add_to_output_list(s, job_id, attempt, "artifacts", item)
    )
    return item


def append_shipped_log(db: Database, log_dir: Path, job_id: int, attempt: int, data: bytes) -> None:
    """Append log bytes a remote node shipped to the attempt's log file (fenced)."""
    claim_attempt(db, job_id, attempt)
    append_log(log_dir, job_id, attempt, data)
