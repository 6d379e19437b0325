"""/api/v1/deployments/{name}/predictions, /drift, /api/v1/monitoring/events and /alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from aimass.api.deps import Ctx, admin, editor, viewer
from aimass.api.ids import MAX_INT
from aimass.entities.datasets import DatasetVersion
from aimass.entities.monitoring import (
    AlertsView,
    DriftReport,
    Feedback,
    FeedbackReceipt,
    LogRecord,
    MonitoringEvent,
    NodeSample,
    NodeStatus,
    PredictionExport,
    PredictionPage,
    QualityReport,
)
from aimass.monitoring import events, feedback, node_history, predictions, system_log

router = APIRouter(tags=["monitoring"])
Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]
Admin = Annotated[Ctx, Depends(admin)]


@router.get("/api/v1/deployments/{name}/predictions")
def list_predictions(
    name: str,
    ctx: Viewer,
    start: datetime | None = None,
    end: datetime | None = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    sample: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    seed: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
) -> PredictionPage:
    """Logged predictions of a deployment in ``[start, end)``: the first ``limit``, or a sample."""
    return predictions.query_predictions(
        ctx.platform.store, ctx.project, name,
        start=start, end=end, version=version, limit=limit, sample=sample, seed=seed,
    )  # fmt: skip


@router.post("/api/v1/deployments/{name}/predictions/export", status_code=201)
def export_predictions(name: str, body: PredictionExport, ctx: Editor) -> DatasetVersion:
    """Save logged predictions as a new version of a dataset (Parquet)."""
    return predictions.export_predictions(
        ctx.platform.db, ctx.platform.store, ctx.project, name, body.dataset,
        start=body.start, end=body.end, version=body.version, description=body.description,
    )  # fmt: skip


@router.get("/api/v1/deployments/{name}/drift")
def drift_report(
    name: str,
    ctx: Viewer,
    window_s: Annotated[float, Query(gt=0, le=604_800)] = 300.0,
    end: datetime | None = None,
    reference_dataset: str | None = None,
    reference_version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    alpha: Annotated[float | None, Query(gt=0, lt=1)] = None,
    numeric_test: Annotated[str | None, Query(max_length=200)] = None,
    categorical_test: Annotated[str | None, Query(max_length=200)] = None,
) -> DriftReport:
    """Per-feature drift of the deployment's logged traffic in the last ``window_s`` seconds.

    ``numeric_test`` / ``categorical_test`` pick drift tests by name (``GET /api/v1/plugins``
    lists them, a plugin's among them); the defaults are ``ks`` and ``chi2``.
    """
    return ctx.platform.drift.report(
        ctx.project, name, window_s=window_s, end=end,
        reference_dataset=reference_dataset, reference_version=reference_version, alpha=alpha,
        numeric_test=numeric_test, categorical_test=categorical_test,
    )  # fmt: skip


@router.post("/api/v1/deployments/{name}/feedback", status_code=201)
def send_feedback(name: str, body: Feedback, ctx: Editor) -> FeedbackReceipt:
    """Attach true labels to logged predictions by request id (and row within the request)."""
    return feedback.store_feedback(ctx.platform.store, ctx.project, name, body)


@router.get("/api/v1/deployments/{name}/quality")
def live_quality(
    name: str, ctx: Viewer, start: datetime | None = None, end: datetime | None = None
) -> QualityReport:
    """Live quality per version: the task's metrics over logged rows that have a label."""
    return feedback.quality(ctx.platform.store, ctx.project, name, start=start, end=end)


@router.get("/api/v1/monitoring/events")
def list_events(
    ctx: Viewer,
    kind: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MonitoringEvent]:
    """Monitoring events of the project (drift, alerts), newest first."""
    with ctx.platform.db.session() as session:
        return events.list_events(
            session, ctx.project, kind=kind, subject=subject, since=since, limit=limit
        )


@router.get("/api/v1/monitoring/alerts")
def list_alerts(ctx: Viewer) -> AlertsView:
    """The alert rules the server evaluates, and each rule and subject's latest state."""
    with ctx.platform.db.session() as session:
        alerts = events.alert_states(session, ctx.project)
    return AlertsView(rules=ctx.platform.alerts.engine.rules, alerts=alerts)


@router.get("/api/v1/nodes")
def list_nodes(ctx: Viewer) -> list[NodeStatus]:
    """Every node's latest CPU, memory, disk and network sample, and whether it is down."""
    with ctx.platform.db.session() as session:
        return node_history.list_nodes(session, 3 * ctx.platform.settings.node_interval_s)


@router.get("/api/v1/nodes/{node}/history")
def node_samples(
    node: str,
    ctx: Viewer,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 2000,
) -> list[NodeSample]:
    """A node's history, oldest first (raw, then 1-minute and 1-hour averages as it ages)."""
    with ctx.platform.db.session() as session:
        return node_history.node_history(session, node, since=since, limit=limit)


@router.get("/api/v1/logs")
def search_logs(
    ctx: Admin,
    since: datetime | None = None,
    until: datetime | None = None,
    level: str | None = None,
    component: str | None = None,
    request_id: str | None = None,
    text: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[LogRecord]:
    """The server's structured log (admin): filtered by time, level, component, request id, text."""
    return system_log.search(
        ctx.platform.settings.system_log_dir, since=since, until=until, level=level,
        component=component, request_id=request_id, text=text, limit=limit,
    )  # fmt: skip
