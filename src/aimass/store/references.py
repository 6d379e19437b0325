"""Which artifact keys the metadata still refers to, and removing the bytes it does not."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.artifacts.store import ArtifactStore
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


def sweep_orphans(
    session: Session, store: ArtifactStore, min_age_s: float = ORPHAN_MIN_AGE_S
) -> list[str]:
    """Delete bytes no version refers to (a crash between write and insert leaves them).

    Only keys older than ``min_age_s`` go, so an upload in flight elsewhere is safe.
    """
    referenced = referenced_keys(session)
    cutoff = time.time() - min_age_s
    removed = []
    for prefix in SWEPT_PREFIXES:
        for key, modified in store.list_keys(prefix).items():
            if key not in referenced and modified < cutoff:
                store.delete(key)
                removed.append(key)
    return removed


class OrphanSweeper(LoopService):
    """The leader's sweep of the shared store, every ``interval`` seconds (and at start).

    Removes unfinished writes under ``tmp/`` and bytes no version refers to once
    they are ``min_age_s`` old: a crash between moving an artifact into place and
    inserting its row leaves a complete file that no restart has to wait for.
    Younger ones may be another server's upload in flight and stay.
    """

    name = "orphan-sweeper"

    def __init__(
        self,
        db: Database,
        store: ArtifactStore,
        interval: float,
        min_age_s: float = ORPHAN_MIN_AGE_S,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.store = store
        self.min_age_s = min_age_s

    async def run_once(self) -> None:
        """One sweep, on a worker thread (it lists the store and reads the database)."""
        removed = await asyncio.to_thread(self.sweep)
        if removed:
            log.warning("removed %d abandoned artifact file(s)", len(removed))

    def sweep(self) -> list[str]:
        """Remove abandoned writes and unreferenced bytes; the keys removed."""
        removed = self.store.sweep_tmp(self.min_age_s)
        with self.db.session() as session:
            removed += sweep_orphans(session, self.store, self.min_age_s)
        return removed
