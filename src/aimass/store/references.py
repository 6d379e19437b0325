"""Which artifact keys the metadata still refers to, and removing the bytes it does not."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.artifacts.store import ArtifactStore
from aimass.store.orm import DatasetVersionRow, ModelVersionRow

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
