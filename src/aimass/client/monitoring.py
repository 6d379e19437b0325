"""Monitoring through the SDK: prediction logs, their export, drift reports and events."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from aimass.client._http import HttpSession
from aimass.entities.datasets import DatasetVersion
from aimass.entities.monitoring import (
    AlertsView,
    DriftReport,
    Feedback,
    FeedbackReceipt,
    Label,
    LogRecord,
    MonitoringEvent,
    NodeSample,
    NodeStatus,
    PredictionExport,
    PredictionPage,
    QualityReport,
)
from aimass.errors import InvalidInput


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class Monitoring:
    """``client.monitoring``: what deployments were asked and answered, and how it drifts."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def predictions(
        self,
        deployment: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        version: int | None = None,
        limit: int = 100,
        sample: int | None = None,
        seed: int | None = None,
    ) -> PredictionPage:
        """Logged rows of ``deployment`` in ``[start, end)``: the first ``limit``, or a sample."""
        params: dict[str, Any] = {
            "start": _when(start), "end": _when(end), "version": version, "limit": limit,
            "sample": sample, "seed": seed,
        }  # fmt: skip
        return PredictionPage.model_validate(
            self._http.get_json(
                f"/api/v1/deployments/{quote(deployment, safe='')}/predictions",
                self._http.scoped(params),
            )
        )

    def export(
        self,
        deployment: str,
        dataset: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        version: int | None = None,
        description: str = "",
    ) -> DatasetVersion:
        """Save logged predictions as a new version of ``dataset``."""
        body = PredictionExport(
            dataset=dataset, start=start, end=end, version=version, description=description
        )
        response = self._http.request(
            "POST",
            f"/api/v1/deployments/{quote(deployment, safe='')}/predictions/export",
            params=self._http.scoped(),
            json_body=body.model_dump(mode="json"),
        )
        return DatasetVersion.model_validate(response.json())

    def drift(
        self,
        deployment: str,
        *,
        window_s: float = 300.0,
        end: datetime | None = None,
        reference_dataset: str | None = None,
        reference_version: int | None = None,
        alpha: float | None = None,
        numeric_test: str | None = None,
        categorical_test: str | None = None,
    ) -> DriftReport:
        """Per-feature drift of the deployment's traffic in the last ``window_s`` seconds.

        ``numeric_test`` / ``categorical_test`` name drift tests (a plugin's among them).
        """
        params: dict[str, Any] = {
            "window_s": window_s, "end": _when(end), "reference_dataset": reference_dataset,
            "reference_version": reference_version, "alpha": alpha,
            "numeric_test": numeric_test, "categorical_test": categorical_test,
        }  # fmt: skip
        return DriftReport.model_validate(
            self._http.get_json(
                f"/api/v1/deployments/{quote(deployment, safe='')}/drift",
                self._http.scoped(params),
            )
        )

    def feedback(
        self, deployment: str, labels: Mapping[str, object] | Iterable[Label | Mapping[str, Any]]
    ) -> FeedbackReceipt:
        """Send true labels: ``{request_id: label}`` or ``[{"request_id", "row", "label"}]``."""
        try:
            if isinstance(labels, Mapping):
                items = [
                    Label.model_validate({"request_id": k, "label": v}) for k, v in labels.items()
                ]
            else:
                items = [x if isinstance(x, Label) else Label.model_validate(x) for x in labels]
            body = Feedback(labels=items)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidInput(f"invalid feedback {where}: {first['msg']}") from None
        response = self._http.request(
            "POST",
            f"/api/v1/deployments/{quote(deployment, safe='')}/feedback",
            params=self._http.scoped(),
            json_body=body.model_dump(mode="json"),
        )
        return FeedbackReceipt.model_validate(response.json())

    def quality(
        self, deployment: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> QualityReport:
        """Live quality per version, from logged predictions joined to their labels."""
        params: dict[str, Any] = {"start": _when(start), "end": _when(end)}
        return QualityReport.model_validate(
            self._http.get_json(
                f"/api/v1/deployments/{quote(deployment, safe='')}/quality",
                self._http.scoped(params),
            )
        )

    def events(
        self,
        *,
        kind: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[MonitoringEvent]:
        """The project's monitoring events (drift, alerts), newest first."""
        params: dict[str, Any] = {
            "kind": kind, "subject": subject, "since": _when(since), "limit": limit
        }  # fmt: skip
        found = self._http.get_json("/api/v1/monitoring/events", self._http.scoped(params))
        return [MonitoringEvent.model_validate(e) for e in found]

    def alerts(self) -> AlertsView:
        """The alert rules the server evaluates, and each rule and subject's latest state."""
        return AlertsView.model_validate(self._http.get_json("/api/v1/monitoring/alerts"))

    def nodes(self) -> builtins.list[NodeStatus]:
        """Every node's latest sample and whether it is down."""
        return [NodeStatus.model_validate(n) for n in self._http.get_json("/api/v1/nodes")]

    def node_history(
        self, node: str, *, since: datetime | None = None, limit: int = 2000
    ) -> builtins.list[NodeSample]:
        """A node's CPU, memory, disk and network history, oldest first."""
        params: dict[str, Any] = {"since": _when(since), "limit": limit}
        found = self._http.get_json(
            f"/api/v1/nodes/{quote(node, safe='')}/history",
            {k: v for k, v in params.items() if v is not None},
        )
        return [NodeSample.model_validate(s) for s in found]

    def logs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        level: str | None = None,
        component: str | None = None,
        request_id: str | None = None,
        text: str | None = None,
        limit: int = 200,
    ) -> builtins.list[LogRecord]:
        """The server's structured log (admin), newest ``limit`` matches, oldest first."""
        params: dict[str, Any] = {
            "since": _when(since), "until": _when(until), "level": level,
            "component": component, "request_id": request_id, "text": text, "limit": limit,
        }  # fmt: skip
        found = self._http.get_json(
            "/api/v1/logs", {k: v for k, v in params.items() if v is not None}
        )
        return [LogRecord.model_validate(r) for r in found]
