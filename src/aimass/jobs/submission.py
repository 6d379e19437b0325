"""Submitting jobs: a catalogue entry's job with its dataset resolved, or a script with its code.

What ``POST /api/v1/jobs`` and ``POST /api/v1/jobs/script`` do once the request is
parsed: check the entry and params, materialize a built-in dataset the job needs,
store uploaded code (refusing unsafe archives before anything is stored) and
queue the job. Failures store nothing: refused params register no dataset and a
refused submission deletes the code it had stored.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aimass.artifacts.names import validate_filename
from aimass.artifacts.store import ArtifactStore
from aimass.errors import InvalidInput
from aimass.jobs import service
from aimass.jobs.catalog import EntryCatalog
from aimass.jobs.entities import Job, JobCreate, StoredSource
from aimass.plugins.columns import Columns
from aimass.store.db import Database

#: The file names an uploaded job source may have.
SOURCE_SUFFIXES = (".py", ".zip", ".tar.gz", ".tgz")


def with_dataset(
    db: Database,
    store: ArtifactStore,
    catalog: EntryCatalog,
    project: str,
    body: JobCreate,
    spool_dir: Path,
) -> JobCreate:
    """The job with its entry's default dataset when it names none; built-in sets materialized.

    Params are checked first, so a refused job registers no dataset.
    """
    from aimass.datasets.builtin import job_dataset

    catalog.check(body.kind, body.entry, dict(body.params))
    entry = catalog.get(body.entry)
    default = entry.default_dataset if entry is not None and body.kind == "train" else None
    dataset = job_dataset(db, store, project, body.dataset, default, spool_dir)
    if entry is not None and entry.columns is not None and dataset is not None:
        _check_columns(db, project, entry.columns, body, dataset)
    return body if dataset == body.dataset else body.model_copy(update={"dataset": dataset})


def _check_columns(
    db: Database, project: str, columns: Columns, body: JobCreate, dataset: str
) -> None:
    """Refuse (422) a dataset version that lacks a column the entry reads, or has text
    where it takes numbers; a dataset not there yet is left to the job to report."""
    from aimass.datasets import service as datasets
    from aimass.errors import NotFound, Unprocessable

    try:
        with db.session() as session:
            if body.dataset_version is None:
                found = datasets.list_dataset_versions(session, project, dataset)
                version = found[0] if found else None  # newest first
            else:
                version = datasets.read_dataset_version(
                    session, project, dataset, body.dataset_version
                )
    except NotFound:
        return
    if version is None:
        return
    schema = [(column.name, column.dtype) for column in version.columns]
    problem = columns.problem(body.params, schema, f"{dataset} v{version.version}")
    if problem is not None:
        raise Unprocessable(f"entry {body.entry!r}: {problem}")


def submit_entry_job(
    db: Database,
    store: ArtifactStore,
    catalog: EntryCatalog,
    project: str,
    body: JobCreate,
    spool_dir: Path,
) -> Job:
    """Queue a job of a catalogue entry; bad entries, params or datasets queue nothing."""
    if body.kind == "script":
        raise InvalidInput("script jobs carry your code: POST it to /api/v1/jobs/script")
    body = with_dataset(db, store, catalog, project, body, spool_dir)
    with db.session() as session:
        return service.submit_job(session, project, body, catalog)


def submit_script_job(
    db: Database,
    store: ArtifactStore,
    catalog: EntryCatalog,
    project: str,
    spec: JobCreate,
    source: Path,
    filename: str,
    spool_dir: Path,
) -> Job:
    """Queue a script job with its code (a .py file, a .zip or a .tar.gz at ``source``)."""
    from aimass.runtime.script import unpack_source

    if spec.kind != "script":
        raise InvalidInput("spec.kind: a job with your code has kind 'script'")
    validate_filename(filename)
    if not filename.endswith(SOURCE_SUFFIXES):
        raise InvalidInput(f"source {filename!r}: upload a .py file, a .zip or a .tar.gz")
    with tempfile.TemporaryDirectory(dir=spool_dir) as tmp:
        # Refuses unsafe archives before anything is stored.
        unpack_source(source, Path(tmp) / "check", name=filename)
    key = store.new_key("jobs", "sources")
    with source.open("rb") as src:
        stored = store.put_file(key, src)
    try:
        with db.session() as session:
            return service.submit_job(
                session,
                project,
                spec,
                catalog,
                source=StoredSource(key=key, sha256=stored.sha256, name=filename),
            )
    except BaseException:
        store.delete(key)
        raise
