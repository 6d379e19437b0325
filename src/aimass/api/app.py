"""``create_app``: the FastAPI application for one server process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aimass import __version__
from aimass.api.errors import install_error_handlers
from aimass.api.middleware import RequestGuard
from aimass.api.routes import access, datasets, health, models
from aimass.api.state import AppState
from aimass.config import Settings


def create_app(settings: Settings, state: AppState | None = None) -> FastAPI:
    """Build the app; the database must already be migrated (see ``aimass.api.server``)."""
    app_state = state or AppState.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        app_state.close()

    app = FastAPI(
        title="aimass",
        version=__version__,
        description="AI Mass: register, train, serve, evaluate and monitor ML models.",
        lifespan=lifespan,
    )
    app.state.aimass = app_state
    install_error_handlers(app)
    for module in (health, access, models, datasets):
        app.include_router(module.router)
    app.add_middleware(RequestGuard, max_upload_bytes=settings.max_upload_bytes)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from ``AIMASS_*`` (the CLI exports its flags)."""
    return create_app(Settings())
