"""Ground truth: labels attached to logged predictions by request id, and live quality.

Labels are stored like the logs (Parquet under ``feedback/<project>/<deployment>/
<hour>/``); quality joins them to the logged rows on ``(request_id, row)`` (the
last label given for a row wins) and computes the task's metrics with
``aimass.evaluation`` per version.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aimass.entities.monitoring import (
    Feedback,
    FeedbackReceipt,
    QualityReport,
    VersionQuality,
)
from aimass.monitoring.prediction_log import hour_folder
from aimass.monitoring.predictions import read_log

if TYPE_CHECKING:
    import pandas as pd

    from aimass.artifacts.store import ArtifactStore

PREFIX = "feedback"


def store_feedback(
    store: ArtifactStore, project: str, deployment: str, feedback: Feedback
) -> FeedbackReceipt:
    """Store the labels (one Parquet file); they join the log when quality is computed."""
    import pandas as pd

    now = datetime.now(UTC)
    frame = pd.DataFrame(
        {
            "_request_id": [x.request_id for x in feedback.labels],
            "_row": [x.row for x in feedback.labels],
            "label": [str(x.label) for x in feedback.labels],
            "_labelled": pd.Timestamp(now),
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.put(store.new_key(PREFIX, project, deployment, hour_folder(now)), [buffer.getvalue()])
    return FeedbackReceipt(stored=len(frame))


def read_feedback(store: ArtifactStore, project: str, deployment: str) -> pd.DataFrame:
    """Every label of ``deployment``; the latest per (request id, row)."""
    import pandas as pd

    frames = [
        pd.read_parquet(io.BytesIO(b"".join(store.open(key))))
        for key in sorted(store.list_keys(f"{PREFIX}/{project}/{deployment}"))
    ]
    if not frames:
        return pd.DataFrame(columns=["_request_id", "_row", "label", "_labelled"])
    frame = pd.concat(frames, ignore_index=True).sort_values("_labelled", kind="stable")
    return frame.drop_duplicates(["_request_id", "_row"], keep="last")


def _typed(labels: pd.Series, predictions: pd.Series) -> pd.Series:
    """Labels (stored as text) in the predictions' type, where they convert."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(predictions):
        return pd.to_numeric(labels, errors="coerce")
    return labels


def quality(
    store: ArtifactStore,
    project: str,
    deployment: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QualityReport:
    """Metrics per version over the logged rows in ``[start, end)`` that have a label."""
    from aimass.evaluation import classification_report, infer_task, regression_report

    logged = read_log(store, project, deployment, start=start, end=end)
    labels = read_feedback(store, project, deployment)
    versions: list[VersionQuality] = []
    if logged.empty or labels.empty or "prediction" not in logged.columns:
        return QualityReport(deployment=deployment, versions=versions)
    joined = logged.merge(labels[["_request_id", "_row", "label"]], on=["_request_id", "_row"])
    joined["label"] = _typed(joined["label"], joined["prediction"])
    joined = joined.dropna(subset=["label", "prediction"])
    for (model, version), group in joined.groupby(["_model", "_version"], sort=True):
        task = infer_task(group["label"].to_numpy())
        if task == "classification":
            report = classification_report(
                group["label"].to_numpy(), group["prediction"].to_numpy()
            )
        else:
            report = regression_report(group["label"].to_numpy(), group["prediction"].to_numpy())
        versions.append(
            VersionQuality(
                model=str(model),
                version=int(version),
                task=report.task,
                labelled_rows=len(group),
                metrics=report.metrics,
            )
        )
    return QualityReport(deployment=deployment, versions=versions)
