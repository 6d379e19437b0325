"""Registering a built-in dataset's file as version 1, once, under concurrent callers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from aimass.artifacts.names import validate_name
from aimass.artifacts.store import ArtifactStore
from aimass.datasets.entities import DatasetVersion
from aimass.datasets.profile import detect_format, profile_table, read_table
from aimass.store.db import Database
from aimass.store.orm import DatasetRow, DatasetVersionRow, ProjectRow
from aimass.store.versioning import ensure_parent


def latest_version(db: Database, project: str, name: str) -> DatasetVersion | None:
    """The newest version of the project's dataset ``name``, or None if it has none."""
    with db.session() as session:
        dataset_id = session.scalar(
            select(DatasetRow.id)
            .join(ProjectRow)
            .where(ProjectRow.name == project, DatasetRow.name == name)
        )
        if dataset_id is None:
            return None
        number = session.scalar(
            select(func.max(DatasetVersionRow.version)).where(
                DatasetVersionRow.dataset_id == dataset_id
            )
        )
        if number is None:
            return None
        row = session.scalars(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_id == dataset_id, DatasetVersionRow.version == number
            )
        ).one()
        return row.to_entity()


def register_first_version(
    db: Database,
    store: ArtifactStore,
    *,
    project: str,
    name: str,
    path: Path,
    description: str,
) -> DatasetVersion:
    """Store ``path`` as version 1 of ``name``; if another caller got there first, theirs.

    Unlike an upload (which takes the next free number), this inserts version 1
    and nothing else, so the (dataset, version) unique constraint lets exactly one
    of several racing callers win; the others drop their bytes and read its row.
    """
    validate_name(name, "dataset name")
    with path.open("rb") as src:
        fmt = detect_format(path.name, src.read(4096))
    columns, profile = profile_table(read_table(path, fmt))
    dataset_id = ensure_parent(db, DatasetRow, project, name)
    key = store.new_key("datasets", str(dataset_id))
    with path.open("rb") as src:
        stored = store.put_file(key, src)
    try:
        with db.session() as session:
            row = DatasetVersionRow(
                dataset_id=dataset_id,
                version=1,
                format=fmt,
                filename=path.name,
                artifact_key=key,
                sha256=stored.sha256,
                size=stored.size,
                num_rows=profile.num_rows,
                columns=[c.model_dump() for c in columns],
                profile=profile.model_dump(),
                description=description,
            )
            session.add(row)
            session.flush()
            session.refresh(row)
            return row.to_entity()
    except IntegrityError:
        store.delete(key)
    except BaseException:
        store.delete(key)
        raise
    winner = latest_version(db, project, name)
    if winner is None:  # the winner's dataset was deleted in between: a real conflict
        from aimass.errors import Conflict

        raise Conflict(f"dataset {name!r} changed while it was being created; try again")
    return winner
