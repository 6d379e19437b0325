"""Datasets: immutable uploads with their schema and statistical profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_filename, validate_name
from aimass.artifacts.store import ArtifactStore, StoredArtifact
from aimass.datasets.entities import (
    ColumnSchema,
    Dataset,
    DatasetFormat,
    DatasetVersion,
    Profile,
)
from aimass.datasets.limits import DatasetLimits
from aimass.datasets.profile import detect_format, profile_table, read_table
from aimass.errors import NotFound
from aimass.registry.projects import read_project_row
from aimass.store.db import Database
from aimass.store.orm import DatasetRow, DatasetVersionRow, ProjectRow
from aimass.store.versioning import ensure_parent, insert_next_version


class DatasetVersionCreate(BaseModel):
    """What a client may say about a dataset upload besides its bytes."""

    model_config = ConfigDict(extra="forbid")

    format: DatasetFormat | None = None
    description: str = Field(default="", max_length=10_000)


def _dataset_row(session: Session, project: str, name: str) -> DatasetRow:
    row = session.scalars(
        select(DatasetRow)
        .join(ProjectRow)
        .where(ProjectRow.name == project, DatasetRow.name == name)
    ).first()
    if row is None:
        raise NotFound(f"dataset {name!r} not found in project {project!r}")
    return row


def _latest(session: Session, dataset_id: int) -> int | None:
    return session.scalar(
        select(func.max(DatasetVersionRow.version)).where(
            DatasetVersionRow.dataset_id == dataset_id
        )
    )


@dataclass(frozen=True)
class StoredUpload:
    """A dataset file read, profiled and stored under a fresh key; not yet a version."""

    dataset_id: int
    key: str
    format: DatasetFormat
    filename: str
    stored: StoredArtifact
    columns: list[ColumnSchema]
    profile: Profile

    def insert(self, session: Session, number: int, description: str) -> DatasetVersion:
        """Insert it as version ``number`` of its dataset (flushes: a taken number raises)."""
        row = DatasetVersionRow(
            dataset_id=self.dataset_id,
            version=number,
            format=self.format,
            filename=self.filename,
            artifact_key=self.key,
            sha256=self.stored.sha256,
            size=self.stored.size,
            num_rows=self.profile.num_rows,
            columns=[c.model_dump() for c in self.columns],
            profile=self.profile.model_dump(),
            description=description,
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        return row.to_entity()


def store_upload(
    db: Database,
    store: ArtifactStore,
    *,
    project: str,
    name: str,
    path: Path,
    filename: str,
    declared_format: DatasetFormat | None,
    limits: DatasetLimits | None,
) -> StoredUpload:
    """Read and profile ``path`` (within ``limits``; None trusts the file), then store its bytes.

    The dataset row is made if missing; the caller inserts the version, and deletes
    ``key`` from the store if that fails.
    """
    validate_filename(filename)
    validate_name(name, "dataset name")
    with path.open("rb") as src:
        head = src.read(4096)
    fmt = detect_format(filename, head, declared_format)
    columns, profile = profile_table(read_table(path, fmt, limits=limits))
    dataset_id = ensure_parent(db, DatasetRow, project, name)
    key = store.new_key("datasets", str(dataset_id))
    with path.open("rb") as src:
        stored = store.put_file(key, src)
    return StoredUpload(dataset_id, key, fmt, filename, stored, columns, profile)


def register_dataset_version(
    db: Database,
    store: ArtifactStore,
    *,
    project: str,
    name: str,
    upload: Path,
    filename: str,
    spec: DatasetVersionCreate,
    limits: DatasetLimits | None = None,
) -> DatasetVersion:
    """Parse and profile a complete local upload, store its bytes, then record the version.

    ``limits`` (the defaults when None: an upload is never read unbounded) caps what
    the upload may expand to; a file past them is refused (TooLarge) before it is
    materialised, and nothing is stored or recorded.
    """
    stored = store_upload(
        db,
        store,
        project=project,
        name=name,
        path=upload,
        filename=filename,
        declared_format=spec.format,
        limits=limits or DatasetLimits(),
    )
    try:
        return insert_next_version(
            db,
            DatasetVersionRow.version,
            DatasetVersionRow.dataset_id,
            stored.dataset_id,
            lambda session, number: stored.insert(session, number, spec.description),
        )
    except BaseException:
        store.delete(stored.key)
        raise


def list_datasets(session: Session, project: str) -> list[Dataset]:
    """A project's datasets, by name."""
    read_project_row(session, project)
    rows = session.scalars(
        select(DatasetRow)
        .join(ProjectRow)
        .where(ProjectRow.name == project)
        .order_by(DatasetRow.name)
    )
    return [r.to_entity(_latest(session, r.id)) for r in rows]


def read_dataset(session: Session, project: str, name: str) -> Dataset:
    """One dataset with its latest version number."""
    row = _dataset_row(session, project, name)
    return row.to_entity(_latest(session, row.id))


def _version_row(session: Session, project: str, name: str, version: int) -> DatasetVersionRow:
    dataset = _dataset_row(session, project, name)
    row = session.scalars(
        select(DatasetVersionRow).where(
            DatasetVersionRow.dataset_id == dataset.id, DatasetVersionRow.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"dataset {name!r} has no version {version}")
    return row


def list_dataset_versions(session: Session, project: str, name: str) -> list[DatasetVersion]:
    """A dataset's versions, newest first."""
    dataset = _dataset_row(session, project, name)
    rows = session.scalars(
        select(DatasetVersionRow)
        .where(DatasetVersionRow.dataset_id == dataset.id)
        .order_by(DatasetVersionRow.version.desc())
    )
    return [r.to_entity() for r in rows]


def read_dataset_version(session: Session, project: str, name: str, version: int) -> DatasetVersion:
    """One version with its schema and profile."""
    return _version_row(session, project, name, version).to_entity()


def read_dataset_artifact(
    session: Session, project: str, name: str, version: int
) -> tuple[DatasetVersion, str]:
    """A version and the server-made key of its bytes."""
    row = _version_row(session, project, name, version)
    return row.to_entity(), row.artifact_key


def delete_dataset(db: Database, store: ArtifactStore, project: str, name: str) -> None:
    """Delete a dataset and its versions, then their bytes."""
    with db.session() as session:
        row = _dataset_row(session, project, name)
        keys = list(
            session.scalars(
                select(DatasetVersionRow.artifact_key).where(DatasetVersionRow.dataset_id == row.id)
            )
        )
        session.delete(row)
    for key in keys:
        store.delete(key)
