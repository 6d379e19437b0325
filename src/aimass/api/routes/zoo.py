"""/api/v1/zoo: the model library's catalogue and its built-in datasets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from aimass.api.deps import Ctx, editor, viewer
from aimass.datasets.builtin import ensure_builtin, list_builtin_datasets
from aimass.datasets.entities import DatasetVersion
from aimass.entities.catalog import BuiltinDatasetInfo, ZooEntry
from aimass.errors import NotFound
from aimass.jobs.entry_view import describe_entry

router = APIRouter(prefix="/api/v1/zoo", tags=["zoo"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


# Unset fields stay out of the answer: an entry with no example request has no infer_command.
@router.get("", response_model_exclude_unset=True)
def list_zoo(ctx: Viewer) -> list[ZooEntry]:
    """Every model-library entry: task, family, params schema, default dataset, exports."""
    entries = ctx.platform.catalog.all()
    return [ZooEntry.model_validate(describe_entry(e)) for e in entries if e.family is not None]


@router.get("/datasets")
def list_zoo_datasets(ctx: Viewer) -> list[BuiltinDatasetInfo]:
    """The built-in datasets, and the version each has in this project (None: not yet)."""
    found = list_builtin_datasets(ctx.platform.db, ctx.project)
    return [BuiltinDatasetInfo.model_validate(d) for d in found]


@router.post("/datasets/{name}", status_code=201)
def materialize_dataset(name: str, ctx: Editor) -> DatasetVersion:
    """Register a built-in dataset in this project now (what a job's first use does)."""
    platform = ctx.platform
    return ensure_builtin(
        platform.db, platform.store, ctx.project, name, platform.settings.spool_dir
    )


@router.get("/{name}", response_model_exclude_unset=True)
def read_zoo_entry(name: str, ctx: Viewer) -> ZooEntry:
    """One entry, with its params (types, defaults), signature and example request."""
    entry = ctx.platform.catalog.get(name)
    if entry is None or entry.family is None:
        known = ", ".join(e.name for e in ctx.platform.catalog.all() if e.family is not None)
        raise NotFound(f"no model-library entry {name!r} (known: {known})")
    return ZooEntry.model_validate(describe_entry(entry))
