"""/api/v1/models/{name}/...: evaluation reports of versions and side-by-side comparison."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from aimass.api.deps import Ctx, viewer
from aimass.entities.evaluation import Evaluation
from aimass.evaluation import Comparison
from aimass.registry import evaluations

router = APIRouter(prefix="/api/v1/models/{name}", tags=["evaluations"])
Viewer = Annotated[Ctx, Depends(viewer)]


@router.get("/versions/{ref}/evaluations")
def list_evaluations(name: str, ref: str, ctx: Viewer) -> list[Evaluation]:
    """The evaluation reports of one version (number or alias), newest first."""
    with ctx.platform.db.session() as session:
        return evaluations.list_evaluations(session, ctx.project, name, ref)


@router.get("/compare")
def compare_versions(
    name: str,
    ctx: Viewer,
    versions: Annotated[
        str, Query(description="comma-separated numbers or aliases: 1,2,production")
    ],
    dataset: Annotated[str, Query(description="the dataset they were evaluated on")],
) -> Comparison:
    """Versions side by side on one dataset, with the best version per metric."""
    refs = [v.strip() for v in versions.split(",") if v.strip()]
    with ctx.platform.db.session() as session:
        return evaluations.compare_versions(session, ctx.project, name, refs, dataset)
