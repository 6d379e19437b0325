"""Monitoring records: drift reports, logged predictions and their queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureKind = Literal["numeric", "categorical"]


class FeatureDrift(BaseModel):
    """One feature's drift in one window against the reference."""

    feature: str
    kind: FeatureKind
    #: The drift test's name (a ``drift_tests`` registry entry) and its p-value.
    test: str
    p_value: float
    #: The distance (Wasserstein in reference standard deviations, or Jensen-Shannon).
    distance: str
    score: float
    #: The bootstrap distance threshold (never below the smallest effect that counts).
    threshold: float
    #: Population stability index (binned on the reference's deciles or categories).
    psi: float
    drifted: bool


class DriftReport(BaseModel):
    """Drift of a window of live data against a reference, feature by feature."""

    deployment: str | None = None
    project: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int
    reference_rows: int
    #: The family-wise false-alarm rate the per-feature tests share (Bonferroni).
    alpha: float
    features: list[FeatureDrift]
    drifted: list[str] = Field(default_factory=list)


class PredictionRecord(BaseModel):
    """One logged predicted row: what was asked, what was answered, by which version."""

    request_id: str
    #: The row's index within its request (a request may carry several rows).
    row: int = 0
    time: datetime
    project: str
    deployment: str
    model: str
    version: int
    latency_ms: float
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class PredictionPage(BaseModel):
    """Logged predictions matching a query, oldest first."""

    records: list[PredictionRecord]
    total: int


class MonitoringEvent(BaseModel):
    """Something monitoring noticed: ``kind`` drift or alert, about ``subject``."""

    id: int
    project: str
    kind: str
    subject: str
    severity: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class PredictionExport(BaseModel):
    """Write logged predictions (features and ``prediction``) as a new dataset version."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=128)
    start: datetime | None = None
    end: datetime | None = None
    version: int | None = Field(default=None, ge=1)
    description: str = Field(default="", max_length=10_000)


class Label(BaseModel):
    """The true answer for one logged row, found by its request id (and row in the request)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=256)
    row: int = Field(default=0, ge=0)
    label: float | int | str | bool


class Feedback(BaseModel):
    """Ground truth for logged predictions."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(min_length=1, max_length=100_000)


class FeedbackReceipt(BaseModel):
    """How many labels were stored."""

    stored: int


class VersionQuality(BaseModel):
    """Live quality of one version: its metrics over the logged rows that have a label."""

    model: str
    version: int
    task: str
    labelled_rows: int
    metrics: dict[str, float]


class QualityReport(BaseModel):
    """Live quality per version of a deployment, from logged predictions joined to feedback."""

    deployment: str
    versions: list[VersionQuality]


AlertMetric = Literal[
    "p99_latency_s", "error_rate", "drift_score", "quality", "job_failed", "node_down", "queue_full"
]


class AlertRule(BaseModel):
    """Fire when ``metric`` of a subject compares true with ``threshold`` for ``for_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    metric: AlertMetric
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    for_s: float = Field(default=0.0, ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    #: Only this subject (a deployment, a node); None: every subject the metric has.
    subject: str | None = None


class AlertState(BaseModel):
    """Where one (rule, subject) stands, from its latest alert event."""

    rule: str
    metric: str
    subject: str
    severity: str
    status: Literal["firing", "resolved"]
    summary: str
    starts_at: str
    ends_at: str | None = None
    at: datetime


class AlertsView(BaseModel):
    """The configured alert rules and each (rule, subject)'s latest state."""

    rules: list[AlertRule]
    alerts: list[AlertState]


class NodeSample(BaseModel):
    """A node's figures at ``at``: raw (``resolution_s`` the sampling interval) or averaged."""

    node: str
    at: datetime
    resolution_s: int
    cpu_percent: float
    memory_used_bytes: float
    memory_total_bytes: float
    disk_used_bytes: float
    disk_total_bytes: float
    net_rx_bytes_per_s: float
    net_tx_bytes_per_s: float
    gpu_percent: float | None = None


class NodeStatus(BaseModel):
    """A node's latest sample, and whether it is down (no sample for three intervals)."""

    node: str
    down: bool
    latest: NodeSample


class LogRecord(BaseModel):
    """One structured system log line."""

    time: datetime
    level: str
    component: str
    node: str
    pid: int | None = None
    request_id: str = "-"
    message: str
    exc: str | None = None
