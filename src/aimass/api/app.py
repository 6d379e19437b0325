"""``create_app(platform)``: one server process's HTTP: the lean inference path beside FastAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from aimass import __version__
from aimass.api.docs import install_docs
from aimass.api.errors import install_error_handlers
from aimass.api.fastpath import FastInfer
from aimass.api.inference import InferenceApp
from aimass.api.middleware import EdgePolicy, RequestGuard
from aimass.api.openapi import install_openapi
from aimass.api.probes import ProbeListener
from aimass.api.routes import (
    access,
    datasets,
    deployments,
    evaluations,
    job_attempts,
    jobs,
    models,
    monitoring,
    pipelines,
    plugins,
    schedules,
    zoo,
)
from aimass.api.ui import install_ui
from aimass.errors import Unavailable
from aimass.monitoring.alerts import inference_samples
from aimass.monitoring.job_metrics import JobQueueCollector
from aimass.monitoring.metrics import PredictionLogMetrics
from aimass.monitoring.node import NodeCollector
from aimass.platform import Platform
from aimass.serving.autoscaler import ReplicaCollector
from aimass.serving.generation import GenerationLimits

if TYPE_CHECKING:
    from aimass.api.inference.grpc import GrpcEndpoint


class PlatformApp:
    """Routes each request to the inference path or the control plane, with no extra hop.

    Every request first passes the one HTTP edge (``api.middleware.RequestGuard``:
    Host, cross-site writes, body caps and timeouts, security headers, request id).
    Inference requests never touch FastAPI's routing, dependency injection or
    validation; everything else (and the lifespan) goes to FastAPI.
    """

    def __init__(
        self, control: FastAPI, inference: InferenceApp, platform: Platform, edge: EdgePolicy
    ) -> None:
        self.control = control
        self.inference = inference
        self.platform = platform
        self._guarded = RequestGuard(self._route, edge, inference.handles)
        #: The hot /v2 infer request served by the connection layer without the ASGI cycle
        #: (``api.fastpath``): the same guard and inference app, the same answers.
        self.fast_path = FastInfer(self._guarded, inference)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)

    def count_refusal(self, reason: str) -> None:
        """Count a request the connection layer refused (``api.connections``) by ``reason``."""
        self.inference.metrics.refused.labels(reason).inc()

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.inference.handles(scope["path"]):
            await self.inference(scope, receive, send)
            return
        await self.control(scope, receive, send)


def _control_plane(platform: Platform, inference: InferenceApp) -> FastAPI:
    grpc = _grpc_endpoint(platform, inference)
    settings = platform.settings
    probes = (
        None
        if settings.probe_port is None
        else ProbeListener(
            settings.host, settings.probe_port, inference.ready, settings.probe_stall_s
        )
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if probes is not None:  # first: a liveness probe answers while the platform starts
            await probes.start()
        try:
            await platform.start()
            try:
                if grpc is not None:
                    await grpc.start()
                yield
            finally:
                if grpc is not None:
                    await grpc.stop()
                await platform.stop()
        finally:
            if probes is not None:
                await probes.stop()

    app = FastAPI(
        title="aimass",
        version=__version__,
        description="AI Mass: register, train, serve, evaluate and monitor ML models.",
        lifespan=lifespan,
        docs_url=None,  # served by api.docs from packaged files, under the CSP
        redoc_url=None,
    )
    app.state.aimass = platform
    app.state.probes = probes  # the probe listener, or None (tests read its port)
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
        monitoring,
        plugins,
    ):
        app.include_router(module.router)
    install_openapi(app)
    install_ui(app)  # last: its page routes never shadow the API's
    return app


def _grpc_endpoint(platform: Platform, inference: InferenceApp) -> GrpcEndpoint | None:
    """The OIP gRPC server when ``grpc_port`` is set (its extra is checked at start)."""
    settings = platform.settings
    if settings.grpc_port is None:
        return None
    try:
        from aimass.api.inference.grpc import GrpcEndpoint
    except ImportError as exc:
        raise Unavailable(
            f"grpc_port is set but the grpc extra is missing ({exc.name}): "
            "pip install 'aimass[grpc]'"
        ) from None
    return GrpcEndpoint(inference, settings.host, settings.grpc_port, settings.max_inference_bytes)


def create_app(platform: Platform) -> PlatformApp:
    """The HTTP app over ``platform``; its lifespan starts and stops the platform.

    The database must already be migrated (``api.server.prepare``).
    """
    settings = platform.settings
    inference = InferenceApp(
        platform.repository,
        authenticate=platform.auth_cache,
        auth_enabled=settings.auth,
        max_body_bytes=settings.max_inference_bytes,
        max_tensor_elements=settings.max_tensor_elements,
        server_version=__version__,
        prediction_log=platform.prediction_log,
        generation=GenerationLimits(
            settings.llm_max_tokens, settings.llm_max_streams, settings.llm_timeout_s
        ),
        ready=lambda: platform.reconciler.synced,
    )
    PredictionLogMetrics(platform.prediction_log, inference.metrics.registry)
    inference.metrics.add_machine_collector(NodeCollector())
    inference.metrics.add_machine_collector(ReplicaCollector(platform.repository))
    inference.metrics.add_machine_collector(JobQueueCollector(platform.db))
    platform.alerts.sources.append(lambda: inference_samples(inference.metrics.registry))
    control = _control_plane(platform, inference)
    return PlatformApp(control, inference, platform, EdgePolicy.from_settings(settings))
