"""Model registry: models, immutable versions, aliases, tags, metrics and search.

Functions take an open session (or the Database, where bytes are written
between transactions) and return entities; they raise ``aimass.errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aimass.artifacts.names import validate_filename, validate_name
from aimass.artifacts.store import ArtifactStore
from aimass.errors import Conflict, Forbidden, InvalidInput, NotFound
from aimass.flavors.registry import FlavorRegistry, inspect_upload
from aimass.registry import _filters as filters
from aimass.registry.entities import (
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
    VersionQuery,
    VersionUpdate,
)
from aimass.registry.projects import read_project_row
from aimass.store.db import Database
from aimass.store.orm import (
    AliasRow,
    ModelRow,
    ModelTagRow,
    ModelVersionMetricRow,
    ModelVersionRow,
    ModelVersionTagRow,
    ProjectRow,
    utcnow,
)
from aimass.store.versioning import ensure_parent, insert_next_version


def _model_row(session: Session, project: str, name: str) -> ModelRow:
    row = session.scalars(
        select(ModelRow).join(ProjectRow).where(ProjectRow.name == project, ModelRow.name == name)
    ).first()
    if row is None:
        raise NotFound(f"model {name!r} not found in project {project!r}")
    return row


def _latest(session: Session, model_id: int) -> int | None:
    return session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id)
    )


def _model_entity(session: Session, row: ModelRow) -> Model:
    return row.to_entity(latest_version=_latest(session, row.id))


def _version_row(session: Session, project: str, name: str, ref: str | int) -> ModelVersionRow:
    """A version by number, alias, or ``latest`` (the highest number, unless an alias has
    that name)."""
    model = _model_row(session, project, name)
    text = str(ref)
    if text.isdigit():
        row = session.scalars(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == int(text)
            )
        ).first()
        if row is None:
            raise NotFound(f"model {name!r} has no version {text}")
        return row
    alias = session.get(AliasRow, (model.id, text))
    if alias is None and text == "latest":
        latest = session.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model.id)
            .order_by(ModelVersionRow.version.desc())
        ).first()
        if latest is None:
            raise NotFound(f"model {name!r} has no version yet")
        return latest
    if alias is None:
        raise NotFound(f"model {name!r} has no version or alias {text!r}")
    return alias.version


def _apply_tags(
    tags: list[ModelTagRow] | list[ModelVersionTagRow],
    changes: dict[str, str | None],
    make: type[ModelTagRow] | type[ModelVersionTagRow],
) -> None:
    by_key = {t.key: t for t in tags}
    for key, value in changes.items():
        validate_name(key, "tag key")
        if value is None:
            if key in by_key:
                tags.remove(by_key.pop(key))  # type: ignore[arg-type]
        elif key in by_key:
            by_key[key].value = value
        else:
            tag = make(key=key, value=value)
            tags.append(tag)  # type: ignore[arg-type]
            by_key[key] = tag


def flavors_in_use(session: Session) -> set[str]:
    """The flavors of the versions registered in any project (one indexed scan)."""
    return set(session.scalars(select(ModelVersionRow.flavor).distinct()))


def create_model(session: Session, project: str, spec: ModelCreate) -> Model:
    """Create an empty model; Conflict if the name is taken in the project."""
    validate_name(spec.name, "model name")
    project_row = read_project_row(session, project)
    row = ModelRow(project_id=project_row.id, name=spec.name, description=spec.description)
    row.project = project_row
    _apply_tags(row.tags, dict(spec.tags), ModelTagRow)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"model {spec.name!r} already exists in project {project!r}") from exc
    return _model_entity(session, row)


def read_model(session: Session, project: str, name: str) -> Model:
    """One model with its aliases and latest version number."""
    return _model_entity(session, _model_row(session, project, name))


def list_models(
    session: Session,
    project: str,
    *,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    flavor: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Model]:
    """Models in a project, by name; filters: name substring, model tags, a version flavor."""
    # The project as a value, not a join: joined, SQLite loops over projects first and
    # sorts every match instead of walking the (project_id, name) index in order.
    project_id = read_project_row(session, project).id
    conditions: list[ColumnElement[bool]] = [ModelRow.project_id == project_id]
    if name:
        conditions.append(filters.name_contains(name))
    for key, value in (tags or {}).items():
        conditions.append(filters.model_has_tag(key, value))
    if flavor:
        conditions.append(
            ModelRow.id.in_(
                select(ModelVersionRow.model_id).where(ModelVersionRow.flavor == flavor)
            )
        )
    rows = session.scalars(
        select(ModelRow).where(*conditions).order_by(ModelRow.name).limit(limit).offset(offset)
    ).unique()
    return [_model_entity(session, r) for r in rows]


def update_model(session: Session, project: str, name: str, spec: ModelUpdate) -> Model:
    """Change a model's description or tags."""
    row = _model_row(session, project, name)
    if spec.description is not None:
        row.description = spec.description
    if spec.tags is not None:
        _apply_tags(row.tags, spec.tags, ModelTagRow)
    row.updated_at = utcnow()
    session.flush()
    return _model_entity(session, row)


def delete_model(db: Database, store: ArtifactStore, project: str, name: str) -> None:
    """Delete a model, its versions and aliases, then its bytes."""
    with db.session() as session:
        row = _model_row(session, project, name)
        keys = list(
            session.scalars(
                select(ModelVersionRow.artifact_key).where(ModelVersionRow.model_id == row.id)
            )
        )
        session.delete(row)
    for key in keys:
        store.delete(key)


#: Runs in the transaction that inserts a version: checks the job attempt that registers it
#: is current (raising Conflict otherwise) and returns (job id, dataset version row id).
LineageGuard = Callable[[Session], tuple[str | None, int | None]]


def register_version(
    db: Database,
    store: ArtifactStore,
    flavors: FlavorRegistry,
    *,
    project: str,
    name: str,
    upload: Path,
    filename: str,
    spec: VersionCreate,
    can_trust: bool,
    source_job_id: str | None = None,
    lineage_guard: LineageGuard | None = None,
) -> ModelVersion:
    """Turn a complete, local upload into a new version.

    Order matters for "nothing half-registered": inspect the file (never running
    code unless trusted), write and verify its bytes under a fresh key, and only
    then insert the version row in one transaction. Any failure removes the bytes.
    """
    validate_filename(filename)
    if spec.trusted and not can_trust:
        raise Forbidden(
            "only an admin token valid on all projects may mark an upload trusted, since "
            "loading it runs its code on the server; upload it untrusted, or ask an "
            "installation admin (a token with role admin and no project)"
        )
    with db.session() as session:
        read_project_row(session, project)
    flavor, signature = inspect_upload(flavors, upload, filename, spec.flavor, spec.trusted)
    if spec.signature is not None:
        signature = spec.signature
    validate_name(name, "model name")
    model_id = ensure_parent(db, ModelRow, project, name)
    key = store.new_key("models", str(model_id))
    with upload.open("rb") as src:
        stored = store.put_file(key, src)
    try:
        return _insert_version(
            db,
            model_id,
            flavor=flavor,
            filename=filename,
            key=key,
            sha256=stored.sha256,
            size=stored.size,
            spec=spec,
            signature=signature.model_dump() if signature else None,
            source_job_id=source_job_id,
            lineage_guard=lineage_guard,
        )
    except BaseException:
        store.delete(key)
        raise


def _insert_version(
    db: Database,
    model_id: int,
    *,
    flavor: str,
    filename: str,
    key: str,
    sha256: str,
    size: int,
    spec: VersionCreate,
    signature: dict[str, object] | None,
    source_job_id: str | None,
    lineage_guard: LineageGuard | None = None,
) -> ModelVersion:
    for mkey in spec.metrics:
        validate_name(mkey, "metric name")

    def build(session: Session, number: int) -> ModelVersion:
        job_id, dataset_version_id = source_job_id, None
        if lineage_guard is not None:
            job_id, dataset_version_id = lineage_guard(session)
        row = ModelVersionRow(
            model_id=model_id,
            version=number,
            flavor=flavor,
            filename=filename,
            artifact_key=key,
            sha256=sha256,
            size=size,
            trusted=spec.trusted,
            signature=signature,
            description=spec.description,
            source_job_id=job_id,
            source_dataset_version_id=dataset_version_id,
        )
        row.metrics.extend(
            ModelVersionMetricRow(key=k, value=float(v)) for k, v in spec.metrics.items()
        )
        _apply_tags(row.tags, dict(spec.tags), ModelVersionTagRow)
        session.add(row)
        model = session.get(ModelRow, model_id)
        if model is None:
            raise NotFound("model was deleted during the upload")
        model.updated_at = utcnow()
        session.flush()
        session.refresh(row)
        return row.to_entity()

    return insert_next_version(
        db, ModelVersionRow.version, ModelVersionRow.model_id, model_id, build
    )


def list_versions(
    session: Session, project: str, name: str, status: str | None = None
) -> list[ModelVersion]:
    """A model's versions, newest first."""
    model = _model_row(session, project, name)
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
    if status:
        query = query.where(ModelVersionRow.status == status)
    rows = session.scalars(query.order_by(ModelVersionRow.version.desc()))
    return [r.to_entity() for r in rows]


def read_version(session: Session, project: str, name: str, ref: str | int) -> ModelVersion:
    """One version, by number or alias."""
    return _version_row(session, project, name, ref).to_entity()


def read_version_artifact(
    session: Session, project: str, name: str, ref: str | int
) -> tuple[ModelVersion, str]:
    """A version and the server-made key of its bytes."""
    row = _version_row(session, project, name, ref)
    return row.to_entity(), row.artifact_key


def update_version(
    session: Session, project: str, name: str, ref: str | int, spec: VersionUpdate
) -> ModelVersion:
    """Change a version's description, tags, metrics or status (archive / restore)."""
    row = _version_row(session, project, name, ref)
    if spec.description is not None:
        row.description = spec.description
    if spec.tags is not None:
        _apply_tags(row.tags, spec.tags, ModelVersionTagRow)
    if spec.metrics is not None:
        existing = {m.key: m for m in row.metrics}
        for key, value in spec.metrics.items():
            validate_name(key, "metric name")
            if key in existing:
                existing[key].value = float(value)
            else:
                row.metrics.append(ModelVersionMetricRow(key=key, value=float(value)))
    if spec.status is not None:
        row.status = spec.status
    session.flush()
    session.refresh(row)
    return row.to_entity()


def delete_version(db: Database, store: ArtifactStore, project: str, name: str, ref: str) -> None:
    """Delete a version (its aliases go with it), then its bytes."""
    with db.session() as session:
        row = _version_row(session, project, name, ref)
        key = row.artifact_key
        for alias in list(row.model.aliases):
            if alias.version_id == row.id:
                row.model.aliases.remove(alias)
        session.delete(row)
    store.delete(key)


def set_alias(session: Session, project: str, name: str, alias: str, version: int) -> Model:
    """Point ``alias`` at a version, creating or moving it."""
    validate_name(alias, "alias")
    if alias.isdigit():
        raise InvalidInput("an alias may not be a number: numbers name versions")
    model = _model_row(session, project, name)
    target = _version_row(session, project, name, version)
    existing = session.get(AliasRow, (model.id, alias))
    if existing is None:
        model.aliases.append(AliasRow(name=alias, version_id=target.id, version=target))
    else:
        existing.version_id = target.id
        existing.version = target
    model.updated_at = utcnow()
    session.flush()
    session.refresh(model)
    return _model_entity(session, model)


def delete_alias(session: Session, project: str, name: str, alias: str) -> None:
    """Remove an alias; NotFound if the model has no such alias."""
    model = _model_row(session, project, name)
    existing = session.get(AliasRow, (model.id, alias))
    if existing is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    model.aliases.remove(existing)
    session.flush()


def search_versions(
    session: Session, project: str, query: VersionQuery, limit: int = 100, offset: int = 0
) -> list[ModelVersion]:
    """Versions across a project's models that match every given filter."""
    # As in list_models: the project as a value lets SQLite walk models by name and each
    # model's (model_id, version) index newest first and stop at the limit (0.1 ms at
    # 10,000 versions) instead of sorting every version (~40 ms).
    project_id = read_project_row(session, project).id
    conditions: list[ColumnElement[bool]] = [ModelRow.project_id == project_id]
    if query.name:
        conditions.append(filters.name_contains(query.name))
    for key, value in query.tags.items():
        conditions.append(filters.version_has_tag(key, value))
    if query.flavor:
        conditions.append(ModelVersionRow.flavor == query.flavor)
    for metric in query.metrics:
        conditions.append(filters.version_metric(metric))
    if query.status:
        conditions.append(ModelVersionRow.status == query.status)
    if query.alias:
        conditions.append(filters.version_has_alias(query.alias))
    rows = session.scalars(
        select(ModelVersionRow)
        .join(ModelRow, ModelVersionRow.model_id == ModelRow.id)
        .where(*conditions)
        .order_by(ModelRow.name, ModelVersionRow.version.desc())
        .limit(limit)
        .offset(offset)
    ).unique()
    return [r.to_entity() for r in rows]
