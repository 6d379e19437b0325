"""/api/v1/models: models, versions, aliases, downloads and bundle export."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.responses import StreamingResponse

from aimass.api.deps import Ctx, editor, viewer
from aimass.api.downloads import stream_attachment, stream_temp_file
from aimass.api.ids import Offset
from aimass.api.uploads import SpooledUpload, handle_upload
from aimass.entities.registry import AliasSet
from aimass.jobs import records
from aimass.registry import service, transfer
from aimass.registry._filters import parse_tag
from aimass.registry.entities import (
    Model,
    ModelCreate,
    ModelUpdate,
    ModelVersion,
    VersionCreate,
    VersionQuery,
    VersionStatus,
    VersionUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["models"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _tags(tag: list[str] | None) -> dict[str, str]:
    return dict(parse_tag(t) for t in tag or [])


@router.post("/models", status_code=201)
def create_model(body: ModelCreate, ctx: Editor) -> Model:
    """Create an empty model."""
    with ctx.platform.db.session() as session:
        return service.create_model(session, ctx.project, body)


@router.get("/models")
def list_models(
    ctx: Viewer,
    name: str | None = None,
    tag: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
    flavor: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[Model]:
    """List models, filtered by name substring, tags or flavor."""
    with ctx.platform.db.session() as session:
        return service.list_models(
            session,
            ctx.project,
            name=name,
            tags=_tags(tag),
            flavor=flavor,
            limit=limit,
            offset=offset,
        )


@router.get("/models/{name}")
def read_model(name: str, ctx: Viewer) -> Model:
    """One model with its aliases."""
    with ctx.platform.db.session() as session:
        return service.read_model(session, ctx.project, name)


@router.patch("/models/{name}")
def update_model(name: str, body: ModelUpdate, ctx: Editor) -> Model:
    """Change a model's description or tags."""
    with ctx.platform.db.session() as session:
        return service.update_model(session, ctx.project, name, body)


@router.delete("/models/{name}", status_code=204)
def delete_model(name: str, ctx: Editor) -> Response:
    """Delete a model with all its versions."""
    service.delete_model(ctx.platform.db, ctx.platform.store, ctx.project, name)
    return Response(status_code=204)


@router.post("/models/{name}/versions", status_code=201)
async def create_version(name: str, request: Request, ctx: Editor) -> ModelVersion:
    """Upload a model file as a new version (multipart: ``file``, optional ``meta`` JSON)."""
    platform = ctx.platform

    def register(upload: SpooledUpload, spec: VersionCreate) -> ModelVersion:
        guard = records.lineage_guard(ctx.principal, spec.job, auth=platform.settings.auth)
        return service.register_version(
            platform.db,
            platform.store,
            platform.flavors,
            project=ctx.project,
            name=name,
            upload=upload.path,
            filename=upload.filename,
            spec=spec,
            can_trust=ctx.principal.is_global_admin,
            lineage_guard=guard,
        )

    return await handle_upload(request, platform.settings.spool_dir, VersionCreate, register)


@router.get("/models/{name}/versions")
def list_versions(
    name: str, ctx: Viewer, status: VersionStatus | None = None
) -> list[ModelVersion]:
    """A model's versions, newest first."""
    with ctx.platform.db.session() as session:
        return service.list_versions(session, ctx.project, name, status)


@router.get("/models/{name}/versions/{ref}")
def read_version(name: str, ref: str, ctx: Viewer) -> ModelVersion:
    """One version, by number or alias."""
    with ctx.platform.db.session() as session:
        return service.read_version(session, ctx.project, name, ref)


@router.patch("/models/{name}/versions/{ref}")
def update_version(name: str, ref: str, body: VersionUpdate, ctx: Editor) -> ModelVersion:
    """Change a version's description, tags, metrics or status."""
    with ctx.platform.db.session() as session:
        return service.update_version(session, ctx.project, name, ref, body)


@router.delete("/models/{name}/versions/{ref}", status_code=204)
def delete_version(name: str, ref: str, ctx: Editor) -> Response:
    """Delete one version and its bytes."""
    service.delete_version(ctx.platform.db, ctx.platform.store, ctx.project, name, ref)
    return Response(status_code=204)


@router.get("/models/{name}/versions/{ref}/download", response_class=StreamingResponse)
def download_version(name: str, ref: str, ctx: Viewer) -> StreamingResponse:
    """The version's file, verified against its checksum as it streams."""
    with ctx.platform.db.session() as session:
        version, key = service.read_version_artifact(session, ctx.project, name, ref)
    chunks = ctx.platform.store.open(key, version.sha256)
    return stream_attachment(chunks, version.filename, version.size, version.sha256)


@router.get("/models/{name}/versions/{ref}/bundle", response_class=StreamingResponse)
def export_version(name: str, ref: str, ctx: Viewer) -> StreamingResponse:
    """The version as one portable bundle file."""
    spool = ctx.platform.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"export-{uuid.uuid4().hex}"
    try:
        with path.open("xb") as out:
            manifest = transfer.export_version(
                ctx.platform.db, ctx.platform.store, ctx.project, name, ref, out
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return stream_temp_file(path, f"{manifest.model}-v{manifest.version}.aimass")


@router.put("/models/{name}/aliases/{alias}")
def set_alias(name: str, alias: str, body: AliasSet, ctx: Editor) -> Model:
    """Create or move an alias."""
    with ctx.platform.db.session() as session:
        model = service.set_alias(session, ctx.project, name, alias, body.version)
    ctx.platform.notify(
        "deployments"
    )  # deployments that follow this alias switch now, not next tick
    return model


@router.delete("/models/{name}/aliases/{alias}", status_code=204)
def delete_alias(name: str, alias: str, ctx: Editor) -> Response:
    """Remove an alias."""
    with ctx.platform.db.session() as session:
        service.delete_alias(session, ctx.project, name, alias)
    ctx.platform.notify("deployments")
    return Response(status_code=204)


@router.get("/versions")
def search_versions(
    ctx: Viewer,
    name: str | None = None,
    tag: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
    flavor: str | None = None,
    metric: Annotated[list[str] | None, Query(description="e.g. accuracy>=0.9")] = None,
    status: VersionStatus | None = None,
    alias: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ModelVersion]:
    """Search versions across models by name, tags, flavor, metrics, status or alias."""
    query = VersionQuery(
        name=name,
        tags=_tags(tag),
        flavor=flavor,
        metrics=metric or [],
        status=status,
        alias=alias,
    )
    with ctx.platform.db.session() as session:
        return service.search_versions(session, ctx.project, query, limit, offset)


@router.post("/bundles", status_code=201)
async def import_bundle(request: Request, ctx: Editor) -> ModelVersion:
    """Import a bundle file as a new version (multipart: ``file``, optional ``meta`` JSON)."""
    platform = ctx.platform

    def import_(upload: SpooledUpload, spec: transfer.BundleImport) -> ModelVersion:
        return transfer.import_bundle(
            platform.db,
            platform.store,
            platform.flavors,
            project=ctx.project,
            bundle=upload.path,
            spec=spec,
            can_trust=ctx.principal.is_global_admin,
            work_dir=platform.settings.spool_dir,
            max_expanded_bytes=platform.settings.max_upload_bytes,
        )

    return await handle_upload(request, platform.settings.spool_dir, transfer.BundleImport, import_)
