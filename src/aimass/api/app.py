"""``create_app``: one server process: the lean inference path beside the FastAPI control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from aimass import __version__
from aimass.api.docs import install_docs
from aimass.api.errors import install_error_handlers
from aimass.api.jobs_runtime import start_jobs, stop_jobs
from aimass.api.middleware import EdgePolicy, RequestGuard
from aimass.api.routes import (
    access,
    datasets,
    deployments,
    evaluations,
    job_attempts,
    jobs,
    models,
    pipelines,
    schedules,
    zoo,
)
from aimass.api.state import AppState
from aimass.auth.entities import Principal
from aimass.config import Settings
from aimass.deployments.reconciler import DeploymentReconciler
from aimass.serving.inference_app import InferenceApp
from aimass.serving.repository import ModelRepository


class PlatformApp:
    """Routes each request to the inference path or the control plane, with no extra hop.

    Every request first passes the one HTTP edge (``api.middleware.RequestGuard``:
    Host, cross-site writes, body caps and timeouts, security headers, request id).
    Inference requests never touch FastAPI's routing, dependency injection or
    validation; everything else (and the lifespan) goes to FastAPI.
    """

    def __init__(
        self, control: FastAPI, inference: InferenceApp, state: AppState, edge: EdgePolicy
    ) -> None:
        self.control = control
        self.inference = inference
        self.state = state
        self._guarded = RequestGuard(self._route, edge, inference.handles)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.inference.handles(scope["path"]):
            await self.inference(scope, receive, send)
            return
        await self.control(scope, receive, send)


def _control_plane(settings: Settings, state: AppState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        assert state.repository is not None
        state.reconciler = DeploymentReconciler(
            state.db,
            state.store,
            state.flavors,
            state.repository,
            settings.model_cache_dir,
            interval=settings.reconcile_interval,
            freeze_gc=settings.tune_gc,
        )
        state.reconciler.start()
        if settings.jobs:
            start_jobs(state)
        try:
            yield
        finally:
            await stop_jobs(state)
            await state.reconciler.stop()
            await state.repository.close()
            state.close()

    app = FastAPI(
        title="aimass",
        version=__version__,
        description="AI Mass: register, train, serve, evaluate and monitor ML models.",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs from packaged files, under the CSP
        redoc_url=None,
    )
    app.state.aimass = state
    install_error_handlers(app)
    install_docs(app)
    for module in (
        access,
        models,
        evaluations,
        datasets,
        deployments,
        jobs,
        job_attempts,
        zoo,
        schedules,
        pipelines,
    ):
        app.include_router(module.router)
    return app


def create_app(settings: Settings, state: AppState | None = None) -> PlatformApp:
    """Build the process's app; the database must already be migrated (``api.server``)."""
    from aimass.auth.service import authenticate

    app_state = state or AppState.from_settings(settings)
    app_state.repository = ModelRepository()

    def authenticate_secret(secret: str | None) -> Principal:
        with app_state.db.session() as session:
            return authenticate(session, secret)

    inference = InferenceApp(
        app_state.repository,
        authenticate=authenticate_secret,
        auth_enabled=settings.auth,
        max_body_bytes=settings.max_inference_bytes,
        max_tensor_elements=settings.max_tensor_elements,
        server_version=__version__,
    )
    app_state.auth_cache = inference.auth
    control = _control_plane(settings, app_state)
    return PlatformApp(control, inference, app_state, EdgePolicy.from_settings(settings))


def create_app_from_env() -> PlatformApp:
    """Factory for uvicorn workers: settings from ``AIMASS_*`` (the CLI exports its flags)."""
    from aimass.api.server import tune_gc

    settings = Settings()
    app = create_app(settings)
    if settings.tune_gc:
        tune_gc()
    return app
