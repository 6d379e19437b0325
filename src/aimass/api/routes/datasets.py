"""/api/v1/datasets: dataset uploads, profiles and downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.responses import StreamingResponse

from aimass.api.deps import Ctx, editor, viewer
from aimass.api.downloads import stream_attachment
from aimass.api.ids import Id
from aimass.api.uploads import SpooledUpload, handle_upload
from aimass.datasets import service
from aimass.datasets.entities import Dataset, DatasetVersion
from aimass.datasets.limits import DatasetLimits
from aimass.datasets.service import DatasetVersionCreate

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


@router.post("/{name}/versions", status_code=201)
async def create_dataset_version(name: str, request: Request, ctx: Editor) -> DatasetVersion:
    """Upload CSV, Parquet or NPZ as a new immutable version with its profile."""
    platform = ctx.platform
    settings = platform.settings

    def register(upload: SpooledUpload, spec: DatasetVersionCreate) -> DatasetVersion:
        return service.register_dataset_version(
            platform.db,
            platform.store,
            project=ctx.project,
            name=name,
            upload=upload.path,
            filename=upload.filename,
            spec=spec,
            limits=DatasetLimits(
                max_rows=settings.dataset_max_rows,
                max_cells=settings.dataset_max_cells,
                max_bytes=settings.dataset_max_bytes,
            ),
        )

    return await handle_upload(request, platform.settings.spool_dir, DatasetVersionCreate, register)


@router.get("")
def list_datasets(ctx: Viewer) -> list[Dataset]:
    """A project's datasets."""
    with ctx.platform.db.session() as session:
        return service.list_datasets(session, ctx.project)


@router.get("/{name}")
def read_dataset(name: str, ctx: Viewer) -> Dataset:
    """One dataset."""
    with ctx.platform.db.session() as session:
        return service.read_dataset(session, ctx.project, name)


@router.delete("/{name}", status_code=204)
def delete_dataset(name: str, ctx: Editor) -> Response:
    """Delete a dataset, its versions and their bytes."""
    service.delete_dataset(ctx.platform.db, ctx.platform.store, ctx.project, name)
    return Response(status_code=204)


@router.get("/{name}/versions")
def list_dataset_versions(name: str, ctx: Viewer) -> list[DatasetVersion]:
    """A dataset's versions, newest first."""
    with ctx.platform.db.session() as session:
        return service.list_dataset_versions(session, ctx.project, name)


@router.get("/{name}/versions/{version}")
def read_dataset_version(name: str, version: Id, ctx: Viewer) -> DatasetVersion:
    """One version with its schema and profile."""
    with ctx.platform.db.session() as session:
        return service.read_dataset_version(session, ctx.project, name, version)


@router.get("/{name}/versions/{version}/download", response_class=StreamingResponse)
def download_dataset_version(name: str, version: Id, ctx: Viewer) -> StreamingResponse:
    """The version's file, verified against its checksum as it streams."""
    with ctx.platform.db.session() as session:
        found, key = service.read_dataset_artifact(session, ctx.project, name, version)
    chunks = ctx.platform.store.open(key, found.sha256)
    return stream_attachment(chunks, found.filename, found.size, found.sha256)
