"""Which artifact keys the metadata still refers to, and removing the bytes it does not."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.artifacts.store import ArtifactStore
from aimass.errors import StaleLeadership
from aimass.loop_service import LoopService
from aimass.store.db import Database
from aimass.store.orm import DatasetVersionRow, ModelVersionRow

log = logging.getLogger("aimass.artifacts")

#: Bytes younger than this may belong to an upload still in flight on another server.
ORPHAN_MIN_AGE_S = 3600.0
SWEPT_PREFIXES = ("models", "datasets")


def referenced_keys(session: Session) -> set[str]:
    """Every artifact key a model or dataset version points at."""
    keys = set(session.scalars(select(ModelVersionRow.artifact_key)))
    keys.update(session.scalars(select(DatasetVersionRow.artifact_key)))
    return keys


def _is_referenced(session: Session, key: str) -> bool:
    for column in (ModelVersionRow.artifact_key, DatasetVersionRow.artifact_key):
        if session.scalar(select(column).where(column == key).limit(1)) is not None:
            return True
    return False


def orphan_candidates(
    session: Session, store: ArtifactStore, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Keys older than ``min_age_s`` that no version refers to (so an upload in flight stays)."""
    referenced = referenced_keys(session)
    cutoff = time.time() - min_age_s
    return [
        key
        for prefix in SWEPT_PREFIXES
        for key, modified in store.list_keys(prefix).items()
        if key not in referenced and modified < cutoff
    ]


def sweep_orphans(
    session: Session, store: ArtifactStore, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Delete bytes no version refers to (a crash between write and insert leaves them)."""
    removed = orphan_candidates(session, store, min_age_s)
    for key in removed:
        store.delete(key)
    return removed


class Fence(Protocol):
    """The leader's fence (``Leadership``): ``fence(session)`` raises ``StaleLeadership``
    inside a transaction when this process no longer holds the lease's current epoch."""

    def fence(self, session: Session) -> None:
        """Lock the lease row for this transaction if this holder's epoch is current."""


class OrphanSweeper(LoopService):
    """The leader's sweep of the shared store, every ``interval`` seconds (and at start).

    Removes unfinished writes under ``tmp/`` and bytes no version refers to once
    they are ``min_age_s`` old: a crash between moving an artifact into place and
    inserting its row leaves a complete file that no restart has to wait for.
    Younger ones may be another server's upload in flight and stay.

    Given the leader's ``fence``, each file is deleted inside a short fenced
    transaction that first checks this process still leads (and that no version
    refers to the key by now): a leader paused mid-sweep that lost its lease
    deletes nothing when it wakes. The listing itself holds no lock.
    """

    name = "orphan-sweeper"

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        interval: float,
        min_age_s: float = ORPHAN_MIN_AGE_S,
        fence: Fence | None = None,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.store = store
        self.min_age_s = min_age_s
        self.fence = fence
        #: Sweeps stopped because this process no longer led.
        self.refused = 0

    async def run_once(self) -> None:
        """One sweep, on a worker thread (it lists the store and reads the database)."""
        removed = await asyncio.to_thread(self.sweep)
        if removed:
            log.warning("removed %d abandoned artifact file(s)", len(removed))

    def sweep(self) -> list[str]:
        """Remove abandoned writes and unreferenced bytes; the keys removed."""
        with self.db.session() as session:
            orphans = orphan_candidates(session, self.store, self.min_age_s)
        removed: list[str] = []
        try:
            for key in self.store.stale_tmp(self.min_age_s):
                if self._fenced(key, lambda k: self.store.discard(k), referenced=False):
                    removed.append(key)
            for key in orphans:
                if self._fenced(key, self.store.delete, referenced=True):
                    removed.append(key)
        except StaleLeadership as exc:
            self.refused += 1
            log.warning("orphan sweep stopped: %s", exc.message)
        return removed

    def _fenced(self, key: str, delete: Callable[[str], object], *, referenced: bool) -> bool:
        """Delete ``key`` as the leader; False if a version refers to it by now."""
        if self.fence is None:
            delete(key)
            return True
        with self.db.session() as session:
            self.fence.fence(session)  # raises StaleLeadership: this process no longer leads
            if referenced and _is_referenced(session, key):
                return False
            delete(key)
        return True
