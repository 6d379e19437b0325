"""/api/v1/plugins: the installed plugins, the slots each filled, and why any failed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from aimass.api.deps import Ctx, viewer
from aimass.entities.plugins import PluginStatus

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
Viewer = Annotated[Ctx, Depends(viewer)]


@router.get("")
def list_plugins(ctx: Viewer) -> list[PluginStatus]:
    """Every ``aimass.plugins`` entry point this server found, loaded or failed with its reason."""
    return list(ctx.platform.registries.statuses)
