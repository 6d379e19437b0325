"""/api/v1/deployments: desired serving state (predict lives on the inference path)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from aimass.api.deps import Ctx, editor, viewer
from aimass.deployments import service
from aimass.deployments.entities import (
    Deployment,
    DeploymentCreate,
    DeploymentUpdate,
    Resources,
)
from aimass.errors import InvalidInput

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


@router.post("", status_code=201)
def create_deployment(body: DeploymentCreate, ctx: Editor) -> Deployment:
    """Deploy a version, an alias, weighted versions, or an ensemble served as one model."""
    _check_runner(body.resources, ctx)
    combiners = ctx.platform.registries.fusion_strategies.names()
    with ctx.platform.db.session() as session:
        created = service.create_deployment(session, ctx.project, body, combiners)
    ctx.platform.notify("deployments")
    return created


@router.get("")
def list_deployments(ctx: Viewer) -> list[Deployment]:
    """A project's deployments with their replicas' state."""
    with ctx.platform.db.session() as session:
        return service.list_deployments(session, ctx.project)


@router.get("/{name}")
def read_deployment(name: str, ctx: Viewer) -> Deployment:
    """One deployment with its replicas' state."""
    with ctx.platform.db.session() as session:
        return service.read_deployment(session, ctx.project, name)


@router.patch("/{name}")
def update_deployment(name: str, body: DeploymentUpdate, ctx: Editor) -> Deployment:
    """Change versions, weights, batching, replicas, resources or combiner without a restart."""
    _check_runner(body.resources, ctx)
    combiners = ctx.platform.registries.fusion_strategies.names()
    with ctx.platform.db.session() as session:
        updated = service.update_deployment(session, ctx.project, name, body, combiners)
    ctx.platform.notify("deployments")
    return updated


@router.delete("/{name}", status_code=204)
async def delete_deployment(name: str, ctx: Editor) -> Response:
    """Stop serving; requests in flight finish first."""

    def delete() -> None:
        with ctx.platform.db.session() as session:
            service.delete_deployment(session, ctx.project, name)

    await run_in_threadpool(delete)
    ctx.platform.repository.remove(name, ctx.project)  # here now; the others within a tick
    ctx.platform.notify("deployments")
    return Response(status_code=204)


def _check_runner(resources: Resources | None, ctx: Ctx) -> None:
    """Refuse Ray actor replicas on a server that has no Ray cluster to place them on."""
    if resources is not None and resources.runner == "ray" and not ctx.platform.on_ray:
        raise InvalidInput(
            "resources.runner 'ray' needs servers on a Ray cluster "
            "(aimass server --executor ray --ray-address ...); use 'auto' or 'process' here"
        )
