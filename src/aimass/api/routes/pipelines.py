"""/api/v1/pipelines: DAGs of job and action steps, their runs and each step's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from aimass.api.deps import Ctx, editor, viewer
from aimass.api.ids import Id
from aimass.pipelines import service
from aimass.pipelines.entities import Pipeline, PipelineCreate, PipelineRun

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


@router.post("", status_code=201)
def create_pipeline(body: PipelineCreate, ctx: Editor, response: Response) -> Pipeline:
    """Create a pipeline (201), or replace the steps of the one of that name (200)."""
    with ctx.platform.db.session() as session:
        pipeline = service.create_pipeline(session, ctx.project, body, ctx.platform.catalog)
    if pipeline.revision > 1:
        response.status_code = 200
    return pipeline


@router.get("")
def list_pipelines(ctx: Viewer) -> list[Pipeline]:
    """A project's pipelines."""
    with ctx.platform.db.session() as session:
        return service.list_pipelines(session, ctx.project)


# Declared before /{name}: 'runs' is a reserved pipeline name for this reason.
@router.get("/runs/{run_id}")
def read_run(run_id: Id, ctx: Viewer) -> PipelineRun:
    """One run with each step's state, job, outputs and reason."""
    with ctx.platform.db.session() as session:
        return service.read_run(session, run_id, ctx.project)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: Id, ctx: Editor) -> PipelineRun:
    """Cancel a run and the jobs of its running steps (409 once it has finished)."""

    def cancel() -> PipelineRun:
        with ctx.platform.db.session() as session:
            return service.cancel_run(session, run_id, ctx.project)

    run = await run_in_threadpool(cancel)
    ctx.platform.notify("jobs")  # its running jobs stop now
    return run


@router.get("/{name}")
def read_pipeline(name: str, ctx: Viewer) -> Pipeline:
    """One pipeline with its steps in running order."""
    with ctx.platform.db.session() as session:
        return service.read_pipeline(session, ctx.project, name)


@router.delete("/{name}", status_code=204)
def delete_pipeline(name: str, ctx: Editor) -> Response:
    """Delete a pipeline and its finished runs (409 while a run is under way)."""
    with ctx.platform.db.session() as session:
        service.delete_pipeline(session, ctx.project, name)
    return Response(status_code=204)


@router.post("/{name}/runs", status_code=201)
async def start_run(name: str, ctx: Editor) -> PipelineRun:
    """Start a run of the pipeline as it is now; its first steps are submitted at once."""

    def start() -> PipelineRun:
        with ctx.platform.db.session() as session:
            trigger = f"by {ctx.principal.name}"
            return service.start_run(session, ctx.project, name, trigger=trigger)

    run = await run_in_threadpool(start)
    ctx.platform.notify("pipelines")
    return run


@router.get("/{name}/runs")
def list_runs(
    name: str, ctx: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[PipelineRun]:
    """A pipeline's runs, newest first."""
    with ctx.platform.db.session() as session:
        return service.list_runs(session, ctx.project, name, limit)
