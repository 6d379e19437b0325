"""/api/v1/schedules: cron rules that start a job template or a pipeline run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from aimass.api.deps import Ctx, editor, viewer
from aimass.schedules import service
from aimass.schedules.entities import Schedule, ScheduleCreate, ScheduleUpdate

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


@router.post("", status_code=201)
def create_schedule(body: ScheduleCreate, ctx: Editor) -> Schedule:
    """Create a schedule; a bad cron, time zone or template is refused (422) up front."""
    with ctx.platform.db.session() as session:
        schedule = service.create_schedule(session, ctx.project, body, ctx.platform.catalog)
    ctx.platform.notify("schedules")
    return schedule


@router.get("")
def list_schedules(ctx: Viewer) -> list[Schedule]:
    """A project's schedules with when each fires next."""
    with ctx.platform.db.session() as session:
        return service.list_schedules(session, ctx.project)


@router.get("/{name}")
def read_schedule(name: str, ctx: Viewer) -> Schedule:
    """One schedule: its rule, template, next and last firing, and the last error."""
    with ctx.platform.db.session() as session:
        return service.read_schedule(session, ctx.project, name)


@router.patch("/{name}")
def update_schedule(name: str, body: ScheduleUpdate, ctx: Editor) -> Schedule:
    """Enable, disable, or change the cron, time zone or template."""
    with ctx.platform.db.session() as session:
        schedule = service.update_schedule(session, ctx.project, name, body, ctx.platform.catalog)
    ctx.platform.notify("schedules")
    return schedule


@router.delete("/{name}", status_code=204)
def delete_schedule(name: str, ctx: Editor) -> Response:
    """Delete a schedule; what it started runs on."""
    with ctx.platform.db.session() as session:
        service.delete_schedule(session, ctx.project, name)
    return Response(status_code=204)
