"""Built-in datasets in a project: registered as version 1 on first use, once, under races.

The sets themselves (what they hold, how to build their file) come from the
plugin registries' ``datasets`` slot (the model library registers its own);
this module is the datasets service's side: it writes their rows and bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from aimass.artifacts.store import ArtifactStore
from aimass.datasets.entities import DatasetVersion
from aimass.datasets.service import store_upload
from aimass.errors import Conflict, NotFound, Unprocessable
from aimass.plugins import Registry, default_registries
from aimass.plugins.entries import BuiltinDataset
from aimass.store.db import Database
from aimass.store.orm import DatasetRow, DatasetVersionRow, ProjectRow


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
    # Built-in files are the platform's own: read without upload limits.
    upload = store_upload(
        db,
        store,
        project=project,
        name=name,
        path=path,
        filename=path.name,
        declared_format=None,
        limits=None,
    )
    key = upload.key
    try:
        with db.session() as session:
            return upload.insert(session, 1, description)
    except IntegrityError:
        store.delete(key)
    except BaseException:
        store.delete(key)
        raise
    winner = latest_version(db, project, name)
    if winner is None:  # the winner's dataset was deleted in between: a real conflict
        raise Conflict(f"dataset {name!r} changed while it was being created; try again")
    return winner


def _sources(sources: Registry[BuiltinDataset] | None) -> Registry[BuiltinDataset]:
    return default_registries().datasets if sources is None else sources


def builtin(name: str, sources: Registry[BuiltinDataset] | None = None) -> BuiltinDataset:
    """The built-in dataset called ``name``; NotFound lists the known ones."""
    known = _sources(sources)
    if name not in known:
        raise NotFound(f"no built-in dataset {name!r} (known: {', '.join(sorted(known.names()))})")
    return known.get(name)


def ensure_builtin(
    db: Database,
    store: ArtifactStore,
    project: str,
    name: str,
    spool_dir: Path | None = None,
    sources: Registry[BuiltinDataset] | None = None,
) -> DatasetVersion:
    """The project's dataset ``name``, registered from the built-in set on first use.

    Idempotent and safe under concurrent callers: the first version is inserted
    as version 1 exactly, so of two callers racing one inserts it and the other
    reads it. A project that already has the dataset (built or uploaded) keeps it.
    A set whose extra is not installed is refused (``Unprocessable``, with the command).
    ``sources`` defaults to the installed plugins' datasets.
    """
    existing = latest_version(db, project, name)
    if existing is not None:
        return existing
    found = builtin(name, sources)
    problem = found.unavailable()
    if problem is not None:
        raise Unprocessable(problem)
    with tempfile.TemporaryDirectory(dir=spool_dir, prefix="builtin-") as tmp:
        path = found.build(Path(tmp))
        return register_first_version(
            db, store, project=project, name=name, path=path, description=found.description
        )


def job_dataset(
    db: Database,
    store: ArtifactStore,
    project: str,
    dataset: str | None,
    default_dataset: str | None,
    spool_dir: Path | None = None,
    sources: Registry[BuiltinDataset] | None = None,
) -> str | None:
    """The dataset a job runs on: the one it names, else its entry's default.

    A built-in dataset the project does not have yet is materialized first.
    """
    chosen = dataset or default_dataset
    if chosen is not None and chosen in _sources(sources):
        ensure_builtin(db, store, project, chosen, spool_dir, sources)
    return chosen


def list_builtin_datasets(
    db: Database, project: str, sources: Registry[BuiltinDataset] | None = None
) -> list[dict[str, Any]]:
    """Every built-in dataset, with the latest version the project holds (None: not yet)."""
    rows = []
    for dataset in sorted(_sources(sources), key=lambda d: d.name):
        found = latest_version(db, project, dataset.name)
        rows.append({**dataset.describe(), "version": found.version if found else None})
    return rows
